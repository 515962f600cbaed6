import CRealtime
import CellConfig
import CellCore
import CellService
import CellSimulator
import ControlAPI
import CellTestSupport
import ControlAPIClient
import Foundation
import Glibc
import LampCellTestSupport
import Logging
import Testing

/// A whole cell (`CellFixture`: the simulated devices over Modbus TCP on loopback and the real `CellDaemon`, state in
/// the fixture's directory), plus the API server on a Unix socket in a fresh directory (mode 0755, so `nobody` can
/// reach the socket).
final class APIFixture: @unchecked Sendable {
    let cellFixture: CellFixture
    let api: APIServer
    let directory: String
    let socketPath: String
    let lamps: InMemoryLamps
    var daemon: CellDaemon { cellFixture.daemon }

    init(
        seed: UInt64 = 1, periodMicroseconds: Int = 4000, commandGroup: String = "lampcell",
        withLedger: Bool = true, fifoPriority: Int32? = nil, configure: (inout APIServerConfiguration) -> Void = { _ in }
    ) throws {
        // Short: sun_path holds 107 bytes.
        directory = "/tmp/lcapi-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let socketPath = directory + "/api.sock"
        self.socketPath = socketPath
        let definition = try CellDefinition.load(from: Repository.cellDefinition)
        let lamps = InMemoryLamps(cellID: definition.cellID)
        self.lamps = lamps
        cellFixture = try CellFixture(
            seed: seed, periodMicroseconds: periodMicroseconds, stateDirectory: directory + "/state", sinks: [lamps],
            fifoPriority: fifoPriority
        ) {
            $0.apiSocketPath = socketPath
            $0.commandGroup = commandGroup
        }
        var apiConfiguration = APIServerConfiguration(socketPath: socketPath, commandGroup: commandGroup)
        apiConfiguration.stationName = cellFixture.definition.station.name
        configure(&apiConfiguration)
        var logger = Logger(label: "api-test")
        logger.logLevel = .warning
        api = APIServer(cell: cellFixture.daemon, configuration: apiConfiguration, lamps: withLedger ? lamps : nil, logger: logger)
        try api.start()
    }

    var client: APIClient { APIClient(socketPath: socketPath) }

    /// Waits until `condition` holds for the daemon's snapshot.
    @discardableResult
    func waitFor(seconds: Double, _ condition: (CellSnapshot) -> Bool) -> Bool {
        daemon.waitFor(timeoutNanoseconds: UInt64(seconds * 1e9), condition)
    }

    /// The API's status document once `condition` holds for it (the document is rebuilt at most every
    /// `statusMaximumAgeMilliseconds`, so a change shows within that), or the last one after `seconds`.
    func status(within seconds: Double = 2, where condition: (StatusDocument) -> Bool) throws -> StatusDocument {
        let deadline = lampcell_monotonic_ns() + UInt64(seconds * 1e9)
        var document = try client.status()
        while !condition(document) && lampcell_monotonic_ns() < deadline {
            usleep(5_000)
            document = try client.status()
        }
        return document
    }

    /// Waits until every device answers.
    func waitForDevices() -> Bool {
        waitFor(seconds: 20) { snapshot in
            (0..<snapshot.armCount).allSatisfy { snapshot.armInputs[$0].link.state == .ok }
                && snapshot.stationInputs.link.state == .ok
        }
    }

    /// Brings the cell to Execute on an order (through the daemon, not the API).
    func produce(lamps: UInt32) -> String? {
        daemon.autoStart(
            variant: .left, lamps: lamps, orderID: "TEST-\(UUID().uuidString.prefix(8))",
            timeoutNanoseconds: 90_000_000_000)
    }

