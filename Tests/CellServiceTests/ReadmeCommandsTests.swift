import ControlAPI
import ControlAPIClient
import Foundation
import LampCellTestSupport
import Testing

/// The README's "Status and control" commands, run as written (from the repository's root, with the README's `S`)
/// against `lampcelld --simulate` with the development configuration: what a new user types first must work.
@Suite("README status commands", .serialized)
struct ReadmeCommandsTests {
    /// How long a streaming command (`watch`) runs before it is stopped: it must have printed by then.
    static let streamingSeconds = 3
    /// Bound on one non-streaming command, s.
    static let commandSeconds = 30
    /// Bound on the daemon's start (build products exist; the simulated cell starts in-process).
    static let startSeconds = 60.0

    /// The shell lines of the README's "Status and control" code block, comments kept off.
    static func statusCommands() throws -> (assignments: [String], commands: [String]) {
        let readme = try String(contentsOfFile: Repository.root + "/README.md", encoding: .utf8)
        guard let section = readme.range(of: "## Status and control"),
            let open = readme.range(of: "```sh\n", range: section.upperBound..<readme.endIndex),
            let close = readme.range(of: "```", range: open.upperBound..<readme.endIndex)
        else {
            Issue.record("README.md has no sh block under \"## Status and control\"")
            throw CancellationError()
        }
        var assignments: [String] = []
        var commands: [String] = []
        for line in readme[open.upperBound..<close.lowerBound].split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("#") { continue }
            if text.range(of: "^[A-Z_]+=", options: .regularExpression) != nil {
                assignments.append(text)
            } else {
                commands.append(text)
            }
        }
        return (assignments, commands)
    }

    /// Runs `command` with bash from the repository's root after `assignments`; a streaming one is stopped after
    /// `streamingSeconds` (`timeout`, exit 124).
    static func shell(_ command: String, after assignments: [String], streaming: Bool) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        // Every command is bounded (`timeout`, then SIGKILL 2 s later): a hung command fails the test, never hangs it.
        let body = "timeout -k 2 \(streaming ? streamingSeconds : commandSeconds) \(command)"
        process.arguments = ["-c", (assignments + [body]).joined(separator: "\n")]
        process.currentDirectoryURL = URL(fileURLWithPath: Repository.root)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("every curl and lampctl line of the README's status section runs as written")
    func statusSectionRuns() throws {
        let (assignments, commands) = try Self.statusCommands()
        #expect(commands.contains { $0.hasPrefix("curl") } && commands.contains { $0.contains("lampctl") })
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: try DaemonExecutableTests.executable("lampcelld"))
        daemon.arguments = ["-c", Repository.developmentConfiguration, "--simulate", "--auto-start", "--lamps", "1000"]
        daemon.currentDirectoryURL = URL(fileURLWithPath: Repository.root)
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        try daemon.run()
        defer {
            if daemon.isRunning {
                kill(daemon.processIdentifier, SIGTERM)
                daemon.waitUntilExit()
            }
        }
        // The README's S, as the shell sees it.
        let (_, socketPath) = try Self.shell("printf %s \"$S\"", after: assignments, streaming: false)
        let socket = socketPath.hasPrefix("/") ? socketPath : Repository.root + "/" + socketPath
        let deadline = Date().addingTimeInterval(Self.startSeconds)
        var answered = false
        while Date() < deadline && !answered && daemon.isRunning {
            answered = (try? APIClient(socketPath: socket, timeoutMilliseconds: 2000).status()) != nil
            if !answered { Thread.sleep(forTimeInterval: 0.2) }
        }
        try #require(answered, "lampcelld --simulate did not answer on \(socket) within \(Self.startSeconds) s")

        for command in commands {
            let line = command.components(separatedBy: " #").first?.trimmingCharacters(in: .whitespaces) ?? command
            let streaming = line.contains(" -N ") || line.hasSuffix(" watch")
            let (status, output) = try Self.shell(line, after: assignments, streaming: streaming)
            if streaming {
                // Stopped by `timeout`: 124 (SIGTERM), or 137/9 when it had to be killed (a test process may run
                // its children with SIGTERM blocked).
                #expect([124, 137, 9].contains(status), "\(line): exit \(status) before it was stopped: \(output)")
            } else {
                #expect(status == 0, "\(line): exit \(status): \(output)")
            }
            #expect(!output.isEmpty, "\(line): printed nothing")
            #expect(!output.contains("Usage:") && !output.contains("Error:"), "\(line): \(output)")
        }
    }

    @Test("lampctl takes --socket before or after the subcommand, and LAMPCELL_SOCKET")
    func socketOptionAnywhere() throws {
        let lampctl = try DaemonExecutableTests.executable("lampctl")
        let missing = "/nonexistent/lampcell-readme-test.sock"
        for command in [
            "\(lampctl) --socket \(missing) status", "\(lampctl) status --socket \(missing)",
            "\(lampctl) --socket=\(missing) status", "env LAMPCELL_SOCKET=\(missing) \(lampctl) status",
        ] {
            let (status, output) = try Self.shell(command, after: [], streaming: false)
            // Not a usage error (64): the daemon is not running at that socket (69), and the line names it.
            #expect(status == 69, "\(command): exit \(status): \(output)")
            #expect(output.contains(missing), "\(command): \(output)")
        }
    }
}
