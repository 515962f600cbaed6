import Foundation
import Glibc

/// Why a call to the API failed before an HTTP answer arrived.
public enum APIClientError: Error, CustomStringConvertible, Equatable {
    /// Nothing listens on the socket (no file, or connection refused): the daemon is not running.
    case daemonNotRunning(socketPath: String, reason: String)
    /// The socket exists but this user may not connect to it.
    case permissionDenied(socketPath: String)
    /// Talking to the socket failed (timeout, reset).
    case io(socketPath: String, reason: String)
    /// The answer was not HTTP as expected.
    case malformedResponse(String)

    /// One line, naming the socket.
    public var description: String {
        switch self {
        case .daemonNotRunning(let path, let reason):
            return "lampcelld is not running: nothing listens on \(path) (\(reason))"
        case .permissionDenied(let path):
            return "permission denied connecting to \(path)"
        case .io(let path, let reason):
            return "talking to lampcelld on \(path) failed: \(reason)"
        case .malformedResponse(let what):
            return "lampcelld answered something that is not HTTP: \(what)"
        }
    }
}

/// An HTTP answer of the API.
public struct APIClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body as text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body decoded as JSON.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSONDecoder().decode(type, from: Data(body)) }

    /// The error body of a 4xx/5xx answer, when it has one.
    public var errorBody: APIErrorBody? { try? decode(APIErrorBody.self) }
}

/// A small blocking HTTP/1.1 client for the API's Unix socket (lampctl, scripts, tests): one connection per call.
/// Any thread (it blocks the caller up to `timeoutMilliseconds` per read or write).
public struct APIClient: Sendable {
    /// Where lampcelld's API listens by default.
    public static let defaultSocketPath = "/run/lampcelld/api.sock"
    /// Largest answer read, bytes.
    public static let maximumResponseBytes = 16 * 1024 * 1024

    public var socketPath: String
    /// Bound on each read and write, ms.
    public var timeoutMilliseconds: Int

