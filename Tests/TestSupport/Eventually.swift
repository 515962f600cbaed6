// Waiting for a condition another thread makes true, without a fixed sleep: polled every millisecond, bounded.

#if canImport(Glibc)
import Glibc
#endif

/// Polls `condition` every millisecond until it holds or `limitMilliseconds` pass; returns whether it held.
/// (The condition is checked once more at the deadline.) Thread: any.
public func eventually(withinMilliseconds limitMilliseconds: UInt64 = 3_000, _ condition: () throws -> Bool) rethrows
    -> Bool
{
    func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
    let deadline = monotonicNanoseconds() + limitMilliseconds * 1_000_000
    while monotonicNanoseconds() < deadline {
        if try condition() { return true }
        var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        nanosleep(&pause, nil)
    }
    return try condition()
}
