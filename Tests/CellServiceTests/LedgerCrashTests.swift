import CellCore
import Foundation
import Glibc
import Ledger
import Testing

// The crash test of the ledger (issue 4): `lampsim` serves the simulated cell as its own process, so the simulator
// survives the controller and counts lamps independently; `lampcelld --auto-start` drives it over Modbus TCP and
// is killed with SIGKILL at seeded random moments, then restarted on the same state directory.

/// Collects the lines a child process writes to one pipe, on a dedicated thread (blocking reads, no async tasks).
/// Thread: any.
final class LineCollector: @unchecked Sendable {
    private let condition = NSCondition()
    private var collected: [String] = []
    private var partial = ""
    private var ended = false

    /// Starts reading `handle` until end of file.
    init(_ handle: FileHandle, name: String) {
        let thread = Thread { [self] in
            while true {
                let data = handle.availableData
                condition.lock()
                if data.isEmpty {
                    if !partial.isEmpty { collected.append(partial) }
                    partial = ""
                    ended = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                partial += String(decoding: data, as: UTF8.self)
                while let newline = partial.firstIndex(of: "\n") {
                    collected.append(String(partial[..<newline]))
                    partial = String(partial[partial.index(after: newline)...])
                }
                condition.broadcast()
                condition.unlock()
            }
        }
        thread.name = "lines-\(name)"
        thread.start()
    }

    /// Every complete line so far.
    var lines: [String] {
        condition.lock()
        defer { condition.unlock() }
        return collected
    }

    /// Number of complete lines so far (a mark for `waitForLine(after:)`).
    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return collected.count
    }

    /// Waits for the first line at index ≥ `start` that satisfies `match`; nil at the deadline or end of file.
    func waitForLine(after start: Int = 0, seconds: Double, _ match: (String) -> Bool) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        var index = start
        while true {
            while index < collected.count {
                if match(collected[index]) { return collected[index] }
                index += 1
            }
            if ended || !condition.wait(until: deadline) {
                while index < collected.count {
                    if match(collected[index]) { return collected[index] }
                    index += 1
                }
                return nil
            }
        }
    }

    /// The last `count` lines, for failure messages.
    func tail(_ count: Int) -> String { lines.suffix(count).joined(separator: "\n") }
}

/// `lampsim serve` as a child process: the simulated cell, with its own count of the lamps that left it.
final class LampSimProcess: @unchecked Sendable {
    /// The simulator's independent count of lamps that left the cell.
    struct LampsOut: Equatable, CustomStringConvertible {
        var outfeed: Int
        var reject: Int
        var housingsPresented: Int
        var total: Int { outfeed + reject }
        var description: String { "\(outfeed) outfeed + \(reject) reject (housings presented \(housingsPresented))" }
    }

    /// How long lampsim may take to bind its ports.
    static let startTimeoutSeconds = 30.0
    /// How long one console command may take to answer.
    static let replyTimeoutSeconds = 10.0

    let process = Process()
    private let input = Pipe()
    private let output: LineCollector
    private let commandLock = NSLock()
    /// Device name → loopback port, as lampsim printed them.
    private(set) var ports: [String: Int] = [:]

    /// Starts `lampsim serve --cell <cell> --base-port 0 --seed <seed>` and waits for `ready`.
    init(cell: String, seed: UInt64) throws {
        process.executableURL = URL(fileURLWithPath: try DaemonExecutableTests.executable("lampsim"))
        process.arguments = ["serve", "--cell", cell, "--base-port", "0", "--seed", "\(seed)"]
        let stdout = Pipe()
        process.standardInput = input
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        output = LineCollector(stdout.fileHandleForReading, name: "lampsim")
        try process.run()
        guard output.waitForLine(seconds: Self.startTimeoutSeconds, { $0.hasPrefix("ready") }) != nil else {
            stop()
            throw LampSimError("lampsim did not print ready: \(output.tail(20))")
        }
        for line in output.lines {
            // `<name> 127.0.0.1:<port>`
            let words = line.split(separator: " ")
            guard words.count == 2, let colon = words[1].lastIndex(of: ":"),
                let port = Int(words[1][words[1].index(after: colon)...])
            else { continue }
            ports[String(words[0])] = port
        }
    }

    /// Sends one console command and returns the reply line that satisfies `reply`.
    func command(_ line: String, reply: (String) -> Bool) throws -> String {
        commandLock.lock()
        defer { commandLock.unlock() }
        let mark = output.count
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        guard let answer = output.waitForLine(after: mark, seconds: Self.replyTimeoutSeconds, reply) else {
            throw LampSimError("lampsim did not answer \(line): \(output.tail(10))")
        }
        return answer
    }