    /// Stops the API, the controller and the simulated devices; removes the directory.
    func shutdown() {
        api.stop()
        cellFixture.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// An in-memory stand-in for the lamp ledger (the real one, module Ledger on SQLite, is being written in parallel
/// and will implement `LampQuerying` itself). It is also a `LampSink`, so in these tests it holds the real lamps
/// the cell produced, plus any records a test adds.
final class InMemoryLamps: LampQuerying, LampSink, @unchecked Sendable {
    private let lock = NSLock()
    private var rows: [LampRow] = []
    let cellID: String

    init(cellID: String) { self.cellID = cellID }

    func accept(_ lamp: LampRecord) { add(LampRow(record: lamp, cellID: cellID)) }

    func add(_ row: LampRow) {
        lock.lock()
        rows.append(row)
        lock.unlock()
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return rows.count
    }

    func lamp(serial: String) throws -> LampRow? {
        lock.lock()
        defer { lock.unlock() }
        return rows.first { $0.serial == serial }
    }

    func lamps(matching query: LampQuery) throws -> [LampRow] {
        lock.lock()
        defer { lock.unlock() }
        return Array(rows.filter(query.matches).sorted { $0.startWallNanoseconds < $1.startWallNanoseconds }.prefix(query.limit))
    }

    func head() throws -> LedgerHead? {
        lock.lock()
        defer { lock.unlock() }
        guard let last = rows.last else { return nil }
        return LedgerHead(count: UInt64(rows.count), hash: String(repeating: "ab", count: 32), lastSerial: last.serial)
    }
}

/// `curl --unix-socket`: status code and body. `user` nil runs as the test's user (root); otherwise through
/// `setpriv --reuid USER --regid nogroup` with `groups` (a comma-separated gid list) or no supplementary groups.
func curl(
    _ socket: String, _ method: String, _ path: String, body: String? = nil, user: String? = nil,
    groups: String? = nil, extra: [String] = []
) throws -> (status: Int, body: String) {
    var arguments = ["-s", "--max-time", "20", "--unix-socket", socket, "-X", method, "-o", "-", "-w", "\n%{http_code}"]
    if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
    arguments += extra
    arguments.append("http://lampcell" + path)
    let result: ProcessResult
    if let user {
        var wrapper = ["--reuid", user, "--regid", "nogroup"]
        wrapper += groups.map { ["--groups", $0] } ?? ["--clear-groups"]
        result = try runProcess("/usr/bin/setpriv", wrapper + ["/usr/bin/curl"] + arguments)
    } else {
        result = try runProcess("/usr/bin/curl", arguments)
    }
    let text = result.standardOutput
    guard let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]) else {
        return (0, text + result.standardError)
    }
    return (status, String(text[..<newline]))
}

/// Sends `bytes` on a fresh connection and reads until the server closes it or `timeoutSeconds` pass.
/// Returns what came back and whether the server closed the connection.
func rawExchange(_ socket: String, _ bytes: [UInt8], timeoutSeconds: Double = 15) -> (text: String, closed: Bool) {
    let descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return ("socket failed", false) }
    defer { close(descriptor) }
    guard connectUnix(descriptor, socket) else { return ("connect failed", false) }
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent <= 0 { break }  // the server may answer and close before taking everything
        offset += sent
    }
    return readUntilClosed(descriptor, timeoutSeconds: timeoutSeconds)
}

/// Reads until EOF or the timeout.
func readUntilClosed(_ descriptor: Int32, timeoutSeconds: Double) -> (text: String, closed: Bool) {
    var received: [UInt8] = []
    let deadline = lampcell_monotonic_ns() + UInt64(timeoutSeconds * 1e9)
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while lampcell_monotonic_ns() < deadline {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let remaining = Int32(max(1, (deadline - min(deadline, lampcell_monotonic_ns())) / 1_000_000))
        guard poll(&poller, 1, remaining) > 0 else { continue }
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
        received += chunk[..<count]
    }
    return (String(decoding: received, as: UTF8.self), false)
}

/// connect(2) to a Unix socket path.
func connectUnix(_ descriptor: Int32, _ path: String) -> Bool {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    } == 0
}

/// The status code of a raw HTTP answer (`HTTP/1.1 431 …`), 0 when there is none.
func statusCode(_ text: String) -> Int {
    guard text.hasPrefix("HTTP/1.1 ") else { return 0 }
    return Int(text.dropFirst(9).prefix(3)) ?? 0
}

/// The JSON body of a raw HTTP answer.
func jsonBody(_ text: String) -> [String: Any]? {
    guard let range = text.range(of: "\r\n\r\n") else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(text[range.upperBound...].utf8))) as? [String: Any]
}