    public init(socketPath: String = APIClient.defaultSocketPath, timeoutMilliseconds: Int = 10_000) {
        self.socketPath = socketPath
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Sends one request and reads the whole answer.
    public func send(_ method: String, _ target: String, json body: [UInt8]? = nil) throws(APIClientError) -> APIClientResponse {
        let connection = try connect()
        defer { connection.close() }
        try connection.write(request(method, target, body: body))
        return try connection.readResponse(streaming: nil)
    }

    /// `GET /v1/status`, decoded.
    public func status() throws -> StatusDocument {
        let response = try send("GET", "/v1/status")
        guard response.status == 200 else {
            throw APIClientError.malformedResponse("GET /v1/status answered \(response.status): \(response.text)")
        }
        return try response.decode(StatusDocument.self)
    }

    /// `GET /v1/watch`: calls `event` with the data of each `status` event until it returns false or the stream
    /// ends. Returns the answer's status (and body when it was not a stream).
    @discardableResult
    public func watch(intervalMilliseconds: Int? = nil, _ event: (String) -> Bool) throws(APIClientError) -> APIClientResponse {
        let connection = try connect()
        defer { connection.close() }
        let target = intervalMilliseconds.map { "/v1/watch?interval_ms=\($0)" } ?? "/v1/watch"
        try connection.write(request("GET", target, body: nil))
        var pending: [UInt8] = []
        return try withoutActuallyEscaping(event) { event throws(APIClientError) in
          try connection.readResponse { bytes in
            pending.append(contentsOf: bytes)
            while let end = Self.find([0x0A, 0x0A], in: pending) {
                let block = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeSubrange(..<(end + 2))
                var name = "message"
                var data: [String] = []
                for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix("event:") { name = line.dropFirst(6).trimmingCharacters(in: .whitespaces) }
                    if line.hasPrefix("data:") { data.append(String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces)) }
                }
                if name == "status", !data.isEmpty, !event(data.joined(separator: "\n")) { return false }
            }
            return true
          }
        }
    }

    private func request(_ method: String, _ target: String, body: [UInt8]?) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: lampcelld\r\nUser-Agent: lampctl\r\nConnection: close\r\n"
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        } else if method == "POST" || method == "DELETE" {
            head += "Content-Length: 0\r\n"
        }
        return Array((head + "\r\n").utf8) + (body ?? [])
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        guard haystack.count >= needle.count + start else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index] == needle[0], Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }

    private func connect() throws(APIClientError) -> Connection {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .io(socketPath: socketPath, reason: String(cString: strerror(errno))) }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = UnixSocketAddress.with(socketPath) { address, length in Glibc.connect(descriptor, address, length) }
        if result != 0 {
            let failure = errno
            Glibc.close(descriptor)
            switch failure {
            case ENOENT: throw .daemonNotRunning(socketPath: socketPath, reason: "no such socket")
            case ECONNREFUSED: throw .daemonNotRunning(socketPath: socketPath, reason: "connection refused")
            case EACCES, EPERM: throw .permissionDenied(socketPath: socketPath)
            default: throw .io(socketPath: socketPath, reason: String(cString: strerror(failure)))
            }
        }
        return Connection(descriptor: descriptor, socketPath: socketPath)
    }

    /// One connected socket with a read buffer.
    private final class Connection {
        let descriptor: Int32
        let socketPath: String
        var buffer: [UInt8] = []
        var ended = false

        init(descriptor: Int32, socketPath: String) {
            self.descriptor = descriptor
            self.socketPath = socketPath
        }

        func close() { Glibc.close(descriptor) }

        func write(_ bytes: [UInt8]) throws(APIClientError) {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { raw in
                    Glibc.send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                }
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw .io(socketPath: socketPath, reason: "write: \(String(cString: strerror(errno)))")
                }
                offset += sent
            }
        }

        /// Reads more bytes into the buffer; false at end of stream.
        func fill() throws(APIClientError) -> Bool {
            guard !ended else { return false }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { raw in recv(descriptor, raw.baseAddress, raw.count, 0) }
                if count < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { throw .io(socketPath: socketPath, reason: "timed out waiting for an answer") }
                    if errno == ECONNRESET { ended = true; return false }
                    throw .io(socketPath: socketPath, reason: "read: \(String(cString: strerror(errno)))")
                }
                if count == 0 {
                    ended = true
                    return false
                }
                buffer.append(contentsOf: chunk[..<count])
                if buffer.count > APIClient.maximumResponseBytes { throw .malformedResponse("answer larger than \(APIClient.maximumResponseBytes) bytes") }
                return true
            }
        }

        func line() throws(APIClientError) -> String {
            while true {
                if let end = APIClient.find([0x0D, 0x0A], in: buffer) {
                    let text = String(decoding: buffer[..<end], as: UTF8.self)
                    buffer.removeSubrange(..<(end + 2))
                    return text
                }
                guard try fill() else { throw .malformedResponse("the connection closed inside the header") }
            }
        }

        func exactly(_ count: Int) throws(APIClientError) -> [UInt8] {
            while buffer.count < count {
                guard try fill() else { throw .malformedResponse("the connection closed inside the body") }
            }
            let bytes = Array(buffer[..<count])
            buffer.removeSubrange(..<count)
            return bytes
        }

        /// Reads status line, headers and body; with `streaming`, hands each body piece to it (until it returns
        /// false) instead of collecting the body.
        func readResponse(streaming: ((ArraySlice<UInt8>) -> Bool)?) throws(APIClientError) -> APIClientResponse {
            let statusLine = try line()
            let parts = statusLine.split(separator: " ", maxSplits: 2)
            guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
                throw .malformedResponse(statusLine)
            }
            var headers: [(name: String, value: String)] = []
            while true {
                let text = try line()
                if text.isEmpty { break }
                guard let colon = text.firstIndex(of: ":") else { throw .malformedResponse(text) }
                headers.append(
                    (String(text[..<colon]).trimmingCharacters(in: .whitespaces),
                     String(text[text.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
            var response = APIClientResponse(status: status, headers: headers, body: [])
            let deliver: (ArraySlice<UInt8>) -> Bool = { piece in
                if let streaming { return streaming(piece) }
                response.body.append(contentsOf: piece)
                return true
            }
            if response.header("transfer-encoding")?.lowercased() == "chunked" {
                while true {
                    let sizeLine = try line()
                    guard let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16) else {
                        throw .malformedResponse("chunk size \(sizeLine)")
                    }
                    if size == 0 {
                        while try !line().isEmpty {}
                        break
                    }
                    let piece = try exactly(size)
                    _ = try exactly(2)
                    if !deliver(piece[...]) { break }
                }
            } else if let length = response.header("content-length").flatMap({ Int($0) }) {
                _ = deliver(try exactly(length)[...])
            } else {
                while try fill() {}
                let rest = buffer
                buffer = []
                _ = deliver(rest[...])
            }
            return response
        }
    }
}
