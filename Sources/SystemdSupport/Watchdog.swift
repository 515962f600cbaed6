import CSystemd
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the watchdog thread observed, for a log line. Delivered on the watchdog thread.
public enum WatchdogEvent: Sendable, Equatable {
    /// The heartbeat did not advance over a whole ping interval: pings are withheld from now on.
    case stalled(heartbeat: UInt64)
    /// The heartbeat advanced again after a stall that lasted about `stalledMicroseconds`: pings resume.
    case resumed(heartbeat: UInt64, stalledMicroseconds: UInt64)
}

/// The service watchdog (`WatchdogSec=`, `sd_watchdog_enabled(3)`): a dedicated thread that sends `WATCHDOG=1` at half
/// of the service manager's timeout, **but only when a heartbeat counter advanced since the last ping**. The heartbeat
/// is the control loop's own period counter (`loop.thread.periodsRun`), so a stalled control thread stops the pings
/// and the service manager restarts the service; when the counter advances again, pings resume at once.
///
/// While the heartbeat stands still the thread re-checks it at a finer cadence (`timeout / stalledPollDivisor`), so
/// the ping that ends a short stall goes out promptly instead of one whole interval later.
///
/// Thread: create, `start` and `stop` from one thread; the counters may be read from any thread. The heartbeat
/// closure and `onEvent` run on the watchdog thread; the heartbeat closure must be cheap and must not block.
public final class Watchdog: @unchecked Sendable {
    /// While stalled, the heartbeat is re-checked every `timeoutMicroseconds / stalledPollDivisor`.
    public static let stalledPollDivisor: UInt64 = 20
    /// Shortest re-check interval while stalled, µs.
    public static let minimumPollMicroseconds: UInt64 = 1_000

    /// The service manager's watchdog timeout, µs (`WATCHDOG_USEC`).
    public let timeoutMicroseconds: UInt64
    /// How often a ping is sent while the heartbeat advances: half the timeout, µs.
    public var pingIntervalMicroseconds: UInt64 { timeoutMicroseconds / 2 }

    private let notifier: Notifier
    private let heartbeat: @Sendable () -> UInt64
    private let onEvent: (@Sendable (WatchdogEvent) -> Void)?
    private let stopSignal = StopSignal()
    private let counters = NSLock()
    private var sent: UInt64 = 0
    private var stalls: UInt64 = 0
    private var stalledNow = false
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// The watchdog timeout the service manager asked for, µs, or nil when there is none (`WATCHDOG_USEC` unset, or
    /// `WATCHDOG_PID` names another process). Any thread.
    public static func timeoutFromEnvironment() -> UInt64? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return microseconds
    }

    /// A watchdog for the service manager's timeout (from the environment), or nil when it asked for none.
    public static func fromEnvironment(
        notifier: Notifier, heartbeat: @escaping @Sendable () -> UInt64,
        onEvent: (@Sendable (WatchdogEvent) -> Void)? = nil
    ) -> Watchdog? {
        guard notifier.isEnabled, let timeout = timeoutFromEnvironment() else { return nil }
        return Watchdog(timeoutMicroseconds: timeout, notifier: notifier, heartbeat: heartbeat, onEvent: onEvent)
    }

    /// - Parameters:
    ///   - timeoutMicroseconds: the service manager's timeout; pings go out at half of it. At least 2 µs.
    ///   - heartbeat: a counter that advances while the service is healthy (the control loop's `periodsRun`).
    ///   - onEvent: told about stalls and recoveries (for a log line), on the watchdog thread.
    public init(
        timeoutMicroseconds: UInt64, notifier: Notifier, heartbeat: @escaping @Sendable () -> UInt64,
        onEvent: (@Sendable (WatchdogEvent) -> Void)? = nil
    ) {
        precondition(timeoutMicroseconds >= 2, "watchdog timeout too short")
        self.timeoutMicroseconds = timeoutMicroseconds
        self.notifier = notifier
        self.heartbeat = heartbeat
        self.onEvent = onEvent
    }

    /// `WATCHDOG=1` messages sent so far. Any thread.
    public var pingsSent: UInt64 { counters.withLock { sent } }
    /// Stalls detected so far (each one withheld pings until the heartbeat advanced). Any thread.
    public var stallsDetected: UInt64 { counters.withLock { stalls } }
    /// Whether pings are being withheld right now. Any thread.
    public var isStalled: Bool { counters.withLock { stalledNow } }

    /// Starts the watchdog thread. Once.
    public func start() {
        precondition(thread == nil, "Watchdog.start called twice")
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "lampcell-watchdog"
        self.thread = thread
        thread.start()
    }

    /// Stops the thread and waits for it (at most one poll). No ping is sent after this returns.
    public func stop() {
        stopSignal.signal()
        if thread != nil { finished.wait() }
        thread = nil
    }

    private func run() {
        let intervalNanoseconds = pingIntervalMicroseconds * 1000
        let pollNanoseconds = max(timeoutMicroseconds / Self.stalledPollDivisor, Self.minimumPollMicroseconds) * 1000
        var lastBeat = heartbeat()
        var stalledSince: UInt64?
        var next = monotonicNanoseconds() + intervalNanoseconds
        while !stopSignal.wait(untilNanoseconds: next) {
            let beat = heartbeat()
            let now = monotonicNanoseconds()
            if beat != lastBeat {
                lastBeat = beat
                notifier.watchdog()
                counters.withLock {
                    sent += 1
                    stalledNow = false
                }
                if let since = stalledSince {
                    stalledSince = nil
                    onEvent?(.resumed(heartbeat: beat, stalledMicroseconds: (now - since) / 1000))
                }
                next = now + intervalNanoseconds
            } else {
                if stalledSince == nil {
                    // The heartbeat stood still for a whole interval; it stopped somewhere within it.
                    stalledSince = now > intervalNanoseconds ? now - intervalNanoseconds : 0
                    counters.withLock {
                        stalls += 1
                        stalledNow = true
                    }
                    onEvent?(.stalled(heartbeat: beat))
                }
                next = now + pollNanoseconds
            }
        }
    }
}
