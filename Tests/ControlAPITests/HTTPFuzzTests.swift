// HTTP API fuzzing (issue 7, item 6 "Bad input"): thousands of random and malformed requests over raw Unix
// sockets against the real `APIServer` of a running (simulated) cell. Every answer is an HTTP status below 500
// with a JSON error body for 4xx (or the connection is closed without a word); the server never crashes (it runs
// in this process), leaks no connection or socket, and a well-formed status request works after every batch.
//
// Seeded: LAMPCELL_FUZZ_SEED replays a run, LAMPCELL_FUZZ_ITERATIONS sets the number of exchanges.
// RobustnessTests covers the documented limits one by one (431, 413, 408, 503 at the cap); this file throws
// mixtures at the parser, the router and the JSON decoding.

import CRealtime
import Foundation
import Glibc
import LampCellTestSupport
import Testing

@testable import ControlAPI

// MARK: - Request generator

/// One fuzz exchange: the bytes, how the client ends its side, and a description for failure messages.
struct FuzzExchange {
    var bytes: [UInt8]
    /// shutdown(SHUT_WR) after sending (a half-closed connection).
    var halfClose: Bool
    var description: String
}

enum HTTPFuzzer {
    static let methods = [
        "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get", "G ET", "GETT", "PRI",
        "\u{0}GET", String(repeating: "X", count: 300), "M-SEARCH", "BREW", "",
    ]
    static let paths = [
        "/v1/status", "/metrics", "/v1/watch", "/v1/lamps", "/v1/lamps/HL-0000001", "/v1/order", "/v1/commands/start",
        "/v1/commands/stop", "/v1/commands/reset", "/v1/commands/clear", "/v1/commands/abort", "/v1/commands/hold",
        "/v1/commands/explode", "/", "*", "//", "/v1/../v1/status", "/v1/status/", "/v1//status", "/v1/status%00",
        "/v1/%2e%2e/status", "/v1/lamps/%ZZ", "/v1/lamps/%", "/v1/lamps/%C0%AF", "/v1/lamps/\u{7F}", "v1/status",
        "http://lampcell/v1/status", "/v1/lamps?limit=-1", "/v1/lamps?limit=99999999999999999999999",
        "/v1/lamps?lot=abc&lot=1", "/v1/lamps?since=%ZZ", "/v1/lamps?=&=&&", "/v1/lamps?result=OK&limit=0",
        "/v1/lamps?serial=%00%00", "/v1/watch?interval_ms=-5", "/v1/watch?interval_ms=1e99", "/v1/status?%",
        "/v1/status#fragment", "/v1/status?" + String(repeating: "%25", count: 500), "/\u{FFFD}", "/v1/lamps/" + String(repeating: "9", count: 2000),
        "/v1/lamps?limit=1&limit=2&limit=3", "/v1/lamps?until=2026-13-45", "/v1/lamps?order=%27%20OR%201=1",
    ]
    static let versions = ["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/2.0", "HTTP/1.1x", "http/1.1", "HTTP/1", "", "HTTP/1.1 extra", "HTTP/9.9"]
    static let headerLines = [
        "Host: lampcell", "Content-Length: 0", "Content-Length: -1", "Content-Length: 99999999999999999999999",
        "Content-Length: 5", "Content-Length: 5\r\nContent-Length: 7", "Content-Length: +5", "Content-Length: 0x10",
        "Content-Length:", "Content-Length: 18446744073709551616", "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip", "Transfer-Encoding: chunked\r\nContent-Length: 3", "Connection: close",
        "Connection: keep-alive", "Connection: upgrade\r\nUpgrade: websocket", "Expect: 100-continue",
        "Content-Type: application/json", "Content-Type: text/plain", "X-Empty:", ": no-name", "No-Colon",
        "X-Control: \u{1}\u{2}", "X-Fold: a\r\n folded", "Host: a\r\nHost: b", "X-Long: " + String(repeating: "v", count: 4000),
        "Accept: */*", "X-Nul: a\u{0}b",
    ]
    static let jsonBodies: [String] = [
        "", "{", "}", "[]", "null", "true", "0", "\"text\"", "{\"variant\":\"LEFT\"}", "{\"id\":\"A\",\"variant\":\"LEFT\"}",
        "{\"id\":1,\"variant\":\"LEFT\",\"quantity\":1}", "{\"id\":\"A\",\"variant\":\"UP\",\"quantity\":1}",
        "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":-1}", "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":0}",
        "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":1e400}", "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":9223372036854775808}",
        "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":4294967296}", "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":1.5}",
        "{\"id\":\"\",\"variant\":\"LEFT\",\"quantity\":1}", "{\"id\":\"" + String(repeating: "i", count: 5000) + "\",\"variant\":\"LEFT\",\"quantity\":1}",
        "{\"id\":\"\\uD800\",\"variant\":\"LEFT\",\"quantity\":1}", "{\"id\":\"A\\u0000B\",\"variant\":\"LEFT\",\"quantity\":1}",
        "{\"id\":\"A\",\"variant\":\"LEFT\",\"quantity\":1,\"id\":\"B\"}", "{\"id\":\"A\",\"variant\":null,\"quantity\":1}",
        "{\"id\":\"A\",\"variant\":\"left\",\"quantity\":\"1\"}", "{\"id\":[],\"variant\":{},\"quantity\":[]}",
        "{'id':'A'}", "{\"id\":\"A\",}", "\u{FEFF}{}", "{\"a\":" + String(repeating: "[", count: 3000) + String(repeating: "]", count: 3000) + "}",
        String(repeating: "[", count: 5000), String(repeating: "{\"a\":", count: 2000) + "1" + String(repeating: "}", count: 2000),
        "{\"quantity\":" + String(repeating: "9", count: 4000) + "}", "\u{FFFF}\u{FFFE}",
    ]

    static func request(method: String, path: String, version: String, headers: [String], body: [UInt8]) -> [UInt8] {
        var head = "\(method) \(path)"
        if !version.isEmpty { head += " \(version)" }
        head += "\r\n"
        for header in headers { head += header + "\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }

    static func validRequest(_ random: inout SplitMix64) -> [UInt8] {
        let path = random.pick(["/v1/status", "/metrics", "/v1/lamps?limit=2", "/v1/lamps/none"])
        return Array("GET \(path) HTTP/1.1\r\nHost: lampcell\r\n\r\n".utf8)
    }

    static func chunkedGarbage(_ random: inout SplitMix64) -> [UInt8] {
        let sizes = ["zz", "-1", "ffffffffffffffff", "10000000000000000000", "5;ext=1", "3", "0", " 3", "3 ", "", "0x3", "1\u{0}"]
        var text = ""
        for _ in 0..<(1 + random.below(4)) {
            let size = random.pick(sizes)
            text += size + (random.chance(80) ? "\r\n" : "\n") + random.pick(["abc", "", "{}", "xxxxxxxxxx"])
            text += random.chance(80) ? "\r\n" : ""
        }
        if random.chance(50) { text += "0\r\n\r\n" }
        return Array(text.utf8)
    }

    /// Flips, deletes or duplicates a few bytes of `bytes`.
    static func corrupt(_ bytes: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var result = bytes
        for _ in 0..<(1 + random.below(3)) where !result.isEmpty {
            let at = random.below(result.count)
            switch random.below(4) {
            case 0: result[at] ^= UInt8(1 << random.below(8))
            case 1: result.remove(at: at)
            case 2: result.insert(contentsOf: result[at..<min(result.count, at + 1 + random.below(16))], at: at)
            default: result[at] = random.pick([0, 0x0D, 0x0A, 0x20, 0x3A, 0xFF, 0x80])
            }
        }
        return result
    }

    static func exchange(_ random: inout SplitMix64) -> FuzzExchange {
        let kind = random.below(12)
        var bytes: [UInt8]
        var description: String
        switch kind {
        case 0:
            let count = 1 + random.below(random.chance(90) ? 300 : 20_000)
            bytes = random.bytes(count)
            if random.chance(50) { bytes += Array("\r\n\r\n".utf8) }
            description = "\(count) random bytes"
        case 1:
            // Random request line parts.
            let method = random.pick(methods), path = random.pick(paths), version = random.pick(versions)
            bytes = request(method: method, path: path, version: version, headers: ["Host: lampcell"], body: [])
            description = "request line \(method.prefix(20)) \(path.prefix(60)) \(version)"
        case 2:
            // Hostile headers on a known path.
            let count = 1 + random.below(4)
            let headers = (0..<count).map { _ in random.pick(headerLines) }
            let method = random.pick(["GET", "POST", "DELETE"])
            let body = random.chance(50) ? Array(random.pick(jsonBodies).utf8) : []
            bytes = request(method: method, path: random.pick(paths), version: "HTTP/1.1", headers: ["Host: x"] + headers, body: body)
            description = "headers \(headers.map { String($0.prefix(40)) })"
        case 3, 4:
            // Bad JSON on the order and command endpoints, with a matching or mismatched Content-Length.
            let body = Array(random.pick(jsonBodies).utf8)
            let path = random.pick(["/v1/order", "/v1/order", "/v1/commands/start", "/v1/commands/stop", "/v1/commands/reset"])
            let length = random.chance(80) ? body.count : max(0, body.count + random.below(11) - 5)
            bytes = request(
                method: "POST", path: path, version: "HTTP/1.1",
                headers: ["Host: x", "Content-Type: application/json", "Content-Length: \(length)"], body: body)
            description = "POST \(path) body \(String(decoding: body.prefix(60), as: UTF8.self).debugDescription) length \(length) of \(body.count)"
        case 5:
            // Chunked garbage.
            let body = chunkedGarbage(&random)
            bytes = request(method: "POST", path: random.pick(["/v1/order", "/v1/status", "/v1/commands/start"]), version: "HTTP/1.1", headers: ["Host: x", "Transfer-Encoding: chunked"], body: body)
            description = "chunked \(String(decoding: body.prefix(80), as: UTF8.self).debugDescription)"
        case 6:
            // Percent-encoding junk in query strings.
            let junk = (0..<(1 + random.below(8))).map { _ in
                random.pick(["%", "%Z", "%ZZ", "%00", "%FF", "%C0%AF", "%E2%82", "&", "=", "==", "limit=", "lot=", "since=", "%2", "+", ";", "?"])
            }.joined()
            let path = random.pick(["/v1/lamps", "/v1/watch", "/v1/status", "/v1/lamps/A"]) + "?" + junk
            bytes = request(method: "GET", path: path, version: "HTTP/1.1", headers: ["Host: x", "Connection: close"], body: [])
            description = "query \(path)"
        case 7:
            // A valid request, corrupted.
            let body = Array("{\"id\":\"F-\(random.below(1000))\",\"variant\":\"LEFT\",\"quantity\":1}".utf8)
            let base = random.chance(50) ? validRequest(&random) :
                request(method: "POST", path: "/v1/order", version: "HTTP/1.1", headers: ["Host: x", "Content-Length: \(body.count)"], body: body)
            bytes = corrupt(base, &random)
            description = "corrupted \(String(decoding: bytes.prefix(100), as: UTF8.self).debugDescription)"
        case 8:
            // Pipelined mixtures: good and bad requests back to back.
            var parts: [[UInt8]] = []
            for _ in 0..<(2 + random.below(5)) {
                switch random.below(4) {
                case 0: parts.append(validRequest(&random))
                case 1: parts.append(request(method: random.pick(methods), path: random.pick(paths), version: "HTTP/1.1", headers: ["Host: x"], body: []))
                case 2:
                    let body = Array(random.pick(jsonBodies).utf8)
                    parts.append(request(method: "POST", path: "/v1/order", version: "HTTP/1.1", headers: ["Host: x", "Content-Length: \(body.count)"], body: body))
                default: parts.append(random.bytes(1 + random.below(40)))
                }
            }
            bytes = Array(parts.joined())
            description = "pipelined \(parts.count): \(String(decoding: bytes.prefix(120), as: UTF8.self).debugDescription)"
        case 9:
            // A request cut short (the server must not wait beyond its deadline; half-closed below).
            let full = random.chance(50) ? validRequest(&random) : request(method: "POST", path: "/v1/order", version: "HTTP/1.1", headers: ["Host: x", "Content-Length: 40"], body: Array("{\"id\":".utf8))
            bytes = Array(full.prefix(random.below(full.count)))
            description = "cut short at \(bytes.count) of \(full.count)"
            return FuzzExchange(bytes: bytes, halfClose: true, description: description)
        case 10:
            // Duplicated / conflicting Content-Length and Transfer-Encoding.
            let pairs = [
                ["Content-Length: 2", "Content-Length: 2"], ["Content-Length: 2", "Content-Length: 3"],
                ["Content-Length: 2, 3"], ["Content-Length: 3", "Transfer-Encoding: chunked"],
                ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], ["Transfer-Encoding: identity"],
                ["Content-Length: -0"], ["Content-Length: 00000000000000000000000000002"], ["Content-Length: 2 2"],
            ]
            let headers = random.pick(pairs)
            bytes = request(method: "POST", path: "/v1/order", version: "HTTP/1.1", headers: ["Host: x"] + headers, body: Array("{}".utf8))
            description = "framing \(headers)"
        default:
            // Lone line endings, NULs, and a request line without CRLF.
            bytes = Array(random.pick([
                "\r\n\r\n", "\n\n", "\r\r\r\r", "GET /v1/status HTTP/1.1\n\n", "GET /v1/status HTTP/1.1\rHost: x\r\r",
                "GET\r\n\r\n", " GET /v1/status HTTP/1.1\r\n\r\n", "GET  /v1/status  HTTP/1.1\r\n\r\n",
                "GET /v1/status\tHTTP/1.1\r\n\r\n", "\u{0}\u{0}\u{0}\u{0}", "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n\u{0}",
            ]).utf8)
            description = "line endings \(String(decoding: bytes, as: UTF8.self).debugDescription)"
        }
        return FuzzExchange(bytes: bytes, halfClose: random.chance(25), description: description)
    }
}

