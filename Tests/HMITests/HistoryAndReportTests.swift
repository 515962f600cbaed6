// The alarm and event history (SQLite beside the ledger), the alarm tracker on status documents, and the shift
// report: `lampctl report` writes HTML and a PDF (headless Chromium), which pdftoppm and pdftotext read back.

@testable import ControlAPI
import ControlAPIClient
import Foundation
import NIOHTTP1
import LampCellTestSupport
import Ledger
import Testing

private func temporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-report-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A status document of the simulated cell (`status-stopped.json`, saved from `GET /v1/status`) in `state`, with an
/// optional stop reason and the station's safety chain `safe` or open.
private func document(state: String, stop: StatusDocument.StopReasonText? = nil, safe: Bool = true) throws -> StatusDocument {
    let data = try Data(contentsOf: URL(fileURLWithPath: Repository.root + "/Tests/HMITests/status-stopped.json"))
    var document = try JSONDecoder().decode(StatusDocument.self, from: data)
    document.packml.state = state
    document.packml.stopReason = stop
    let station = document.devices.count - 1
    document.devices[station].signals = (document.devices[station].signals ?? []).filter { $0 != "SAFETY_OK" } + (safe ? ["SAFETY_OK"] : [])
    return document
}

@Suite("Alarm and event history, and the shift report")
struct HistoryAndReportTests {
    @Test("the tracker: a stop lasts from its reason to Execute; an alarm from its condition to its end")
    func trackerFollowsStopsAndAlarms() throws {
        var tracker = AlarmTracker()
        let estop = StatusDocument.StopReasonText(
            code: 4, kind: "emergencyStop", message: "emergency stop pressed", action: "abort", inState: "Execute",
            device: "station")
        #expect(tracker.changes(try document(state: "Execute")) == [.stateChanged(to: "Execute", from: "Offline")])
        let pressed = tracker.changes(try document(state: "Aborting", stop: estop, safe: false))
        #expect(pressed.contains(.stateChanged(to: "Aborting", from: "Execute")))
        #expect(pressed.contains { if case .stopBegan(let c) = $0 { c.code == "emergencyStop" && c.source == "station" } else { false } })
        #expect(pressed.contains { if case .alarmBegan(let c) = $0 { c.code == "station.safety_chain" } else { false } })
        // Released: the alarm ends; the stop goes on through Clear, Reset and Idle (the reason is forgotten at Reset).
        #expect(tracker.changes(try document(state: "Aborted", stop: estop)) == [.stateChanged(to: "Aborted", from: "Aborting"), .alarmEnded(code: "station.safety_chain")])
        #expect(tracker.changes(try document(state: "Stopped", stop: estop)) == [.stateChanged(to: "Stopped", from: "Aborted")])
        #expect(tracker.changes(try document(state: "Idle")) == [.stateChanged(to: "Idle", from: "Stopped")])
        #expect(tracker.changes(try document(state: "Execute")) == [.stateChanged(to: "Execute", from: "Idle"), .stopEnded])
        // One late reply (a VM stall) is no alarm; a link failing exchange after exchange is.
        var late = try document(state: "Execute")
        late.devices[0].link = "timeout"
        late.devices[0].consecutiveFailures = 1
        #expect(tracker.changes(late).isEmpty)
        late.devices[0].consecutiveFailures = UInt32(AlarmTracker.linkAlarmConsecutiveFailures)
        let lost = tracker.changes(late)
        #expect(lost.count == 1 && lost.allSatisfy { if case .alarmBegan(let c) = $0 { c.code == "\(late.devices[0].name).link" } else { false } }, "\(lost)")
    }

