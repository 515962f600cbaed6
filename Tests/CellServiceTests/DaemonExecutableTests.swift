import ControlAPI
import ControlAPIClient
import Foundation
import LampCellTestSupport
import Testing

/// The `lampcelld` executable as an operator starts it.
@Suite("lampcelld executable", .serialized)
struct DaemonExecutableTests {
    /// The built executable next to the test bundle (SwiftPM builds the package's executables before the tests).
    static func executable(_ name: String) throws -> String {
        do {
            return try Repository.executable(name)
        } catch {
            Issue.record("\(error)")
            throw error
        }
    }

    /// Text collected from a pipe on another thread.
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ more: Data) {
            lock.lock()
            data.append(more)
            lock.unlock()
        }
        var text: String {
            lock.lock()
            defer { lock.unlock() }
            return String(decoding: data, as: UTF8.self)
        }
    }

    struct Run {
        var status: Int32
        var standardError: String
    }

    /// Runs lampcelld with `arguments`; `whileRunning` gets the process and its stderr collected so far.
    static func runDaemon(_ arguments: [String], whileRunning: ((Process, () -> String) -> Void)? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable("lampcelld"))
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let collected = Collected()
        errors.fileHandleForReading.readabilityHandler = { handle in
            collected.append(handle.availableData)
        }
        try process.run()
        whileRunning?(process) { collected.text }
        process.waitUntilExit()
        errors.fileHandleForReading.readabilityHandler = nil
        collected.append(errors.fileHandleForReading.readDataToEndOfFile())
        return Run(status: process.terminationStatus, standardError: collected.text)
    }

    static func temporaryFile(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lampcelld-\(UUID().uuidString).toml").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("an invalid configuration: one line naming file and key, exit 78, nothing started")
    func invalidConfiguration() throws {
        let base = try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8)
            .replacingOccurrences(of: "../", with: Repository.root + "/")
        let cases: [(String, String)] = [
            (base.replacingOccurrences(of: "period_microseconds = 4000", with: "period_microseconds = 40"),
             "control.period_microseconds"),
            (base.replacingOccurrences(of: "fifo_priority = 80", with: "fifo_priority = \"high\""),
             "control.fifo_priority"),
            (base.replacingOccurrences(of: "lock_memory = false", with: "lock_memory = false\nperiod_ms = 4"),
             "control.period_ms"),
            (base.replacingOccurrences(of: "cell = ", with: "#cell = "), "cell"),
        ]
        for (text, key) in cases {
            let path = try Self.temporaryFile(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let run = try Self.runDaemon(["-c", path, "--simulate"])
            #expect(run.status == 78, "\(key): \(run.standardError)")
            let lines = run.standardError.split(separator: "\n")
            #expect(lines.count == 1, "\(run.standardError)")
            #expect(run.standardError.contains(path) && run.standardError.contains(key), "\(run.standardError)")
        }
        let missing = try Self.runDaemon(["-c", "/nonexistent/lampcelld.toml"])
        #expect(missing.status == 78)
        #expect(missing.standardError.contains("/nonexistent/lampcelld.toml"))
    }

    @Test("SIGTERM during production: controlled stop of the arms, exit 0")
    func sigtermDuringProduction() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("lampcelld-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let run = try Self.runDaemon(
            ["-c", Repository.developmentConfiguration, "--simulate", "--auto-start", "--state-directory", state]
        ) { process, output in
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline && !output().contains("PackML state Execute") {
                Thread.sleep(forTimeInterval: 0.05)
            }
            Thread.sleep(forTimeInterval: 3)  // some motion under way
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(run.status == 0, "\(run.standardError)")
        #expect(run.standardError.contains("PackML state Execute"))
        #expect(run.standardError.contains("SIGTERM"))
        // The controlled path: Stopping, then Stopped with the arms at rest and servos off.
        #expect(run.standardError.contains("lampcelld stopped in state Stopped, arms at rest with servos off"))
    }
}

@Suite("lampcelld socket activation", .serialized)
struct SocketActivationTests {
    @Test("systemd-socket-activate hands lampcelld its API socket; a client served through it gets status")
    func activatedAPISocket() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcelld-act-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/api.sock"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        process.arguments = [
            "-l", socket, "--fdname=api", try DaemonExecutableTests.executable("lampcelld"),
            "-c", Repository.developmentConfiguration, "--simulate", "--state-directory", directory + "/state",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        // The daemon serves the socket systemd-socket-activate passed it (as fd 3, named "api").
        var cellID: String?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && cellID == nil {
            cellID = try? APIClient(socketPath: socket, timeoutMilliseconds: 2000).status().cellID
            if cellID == nil { Thread.sleep(forTimeInterval: 0.2) }
        }
        #expect(cellID == "HL-CELL-01")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("API socket passed by the service manager"), "\(log)")
        #expect(process.terminationStatus == 0, "\(log)")
    }
}