// MARK: - The client side

/// What came back on one connection.
struct FuzzAnswer {
    var text: String
    var closed: Bool
}

/// Sends `exchange` on a fresh connection, then reads until the server closes, or (keep-alive) until a full answer
/// came and the line is quiet, or the timeout.
func fuzzExchange(_ socket: String, _ exchange: FuzzExchange, timeoutSeconds: Double) -> FuzzAnswer {
    let descriptor = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return FuzzAnswer(text: "socket failed", closed: false) }
    defer { close(descriptor) }
    guard connectUnix(descriptor, socket) else { return FuzzAnswer(text: "connect failed", closed: false) }
    var offset = 0
    while offset < exchange.bytes.count {
        let sent = exchange.bytes[offset...].withUnsafeBytes {
            send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
        }
        if sent <= 0 { break }  // the server may answer and close before taking everything
        offset += sent
    }
    if exchange.halfClose { shutdown(descriptor, Int32(SHUT_WR)) }
    var received: [UInt8] = []
    let deadline = lampcell_monotonic_ns() + UInt64(timeoutSeconds * 1e9)
    var chunk = [UInt8](repeating: 0, count: 65_536)
    /// Quiet time after a complete-looking answer before the client gives up waiting for more (keep-alive).
    let quietMilliseconds: Int32 = 150
    while lampcell_monotonic_ns() < deadline {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let answered = received.count > 12 && String(decoding: received, as: UTF8.self).contains("\r\n\r\n")
        let remaining = Int32(max(1, (deadline - min(deadline, lampcell_monotonic_ns())) / 1_000_000))
        let ready = poll(&poller, 1, answered ? min(quietMilliseconds, remaining) : remaining)
        if ready == 0 && answered { break }
        guard ready > 0 else { continue }
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count <= 0 { return FuzzAnswer(text: String(decoding: received, as: UTF8.self), closed: true) }
        received += chunk[..<count]
    }
    return FuzzAnswer(text: String(decoding: received, as: UTF8.self), closed: false)
}