    /// `status` → the `lamps out: X outfeed, Y reject; housings presented Z` line, parsed.
    func lampsOut() throws -> LampsOut {
        let line = try command("status") { $0.hasPrefix("lamps out:") }
        let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard numbers.count == 3 else { throw LampSimError("cannot read the lamp counts in \"\(line)\"") }
        return LampsOut(outfeed: numbers[0], reject: numbers[1], housingsPresented: numbers[2])
    }

    /// Ends lampsim (`quit`, then SIGKILL if it lingers).
    func stop() {
        if process.isRunning {
            input.fileHandleForWriting.write(Data("quit\n".utf8))
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }
}

struct LampSimError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `lampcelld` as a child process with its standard error collected.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let log: LineCollector

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try DaemonExecutableTests.executable("lampcelld"))
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        log = LineCollector(errors.fileHandleForReading, name: "lampcelld")
        try process.run()
    }

    /// Sends `signal` and waits for the process to end; returns its termination status.
    @discardableResult
    func end(with signal: Int32) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// Seeded SplitMix64, so a failing run can be repeated (`LAMPCELL_CRASH_SEED`).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What a read-only look at the ledger file shows.
struct LedgerLook {
    var entries: [LedgerEntry]
    /// nil when there is no ledger file yet.
    var verification: LedgerVerification?
    /// The chain verified (or there is nothing to verify yet).
    var isValid: Bool { verification?.isValid ?? true }
    var count: Int { entries.count }
    var serials: Set<String> { Set(entries.map(\.serial)) }
    /// Entries with a verdict from the process (OK or NG): lamps that were released at the outfeed or reject.
    var judged: Int { entries.filter { $0.verdict != "SCRAPPED" }.count }
    var restartScrapped: [LedgerEntry] { entries.filter { $0.verdict == "SCRAPPED" && $0.reasons == "controller restart" } }

    /// Opens `path` read-only, verifies the chain and reads every entry; an empty look when there is no file yet.
    static func read(_ path: String) throws -> LedgerLook {
        guard FileManager.default.fileExists(atPath: path) else {
            return LedgerLook(entries: [], verification: nil)
        }
        let ledger = try Ledger.openReadOnly(path: path)
        return LedgerLook(entries: try ledger.entries(matching: .all), verification: try ledger.verify())
    }
}

/// The serial named by a `lamp-in-cell` file (`date_code=…`, `sequence=…` lines), if the file exists.
func lampInCellSerial(stateDirectory: String, cellID: String) -> String? {
    guard let data = FileManager.default.contents(atPath: stateDirectory + "/lamp-in-cell") else { return nil }
    var fields: [String: UInt64] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1)
        if parts.count == 2, let value = UInt64(parts[1]) { fields[String(parts[0])] = value }
    }
    guard let dateCode = fields["date_code"], let sequence = fields["sequence"] else { return nil }
    return LampSerial(dateCode: UInt32(truncatingIfNeeded: dateCode), sequence: sequence).text(cellID: cellID)
}

/// `Hardware/cell.toml` with each device's `host`/`port` replaced by the given loopback ports.
func cellDefinition(withPorts ports: [String: Int]) throws -> String {
    let original = try String(contentsOfFile: Repository.cellDefinition, encoding: .utf8)
    var device: String?
    var lines: [String] = []
    for line in original.split(separator: "\n", omittingEmptySubsequences: false) {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("[") {
            device = trimmed.hasPrefix("[devices.") ? String(trimmed.dropFirst(9).dropLast()) : nil
        }
        if device != nil, trimmed.hasPrefix("host") {
            lines.append("host = \"127.0.0.1\"")
        } else if let device, trimmed.hasPrefix("port") {
            guard let port = ports[device] else { throw LampSimError("lampsim printed no port for device \(device)") }
            lines.append("port = \(port)")
        } else {
            lines.append(String(line))
        }
    }
    return lines.joined(separator: "\n")
}

/// lampsim as its own process, and a configuration for lampcelld pointing at it (temporary directory, absolute paths).
struct CrashRig {
    let directory: String
    let state: String
    let ledgerPath: String
    let simulator: LampSimProcess
    /// `lampcelld` arguments: the configuration, `--auto-start`, the state directory.
    let arguments: [String]

