import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// Tells the service manager about the service's state through the notify protocol (`sd_notify(3)`):
/// `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`.
///
/// A value type holding only how to send; safe to copy and to use from any thread (`sd_notify` opens a new datagram
/// socket per call). When the process was not started by a service manager (`NOTIFY_SOCKET` unset) every call is a
/// cheap no-op.
public struct Notifier: Sendable {
    /// Longest `STATUS=` text sent, bytes; longer texts are cut (the service manager shows one line).
    public static let maximumStatusBytes = 400

    /// Whether notifications go anywhere (`NOTIFY_SOCKET` was set, or a custom sink was given).
    public let isEnabled: Bool
    private let sink: @Sendable (String) -> Bool

    /// The service manager named by `$NOTIFY_SOCKET`, through libsystemd's `sd_notify`. A disabled notifier when the
    /// variable is unset. Any thread; reads the environment once, here.
    public static func fromEnvironment() -> Notifier {
        guard getenv("NOTIFY_SOCKET") != nil else { return Notifier(enabled: false) { _ in false } }
        return Notifier(enabled: true) { state in
            // 0 = unset (not under systemd), < 0 = -errno; the daemon runs on either way.
            sd_notify(0, state) > 0
        }
    }

    /// A notifier that hands each message (newline-separated `KEY=value` assignments, exactly what `sd_notify` would
    /// send) to `sink`; for tests and for forwarding. `sink` is called on the sending thread and returns whether the
    /// message was delivered.
    public init(sink: @escaping @Sendable (_ message: String) -> Bool) {
        self.init(enabled: true, sink: sink)
    }

    private init(enabled: Bool, sink: @escaping @Sendable (String) -> Bool) {
        isEnabled = enabled
        self.sink = sink
    }

    /// Sends the assignments (`"READY=1"`, `"STATUS=…"`) as one message. Returns whether it was delivered (false when
    /// disabled). Any thread.
    @discardableResult
    public func send(_ assignments: [String]) -> Bool {
        guard isEnabled, !assignments.isEmpty else { return false }
        return sink(assignments.joined(separator: "\n"))
    }

    /// `READY=1`: start-up is complete (configuration loaded, devices being connected, API sockets listening), with
    /// an optional first status line. Any thread.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        send(["READY=1"] + (status.map { ["STATUS=" + Self.statusText($0)] } ?? []))
    }

    /// `STATUS=…`: one human-readable line shown by `systemctl status`. Any thread.
    @discardableResult
    public func status(_ text: String) -> Bool { send(["STATUS=" + Self.statusText(text)]) }

    /// `WATCHDOG=1`: the service is alive. Send only when it really is (see `Watchdog`). Any thread.
    @discardableResult
    public func watchdog() -> Bool { send(["WATCHDOG=1"]) }

    /// `STOPPING=1`: shutdown has begun, with an optional status line. Any thread.
    @discardableResult
    public func stopping(status: String? = nil) -> Bool {
        send(["STOPPING=1"] + (status.map { ["STATUS=" + Self.statusText($0)] } ?? []))
    }

    /// `text` as a valid status value: one line (newlines become spaces), at most `maximumStatusBytes` bytes, cut on
    /// a character boundary.
    public static func statusText(_ text: String) -> String {
        var line = ""
        var bytes = 0
        for character in text {
            let piece = character.isNewline ? " " : String(character)
            bytes += piece.utf8.count
            if bytes > maximumStatusBytes { break }
            line += piece
        }
        return line
    }
}
