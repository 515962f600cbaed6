import CRealtime
import CellCore
import ControlAPI
import ControlAPIClient
import Foundation
import Glibc
import LampCellTestSupport
import Testing

/// Access control, bad requests, limits and the socket file, against the API over a fake cell (`FakeCell`: the
/// HTTP side needs no control loop); and lampctl end to end, against the real daemon.
@Suite("Control API robustness and access", .serialized)
struct RobustnessTests {
    @Test("nobody (not root, not in the group) reads status, watch and metrics but is refused commands (403); root commands")
    func accessControl() throws {
        let cell = try FakeAPIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitFor(seconds: 5) { $0.unit.state == .stopped })
        var attributes = stat()
        #expect(stat(cell.socketPath, &attributes) == 0)
        #expect(attributes.st_mode & 0o777 == 0o666)
        #expect(attributes.st_mode & S_IFMT == S_IFSOCK)

        let status = try curl(cell.socketPath, "GET", "/v1/status", user: "nobody")
        #expect(status.status == 200, "\(status.body)")
        #expect((try? JSONDecoder().decode(StatusDocument.self, from: Data(status.body.utf8))) != nil)
        #expect(try curl(cell.socketPath, "GET", "/metrics", user: "nobody").status == 200)
        let watch = try curl(cell.socketPath, "GET", "/v1/watch", user: "nobody", extra: ["-N", "--max-time", "1"])
        #expect(watch.body.contains("event: status"))

        for path in ["/v1/commands/reset", "/v1/commands/abort"] {
            let refused = try curl(cell.socketPath, "POST", path, user: "nobody")
            #expect(refused.status == 403, "\(path): \(refused.body)")
            #expect(refused.body.contains("root or membership in group 'lampcell'"), "\(refused.body)")
            #expect(refused.body.contains("uid 65534"), "\(refused.body)")
        }
        let order = try curl(
            cell.socketPath, "POST", "/v1/order", body: #"{"id":"X","variant":"LEFT","quantity":1}"#, user: "nobody")
        #expect(order.status == 403)
        #expect(try curl(cell.socketPath, "DELETE", "/v1/order", user: "nobody").status == 403)
        // Nothing happened to the cell.
        #expect(cell.fake.snapshot().unit.state == .stopped)
        #expect(cell.fake.snapshot().unit.order == nil)

        // Root commands.
        let reset = try curl(cell.socketPath, "POST", "/v1/commands/reset")
        #expect(reset.status == 200, "\(reset.body)")
        #expect(cell.waitFor(seconds: 60) { $0.unit.state == .idle })
    }

    @Test("a member of the command group (supplementary group via setpriv) may command; without it, not")
    func groupMember() throws {
        // `users` (gid 100) exists on Debian; the API is configured to take it as the command group.
        let policy = CommandPolicy.resolve(groupName: "users")
        let groupID = try #require(policy.groupID, "group 'users' is missing on this system")
        let cell = try FakeAPIFixture(commandGroup: "users")
        defer { cell.shutdown() }
        try #require(cell.waitFor(seconds: 5) { $0.unit.state == .stopped })
        let member = try curl(cell.socketPath, "POST", "/v1/commands/hold", user: "nobody", groups: "\(groupID)")
        #expect(member.status == 409, "\(member.body)")  // allowed through, then refused by PackML in Stopped
        #expect(member.body.contains("Hold is accepted only in"))
        let stranger = try curl(cell.socketPath, "POST", "/v1/commands/hold", user: "nobody")
        #expect(stranger.status == 403, "\(stranger.body)")
    }

