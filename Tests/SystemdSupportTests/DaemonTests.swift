import Foundation
import Ledger
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real `lampcelld --simulate` process against a NOTIFY_SOCKET this test owns.
@Suite("lampcelld under the notify protocol", .serialized)
struct DaemonTests {
    /// lampcelld.service's TimeoutStopSec.
    static let stopTimeoutSeconds = 30.0
    /// The WATCHDOG_USEC given to the daemon.
    static let watchdogNanoseconds: UInt64 = 1_000_000_000

    final class Daemon {
        let directory: TemporaryDirectory
        let notify: DatagramListener
        let child: ChildProcess

        init(watchdog: Bool, extraArguments: [String] = []) throws {
            let lampcelld = try product("lampcelld")
            directory = try TemporaryDirectory()
            notify = try DatagramListener(path: directory.file("notify.sock"))
            var environment = ["NOTIFY_SOCKET": notify.path]
            if watchdog { environment["WATCHDOG_USEC"] = String(DaemonTests.watchdogNanoseconds / 1000) }
            child = try ChildProcess(
                lampcelld,
                ["--config", packageRoot + "/Systemd/lampcelld-dev.toml", "--simulate", "--seed", "5",
                 "--defect-rate", "0", "--state-directory", directory.file("state"), "--auto-start"] + extraArguments,
                environment: environment, outputPath: directory.file("output"))
        }

        /// Every message received, split into assignments.
        var messages: [(assignments: [String], atNanoseconds: UInt64)] {
            notify.datagrams.map { ($0.text.split(separator: "\n").map(String.init), $0.atNanoseconds) }
        }
        func times(of assignment: String) -> [UInt64] {
            messages.filter { $0.assignments.contains(assignment) }.map(\.atNanoseconds)
        }
        var statuses: [(text: String, atNanoseconds: UInt64)] {
            messages.flatMap { message in
                message.assignments.filter { $0.hasPrefix("STATUS=") }.map { (String($0.dropFirst(7)), message.atNanoseconds) }
            }
        }

        func close() {
            child.terminate()
            notify.stop()
            directory.remove()
        }
    }

    @Test("READY after start, STATUS follows the cell, WATCHDOG at half the timeout only while the loop runs, STOPPING")
    func notifyProtocol() throws {
        let daemon = try Daemon(watchdog: true, extraArguments: ["--test-stall-milliseconds", "3000"])
        defer { daemon.close() }

        // READY=1, once, after the daemon started its control loop.
        #expect(waitUntil(timeoutSeconds: 60) { !daemon.times(of: "READY=1").isEmpty }, "\(daemon.child.output)")
        #expect(daemon.child.output.contains("lampcelld started"), "READY before start: \(daemon.child.output)")
        // …and after the API socket listens (the daemon logs "API listening on …" before it says READY).
        #expect(daemon.child.output.contains("API listening on"), "READY before the API listens: \(daemon.child.output)")

        // STATUS follows the state: auto start brings the cell to Execute through other states.
        #expect(waitUntil(timeoutSeconds: 90) { daemon.statuses.contains { $0.text.hasPrefix("Execute;") } },
                "\(daemon.statuses.map(\.text)) \(daemon.child.output)")
        let texts = daemon.statuses.map(\.text)
        #expect(texts.count >= 2 && !texts[0].hasPrefix("Execute"), "\(texts)")
        #expect(zip(texts, texts.dropFirst()).allSatisfy { $0 != $1 }, "only changes are sent: \(texts)")
        #expect(texts.allSatisfy { $0.contains(" lamps made") }, "\(texts)")

        // WATCHDOG: every half timeout while the control loop runs.
        let readyAt = daemon.times(of: "READY=1")[0]
        #expect(waitUntil(timeoutSeconds: 10) { daemon.times(of: "WATCHDOG=1").count >= 5 })
        let running = daemon.times(of: "WATCHDOG=1")
        #expect(running[0] > readyAt)
        for (earlier, later) in zip(running, running.dropFirst()) {
            #expect(later - earlier >= Self.watchdogNanoseconds * 40 / 100, "gap \(later - earlier) ns")
            #expect(later - earlier < Self.watchdogNanoseconds, "gap \(later - earlier) ns")
        }