    @Test("the history: alarms end, active ones are listed, the Pareto adds downtime inside the window, restart ends what was left open")
    func historyRecordsAndSums() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let history = try EventHistory(path: directory + "/events.sqlite")
        let second: Int64 = 1_000_000_000
        let base: Int64 = 1_800_000_000 * second
        func stop(_ code: String, from: Int64, seconds: Int64) throws {
            let id = try history.record(
                CellEvent(kind: .stop, code: code, source: "cell", message: code, startedWallNanoseconds: base + from * second, endedWallNanoseconds: nil))
            try history.end(id: id, atWallNanoseconds: base + (from + seconds) * second)
        }
        try stop("emergencyStop", from: 0, seconds: 60)
        try stop("deviceFault", from: 100, seconds: 30)
        try stop("deviceFault", from: 200, seconds: 40)
        try stop("emergencyStop", from: 3_590, seconds: 20)  // half inside a window ending at 3,600 s
        let open = try history.record(
            CellEvent(kind: .alarm, code: "loader.link", source: "loader", message: "loader link timeout", startedWallNanoseconds: base + 300 * second, endedWallNanoseconds: nil))
        #expect(open > 0)
        #expect(try history.active().map(\.code) == ["loader.link"])
        let pareto = try history.stopPareto(fromWallNanoseconds: base, toWallNanoseconds: base + 3_600 * second, nowWallNanoseconds: base + 4_000 * second)
        #expect(pareto.map(\.code) == ["deviceFault", "emergencyStop"])
        #expect(pareto.map(\.stops) == [2, 2])
        #expect(pareto.map(\.downtimeSeconds) == [70, 70])
        // A new run ends what the last one left active.
        let reopened = try EventHistory(path: directory + "/events.sqlite")
        #expect(try reopened.endActive(atWallNanoseconds: base + 500 * second) == 1)
        #expect(try reopened.active().isEmpty)
        #expect(try reopened.events(fromWallNanoseconds: base, toWallNanoseconds: base + second * 400, kinds: [.alarm]).first?.durationSeconds(nowWallNanoseconds: 0) == 200)
    }

    @Test("lampctl report writes the HTML and a two-page PDF whose pages show the shift's figures and charts")
    func reportPDF() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        // Three hours: 100 lamps an hour, every 10th NG for its leak rate, one scrapped; an e-stop in the second hour.
        let second: Int64 = 1_000_000_000
        let start: Int64 = 1_796_000_400 * second  // a whole hour (UTC)
        let writer = try LedgerWriter(path: directory + "/state/ledger.sqlite")
        var entries: [LedgerEntry] = []
        for index in 0..<300 {
            let end = start + Int64(index) * 36 * second + 30 * second
            let verdict = index == 150 ? "SCRAPPED" : (index % 10 == 3 ? "NG" : "OK")
            entries.append(
                LedgerEntry(
                    serial: "HL-TEST-20261201-\(String(format: "%08d", index + 1))", serialSequence: Int64(index + 1),
                    cellID: "HL-CELL-01", variant: "LEFT", recipeID: "HL-LEFT", recipeSHA256: String(repeating: "ab", count: 32),
                    orderID: "ORD-R", startWallNanoseconds: end - 30 * second, endWallNanoseconds: end,
                    cycleTimeSeconds: 30 + Double(index % 7) * 0.25, verdict: verdict,
                    reasons: verdict == "NG" ? "leak_rate" : (verdict == "SCRAPPED" ? "dropped at the press" : ""),
                    measurements: [LedgerMeasurement(name: "leak_rate", value: 1, unit: "cm3/min", minimum: nil, maximum: 2)],
                    housingLot: 1, ledModuleLot: 2, lensLot: 3, devices: [], softwareVersion: "test"))
        }
        _ = try writer.append(entries)
        let history = try EventHistory(path: directory + "/state/events.sqlite")
        func state(_ name: String, at seconds: Int64) throws {
            try history.record(
                CellEvent(kind: .state, code: name, source: "cell", message: name, startedWallNanoseconds: start + seconds * second, endedWallNanoseconds: start + seconds * second))
        }
        for (name, at) in [
            ("Execute", 0), ("Aborting", 5_000), ("Aborted", 5_001), ("Clearing", 5_300), ("Stopped", 5_310),
            ("Resetting", 5_400), ("Idle", 5_410), ("Starting", 5_500),
        ] as [(String, Int64)] {
            try state(name, at: at)
        }
        let stopID = try history.record(
            CellEvent(kind: .stop, code: "emergencyStop", source: "station", message: "emergency stop pressed", startedWallNanoseconds: start + 5_000 * second, endedWallNanoseconds: nil))
        try state("Execute", at: 5_600)
        try history.end(id: stopID, atWallNanoseconds: start + 5_600 * second)

        try PanelCell.writeConfiguration(directory: directory)
        let from = RFC3339.text(wallNanoseconds: UInt64(start)).replacingOccurrences(of: ".000Z", with: "Z")
        let to = RFC3339.text(wallNanoseconds: UInt64(start + 3 * 3_600 * second)).replacingOccurrences(of: ".000Z", with: "Z")
        let report = try runProcess(
            try Repository.executable("lampctl"),
            ["report", "--config", directory + "/lampcelld.toml", "--from", from, "--to", to, "--output", directory + "/shift"],
            timeoutSeconds: 90)
        try #require(report.status == 0, "lampctl report: \(report.standardError)")
        let html = try String(contentsOfFile: directory + "/shift.html", encoding: .utf8)
        #expect(html.contains("Output per hour") && html.contains("emergencyStop"))

        // pdftoppm renders every page; pdftotext reads each page's words.
        let info = try runProcess("/usr/bin/pdfinfo", [directory + "/shift.pdf"])
        let pages = info.standardOutput.split(separator: "\n").first { $0.hasPrefix("Pages:") }?.dropFirst(6)
        #expect(pages?.trimmingCharacters(in: .whitespaces) == "2", "\(info.standardOutput)")
        let render = try runProcess("/usr/bin/pdftoppm", ["-r", "40", "-png", directory + "/shift.pdf", directory + "/page"])
        #expect(render.status == 0, "\(render.standardError)")
        for page in 1...2 {
            let png = FileManager.default.contents(atPath: "\(directory)/page-\(page).png") ?? Data()
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 5_000, "page \(page): \(png.count) bytes")
        }
        if let folder = ProcessInfo.processInfo.environment["LAMPCELL_HMI_SCREENSHOTS"] {  // docs/hmi
            _ = try runProcess("/usr/bin/pdftoppm", ["-r", "70", "-png", directory + "/shift.pdf", folder + "/shift-report"])
        }
        func text(_ page: Int) throws -> String {
            try runProcess("/usr/bin/pdftotext", ["-f", "\(page)", "-l", "\(page)", "-layout", directory + "/shift.pdf", "-"]).standardOutput
        }
        let first = try text(1)
        for words in ["Shift report", "HL-CELL-01", "300", "Lamps", "269", "30", "Output per hour", "OEE and its losses"] {
            #expect(first.contains(words), "page 1 lacks '\(words)': \(first)")
        }
        // Availability, as the cell's OEE counts it (Aborted, Stopped and Idle are not planned time): 10,200 s run
        // of 10,321 s planned (Execute, Aborting, Clearing, Resetting, Starting).
        #expect(first.contains("Availability") && first.contains("98.8 %"), "page 1: \(first)")
        // Performance: 300 lamps × 26 s ideal (HL-LEFT) in 10,200 s run; quality 269 of 300.
        #expect(first.contains("76.5 %") && first.contains("89.7 %"), "page 1: \(first)")
        let second2 = try text(2)
        for words in ["Stop reasons", "emergencyStop", "10.0 min", "NG and scrap reasons", "leak_rate", "Cycle-time distribution", "300 lamps"] {
            #expect(second2.contains(words), "page 2 lacks '\(words)': \(second2)")
        }
    }
}

