import CRealtime
import Foundation
import Synchronization

/// Timing of the period being run, handed to the period's body.
public struct PeriodTiming: Sendable {
    /// Absolute deadline this period was scheduled for (CLOCK_MONOTONIC ns).
    public var deadlineNanoseconds: UInt64
    /// When the thread actually woke.
    public var wakeNanoseconds: UInt64
    /// Index of this period since start (skipped periods count too).
    public var periodIndex: UInt64
}

/// A dedicated thread that runs a body at a fixed period with absolute deadlines (clock_nanosleep on
/// CLOCK_MONOTONIC, TIMER_ABSTIME), the shape of ros2_control's node loop.
///
/// An overrun (the body ends after the next deadline) is counted and the missed deadlines are skipped: the next
/// period starts at the next deadline still in the future, never a burst of catch-up periods.
/// The body runs on this thread only; `start`, `requestStop` and `join` may be called from any thread.
public final class PeriodicThread: @unchecked Sendable {
    public let name: String
    public let periodNanoseconds: UInt64
    private let fifoPriority: Int32?
    private let lockMemory: Bool
    private let body: (PeriodTiming) -> Void
    private let stopRequested = Atomic<Bool>(false)
    private let finished = Mutex<Bool>(false)
    private let finishedCondition = NSCondition()
    private let overrunCount = Atomic<UInt64>(0)
    private let periodCount = Atomic<UInt64>(0)
    private let minorFaultCount = Atomic<UInt64>(0)
    private let majorFaultCount = Atomic<UInt64>(0)
    private let report = Mutex<RealtimeReport?>(nil)
    /// Timing histograms of every period (wake-up latency and busy time recorded here; phases by the body).
    public let statistics: PeriodStatistics

    /// - Parameters:
    ///   - fifoPriority: SCHED_FIFO priority to ask for, nil for SCHED_OTHER.
    ///   - body: the period's work; runs on the periodic thread, must not allocate, block on disk or wait for clients.
    public init(
        name: String, periodNanoseconds: UInt64, fifoPriority: Int32?, lockMemory: Bool,
        statistics: PeriodStatistics = PeriodStatistics(), body: @escaping (PeriodTiming) -> Void
    ) {
        precondition(periodNanoseconds > 0, "period must be positive")
        self.name = name
        self.periodNanoseconds = periodNanoseconds
        self.fifoPriority = fifoPriority
        self.lockMemory = lockMemory
        self.statistics = statistics
        self.body = body
    }

    /// Periods whose work ended after the next deadline (each skipped deadline counts once). Any thread.
    public var overruns: UInt64 { overrunCount.load(ordering: .relaxed) }
    /// Periods run so far; advances every period — the heartbeat a watchdog may watch. Any thread.
    public var periodsRun: UInt64 { periodCount.load(ordering: .relaxed) }
    /// Minor page faults of the periodic thread since it started, its real-time set-up included
    /// (getrusage(RUSAGE_THREAD), read after every period's body). With memory locked, a fault after warm-up means a
    /// period touched a page for the first time: in steady production this must stay constant. Any thread.
    public var minorPageFaults: UInt64 { minorFaultCount.load(ordering: .relaxed) }
    /// Major page faults (a page read from disk) of the periodic thread since it started. Any thread.
    public var majorPageFaults: UInt64 { majorFaultCount.load(ordering: .relaxed) }
    /// What real-time set-up was granted; nil until the thread has started. Any thread.
    public var realtimeReport: RealtimeReport? { report.withLock { $0 } }

    /// The periodic thread's stack size.
    public static let stackBytes = 1 << 20
    /// Stack touched at start when memory is locked (mlockall with MCL_ONFAULT locks pages as they are first
    /// touched): far more than any period uses, so no period takes its first fault on a deeper stack page.
    public static let prefaultedStackBytes = 256 * 1024

    /// Starts the thread and returns once it has applied its real-time set-up. Any thread; call once.
    public func start() {
        let started = NSCondition()
        let thread = Thread { [self] in
            // Faults are counted from here: the real-time set-up and the stack's prefault count too.
            var startMinor: UInt64 = 0, startMajor: UInt64 = 0
            _ = lampcell_thread_page_faults(&startMinor, &startMajor)
            let granted = RealtimeSetup.apply(fifoPriority: fifoPriority, lockMemory: lockMemory)
            if granted.memoryLocked { lampcell_prefault_stack(Self.prefaultedStackBytes) }
            report.withLock { $0 = granted }
            started.lock(); started.signal(); started.unlock()
            run(startMinorFaults: startMinor, startMajorFaults: startMajor)
            finishedCondition.lock()
            finished.withLock { $0 = true }
            finishedCondition.broadcast()
            finishedCondition.unlock()
        }
        thread.name = name
        thread.stackSize = Self.stackBytes
        started.lock()
        thread.start()
        while realtimeReport == nil { started.wait() }
        started.unlock()
    }

    /// Asks the loop to end after the current period. Any thread.
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Waits until the loop has ended. Any thread but the periodic one.
    public func join() {
        finishedCondition.lock()
        while !finished.withLock({ $0 }) { finishedCondition.wait() }
        finishedCondition.unlock()
    }

    private func run(startMinorFaults startMinor: UInt64, startMajorFaults startMajor: UInt64) {
        var deadline = lampcell_monotonic_ns() + periodNanoseconds
        var index: UInt64 = 0
        var minor: UInt64 = 0, major: UInt64 = 0
        while !stopRequested.load(ordering: .relaxed) {
            _ = lampcell_sleep_until_ns(deadline)
            let wake = lampcell_monotonic_ns()
            statistics.record(.wakeLatency, nanoseconds: wake &- deadline)
            body(PeriodTiming(deadlineNanoseconds: deadline, wakeNanoseconds: wake, periodIndex: index))
            let end = lampcell_monotonic_ns()
            statistics.record(.busy, nanoseconds: end &- wake)
            if lampcell_thread_page_faults(&minor, &major) == 0 {
                minorFaultCount.store(minor &- startMinor, ordering: .relaxed)
                majorFaultCount.store(major &- startMajor, ordering: .relaxed)
            }
            periodCount.add(1, ordering: .relaxed)
            deadline += periodNanoseconds
            index += 1
            if end > deadline {
                let missed = (end - deadline) / periodNanoseconds + 1
                overrunCount.add(missed, ordering: .relaxed)
                deadline += missed * periodNanoseconds
                index += missed
            }
        }
    }
}
