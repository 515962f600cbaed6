// A small W3C WebDriver client: chromedriver (Debian's chromium-driver) drives a real headless Chromium. Only the
// endpoints the panel tests use: session, navigation, elements, script, cookies, screenshots.

import Foundation
import LampCellTestSupport


/// One chromedriver process and one browser session in it. Thread: the test's.
final class WebDriver {
    /// How long chromedriver may take to listen, and one WebDriver command to answer.
    static let startTimeoutSeconds = 20.0
    static let commandTimeoutSeconds = 30.0

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let process: Process
    private let port: Int
    private var session = ""

    /// Starts chromedriver on a free loopback port and opens a headless Chromium session.
    init(windowWidth: Int = 1600, windowHeight: Int = 1300) async throws {
        let port = try freeLoopbackPort()
        self.port = port
        process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.find("chromedriver"))
        process.arguments = ["--port=\(port)", "--allowed-ips=127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(Self.startTimeoutSeconds)
        var lastAnswer = "no answer"
        while true {
            do {
                let status = try await call("GET", "/status")
                if (status["value"] as? [String: Any])?["ready"] as? Bool == true { break }
                lastAnswer = "\(status)"
            } catch {
                lastAnswer = "\(error)"
            }
            guard Date() < deadline, process.isRunning else {
                kill(process.processIdentifier, SIGKILL)
                throw Failure(description: "chromedriver did not become ready on port \(port): \(lastAnswer)")
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        var arguments = [
            "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=\(windowWidth),\(windowHeight)",
            "--hide-scrollbars", "--no-first-run",
        ]
        if geteuid() == 0 { arguments.append("--no-sandbox") }  // Chromium's sandbox refuses root
        let capabilities: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "browserName": "chrome",
                    "goog:chromeOptions": ["binary": try Self.find("chromium"), "args": arguments],
                ]
            ]
        ]
        let answer = try await call("POST", "/session", capabilities)
        guard let value = answer["value"] as? [String: Any], let id = value["sessionId"] as? String else {
            kill(process.processIdentifier, SIGKILL)
            throw Failure(description: "no session: \(answer)")
        }
        session = id
    }

    /// Ends the session and chromedriver.
    func quit() async {
        _ = try? await call("DELETE", "/session/\(session)")
        // chromedriver ignores SIGTERM; its browser ends with it (the DevTools pipe closes).
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func navigate(_ url: String) async throws {
        _ = try await command("POST", "url", ["url": url])
    }

    /// The element `css` selects, or nil.
    func find(_ css: String) async throws -> String? {
        let answer = try await call("POST", "/session/\(session)/element", ["using": "css selector", "value": css])
        guard let value = answer["value"] as? [String: Any] else { return nil }
        if value["error"] != nil { return nil }
        return value.values.compactMap { $0 as? String }.first
    }

    func element(_ css: String) async throws -> String {
        guard let element = try await find(css) else { throw Failure(description: "no element \(css)") }
        return element
    }

    func click(_ css: String) async throws {
        _ = try await command("POST", "element/\(try await element(css))/click", [:])
    }

    func type(_ css: String, _ text: String) async throws {
        let element = try await element(css)
        _ = try await command("POST", "element/\(element)/clear", [:])
        _ = try await command("POST", "element/\(element)/value", ["text": text])
    }

    /// Runs `script` (a function body; `arguments[0]`… are `arguments`) in the page and returns its value.
    func script(_ script: String, _ arguments: [Any] = []) async throws -> Any? {
        try await command("POST", "execute/sync", ["script": script, "args": arguments])
    }

    /// Runs an async `script`: it calls `arguments[arguments.length - 1]` with its result.
    func asyncScript(_ script: String, _ arguments: [Any] = []) async throws -> Any? {
        try await command("POST", "execute/async", ["script": script, "args": arguments])
    }

    /// The page's text of `css`, or nil when there is no such element.
    func text(_ css: String) async throws -> String? {
        try await script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", [css]) as? String
    }

    /// Every cookie of the current page, HttpOnly ones included (the browser's view, not the page's).
    func cookies() async throws -> [[String: Any]] {
        try await command("GET", "cookie", nil) as? [[String: Any]] ?? []
    }

    /// A PNG of the viewport.
    func screenshot() async throws -> Data {
        guard let text = try await command("GET", "screenshot", nil) as? String, let data = Data(base64Encoded: text) else {
            throw Failure(description: "no screenshot")
        }
        return data
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass; returns whether it held.
    func waitFor(seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if try await condition() { return true }
            if Date() >= deadline { return false }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    // MARK: - Wire

    private func command(_ method: String, _ path: String, _ body: [String: Any]?) async throws -> Any? {
        let answer = try await call(method, "/session/\(session)/\(path)", body)
        if let value = answer["value"] as? [String: Any], let error = value["error"] as? String {
            throw Failure(description: "\(method) \(path): \(error): \(value["message"] ?? "")")
        }
        return answer["value"] ?? nil
    }

    /// One HTTP exchange with chromedriver. Not URLSession: swift-corelibs-foundation refuses chromedriver's
    /// header lines (`Content-Length:251`, no space after the colon) with "Failed writing header".
    private func call(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> [String: Any] {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        let data = try plainHTTP(method: method, port: port, path: path, body: payload, timeoutSeconds: Self.commandTimeoutSeconds).body
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "\(method) \(path): not a JSON object")
        }
        return object
    }

    static func find(_ name: String) throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
        where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw Failure(description: "\(name) is not installed (make test installs Debian's chromium and chromium-driver)")
    }
}

