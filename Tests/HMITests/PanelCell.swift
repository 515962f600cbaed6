// The panel tests' cell: the real `lampcelld --simulate --fault-console` in a temporary folder, its panel on a free
// loopback port, one operator login, and the simulator's fault console on its standard input.

import ControlAPIClient
import Foundation
import LampCellTestSupport


final class PanelCell {
    /// The operator the tests log in as.
    static let operatorName = "panel-op"
    static let password = "correct horse battery staple"
    /// How long the daemon may take to serve the panel with every device link up.
    static let startTimeoutSeconds = 30.0

    let directory: String
    let port: Int
    var url: String { "http://127.0.0.1:\(port)" }
    var logPath: String { directory + "/lampcelld.log" }
    var eventsPath: String { directory + "/state/events.sqlite" }
    private let process = Process()
    private let input = Pipe()

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-panel-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        port = try freeLoopbackPort()
        let hash = try OperatorAccounts.hash(password: Self.password)
        try "\(OperatorAccounts.line(name: Self.operatorName, hash: hash))\n".write(
            toFile: directory + "/operators", atomically: true, encoding: .utf8)
        try Self.writeConfiguration(
            directory: directory,
            extra: """
                [panel]
                address = "127.0.0.1"
                port = \(port)
                operators_file = "operators"
                """)
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: try Repository.executable("lampcelld"))
        process.arguments = ["--config", directory + "/lampcelld.toml", "--simulate", "--fault-console"]
        process.standardInput = input
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let deadline = Date().addingTimeInterval(Self.startTimeoutSeconds)
        while true {
            if let status = try? await status(), status.devices.allSatisfy({ $0.link == "ok" }) { break }
            guard Date() < deadline, process.isRunning else {
                stop()
                throw WebDriver.Failure(description: "lampcelld did not serve its panel with every link up: \(logTail())")
            }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// Writes `directory/lampcelld.toml`: the repository's cell and recipes, state in `directory/state`, the
    /// development timing (SCHED_OTHER), and `extra` sections.
    static func writeConfiguration(directory: String, extra: String = "") throws {
        let configuration = """
            cell = "\(Repository.cellDefinition)"
            recipes = ["\(Repository.leftRecipe)", "\(Repository.rightRecipe)"]
            state_directory = "\(directory)/state"
            api_socket = "\(directory)/api.sock"

            [control]
            period_microseconds = 4000
            fifo_priority = 0
            lock_memory = false
            arm_watchdog_milliseconds = 300
            response_timeout_microseconds = 3000

            \(extra)
            """
        try configuration.write(toFile: directory + "/lampcelld.toml", atomically: true, encoding: .utf8)
    }

    /// A fault-injection command of the simulator (`estop press`, `guard open`, …).
    func inject(_ command: String) throws {
        try input.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8))
    }

    /// The status document, read over the panel's own HTTP API.
    func status() async throws -> StatusDocument {
        let answer = try plainHTTP(method: "GET", port: port, path: "/v1/status")
        return try JSONDecoder().decode(StatusDocument.self, from: answer.body)
    }

    /// An HTTP request to the panel as a non-browser client would send it; returns the status and body.
    func request(_ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil) async throws
        -> (status: Int, body: String)
    {
        let answer = try plainHTTP(method: method, port: port, path: path, headers: headers, body: Data((body ?? "").utf8))
        return (answer.status, String(decoding: answer.body, as: UTF8.self))
    }

    func logTail() -> String {
        String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(4000))
    }

    /// SIGTERM (a controlled stop) and wait; the folder is removed.
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
