import CRealtime

#if canImport(Glibc)
import Glibc
#endif

/// What the control thread asked the kernel for at start-up and what it got.
public struct RealtimeReport: Sendable, Equatable {
    /// SCHED_FIFO priority in force, or nil when the thread runs SCHED_OTHER.
    public var fifoPriority: Int32?
    /// errno of the refused sched_setscheduler, 0 when granted or not asked.
    public var fifoErrno: Int32 = 0
    /// mlockall(MCL_CURRENT | MCL_FUTURE) succeeded.
    public var memoryLocked = false
    /// errno of the refused mlockall, 0 when granted or not asked.
    public var memoryLockErrno: Int32 = 0
    /// Timer slack of the control thread in nanoseconds (1 when it could be set).
    public var timerSlackNanoseconds: UInt64 = 50_000

    /// Human-readable warnings for what was refused (logged by the daemon, never on the control thread).
    public var warnings: [String] {
        var result: [String] = []
        if fifoErrno != 0 {
            result.append(
                "SCHED_FIFO refused (\(String(cString: strerror(fifoErrno)))): the control thread runs SCHED_OTHER "
                    + "with 1 ns timer slack; grant CAP_SYS_NICE or LimitRTPRIO for real-time scheduling")
        }
        if memoryLockErrno != 0 {
            result.append(
                "mlockall refused (\(String(cString: strerror(memoryLockErrno)))): pages may fault in the control "
                    + "period; grant CAP_IPC_LOCK or LimitMEMLOCK=infinity")
        }
        return result
    }
}

/// Real-time set-up of the calling thread.
public enum RealtimeSetup {
    /// Timer slack the control thread asks for: the default 50 µs would add 50 µs to every wake-up.
    public static let timerSlackNanoseconds: UInt = 1

    /// Applies 1 ns timer slack, then SCHED_FIFO at `fifoPriority` (1…99; nil: do not ask) and mlockall when
    /// `lockMemory`. Refusals are reported, not thrown: the daemon runs on, with a warning.
    /// Thread: the control thread itself, once, before its first period.
    public static func apply(fifoPriority: Int32?, lockMemory: Bool) -> RealtimeReport {
        var report = RealtimeReport()
        if lampcell_set_timer_slack_ns(timerSlackNanoseconds) == 0 {
            report.timerSlackNanoseconds = UInt64(timerSlackNanoseconds)
        }
        if let priority = fifoPriority {
            let rc = lampcell_set_fifo_priority(priority)
            if rc == 0 { report.fifoPriority = priority } else { report.fifoErrno = -rc }
        }
        if lockMemory {
            let rc = lampcell_lock_memory()
            if rc == 0 { report.memoryLocked = true } else { report.memoryLockErrno = -rc }
        }
        return report
    }
}

/// The monotonic clock (CLOCK_MONOTONIC) in nanoseconds. Any thread.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 { lampcell_monotonic_ns() }

/// Wall-clock time (CLOCK_REALTIME) in nanoseconds since the Unix epoch. Any thread.
@inline(__always)
public func wallClockNanoseconds() -> UInt64 { lampcell_realtime_ns() }
