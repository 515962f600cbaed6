#ifndef LAMPCELL_CREALTIME_H
#define LAMPCELL_CREALTIME_H
// Small C helpers for calls Swift cannot make directly (variadic prctl, macros).
#include <stddef.h>
#include <stdint.h>

/// prctl(PR_SET_TIMERSLACK, ns). Returns 0 or -errno.
int lampcell_set_timer_slack_ns(unsigned long nanoseconds);
/// sched_setscheduler(0, SCHED_FIFO, priority) for the calling thread. Returns 0 or -errno.
int lampcell_set_fifo_priority(int priority);
/// mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): pages are locked as they are first touched (plain
/// MCL_CURRENT | MCL_FUTURE on kernels without MCL_ONFAULT). Returns 0 or -errno.
int lampcell_lock_memory(void);
/// Touches `bytes` of the calling thread's stack below the current frame, so that (with memory locked on fault)
/// those pages are resident and locked before the thread's real work needs them. `bytes` must leave room on the
/// stack.
void lampcell_prefault_stack(size_t bytes);
/// The calling thread's minor and major page faults since it started (getrusage(RUSAGE_THREAD)). A syscall
/// without allocation. Returns 0 or -errno.
int lampcell_thread_page_faults(uint64_t *minor, uint64_t *major);
/// Pins the calling thread to one CPU. Returns 0 or -errno.
int lampcell_pin_to_cpu(int cpu);
/// Sleeps until an absolute CLOCK_MONOTONIC deadline, retrying on EINTR. Returns 0 or -errno.
int lampcell_sleep_until_ns(uint64_t deadline_ns);
/// CLOCK_MONOTONIC in nanoseconds.
uint64_t lampcell_monotonic_ns(void);
/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
uint64_t lampcell_realtime_ns(void);
/// The calling thread's kernel id.
int lampcell_gettid(void);
struct pollfd;
/// ppoll() with a nanosecond timeout (poll() counts milliseconds, too coarse for a period's deadlines), retrying on
/// EINTR with the time left. Returns the number of ready descriptors, 0 at the timeout, or -errno.
int lampcell_poll_ns(struct pollfd *fds, unsigned long count, uint64_t timeout_ns);
#endif
