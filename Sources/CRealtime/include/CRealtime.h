#ifndef LAMPCELL_CREALTIME_H
#define LAMPCELL_CREALTIME_H
// Small C helpers for calls Swift cannot make directly (variadic prctl, macros).
#include <stdint.h>

/// prctl(PR_SET_TIMERSLACK, ns). Returns 0 or -errno.
int lampcell_set_timer_slack_ns(unsigned long nanoseconds);
/// sched_setscheduler(0, SCHED_FIFO, priority) for the calling thread. Returns 0 or -errno.
int lampcell_set_fifo_priority(int priority);
/// mlockall(MCL_CURRENT | MCL_FUTURE). Returns 0 or -errno.
int lampcell_lock_memory(void);
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
