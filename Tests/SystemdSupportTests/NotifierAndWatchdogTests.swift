import Foundation
import Testing

@testable import SystemdSupport

/// Records what a `Notifier` would send, with arrival times.
final class RecordingSink: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [(text: String, atNanoseconds: UInt64)] = []
    var notifier: Notifier { Notifier { [self] text in lock.withLock { messages.append((text, monotonicNow())) }; return true } }
    var all: [(text: String, atNanoseconds: UInt64)] { lock.withLock { messages } }
    func times(of text: String) -> [UInt64] { all.filter { $0.text == text }.map(\.atNanoseconds) }
}

/// A heartbeat counter advanced by its own thread while `running` (a stand-in for the control loop's periods).
final class TestHeartbeat: @unchecked Sendable {
    private let lock = NSLock()
    private var count: UInt64 = 0
    private var running = false
    private var ended = false
    init() {
        Thread { [self] in
            while !lock.withLock({ ended }) {
                lock.withLock { if running { count += 1 } }
                usleep(1_000)
            }
        }.start()
    }
    var value: UInt64 { lock.withLock { count } }
    func set(running: Bool) { lock.withLock { self.running = running } }
    func end() { lock.withLock { ended = true } }
}

@Suite("Notifier")
struct NotifierTests {
    @Test("messages are newline-separated assignments in the order given")
    func messageFormat() {
        let sink = RecordingSink()
        let notifier = sink.notifier
        notifier.ready(status: "Idle; 0 lamps made")
        notifier.status("two\nlines")
        notifier.watchdog()
        notifier.stopping(status: "stopping")
        #expect(sink.all.map(\.text) == [
            "READY=1\nSTATUS=Idle; 0 lamps made", "STATUS=two lines", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping",
        ])
    }

    @Test("status text is cut to the limit on a character boundary")
    func statusLimit() {
        let long = String(repeating: "é", count: Notifier.maximumStatusBytes)
        let text = Notifier.statusText(long)
        #expect(text.utf8.count <= Notifier.maximumStatusBytes)
        #expect(text.utf8.count >= Notifier.maximumStatusBytes - 1)
        #expect(text.allSatisfy { $0 == "é" })
    }

    @Test("no watchdog without a service manager's timeout")
    func noWatchdogWhenDisabled() {
        // This test process is not started with WATCHDOG_USEC (ChildProcess strips it from children; here we only
        // check the disabled notifier).
        let disabled = Notifier.fromEnvironment()
        if !disabled.isEnabled {
            #expect(Watchdog.fromEnvironment(notifier: disabled, heartbeat: { 0 }) == nil)
            #expect(!disabled.ready())
        }
    }
}

@Suite("Watchdog")
struct WatchdogTests {
    @Test("pings at half the timeout while the heartbeat advances; withholds them during a stall; resumes promptly")
    func pingsFollowTheHeartbeat() {
        let timeoutNanoseconds: UInt64 = 1_000_000_000
        let sink = RecordingSink()
        let heartbeat = TestHeartbeat()
        defer { heartbeat.end() }
        heartbeat.set(running: true)
        let events = RecordingSink()
        let watchdog = Watchdog(
            timeoutMicroseconds: timeoutNanoseconds / 1000, notifier: sink.notifier, heartbeat: { heartbeat.value }
        ) { event in _ = events.notifier.send(["\(event)"]) }
        #expect(watchdog.pingIntervalMicroseconds == 500_000)
        watchdog.start()
        defer { watchdog.stop() }

        // Cadence: every gap about half the timeout, never near the timeout itself.
        #expect(waitUntil(timeoutSeconds: 10) { sink.times(of: "WATCHDOG=1").count >= 4 })
        let running = sink.times(of: "WATCHDOG=1")
        for (earlier, later) in zip(running, running.dropFirst()) {
            #expect(later - earlier >= timeoutNanoseconds * 45 / 100, "gap \(later - earlier) ns")
            #expect(later - earlier < timeoutNanoseconds, "gap \(later - earlier) ns")
        }

        // Stall: no ping for longer than the timeout (systemd would restart the service).
        heartbeat.set(running: false)
        let stallStart = monotonicNow()
        #expect(waitUntil(timeoutSeconds: 5) { watchdog.isStalled })
        let pingsAtStall = watchdog.pingsSent
        #expect(waitUntil(timeoutSeconds: 2.5) { monotonicNow() - stallStart > timeoutNanoseconds * 3 / 2 })
        #expect(watchdog.pingsSent == pingsAtStall, "no ping while the heartbeat stands still")
        #expect(sink.times(of: "WATCHDOG=1").count == Int(pingsAtStall))
        #expect(watchdog.stallsDetected == 1)

        // Recovery: the next ping follows the heartbeat promptly (well within one interval).
        heartbeat.set(running: true)
        let resumed = monotonicNow()
        #expect(waitUntil(timeoutSeconds: 5) { sink.times(of: "WATCHDOG=1").contains { $0 > resumed } })
        let firstAfter = sink.times(of: "WATCHDOG=1").first { $0 > resumed } ?? 0
        #expect(firstAfter - resumed < timeoutNanoseconds / 2, "resumed after \(firstAfter - resumed) ns")
        // The watchdog thread pings first, then clears its stall flag and reports the recovery; wait for both.
        #expect(waitUntil(timeoutSeconds: 5) { !watchdog.isStalled && events.all.count >= 2 })
        let eventTexts = events.all.map(\.text)
        #expect(eventTexts.count == 2)
        #expect(eventTexts.first?.hasPrefix("stalled") == true)
        #expect(eventTexts.last?.hasPrefix("resumed") == true)

        // Stopped: nothing more.
        watchdog.stop()
        let pingsAtStop = sink.times(of: "WATCHDOG=1").count
        usleep(600_000)
        #expect(sink.times(of: "WATCHDOG=1").count == pingsAtStop)
    }

    @Test("a heartbeat that never advances gets no ping at all")
    func deadFromTheStart() {
        let sink = RecordingSink()
        let watchdog = Watchdog(timeoutMicroseconds: 200_000, notifier: sink.notifier, heartbeat: { 7 })
        watchdog.start()
        #expect(waitUntil(timeoutSeconds: 5) { watchdog.stallsDetected == 1 })
        let detected = monotonicNow()
        #expect(waitUntil(timeoutSeconds: 2) { monotonicNow() - detected > 400_000_000 })
        watchdog.stop()
        #expect(sink.all.isEmpty)
    }
}

@Suite("StatusPublisher")
struct StatusPublisherTests {
    @Test("sends STATUS= only when the text changed, in order")
    func sendsChanges() {
        let sink = RecordingSink()
        let lock = NSLock()
        nonisolated(unsafe) var current = "Stopped; 0 lamps made"
        let publisher = StatusPublisher(notifier: sink.notifier, pollMicroseconds: 5_000) { lock.withLock { current } }
        publisher.start()
        defer { publisher.stop() }
        #expect(waitUntil(timeoutSeconds: 5) { sink.all.count == 1 })
        for text in ["Idle; 0 lamps made", "Execute; 0 lamps made", "Execute; 1 lamps made"] {
            let before = publisher.messagesSent
            lock.withLock { current = text }
            #expect(waitUntil(timeoutSeconds: 5) { publisher.messagesSent == before + 1 })
        }
        publisher.stop()
        #expect(sink.all.map(\.text) == [
            "STATUS=Stopped; 0 lamps made", "STATUS=Idle; 0 lamps made", "STATUS=Execute; 0 lamps made",
            "STATUS=Execute; 1 lamps made",
        ])
        #expect(publisher.lastStatus == "Execute; 1 lamps made")
    }
}
