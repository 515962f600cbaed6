// Interop with a Modbus tool nobody here wrote: `mbpoll` (Debian package `mbpoll`, installed by `make deps`)
// reads and writes the simulated cell's registers. mbpoll numbers references from 1: `-r 101` is register 100.

import CellCore
import CellSimulator
import Foundation
import Modbus
import Testing

/// The installed mbpoll, or a failure that says how to install it (the test must not pass without it).
func installedMbpollPath() throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
    for directory in directories where FileManager.default.isExecutableFile(atPath: directory + "/mbpoll") {
        return directory + "/mbpoll"
    }
    throw TestSetupError(
        description: "mbpoll is not installed (not in PATH nor /usr/bin): run `make deps` or "
            + "`sudo apt-get install mbpoll`; the interop tests need it")
}

/// Runs mbpoll once (`-1`) against 127.0.0.1:`port` with `arguments` (and `writeValues` after the host, which
/// makes it a write); returns its stdout, or throws when it does not exit 0 within 10 s.
func runMbpoll(port: Int, _ arguments: [String], writeValues: [String] = []) throws -> String {
    let mbpoll = try ChildProcess(
        executable: installedMbpollPath(),
        arguments: ["-m", "tcp", "-a", "1", "-p", String(port), "-o", "2", "-1"] + arguments + ["127.0.0.1"] + writeValues)
    defer { mbpoll.terminate() }
    let status = mbpoll.waitForExit(withinMilliseconds: 10_000)
    guard status == 0 else {
        throw TestSetupError(
            description: "mbpoll \(arguments) exited \(status.map(String.init) ?? "not in 10 s"): "
                + "\(mbpoll.stdout) \(mbpoll.stderr)")
    }
    return mbpoll.stdout
}

/// The values mbpoll printed, by reference: lines `[101]: \t610` (or `[104]: \t56451 (-9085)`).
func mbpollValues(_ output: String) -> [Int: Int] {
    var values: [Int: Int] = [:]
    for line in output.split(separator: "\n") where line.hasPrefix("[") {
        let parts = line.dropFirst().split(separator: "]", maxSplits: 1)
        guard parts.count == 2, let reference = Int(parts[0]) else { continue }
        let value = parts[1].dropFirst().split(whereSeparator: { $0 == " " || $0 == "\t" }).first
        if let value, let number = Int(value) { values[reference] = number }
    }
    return values
}

@Suite("Interop: mbpoll talks to the simulated cell", .serialized)
struct InteropMbpollTests {
    @Test("mbpoll reads an arm's identity and writes watchdog_ms; ModbusClient reads it back")
    func armIdentityAndWrite() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let name = try #require(cell.definition.arms.first { $0.tool == .gripper }?.name)
        let index = try #require(cell.armNames.firstIndex(of: name))
        let serial = 610_000_001 + index
        let port = try cell.port(name)

        // Input 100..103: model 610, firmware 2.3, serial as two words (high first).
        let identity = mbpollValues(try runMbpoll(port: port, ["-t", "3", "-r", "101", "-c", "4"]))
        #expect(identity == [101: 610, 102: 0x0203, 103: serial >> 16, 104: serial & 0xFFFF])
        // The same serial as one 32-bit integer in big-endian word order (high word first).
        let serialOnly = mbpollValues(try runMbpoll(port: port, ["-t", "3:int", "-B", "-r", "103", "-c", "1"]))
        #expect(serialOnly == [103: serial])

        // Holding 5 (`watchdog_ms`, reference 6) = 250, written by mbpoll, read by our client.
        let written = try runMbpoll(port: port, ["-t", "4", "-r", "6"], writeValues: ["250"])
        #expect(written.contains("Written 1 references"), "\(written)")
        let client = try cell.client(name)
        #expect(try client.holding(RA610Register.watchdogMilliseconds) == [250])
        #expect(mbpollValues(try runMbpoll(port: port, ["-t", "4", "-r", "6"])) == [6: 250])
    }

    @Test("mbpoll reads the station's discrete inputs")
    func stationDiscreteInputs() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let port = try cell.port(cell.stationName)
        cell.server.cell.withModels { $0.world.openGuard() }
        let inputs = mbpollValues(try runMbpoll(port: port, ["-t", "1", "-r", "1", "-c", "12"]))
        // Outfeed clear, guard open (so SAFETY_OK clear), LED module and lens waiting.
        let expected: [UInt8] = [0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0]
        #expect(inputs == Dictionary(uniqueKeysWithValues: expected.enumerated().map { ($0.offset + 1, Int($0.element)) }))
        let client = try cell.client(cell.stationName)
        #expect(try client.discreteInputs(0, 12) == expected)
    }
}