/// A blocking HTTP/1.1 exchange with 127.0.0.1:`port`: the answer's status and body (read to its Content-Length).
/// Throws on a connection failure or a timeout. The tests' only HTTP client: URLSession on Linux refuses
/// chromedriver's header lines and spun in its multi-handle loop here.
func plainHTTP(
    method: String, port: Int, path: String, headers: [String: String] = [:], body: Data = Data(),
    timeoutSeconds: Double = 30
) throws -> (status: Int, body: Data) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw WebDriver.Failure(description: "socket: errno \(errno)") }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw WebDriver.Failure(description: "connect to port \(port): errno \(errno)") }
    var request = Data(
        ("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
            + headers.map { "\($0.key): \($0.value)\r\n" }.joined()
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n").utf8)
    request.append(body)
    try request.withUnsafeBytes { raw in
        var sent = 0
        while sent < raw.count {
            let count = send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            guard count > 0 else { throw WebDriver.Failure(description: "send: errno \(errno)") }
            sent += count
        }
    }
    // chromedriver keeps the connection open despite `Connection: close`: the body ends at its Content-Length.
    var answer = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var bodyStart: Int?
    var bodyLength: Int?
    var status = 0
    while true {
        if let start = bodyStart, let length = bodyLength, answer.count - start >= length { break }
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count == 0 { break }
        guard count > 0 else { throw WebDriver.Failure(description: "\(method) \(path): recv: errno \(errno)") }
        answer.append(contentsOf: buffer[0..<count])
        if bodyStart == nil, let end = answer.firstRange(of: Data("\r\n\r\n".utf8)) {
            bodyStart = end.upperBound - answer.startIndex
            let header = String(decoding: answer[answer.startIndex..<end.lowerBound], as: UTF8.self)
            status = Int(header.split(separator: " ").dropFirst().first ?? "") ?? 0
            for line in header.split(separator: "\r\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == "content-length" {
                    bodyLength = Int(parts[1].trimmingCharacters(in: .whitespaces))
                }
            }
        }
    }
    guard let start = bodyStart else { throw WebDriver.Failure(description: "\(method) \(path): no HTTP header in the answer") }
    return (status, answer.subdata(in: (answer.startIndex + start)..<answer.endIndex))
}
