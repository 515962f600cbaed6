import CRealtime
import CellCore
import Foundation
import Glibc
import LampCellTestSupport
import Ledger
import Modbus
import Testing

// The rig of the crash test (LedgerCrashTests): `lampsim` as its own process (the simulated cell survives the
// controller and counts the lamps that leave it independently), `lampcelld` as a child process that the test kills,
// a read-only look at the ledger, and a Modbus probe of where the parts physically are.

/// Seconds on the monotonic clock (for durations measured by the test).
func monotonicSeconds() -> Double { Double(lampcell_monotonic_ns()) / 1e9 }

/// Collects the lines a child process writes to one pipe, on a dedicated thread (blocking reads, no async tasks).
/// Only complete lines (ended by a newline) count: a line cut by SIGKILL is kept apart (`unterminated`).
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

    /// Waits until the pipe reached end of file (the writer exited); false at the deadline.
    @discardableResult
    func waitForEnd(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !ended { if !condition.wait(until: deadline) { return ended } }
        return true
    }

    /// The text after the last newline (a line cut short by the end of the writer).
    var unterminated: String {
        condition.lock()
        defer { condition.unlock() }
        return partial
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
    func tail(_ count: Int) -> String {
        (lines.suffix(count) + [unterminated].filter { !$0.isEmpty }).joined(separator: "\n")
    }
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

/// `lampcelld` as a child process with its standard error (the log) collected.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let log: LineCollector
    /// When the process was spawned, monotonic seconds.
    let spawnedAt: Double

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try DaemonExecutableTests.executable("lampcelld"))
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        log = LineCollector(errors.fileHandleForReading, name: "lampcelld")
        spawnedAt = monotonicSeconds()
        try process.run()
    }

    /// Seconds since the spawn.
    var age: Double { monotonicSeconds() - spawnedAt }

    /// Sends `signal` and waits for the process to end; returns its termination status. The log is read to its end.
    @discardableResult
    func end(with signal: Int32) -> Int32 {
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        log.waitForEnd(seconds: 5)
        return process.terminationStatus
    }
}

/// A lamp the daemon acknowledged in its log. `LampLogSink` prints `lamp <serial> <variant> <verdict> … cycle <s> s`
/// on the drain thread after `LedgerSink.accept` returned — after the row committed; the recovery at start prints
/// `lamp <serial> was in the cell when the controller stopped: recorded as scrapped (controller restart)` after its
/// append. Only complete lines are parsed.
struct AcknowledgedLamp: Equatable, CustomStringConvertible {
    var serial: String
    var verdict: String
    var description: String { "\(serial) \(verdict)" }

    nonisolated(unsafe) private static let finished = /\] lamp (\S+) (?:LEFT|RIGHT|variant \d+) (OK|NG|SCRAPPED)(?: \(.*\))? cycle \d+\.\d s$/
    nonisolated(unsafe) private static let recovered = /\] lamp (\S+) was in the cell when the controller stopped: recorded as scrapped \(controller restart\)$/

    /// The lamp a log line acknowledges, if it is one of the two lines above.
    init?(logLine line: String) {
        if let match = line.firstMatch(of: Self.finished) {
            serial = String(match.1)
            verdict = String(match.2)
        } else if let match = line.firstMatch(of: Self.recovered) {
            serial = String(match.1)
            verdict = "SCRAPPED"
        } else {
            return nil
        }
    }
}

/// What a read-only look at the ledger file shows.
struct LedgerLook {
    var entries: [LedgerEntry]
    /// nil when there is no ledger file yet.
    var verification: LedgerVerification?
    /// How long `verify()` took, seconds.
    var verifySeconds: Double
    /// The chain verified (or there is nothing to verify yet).
    var isValid: Bool { verification?.isValid ?? true }
    var count: Int { entries.count }
    var serials: Set<String> { Set(entries.map(\.serial)) }
    /// Entries with a verdict from the process (OK or NG): lamps that were released at the outfeed or reject.
    var judged: Int { entries.filter { $0.verdict != "SCRAPPED" }.count }
    var restartScrapped: [LedgerEntry] { entries.filter { $0.verdict == "SCRAPPED" && $0.reasons == "controller restart" } }
    /// Serial → entry.
    var bySerial: [String: LedgerEntry] { Dictionary(entries.map { ($0.serial, $0) }, uniquingKeysWith: { first, _ in first }) }

