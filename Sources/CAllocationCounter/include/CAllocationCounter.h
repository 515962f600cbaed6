#ifndef LAMPCELL_ALLOCATION_COUNTER_H
#define LAMPCELL_ALLOCATION_COUNTER_H
// Test support: counts heap allocations made by the calling thread while counting is on.
// The library defines malloc/calloc/realloc/posix_memalign/aligned_alloc/memalign, forwarding to glibc's
// __libc_* entry points, so linking it into a test binary interposes the whole process's allocator.
#include <stdint.h>

/// Starts counting allocations made by the calling thread.
void lampcell_allocations_begin(void);
/// Stops counting on the calling thread; returns the allocations counted since begin.
uint64_t lampcell_allocations_end(void);
/// Allocations counted on all threads while their counting was on (since process start).
uint64_t lampcell_allocations_total(void);
#endif