/// The status codes of every answer in `text` (pipelined answers follow each other).
func answerStatusCodes(_ text: String) -> [Int] {
    text.components(separatedBy: "HTTP/1.").dropFirst().compactMap { part in
        let fields = part.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, fields[0].count == 1 else { return nil }
        return Int(fields[1])
    }
}

/// The server's sockets on `path`: the listener and every accepted connection (the kernel lists accepted Unix
/// sockets under the listener's path in /proc/net/unix; client sockets are unnamed). Unlike this process's
/// descriptor count, it is not disturbed by other tests running in parallel.
func serverSocketCount(_ path: String) -> Int {
    guard let table = try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8) else { return -1 }
    return table.split(separator: "\n").filter { $0.hasSuffix(" " + path) }.count
}

/// Failures found on worker threads, recorded by the test afterwards.
final class HTTPFuzzLog: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: [String] = []
    private(set) var count = 0
    private(set) var codes: [Int: Int] = [:]
    private(set) var closedSilently = 0
    static let keptFailures = 40
    func fail(_ message: String) {
        lock.lock()
        count += 1
        if kept.count < Self.keptFailures { kept.append(message) }
        lock.unlock()
    }
    func note(codes answered: [Int]) {
        lock.lock()
        if answered.isEmpty { closedSilently += 1 }
        for code in answered { codes[code, default: 0] += 1 }
        lock.unlock()
    }
    var failures: [String] {
        lock.lock()
        defer { lock.unlock() }
        return kept
    }
}