@Suite("Panel logins and sessions")
struct PanelAccessTests {
    /// A clock the test moves.
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var nanoseconds: UInt64 = 1_000_000_000
        func now() -> UInt64 { lock.withLock { nanoseconds } }
        func advance(seconds: UInt64) { lock.withLock { nanoseconds += seconds * 1_000_000_000 } }
    }

    @Test("a session ends after the idle time without a command; refused logins lock the name out for a while")
    func sessionsExpireAndLoginsLockOut() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let hash = try OperatorAccounts.hash(password: "right")
        try "# operators\n\(OperatorAccounts.line(name: "alice", hash: hash))\n".write(
            toFile: directory + "/operators", atomically: true, encoding: .utf8)
        let clock = Clock()
        let access = PanelAccess(
            configuration: PanelServerConfiguration(
                address: "127.0.0.1", port: 1, operatorsFile: directory + "/operators", sessionIdleSeconds: 60),
            clock: { clock.now() })
        let (token, session) = try access.login(name: "alice", password: "right", remote: "10.0.0.9")
        var headers = HTTPHeaders([("Cookie", "other=1; lampcell_session=\(token)"), ("X-CSRF-Token", session.csrfToken)])
        guard case .success(let used) = access.authorize(headers) else {
            Issue.record("a fresh session is refused")
            return
        }
        #expect(used.operatorName == "alice")
        clock.advance(seconds: 59)
        #expect(access.session(headers) != nil, "59 s idle is within the 60 s")
        clock.advance(seconds: 60)
        guard case .failure(.noSession) = access.authorize(headers) else {
            Issue.record("a session idle for 60 s still commands")
            return
        }
        // A cross-site Origin is refused before the session is looked at.
        let (fresh, freshSession) = try access.login(name: "alice", password: "right", remote: "10.0.0.9")
        headers = HTTPHeaders([
            ("Cookie", "lampcell_session=\(fresh)"), ("X-CSRF-Token", freshSession.csrfToken), ("Host", "10.0.0.5:8610"),
            ("Origin", "http://evil.example"),
        ])
        guard case .failure(.crossSite) = access.authorize(headers) else {
            Issue.record("a cross-site Origin was not refused")
            return
        }
        headers.replaceOrAdd(name: "Origin", value: "http://10.0.0.5:8610")
        guard case .success = access.authorize(headers) else {
            Issue.record("the panel's own Origin was refused")
            return
        }
        // Five refused logins from one address lock that address out, even with the right password, until the
        // lockout has passed; another address may still log in (nobody locks an operator out by their name).
        for _ in 0..<5 { #expect(throws: OperatorAccountsError.self) { try access.login(name: "alice", password: "wrong", remote: "10.0.0.9") } }
        #expect(throws: OperatorAccountsError.self) { try access.login(name: "alice", password: "right", remote: "10.0.0.9") }
        #expect(throws: Never.self) { try access.login(name: "alice", password: "right", remote: "10.0.0.7") }
        clock.advance(seconds: 61)
        #expect(throws: Never.self) { try access.login(name: "alice", password: "right", remote: "10.0.0.9") }
        // A new password ends the sessions opened with the old one.
        let (kept, keptSession) = try access.login(name: "alice", password: "right", remote: "10.0.0.9")
        let newHash = try OperatorAccounts.hash(password: "new")
        try "\(OperatorAccounts.line(name: "alice", hash: newHash))\n".write(
            toFile: directory + "/operators", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: directory + "/operators")
        #expect(throws: OperatorAccountsError.self) { try access.login(name: "alice", password: "right", remote: "10.0.0.8") }
        let old = HTTPHeaders([("Cookie", "lampcell_session=\(kept)"), ("X-CSRF-Token", keptSession.csrfToken)])
        #expect(access.session(old) == nil, "a session of the old password still commands")
    }

    @Test("the panel answers only to an IP address or localhost as Host (no DNS rebinding)")
    func hostsAllowed() {
        for host in ["127.0.0.1:8610", "10.1.2.3", "[::1]:8610", "localhost:8610", "LOCALHOST"] {
            #expect(PanelAccess.isAllowedHost(host), "\(host)")
        }
        for host in ["evil.example:8610", "127.0.0.1.nip.io", "", "[::1", "panel"] {
            #expect(!PanelAccess.isAllowedHost(host), "\(host)")
        }
        #expect(!PanelAccess.isAllowedHost(nil))
    }

    @Test("a bad operators file is refused naming its path and line")
    func badOperatorsFile() {
        #expect(throws: OperatorAccountsError.self) { try OperatorAccounts.parse("alice:$y$ok\nbob\n", path: "/etc/ops") }
        do {
            _ = try OperatorAccounts.parse("# x\n\nbob:notahash\n", path: "/etc/ops")
            Issue.record("a line without a crypt(3) hash was accepted")
        } catch {
            #expect(error.description.hasPrefix("/etc/ops:3: the hash of 'bob'"), "\(error.description)")
        }
    }
}
