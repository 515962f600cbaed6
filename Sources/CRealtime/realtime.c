#define _GNU_SOURCE
#include "CRealtime.h"
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int lampcell_set_timer_slack_ns(unsigned long nanoseconds) {
    return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0) == 0 ? 0 : -errno;
}

int lampcell_set_fifo_priority(int priority) {
    struct sched_param param = { .sched_priority = priority };
    return sched_setscheduler(0, SCHED_FIFO, &param) == 0 ? 0 : -errno;
}

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

int lampcell_lock_memory(void) {
    /* MCL_ONFAULT: a page is locked when first touched, not when mapped. Without it every mapping is faulted in
       and pinned whole: each thread's 8 MiB stack reservation, all of ICU's data, every allocator arena. */
    if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0) return 0;
    if (errno != EINVAL) return -errno;
    return mlockall(MCL_CURRENT | MCL_FUTURE) == 0 ? 0 : -errno;  /* kernels before 4.4 */
}

int lampcell_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -errno;
}

int lampcell_sleep_until_ns(uint64_t deadline_ns) {
    struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000ull),
                           .tv_nsec = (long)(deadline_ns % 1000000000ull) };
    int rc;
    do {
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    } while (rc == EINTR);
    return -rc;
}

uint64_t lampcell_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t lampcell_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lampcell_prefault_stack(size_t bytes) {
    if (bytes == 0) return;
    volatile unsigned char reserve[bytes];
    for (size_t offset = 0; offset < bytes; offset += 4096) reserve[offset] = 0;
    reserve[bytes - 1] = 0;
}

int lampcell_thread_page_faults(uint64_t *minor, uint64_t *major) {
    struct rusage usage;
    if (getrusage(RUSAGE_THREAD, &usage) != 0) return -errno;
    *minor = (uint64_t)usage.ru_minflt;
    *major = (uint64_t)usage.ru_majflt;
    return 0;
}

int lampcell_gettid(void) { return (int)syscall(SYS_gettid); }

int lampcell_poll_ns(struct pollfd *fds, unsigned long count, uint64_t timeout_ns) {
    uint64_t deadline = lampcell_monotonic_ns() + timeout_ns;
    for (;;) {
        uint64_t now = lampcell_monotonic_ns();
        uint64_t left = now >= deadline ? 0 : deadline - now;
        struct timespec ts = { .tv_sec = (time_t)(left / 1000000000ull), .tv_nsec = (long)(left % 1000000000ull) };
        int rc = ppoll(fds, (nfds_t)count, &ts, NULL);
        if (rc >= 0) return rc;
        if (errno != EINTR) return -errno;
    }
}