@Suite("HTTP API fuzzing", .serialized)
struct HTTPFuzzTests {
    /// Exchanges run concurrently, this many at a time.
    static let concurrentClients = 8
    /// Exchanges per batch; after each batch: no leaked connection or descriptor, and status still answers.
    static let batchSize = 300
    /// A client waits this long for one exchange (the server's request deadline is shorter, below).
    static let exchangeTimeoutSeconds = 6.0

    @Test("thousands of random and malformed requests: a 4xx or a closed connection, no leak, status still served")
    func randomRequests() throws {
        let seed = FuzzSeed.value(default: FuzzSeed.fresh())
        let total = FuzzIterations.value(default: 2400)
        print("HTTP fuzz: seed \(seed), \(total) exchanges (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        let cell = try FakeAPIFixture { $0.requestTimeoutMilliseconds = 1500 }
        defer { cell.shutdown() }
        let socket = cell.socketPath
        // Baseline: one well-formed request, then count descriptors and connections.
        #expect(try cell.client.send("GET", "/v1/status").status == 200)
        #expect(waitForConnections(cell, atMost: 0))
        let baselineSockets = serverSocketCount(socket)
        #expect(baselineSockets >= 1, "the listening socket is not in /proc/net/unix")
        let log = HTTPFuzzLog()
        var generator = SplitMix64(seed: seed)
        var done = 0
        var batch = 0
        while done < total {
            let count = min(Self.batchSize, total - done)
            let exchanges = (0..<count).map { _ in HTTPFuzzer.exchange(&generator) }
            let firstIndex = done
            runConcurrently(exchanges.count, threads: Self.concurrentClients) { index in
                let exchange = exchanges[index]
                let answer = fuzzExchange(socket, exchange, timeoutSeconds: Self.exchangeTimeoutSeconds)
                Self.check(answer, exchange, context: "seed \(seed) exchange \(firstIndex + index): \(exchange.description)", log: log)
            }
            done += count
            batch += 1
            // After each batch: the server is still serving, and every connection was closed.
            let status = try cell.client.send("GET", "/v1/status")
            #expect(status.status == 200, "seed \(seed) after batch \(batch): status answered \(status.status)")
            #expect(waitForConnections(cell, atMost: 0), "seed \(seed) after batch \(batch): \(cell.api.statistics.openConnections) connections still open")
            #expect(
                waitForSockets(socket, atMost: baselineSockets),
                "seed \(seed) after batch \(batch): \(serverSocketCount(socket)) server sockets open, \(baselineSockets) before")
        }
        for failure in log.failures { Issue.record(Comment(rawValue: failure)) }
        #expect(log.count == 0, "seed \(seed): \(log.count) failures (first \(HTTPFuzzLog.keptFailures) above)")
        print("HTTP fuzz: seed \(seed): answers by status \(log.codes.sorted { $0.key < $1.key }), \(log.closedSilently) closed without an answer")
        #expect((log.codes[400] ?? 0) > total / 10, "the fuzzer reaches the parser's error path")
        #expect(try cell.client.status().cellID == cell.fake.cellID)
    }

