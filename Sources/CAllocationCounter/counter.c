#define _GNU_SOURCE
#include "CAllocationCounter.h"
#include <stddef.h>
#include <errno.h>
#include <execinfo.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static __thread int counting = 0;
static __thread uint64_t counted = 0;
/// Set while this thread writes a backtrace (backtrace() may allocate on its first use: no recursion).
static __thread int tracing = 0;
static uint64_t total = 0;
/// Backtraces still to print (0: tracing off).
static int64_t traces_left = 0;

/// Frames printed per traced allocation.
#define LAMPCELL_TRACE_DEPTH 24

static void trace(const char *kind, size_t size) {
    if (__atomic_load_n(&traces_left, __ATOMIC_RELAXED) <= 0 || tracing) return;
    if (__atomic_sub_fetch(&traces_left, 1, __ATOMIC_RELAXED) < 0) return;
    tracing = 1;
    // Only async-signal-safe output: no stdio (it allocates), no formatting library.
    char line[96];
    size_t n = 0;
    const char *prefix = "lampcell allocation: ";
    for (const char *p = prefix; *p; p++) line[n++] = *p;
    for (const char *p = kind; *p && n < 60; p++) line[n++] = *p;
    line[n++] = ' ';
    char digits[24];
    int d = 0;
    do { digits[d++] = (char)('0' + size % 10); size /= 10; } while (size > 0 && d < 24);
    while (d > 0 && n < sizeof line - 10) line[n++] = digits[--d];
    const char *suffix = " bytes\n";
    for (const char *p = suffix; *p; p++) line[n++] = *p;
    ssize_t written = write(STDERR_FILENO, line, n);
    (void)written;
    void *frames[LAMPCELL_TRACE_DEPTH];
    int depth = backtrace(frames, LAMPCELL_TRACE_DEPTH);
    backtrace_symbols_fd(frames, depth, STDERR_FILENO);
    tracing = 0;
}

static inline void note(const char *kind, size_t size) {
    if (counting) {
        counted++;
        __atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
        if (__builtin_expect(__atomic_load_n(&traces_left, __ATOMIC_RELAXED) > 0, 0)) trace(kind, size);
    }
}

void lampcell_allocations_begin(void) { counted = 0; counting = 1; }
uint64_t lampcell_allocations_end(void) { counting = 0; return counted; }
uint64_t lampcell_allocations_total(void) { return __atomic_load_n(&total, __ATOMIC_RELAXED); }

void lampcell_allocations_trace(int64_t count) {
    if (count > 0) {
        // Load the unwinder now (backtrace() dlopens libgcc_s on its first call, which allocates).
        void *frames[2];
        (void)backtrace(frames, 2);
    }
    __atomic_store_n(&traces_left, count > 0 ? count : 0, __ATOMIC_RELAXED);
}

void *malloc(size_t size) { note("malloc", size); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { note("calloc", count * size); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { note("realloc", size); return __libc_realloc(pointer, size); }
void free(void *pointer) { __libc_free(pointer); }
void *memalign(size_t alignment, size_t size) { note("memalign", size); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { note("aligned_alloc", size); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    note("posix_memalign", size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

// The Swift runtime calls these hooks on every `throw`. Swift Testing installs one that captures a backtrace of the
// thrown error (it allocates), on whatever thread throws: under test, a Modbus request that fails on the control
// thread would count allocations that a production process never makes (typed throws do not allocate).
extern void *_swift_willThrow __attribute__((weak));
extern void *_swift_willThrowTypedImpl __attribute__((weak));
static void *saved_will_throw = NULL;
static void *saved_will_throw_typed = NULL;

int lampcell_swift_throw_hooks_suspend(void) {
    if (&_swift_willThrow == NULL || &_swift_willThrowTypedImpl == NULL) return -1;
    saved_will_throw = __atomic_exchange_n(&_swift_willThrow, NULL, __ATOMIC_SEQ_CST);
    saved_will_throw_typed = __atomic_exchange_n(&_swift_willThrowTypedImpl, NULL, __ATOMIC_SEQ_CST);
    return (saved_will_throw != NULL) + (saved_will_throw_typed != NULL);
}

void lampcell_swift_throw_hooks_restore(void) {
    if (&_swift_willThrow == NULL || &_swift_willThrowTypedImpl == NULL) return;
    __atomic_store_n(&_swift_willThrow, saved_will_throw, __ATOMIC_SEQ_CST);
    __atomic_store_n(&_swift_willThrowTypedImpl, saved_will_throw_typed, __ATOMIC_SEQ_CST);
}