        // A stalled control loop (the hidden SIGUSR1 hook: one period busy-waits 3 s): the pings stop for longer
        // than the timeout, so systemd would restart the service ...
        let stalledAt = monotonicNow()
        daemon.child.signal(SIGUSR1)
        #expect(waitUntil(timeoutSeconds: 20) { daemon.child.output.contains("control loop stalled") }, "\(daemon.child.output)")
        // ... and resume when the loop runs again.
        #expect(waitUntil(timeoutSeconds: 20) { daemon.times(of: "WATCHDOG=1").filter { $0 > stalledAt }.count >= 4 },
                "\(daemon.child.output)")
        let around = daemon.times(of: "WATCHDOG=1").filter { $0 > stalledAt - Self.watchdogNanoseconds }
        let longestGap = zip(around, around.dropFirst()).map { $1 - $0 }.max() ?? 0
        print("lampcelld: WATCHDOG_USEC 1 s, 3 s stall → longest gap between pings \(Double(longestGap) / 1e9) s")
        #expect(longestGap > Self.watchdogNanoseconds, "longest gap \(longestGap) ns")
        #expect(longestGap < 3_000_000_000 + Self.watchdogNanoseconds, "longest gap \(longestGap) ns")
        #expect(daemon.child.output.contains("watchdog pings resume"), "\(daemon.child.output)")

        // SIGTERM: STOPPING=1, then exit 0 within the stop timeout.
        daemon.child.signal(SIGTERM)
        #expect(waitUntil(timeoutSeconds: 10) { !daemon.times(of: "STOPPING=1").isEmpty })
        #expect(daemon.child.waitForExit(timeoutSeconds: Self.stopTimeoutSeconds) == 0, "\(daemon.child.output)")
        let stoppingAt = daemon.times(of: "STOPPING=1")[0]
        #expect(daemon.statuses.last?.text.hasPrefix("stopped:") == true, "\(daemon.statuses.map(\.text))")
        #expect(daemon.times(of: "READY=1").count == 1)
        #expect(daemon.messages.filter { $0.atNanoseconds > stoppingAt }.allSatisfy { !$0.assignments.contains("READY=1") })
    }

    /// The journald bootstrap: stderr is "the journal stream" (JOURNAL_STREAM names its device and inode), so the
    /// daemon logs structured entries through sd_journal_sendv — to a socket this test owns, bind-mounted over
    /// /run/systemd/journal/socket in a private mount namespace (as in JournalTests).
    @Test("with JOURNAL_STREAM matching stderr, lampcelld logs structured entries to the journal socket")
    func journalBootstrap() throws {
        let lampcelld = try product("lampcelld")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let journal = try DatagramListener(path: directory.file("journal.sock"))
        defer { journal.stop() }
        let stderrPath = directory.file("stderr")
        let script = """
            mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && : > /run/systemd/journal/socket \
            && mount --bind "$0" /run/systemd/journal/socket && exec 2>"$1" \
            && JOURNAL_STREAM=$(stat -c %d:%i "$1") exec "$2" --config "$3" --simulate --state-directory "$4" --auto-start
            """
        let child = try ChildProcess(
            "/usr/bin/unshare",
            ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, journal.path, stderrPath, lampcelld,
             packageRoot + "/Systemd/lampcelld-dev.toml", directory.file("state")],
            outputPath: directory.file("output"))
        defer { child.terminate() }
        func entries() -> [[String: String]] {
            journal.datagrams.compactMap { parseJournalEntry($0.bytes) }.map {
                Dictionary($0.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            }
        }
        #expect(waitUntil(timeoutSeconds: 90) { entries().contains { $0["PACKML_STATE"] == "Execute" } },
                "\(child.output) \(entries())")
        child.signal(SIGTERM)  // unshare (no --fork) and sh exec in turn: this pid is lampcelld itself
        #expect(child.waitForExit(timeoutSeconds: Self.stopTimeoutSeconds) == 0, "\(child.output)")
        let all = entries()
        #expect(all.allSatisfy { $0["SYSLOG_IDENTIFIER"] == "lampcelld" && $0["CODE_FILE"] != nil && $0["PRIORITY"] != nil })
        #expect(all.contains { $0["MESSAGE"]?.hasPrefix("lampcelld started") == true })
        #expect(all.contains { $0["MESSAGE"]?.hasPrefix("lampcelld stopped") == true }, "\(all)")
        let stderrText = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        #expect(!stderrText.contains("lampcelld started"), "lines went to the journal, not stderr: \(stderrText)")
    }

    @Test("SIGTERM during production: STOPPING=1, controlled stop (Stopped, no abort), ledger verifies, exit 0 in time")
    func sigtermDuringProduction() throws {
        let daemon = try Daemon(watchdog: false)
        defer { daemon.close() }
        // Production runs: the first lamp left the cell, the next is being made.
        #expect(waitUntil(timeoutSeconds: 180) { daemon.statuses.contains { $0.text.hasPrefix("Execute; 1 lamps made") } },
                "\(daemon.statuses.map(\.text)) \(daemon.child.output)")
        let signalledAt = monotonicNow()
        daemon.child.signal(SIGTERM)
        let status = daemon.child.waitForExit(timeoutSeconds: Self.stopTimeoutSeconds)
        #expect(status == 0, "\(daemon.child.output)")
        let seconds = Double(monotonicNow() - signalledAt) / 1e9
        print("lampcelld: SIGTERM during production → exit \(status.map(String.init) ?? "none") after \(seconds) s")
        #expect(daemon.times(of: "STOPPING=1").count == 1)
        #expect(daemon.times(of: "WATCHDOG=1").isEmpty, "no WATCHDOG_USEC, no pings")
        let after = daemon.statuses.filter { $0.atNanoseconds >= signalledAt }.map(\.text)
        // PackML reaches Stopped from Execute only through Stopping (the Stop command: the arms' stop trajectories,
        // servos off); Stopping itself may be shorter than one status poll.
        #expect(after.contains { $0.hasPrefix("Stopped;") }, "\(after)")
        #expect(after.first == "stopping: controlled stop of the arms", "\(after)")
        #expect(after.last?.hasPrefix("stopped: ") == true, "\(after)")
        #expect(!after.contains { $0.hasPrefix("Abort") }, "controlled stop, not an abort: \(after)")
        // The ledger holds every lamp of the run and its hash chain verifies.
        let made = after.last.flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int64($0) }
        let ledger = try Ledger.openReadOnly(path: daemon.directory.file("state") + "/ledger.sqlite")
        let verification = try ledger.verify()
        print("lampcelld: after SIGTERM \(verification)")
        #expect(verification.isValid, "\(verification)")
        #expect(made.map { $0 >= 1 } == true, "\(after)")
        #expect(try ledger.count() == made ?? -1, "lamps this run \(made ?? -1)")
        #expect(daemon.child.output.contains("SIGTERM: controlled stop"), "\(daemon.child.output)")
        #expect(daemon.child.output.contains("lampcelld stopped"), "\(daemon.child.output)")
    }
}