    static func check(_ answer: FuzzAnswer, _ exchange: FuzzExchange, context: String, log: HTTPFuzzLog) {
        let codes = answerStatusCodes(answer.text)
        log.note(codes: codes)
        if answer.text.isEmpty {
            // Closed without an answer is allowed (garbage before any request head, half-close); a connection
            // left open with nothing said is a server waiting past its deadline.
            if !answer.closed { log.fail("\(context): no answer and the connection is still open") }
            return
        }
        guard answer.text.hasPrefix("HTTP/1.") else {
            log.fail("\(context): the answer is not HTTP: \(answer.text.prefix(120).debugDescription)")
            return
        }
        for code in codes where !(200..<500).contains(code) && code != 503 {
            log.fail("\(context): status \(code): \(answer.text.prefix(300).debugDescription)")
        }
        // The first answer's body: a 4xx carries a JSON error with a message (HEAD answers have no body; NIO's
        // encoder frames an answer to CONNECT without one).
        let firstMethod = String(decoding: exchange.bytes.prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
        if let first = codes.first, (400..<500).contains(first), firstMethod != "HEAD", firstMethod != "CONNECT" {
            let body = firstBody(answer.text)
            let json = body.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
            let message = json?["message"] as? String
            if json?["error"] as? String == nil || message?.isEmpty != false {
                log.fail("\(context): \(first) without a JSON error and message: \(answer.text.prefix(300).debugDescription)")
            }
        }
    }

    /// The body of the first answer in `text` (by its Content-Length).
    static func firstBody(_ text: String) -> String? {
        guard let range = text.range(of: "\r\n\r\n") else { return nil }
        let head = text[..<range.lowerBound].lowercased()
        guard let lengthLine = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return nil }
        return String(decoding: Array(text[range.upperBound...].utf8).prefix(length), as: UTF8.self)
    }

    func waitForConnections(_ cell: FakeAPIFixture, atMost count: Int) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while cell.api.statistics.openConnections > count && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return cell.api.statistics.openConnections <= count
    }

    func waitForSockets(_ path: String, atMost count: Int) -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while serverSocketCount(path) > count && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return serverSocketCount(path) <= count
    }
}

/// Hands out indices 0, 1, 2, … to worker threads.
private final class IndexDispenser: @unchecked Sendable {
    private let lock = NSLock()
    private var cursor = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        cursor += 1
        return cursor - 1
    }
}

/// Runs `body(0..<count)` on `threads` threads; returns when all are done.
func runConcurrently(_ count: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let dispenser = IndexDispenser()
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        let thread = Thread {
            while true {
                let index = dispenser.next()
                if index >= count { break }
                body(index)
            }
            group.leave()
        }
        thread.start()
    }
    group.wait()
}