    /// Opens `path` read-only, verifies the chain and reads every entry; an empty look when there is no file yet.
    static func read(_ path: String) throws -> LedgerLook {
        guard FileManager.default.fileExists(atPath: path) else {
            return LedgerLook(entries: [], verification: nil, verifySeconds: 0)
        }
        let ledger = try Ledger.openReadOnly(path: path)
        let start = monotonicSeconds()
        let verification = try ledger.verify()
        let verifySeconds = monotonicSeconds() - start
        return LedgerLook(entries: try ledger.entries(matching: .all), verification: verification, verifySeconds: verifySeconds)
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

/// Where the housings physically are, read over Modbus from the simulated devices (the test's own connection,
/// the second of the two each device accepts): the loader's gripper (RA-610 input register 3 `tool_state`,
/// bit0 HOLDING_PART, bit1 BUSY) and the fixture (TS-200 discrete input 2 `PART_IN_FIXTURE`).
struct PartsProbe {
    /// How long a running tool request may take to end (GRIP/RELEASE take 150 ms; the arm's watchdog stops it).
    static let toolSettleTimeoutSeconds = 3.0
    static let timeoutNanoseconds: UInt64 = 500_000_000

    let loaderPort: Int
    let stationPort: Int

    struct Parts: CustomStringConvertible {
        var inGripper: Bool
        var inFixture: Bool
        var count: Int { (inGripper ? 1 : 0) + (inFixture ? 1 : 0) }
        var description: String { "gripper \(inGripper ? "holds a part" : "empty"), fixture \(inFixture ? "holds a part" : "empty")" }
    }

    /// Waits until the loader's tool is not busy, then reads both places.
    func read() throws -> Parts {
        let loader = try ModbusClient(
            host: "127.0.0.1", port: loaderPort, responseTimeoutNanoseconds: Self.timeoutNanoseconds,
            connectTimeoutNanoseconds: Self.timeoutNanoseconds)
        try loader.connect()
        defer { loader.close() }
        var toolState: [UInt16] = [0]
        let deadline = monotonicSeconds() + Self.toolSettleTimeoutSeconds
        repeat {
            try loader.readInputRegisters(address: 3, into: &toolState)
            if toolState[0] & 0b10 == 0 { break }
            Thread.sleep(forTimeInterval: 0.02)
        } while monotonicSeconds() < deadline
        guard toolState[0] & 0b10 == 0 else { throw LampSimError("the loader's tool stayed busy (tool_state \(toolState[0]))") }
        let station = try ModbusClient(
            host: "127.0.0.1", port: stationPort, responseTimeoutNanoseconds: Self.timeoutNanoseconds,
            connectTimeoutNanoseconds: Self.timeoutNanoseconds)
        try station.connect()
        defer { station.close() }
        var inputs: [UInt8] = [0]
        try station.readDiscreteInputs(address: 2, into: &inputs)
        return Parts(inGripper: toolState[0] & 1 != 0, inFixture: inputs[0] != 0)
    }
}

/// lampsim as its own process, and a configuration for lampcelld pointing at it (temporary directory, absolute paths).
struct CrashRig {
    let directory: String
    let state: String
    let ledgerPath: String
    let simulator: LampSimProcess
    let parts: PartsProbe
    /// `lampcelld` arguments: the configuration, `--auto-start`, the state directory.
    let arguments: [String]

    init(seed: UInt64) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("lampcell-crash-\(seed)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        state = directory + "/state"
        ledgerPath = state + "/ledger.sqlite"
        simulator = try LampSimProcess(cell: Repository.cellDefinition, seed: seed)
        guard let loaderPort = simulator.ports["loader"], let stationPort = simulator.ports["station"] else {
            throw LampSimError("lampsim printed no port for the loader or the station: \(simulator.ports)")
        }
        parts = PartsProbe(loaderPort: loaderPort, stationPort: stationPort)
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

    /// Size and modification time of the ledger's WAL file: a commit writes its frames there.
    struct WALStamp: Equatable {
        var size: Int64
        var modifiedNanoseconds: Int64
    }

    /// The WAL file's stamp now; nil when there is none.
    func walStamp() -> WALStamp? {
        var info = stat()
        guard stat(ledgerPath + "-wal", &info) == 0 else { return nil }
        return WALStamp(
            size: Int64(info.st_size), modifiedNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    /// Ends lampsim and removes the directory.
    func remove() {
        simulator.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