    @Test("bad requests answer their documented codes with a JSON error, and the server lives on")
    func badRequests() throws {
        let cell = try FakeAPIFixture()
        defer { cell.shutdown() }
        let socket = cell.socketPath
        func exchange(_ text: String) -> (code: Int, json: [String: Any]?, raw: String) {
            let (raw, _) = rawExchange(socket, Array(text.utf8))
            return (statusCode(raw), jsonBody(raw), raw)
        }

        // Oversized request line, oversized header block, too many headers → 431.
        var result = exchange("GET /v1/status?\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(result.code == 431, "\(result.raw.prefix(200))")
        #expect(result.json?["error"] as? String == "headers_too_large")
        result = exchange("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 9000))\r\n\r\n")
        #expect(result.code == 431, "\(result.raw.prefix(200))")
        let many = (0..<100).map { "X-H\($0): v\r\n" }.joined()
        result = exchange("GET /v1/status HTTP/1.1\r\nHost: x\r\n\(many)\r\n")
        #expect(result.code == 431, "\(result.raw.prefix(200))")

        // Oversized body: announced, and chunked → 413 (before any access check or routing).
        result = exchange("POST /v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n{")
        #expect(result.code == 413, "\(result.raw.prefix(200))")
        #expect(result.json?["error"] as? String == "payload_too_large")
        let chunk = String(repeating: "c", count: 8192)
        let chunked = (0..<3).map { _ in "2000\r\n\(chunk)\r\n" }.joined()
        result = exchange("POST /v1/order HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(chunked)0\r\n\r\n")
        #expect(result.code == 413, "\(result.raw.prefix(200))")

        // Malformed → 400 with JSON.
        for garbage in ["HELLO\r\n\r\n", "GET /v1/status HTTP/9.9\r\n\r\n", "GET /v1/status HTTP/1.1\r\nBad Header\r\n\r\n", "\u{1}\u{2}\u{3}\r\n\r\n"] {
            result = exchange(garbage)
            #expect(result.code == 400, "\(garbage.debugDescription): \(result.raw.prefix(200))")
            #expect(result.json?["error"] as? String == "bad_request", "\(garbage.debugDescription)")
        }

        // Unknown path / command → 404; wrong method → 405 with Allow.
        let client = cell.client
        #expect(try client.send("GET", "/v2/status").status == 404)
        #expect(try client.send("GET", "/").status == 404)
        let unknownCommand = try client.send("POST", "/v1/commands/explode")
        #expect(unknownCommand.status == 404)
        #expect(unknownCommand.errorBody?.message.contains("reset, start, stop") == true)
        let wrongMethod = try client.send("DELETE", "/v1/status")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.header("allow") == "GET")
        #expect(wrongMethod.errorBody?.error == "method_not_allowed")
        #expect(try client.send("GET", "/v1/commands/start").status == 405)
        #expect(try client.send("PUT", "/v1/order").header("allow") == "POST, DELETE")
        #expect(try curl(socket, "PATCH", "/metrics").status == 405)

        // Still serving, and keep-alive works: two requests on one connection.
        #expect(try client.status().cellID == cell.fake.cellID)
        let (twice, _) = rawExchange(
            socket, Array("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        #expect(twice.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(twice.prefix(300))")
        let answered = cell.api.statistics.answersByStatus
        #expect(answered[431] == 3 && answered[413] == 2 && answered[400] == 4, "\(answered)")
    }

    @Test("idle and slow clients are cut at the request deadline; a request begun but not finished gets 408")
    func slowClients() throws {
        let cell = try FakeAPIFixture { $0.requestTimeoutMilliseconds = 1000 }
        defer { cell.shutdown() }
        // Idle connection: closed without a word.
        let idle = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(idle) }
        #expect(connectUnix(idle, cell.socketPath))
        let started = lampcell_monotonic_ns()
        let idleResult = readUntilClosed(idle, timeoutSeconds: 10)
        #expect(idleResult.closed && idleResult.text.isEmpty)
        #expect(lampcell_monotonic_ns() - started >= 900_000_000)

        // Head sent, body trickling: 408 and closed.
        let slow = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(slow) }
        #expect(connectUnix(slow, cell.socketPath))
        let head = Array("POST /v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{".utf8)
        _ = head.withUnsafeBytes { send(slow, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        let slowResult = readUntilClosed(slow, timeoutSeconds: 10)
        #expect(slowResult.closed)
        #expect(statusCode(slowResult.text) == 408, "\(slowResult.text.prefix(200))")
        #expect(jsonBody(slowResult.text)?["error"] as? String == "request_timeout")
        #expect(try cell.client.send("GET", "/v1/status").status == 200)
    }

    @Test("the connection cap: one over it gets 503 and is closed; the others are served")
    func connectionCap() throws {
        let cell = try FakeAPIFixture { $0.maximumConnections = 4 }
        defer { cell.shutdown() }
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<4 {
            let descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            #expect(connectUnix(descriptor, cell.socketPath))
            held.append(descriptor)
        }
        let deadline = Date().addingTimeInterval(5)
        while cell.api.statistics.openConnections < 4 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(cell.api.statistics.openConnections == 4)
        let (refused, closed) = rawExchange(cell.socketPath, Array("GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(statusCode(refused) == 503 && closed, "\(refused.prefix(200))")
        #expect(jsonBody(refused)?["error"] as? String == "too_many_connections")
        // A held connection is served.
        let request = Array("GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(held[0], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        #expect(statusCode(readUntilClosed(held[0], timeoutSeconds: 10).text) == 200)
        // Once one closed, a new client gets in.
        let freed = Date().addingTimeInterval(5)
        while cell.api.statistics.openConnections > 3 && Date() < freed { Thread.sleep(forTimeInterval: 0.01) }
        #expect(try cell.client.send("GET", "/v1/status").status == 200)
    }

    @Test("a stale socket file from a crash does not stop start-up; a live one does, and so does a non-socket file")
    func staleSocket() throws {
        let directory = "/tmp/lcapi-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/api.sock"
        // A socket bound and closed without unlink: what a crash leaves.
        let stale = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        listen(stale, 1)
        close(stale)
        #expect(FileManager.default.fileExists(atPath: path))

        let cell = try FakeAPIFixture { $0.socketPath = path }
        defer { cell.shutdown() }
        #expect(try APIClient(socketPath: path).send("GET", "/v1/status").status == 200)

        // A second API on the same live socket refuses to start and names it.
        let second = APIServer(cell: cell.fake, configuration: APIServerConfiguration(socketPath: path), logger: .init(label: "t"))
        #expect {
            try second.start()
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("another process is listening")
        }
        second.stop()
        #expect(try APIClient(socketPath: path).send("GET", "/v1/status").status == 200)

        // A regular file in the way is not removed.
        let file = directory + "/not-a-socket"
        _ = FileManager.default.createFile(atPath: file, contents: Data("keep".utf8))
        let third = APIServer(cell: cell.fake, configuration: APIServerConfiguration(socketPath: file), logger: .init(label: "t"))
        #expect(throws: APIStartError.self) { try third.start() }
        third.stop()
        #expect(FileManager.default.contents(atPath: file) == Data("keep".utf8))
    }

    @Test("lampctl: status table and --json, commands with exit codes, watch lines when piped, one line when the daemon is down")
    func lampctl() throws {
        let binary = Repository.root + "/.build/debug/lampctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build lampctl first (swift build)")
        // The daemon is not running: one line naming the socket, exit 69.
        let missing = "/tmp/lcapi-none-\(UUID().uuidString.prefix(6))/api.sock"
        let down = try runProcess(binary, ["status", "--socket", missing])
        #expect(down.status == 69)
        #expect(down.standardError.split(separator: "\n").count == 1)
        #expect(down.standardError.contains("not running") && down.standardError.contains(missing), "\(down.standardError)")
        #expect(down.standardOutput.isEmpty)

        let cell = try APIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitForDevices())
        try #require(cell.waitFor(seconds: 5) { $0.unit.state == .stopped })
        let table = try runProcess(binary, ["status", "--socket", cell.socketPath])
        #expect(table.status == 0, "\(table.standardError)")
        #expect(table.standardOutput.contains("State           Stopped (Production)"), "\(table.standardOutput)")
        for arm in cell.daemon.cell.arms.map(\.name) { #expect(table.standardOutput.contains(arm)) }
        let json = try runProcess(binary, ["status", "--json", "--socket", cell.socketPath])
        #expect((try? JSONDecoder().decode(StatusDocument.self, from: Data(json.standardOutput.utf8))) != nil)

        // The unit mode: Maintenance and back, in Stopped.
        let maintenance = try runProcess(binary, ["mode", "maintenance", "--socket", cell.socketPath])
        #expect(maintenance.status == 0, "\(maintenance.standardError)")
        #expect(maintenance.standardOutput.contains("mode Maintenance: accepted"), "\(maintenance.standardOutput)")
        #expect(cell.daemon.snapshot().unit.machine.mode == .maintenance)
        let unknownMode = try runProcess(binary, ["mode", "turbo", "--socket", cell.socketPath])
        #expect(unknownMode.status != 0 && unknownMode.standardError.contains("no such mode: turbo"), "\(unknownMode.standardError)")
        #expect(try runProcess(binary, ["mode", "production", "--socket", cell.socketPath]).status == 0)
        #expect(cell.daemon.snapshot().unit.machine.mode == .production)

        let refused = try runProcess(binary, ["start", "--socket", cell.socketPath])
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("refused: Start is accepted only in Idle"), "\(refused.standardError)")
        let reset = try runProcess(binary, ["reset", "--socket", cell.socketPath])
        #expect(reset.status == 0, "\(reset.standardError)")
        #expect(reset.standardOutput.contains("Reset: accepted; the cell is Resetting"), "\(reset.standardOutput)")
        try #require(cell.waitFor(seconds: 60) { $0.unit.state == .idle })
        let order = try runProcess(binary, ["order", "--id", "CTL-1", "--variant", "left", "--quantity", "2", "--socket", cell.socketPath])
        #expect(order.status == 0, "\(order.standardError)")
        #expect(cell.daemon.snapshot().unit.order?.id == "CTL-1")
        let badOrder = try runProcess(binary, ["order", "--id", "CTL-2", "--variant", "UP", "--quantity", "2", "--socket", cell.socketPath])
        #expect(badOrder.status == 1 && badOrder.standardError.contains("'variant' is UP"), "\(badOrder.standardError)")

        // Piped watch: plain lines, one per change; stopped by the timeout of `run`.
        let watch = try runProcess(binary, ["watch", "--interval-ms", "100", "--socket", cell.socketPath], timeoutSeconds: 2)
        let lines = watch.standardOutput.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.contains(" Idle Production order CTL-1 0/2") }, "\(watch.standardOutput)")
        #expect(!watch.standardOutput.contains("\u{1B}["))

        // As nobody: reading works, commanding exits 77.
        let asNobody = try runProcess("/usr/bin/setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", binary, "abort", "--socket", cell.socketPath])
        #expect(asNobody.status == 77, "\(asNobody.standardError)")
        #expect(asNobody.standardError.contains("not allowed"))
        let readNobody = try runProcess("/usr/bin/setpriv", ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", binary, "status", "--socket", cell.socketPath])
        #expect(readNobody.status == 0, "\(readNobody.standardError)")
    }
}
