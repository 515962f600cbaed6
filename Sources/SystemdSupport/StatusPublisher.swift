import Foundation

/// Keeps the service manager's `STATUS=` line current: a dedicated thread asks `status()` every poll interval and
/// sends `STATUS=…` whenever the text changed (and only then).
///
/// Thread: create, `start`, `publishNow` and `stop` from one thread; `status` runs on the publisher's thread (and on
/// the caller's in `publishNow`) and must not block for long.
public final class StatusPublisher: @unchecked Sendable {
    /// Default time between two looks at the status, µs.
    public static let defaultPollMicroseconds: UInt64 = 100_000

    /// Time between two looks at the status, µs.
    public let pollMicroseconds: UInt64
    private let notifier: Notifier
    private let status: @Sendable () -> String
    private let stopSignal = StopSignal()
    private let lock = NSLock()
    private var lastSent: String?
    private var sentCount: UInt64 = 0
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - pollMicroseconds: how often `status` is asked, at least 1000 µs.
    ///   - status: the current status line (e.g. PackML state, lamps made, last fault).
    public init(
        notifier: Notifier, pollMicroseconds: UInt64 = defaultPollMicroseconds,
        status: @escaping @Sendable () -> String
    ) {
        self.notifier = notifier
        self.pollMicroseconds = max(pollMicroseconds, 1000)
        self.status = status
    }

    /// `STATUS=` messages sent so far. Any thread.
    public var messagesSent: UInt64 { lock.withLock { sentCount } }

    /// The status line sent last, if any. Any thread.
    public var lastStatus: String? { lock.withLock { lastSent } }

    /// Sends the current status now if it changed since the last one sent.
    public func publishNow() {
        let text = Notifier.statusText(status())
        // Sent under the lock (one short datagram) so that two callers cannot reorder two status lines.
        lock.withLock {
            guard text != lastSent else { return }
            lastSent = text
            sentCount += 1
            notifier.status(text)
        }
    }

    /// Starts the polling thread. Once.
    public func start() {
        precondition(thread == nil, "StatusPublisher.start called twice")
        let thread = Thread { [self] in
            var next = monotonicNanoseconds()
            repeat {
                publishNow()
                next += pollMicroseconds * 1000
            } while !stopSignal.wait(untilNanoseconds: next)
            finished.signal()
        }
        thread.name = "lampcell-status"
        self.thread = thread
        thread.start()
    }

    /// Stops the thread and waits for it.
    public func stop() {
        stopSignal.signal()
        if thread != nil { finished.wait() }
        thread = nil
    }
}