    init(seed: UInt64) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lampcell-crash-\(seed)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        state = directory + "/state"
        ledgerPath = state + "/ledger.sqlite"
        simulator = try LampSimProcess(cell: Repository.cellDefinition, seed: seed)
        let cellPath = directory + "/cell.toml"
        try cellDefinition(withPorts: simulator.ports).write(toFile: cellPath, atomically: true, encoding: .utf8)
        let configuration = try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8)
            .replacingOccurrences(of: "\"../Hardware/cell.toml\"", with: "\"\(cellPath)\"")
            .replacingOccurrences(of: "\"../.build/lampcell-state", with: "\"\(state)")
            .replacingOccurrences(of: "\"../", with: "\"\(Repository.root)/")
        guard configuration.contains("arm_watchdog_milliseconds = 300"), configuration.contains(cellPath) else {
            throw LampSimError("unexpected development configuration: \(configuration)")
        }
        let configurationPath = directory + "/lampcelld.toml"
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        arguments = ["-c", configurationPath, "--auto-start", "--state-directory", state]
    }

    /// Ends lampsim and removes the directory.
    func remove() {
        simulator.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("Ledger crash test", .serialized)
struct LedgerCrashTests {
    /// Kills per run (the issue asks for at least 20); `LAMPCELL_CRASH_KILLS` overrides.
    static let defaultKills = 20
    /// Kill moments are spread over this span after each start, seconds.
    static let killMomentRangeSeconds = 2.0...40.0
    /// How long a started daemon may take to open the ledger, recover and log that it started.
    static let startTimeoutSeconds = 60.0
    /// The last run must commit a lamp within this time (one lamp takes ~27 s, plus Clear/Reset/Start).
    static let finalLampTimeoutSeconds = 150.0
    static let cellID = "HL-CELL-01"

    @Test("lampcelld killed with SIGKILL at ≥ 20 random moments: verify passes, serials unique, every lamp that left is recorded")
    func killAtRandomMoments() throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["LAMPCELL_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999)
        let kills = environment["LAMPCELL_CRASH_KILLS"].flatMap { Int($0) } ?? Self.defaultKills
        print("LedgerCrashTests: seed \(seed) (repeat with LAMPCELL_CRASH_SEED=\(seed)), \(kills) kills")
        var random = SplitMix64(state: seed)
        // Stratified moments (one per equal slice of the span, shuffled): every run of the test has short runs
        // (kills during start-up, Clear, Reset) and long ones (kills after lamps completed).
        let span = Self.killMomentRangeSeconds
        var moments = (0..<kills).map { slice in
            span.lowerBound + (span.upperBound - span.lowerBound)
                * (Double(slice) + Double.random(in: 0..<1, using: &random)) / Double(kills)
        }
        moments.shuffle(using: &random)

        let rig = try CrashRig(seed: seed)
        defer { rig.remove() }
        let simulator = rig.simulator
        let state = rig.state
        let ledgerPath = rig.ledgerPath
        let arguments = rig.arguments

        var restartScrapsExpected = 0
        var outBeforeKill: LampSimProcess.LampsOut?
        var summary: [String] = []
        var lastDaemon: DaemonProcess?
        var current: DaemonProcess?
        defer { if let current, current.process.isRunning { current.end(with: SIGKILL) } }
        for run in 0...kills {
            // Before the start: what the dead process left behind.
            let before = try LedgerLook.read(ledgerPath)
            let pending = lampInCellSerial(stateDirectory: state, cellID: Self.cellID)
            let startedAt = Date()
            let daemon = try DaemonProcess(arguments)
            current = daemon
            guard daemon.log.waitForLine(seconds: Self.startTimeoutSeconds, { $0.contains("lampcelld started") }) != nil
            else {
                daemon.end(with: SIGKILL)
                Issue.record("run \(run): lampcelld did not start:\n\(daemon.log.tail(30))")
                return
            }

            // After the restart (recovery is done before "started"): the chain is valid, serials are unique, the
            // lamp that was in the cell is recorded exactly once, and every lamp that left the cell is there.
            let after = try LedgerLook.read(ledgerPath)
            let context = "run \(run) (seed \(seed))"
            #expect(after.isValid, "\(context): \(String(describing: after.verification))")
            #expect(after.serials.count == after.count, "\(context): duplicate serials")
            #expect(Set(after.entries.map(\.serialSequence)).count == after.count, "\(context): duplicate sequences")
            if let pending, !before.serials.contains(pending) {
                restartScrapsExpected += 1
                #expect(after.count == before.count + 1, "\(context): the lamp in the cell (\(pending)) was not recorded")
                let recorded = after.entries.last
                #expect(recorded?.serial == pending && recorded?.verdict == "SCRAPPED"
                    && recorded?.reasons == "controller restart", "\(context): \(String(describing: recorded))")
            } else {
                #expect(after.count == before.count, "\(context): recovery added \(after.count - before.count) entries, no lamp was pending")
            }
            #expect(Array(after.entries.prefix(before.count)) == before.entries, "\(context): earlier entries changed")
            #expect(after.restartScrapped.count == restartScrapsExpected, "\(context)")
            #expect(FileManager.default.fileExists(atPath: state + "/lamp-in-cell") == false, "\(context): lamp-in-cell left after recovery")
            if let outBeforeKill {
                // The property of the issue: every lamp the simulator saw leave before the kill is in the ledger.
                // (The ledger may hold more: a lamp still in the cell, recorded as scrapped at the restart.)
                #expect(after.count >= outBeforeKill.total, "\(context): ledger \(after.count) < \(outBeforeKill) that left the cell before the kill")
            }
            if run == kills {
                lastDaemon = daemon
                break
            }

            // Run until the moment, then SIGKILL.
            let moment = moments[run]
            while Date().timeIntervalSince(startedAt) < moment && daemon.process.isRunning {
                Thread.sleep(forTimeInterval: min(0.05, max(0, moment - Date().timeIntervalSince(startedAt))))
            }
            guard daemon.process.isRunning else {
                Issue.record("\(context): lampcelld exited by itself (\(daemon.process.terminationStatus)):\n\(daemon.log.tail(30))")
                return
            }
            let out = try simulator.lampsOut()
            daemon.end(with: SIGKILL)
            outBeforeKill = out
            // Any time after the kill: a lamp committed before the kill was released (counted) before its commit.
            let outAfter = try simulator.lampsOut()
            _ = try simulator.command("reject-bin empty") { $0.hasPrefix("reject bin") }
            // A lamp recorded with a verdict (OK, NG) was released at the outfeed or the reject bin first.
            let killed = try LedgerLook.read(ledgerPath)
            #expect(killed.isValid, "\(context): \(String(describing: killed.verification))")
            #expect(killed.judged <= outAfter.total, "\(context): \(killed.judged) judged lamps in the ledger, \(outAfter)")
            let lastState = daemon.log.lines.last(where: { $0.contains("PackML state") }).map { String($0.suffix(40)) } ?? "-"
            summary.append(
                "kill \(run + 1) at \(String(format: "%.1f", moment)) s: ledger \(killed.count) (\(killed.judged) judged), "
                    + "sim before \(out), after \(outAfter.total); \(lastState)")
            print("LedgerCrashTests: \(summary[summary.count - 1])")
        }

        // The last run goes on until it commits a lamp of its own, then stops in the controlled way.
        let daemon = try #require(lastDaemon)
        let startJudged = try LedgerLook.read(ledgerPath).judged
        let deadline = Date().addingTimeInterval(Self.finalLampTimeoutSeconds)
        var lastJudged = startJudged
        while lastJudged == startJudged && Date() < deadline && daemon.process.isRunning {
            Thread.sleep(forTimeInterval: 0.5)
            lastJudged = try LedgerLook.read(ledgerPath).judged
        }
        #expect(lastJudged > startJudged, "no lamp completed after the last restart:\n\(daemon.log.tail(30))")
        #expect(daemon.end(with: SIGTERM) == 0, "\(daemon.log.tail(30))")
        let final = try LedgerLook.read(ledgerPath)
        let out = try simulator.lampsOut()
        #expect(final.verification?.isValid == true, "\(String(describing: final.verification))")
        #expect(final.serials.count == final.count)
        #expect(final.count >= out.total, "ledger \(final.count) < \(out)")
        #expect(final.judged <= out.total)
        // After a controlled stop nothing is pending: a lamp in the cell was recorded as scrapped (cell stopped).
        if let pending = lampInCellSerial(stateDirectory: state, cellID: Self.cellID) {
            #expect(final.serials.contains(pending), "lamp-in-cell names \(pending), not in the ledger after a controlled stop")
        }
        summary.append("final: ledger \(final.count) entries (\(final.judged) judged, \(final.restartScrapped.count) scrapped at restart), sim \(out)")
        print("LedgerCrashTests (seed \(seed)):\n" + summary.joined(separator: "\n"))
    }
}
