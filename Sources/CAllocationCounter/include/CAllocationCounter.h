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
/// Diagnostics: prints a backtrace (backtrace_symbols_fd, to stderr) of each of the next `count` allocations
/// counted on any thread while its counting is on; 0 turns tracing off. Any thread.
void lampcell_allocations_trace(int64_t count);
/// Test support: removes the Swift runtime's will-throw hooks (`_swift_willThrow`, `_swift_willThrowTypedImpl`)
/// until `lampcell_swift_throw_hooks_restore`. Swift Testing installs one that captures (allocates) a backtrace of
/// every thrown error, on any thread; a production process has none. Returns how many hooks were installed, or -1
/// when the runtime does not have them. Any thread; not nestable.
int lampcell_swift_throw_hooks_suspend(void);
/// Puts back the hooks `lampcell_swift_throw_hooks_suspend` removed.
void lampcell_swift_throw_hooks_restore(void);
#endif
