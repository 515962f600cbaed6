#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC now, ns.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// A stop flag a helper thread sleeps on: `wait(untilNanoseconds:)` returns early once `signal()` was called.
/// Waits on CLOCK_MONOTONIC (a wall-clock step does not shorten or stretch a watchdog interval). Any thread.
final class StopSignal: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var stopped = false

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Whether `signal()` was called.
    var isSignalled: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return stopped
    }

    /// Sets the flag and wakes the waiter.
    func signal() {
        pthread_mutex_lock(mutex)
        stopped = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Sleeps until the monotonic clock reaches `deadline` or the flag is set; returns whether the flag is set.
    func wait(untilNanoseconds deadline: UInt64) -> Bool {
        var until = timespec(
            tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !stopped && monotonicNanoseconds() < deadline {
            _ = pthread_cond_timedwait(condition, mutex, &until)
        }
        return stopped
    }
}
