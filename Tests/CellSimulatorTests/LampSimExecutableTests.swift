// The `lampsim` executable as a newcomer runs it: serves the cell from Hardware/cell.toml, prints its ports,
// takes fault-injection commands on stdin (FaultConsole), and exits cleanly on `quit`.

import CRealtime
import CellSimulator
import Foundation
import LampCellTestSupport
import Modbus
import Synchronization
import Testing

/// A child process with piped stdin, stdout and stderr; output is collected by reader threads.
/// Thread: any.
final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private let collected = Mutex<(stdout: Data, stderr: Data, openStreams: Int)>((Data(), Data(), 2))

    /// Starts `executable` with `arguments`.
    init(executable: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        for (handle, isError) in [(output.fileHandleForReading, false), (errors.fileHandleForReading, true)] {
            let thread = Thread { [self] in
                while true {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    collected.withLock { if isError { $0.stderr.append(data) } else { $0.stdout.append(data) } }
                }
                collected.withLock { $0.openStreams -= 1 }
            }
            thread.start()
        }
    }

    deinit { terminate() }

    /// Complete stdout lines so far.
    var outputLines: [String] {
        let text = collected.withLock { String(decoding: $0.stdout, as: UTF8.self) }
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// Everything written to stdout and stderr so far.
    var stdout: String { collected.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    var stderr: String { collected.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Writes one line to the child's stdin.
    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Waits until a stdout line (at index `from` or later) satisfies `condition`; returns its index.
    func waitForLine(from: Int = 0, withinMilliseconds limit: UInt64 = 5_000, _ condition: (String) -> Bool) -> Int? {
        var found: Int?
        _ = eventually(withinMilliseconds: limit) {
            let lines = outputLines
            found = lines.indices.dropFirst(from).first { condition(lines[$0]) }
            return found != nil
        }
        return found
    }

    /// Waits for the child to exit (and its output to be drained); returns its exit status, or nil.
    func waitForExit(withinMilliseconds limit: UInt64) -> Int32? {
        let exited = eventually(withinMilliseconds: limit) {
            !process.isRunning && collected.withLock { $0.openStreams == 0 }
        }
        return exited ? process.terminationStatus : nil
    }

    /// Kills the child if it still runs.
    func terminate() {
        if process.isRunning { process.terminate() }
    }
}

/// Where the built `lampsim` is: next to the test bundle (same build), else `.build/debug/lampsim`.
func builtLampsimPath() throws -> String {
    var directories: [URL] = []
    if let path = Bundle.main.executablePath { directories.append(URL(fileURLWithPath: path).deletingLastPathComponent()) }
    if let first = CommandLine.arguments.first {
        directories.append(URL(fileURLWithPath: first).deletingLastPathComponent())
    }
    var candidates = directories.map { $0.appendingPathComponent("lampsim").path }
    candidates.append(Repository.root + "/.build/debug/lampsim")
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    throw TestSetupError(
        description: "lampsim is not built (looked for \(candidates.joined(separator: ", "))): "
            + "run `swift build --build-tests` or `make test` first")
}

@Suite("lampsim executable", .serialized)
struct LampSimExecutableTests {
    @Test("serve prints its ports and ready; stdin commands inject e-stop, faults, drops and delays; quit exits 0")
    func serveAndInjectFaults() throws {
        let lampsim = try ChildProcess(
            executable: builtLampsimPath(),
            arguments: ["serve", "--cell", Repository.cellDefinitionPath, "--seed", "3"])
        defer { lampsim.terminate() }
        let ready = try #require(
            lampsim.waitForLine(withinMilliseconds: 20_000) { $0.hasPrefix("ready") },
            "no `ready` line; stdout: \(lampsim.stdout) stderr: \(lampsim.stderr)")

        // `<name> 127.0.0.1:<port>` for each device, before `ready`.
        var ports: [String: Int] = [:]
        for line in lampsim.outputLines[..<ready] {
            let words = line.split(separator: " ")
            guard words.count == 2, words[1].hasPrefix("127.0.0.1:"), let port = Int(words[1].dropFirst(10)) else {
                Issue.record("unexpected line before ready: \(line)")
                continue
            }
            ports[String(words[0])] = port
        }
        #expect(Set(ports.keys) == ["loader", "assembler", "lens", "station"])
        func client(_ name: String, timeoutMilliseconds: UInt64 = 1_000) throws -> ModbusClient {
            let port = try #require(ports[name], "no port for \(name)")
            let client = try ModbusClient(
                host: "127.0.0.1", port: port, responseTimeoutNanoseconds: nanoseconds(milliseconds: timeoutMilliseconds),
                connectTimeoutNanoseconds: nanoseconds(milliseconds: 1_000))
            try client.connect()
            return client
        }
        let safetyOK = TS200Model.DiscreteInput.safetyOK.rawValue
        let station = try client("station")
        let arms = try ["loader", "assembler", "lens"].map { try client($0) }
        let loader = arms[0]
        #expect(try station.discreteInputs(safetyOK) == [1])
        #expect(try loader.input(RA610Register.model, 4)[0] == 610)

        // estop press: SAFETY_OK drops, every arm reports ESTOP with 0x0601.
        lampsim.send("estop press")
        #expect(eventually { (try? station.discreteInputs(safetyOK, 2)) == [0, 1] }, "SAFETY_OK did not drop")
        for arm in arms {
            #expect(eventually {
                guard let status = try? arm.input(RA610Register.status, 2) else { return false }
                return status[0] & RA610StatusBit.estop != 0 && status[1] == RA610FaultCode.emergencyStop
            }, "an arm did not report ESTOP")
        }
        lampsim.send("estop release")
        #expect(eventually { (try? station.discreteInputs(safetyOK, 2)) == [1, 0] }, "SAFETY_OK did not return")

        // fault loader 0x0401 (after a RESET edge clears the e-stop): COLLISION with PROTECTIVE_STOP.
        try loader.writeSingleRegister(address: RA610Register.command, value: RA610CommandBit.reset)
        #expect(try loader.input(RA610Register.faultCode) == [0])
        lampsim.send("fault loader 0x0401")
        #expect(eventually {
            guard let status = try? loader.input(RA610Register.status, 2) else { return false }
            return status[1] == RA610FaultCode.collision && status[0] & RA610StatusBit.protectiveStop != 0
        }, "no COLLISION on the loader")

        // drop station: the connected client sees the connection lost, and reconnects.
        let dropLine = lampsim.outputLines.count
        lampsim.send("drop station")
        #expect(lampsim.waitForLine(from: dropLine) { $0.contains("station: connections dropped") } != nil)
        let lost = #expect(throws: ModbusError.self) { try station.discreteInputs(safetyOK) }
        if case .connectionLost = lost {} else { Issue.record("after drop: \(String(describing: lost))") }
        #expect(try station.discreteInputs(safetyOK) == [1])

        // delay loader 50: a request with a 10 ms timeout times out.
        let delayLine = lampsim.outputLines.count
        lampsim.send("delay loader 50")
        #expect(lampsim.waitForLine(from: delayLine) { $0.contains("loader: replies 50 ms late") } != nil)
        let impatient = try client("loader", timeoutMilliseconds: 10)
        #expect(throws: ModbusError.timeout) { try impatient.input(RA610Register.model) }
        lampsim.send("delay loader 0")

        lampsim.send("quit")
        #expect(lampsim.waitForExit(withinMilliseconds: 10_000) == 0, "stderr: \(lampsim.stderr)")
    }

    @Test("campaign --verbose: a line per seed with the progress, an ETA and the --first-seed to resume from")
    func campaignProgress() throws {
        let lampsim = try ChildProcess(
            executable: builtLampsimPath(),
            arguments: ["campaign", "--cell", Repository.cell, "--recipe", Repository.leftRecipe, "--first-seed", "5",
                        "--seeds", "3", "--hours", "0.01", "--jobs", "1", "--verbose"])
        defer { lampsim.terminate() }
        #expect(lampsim.waitForExit(withinMilliseconds: 120_000) == 0, "stderr: \(lampsim.stderr)")
        let lines = lampsim.outputLines.filter { $0.hasPrefix("seed ") }
        try #require(lines.count == 3, "stdout: \(lampsim.stdout)")
        #expect(lines[0].hasPrefix("seed 5:") && lines[0].contains("1/3 done, ETA ")
                && lines[0].hasSuffix("resume with --first-seed 6 --seeds 2"), "\(lines[0])")
        #expect(lines[1].hasPrefix("seed 6:") && lines[1].contains("2/3 done, ETA ")
                && lines[1].hasSuffix("resume with --first-seed 7 --seeds 1"), "\(lines[1])")
        #expect(lines[2].hasPrefix("seed 7:") && lines[2].hasSuffix("3/3 done, ETA 0:00:00"), "\(lines[2])")
        #expect(lampsim.stdout.contains("3/3 seeds passed (seeds 5…7)"), "stdout: \(lampsim.stdout)")
    }

    @Test("a missing cell definition exits 78 with one line naming the file")
    func missingDefinition() throws {
        let lampsim = try ChildProcess(
            executable: builtLampsimPath(), arguments: ["serve", "--cell", "/nonexistent.toml"])
        defer { lampsim.terminate() }
        #expect(lampsim.waitForExit(withinMilliseconds: 10_000) == 78)
        let lines = lampsim.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(lampsim.stderr)")
        #expect(lines.first?.contains("/nonexistent.toml") == true, "stderr: \(lampsim.stderr)")
        #expect(lampsim.stdout.isEmpty)
    }
}
