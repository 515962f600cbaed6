import Foundation
import Testing

@testable import SystemdSupport

#if canImport(Glibc)
import Glibc
#endif

/// Connects to a Unix stream socket (retrying until `timeoutSeconds` while it does not exist yet or refuses) and
/// reads what the server writes until it closes.
func fetchLine(fromUnixSocket path: String, timeoutSeconds: Double = 30) -> String? {
    var answer: String?
    waitUntil(timeoutSeconds: timeoutSeconds) {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return false }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        answer = String(decoding: bytes, as: UTF8.self)
        return true
    }
    return answer
}

@Suite("Socket activation")
struct SocketActivationTests {
    @Test("systemd-socket-activate passes named sockets; the probe serves its client through the one named api")
    func activatedByName() throws {
        let probe = try product("lampcell-systemd-probe")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let metrics = directory.file("metrics.sock")
        let api = directory.file("api.sock")
        let fallback = directory.file("fallback.sock")
        let child = try ChildProcess(
            "/usr/bin/systemd-socket-activate",
            ["-l", metrics, "-l", api, "--fdname=metrics:api", probe, "serve", "api", fallback, "2"],
            outputPath: directory.file("output"))
        defer { child.terminate() }
        let first = fetchLine(fromUnixSocket: api)
        let second = fetchLine(fromUnixSocket: api)
        #expect(first == "status ok name=api fd=4 activated=true\n", "\(child.output)")
        #expect(second == first)
        #expect(child.waitForExit(timeoutSeconds: 30) == 0, "\(child.output)")
        #expect(child.output.contains("listening api fd=4 activated=true names=metrics,api"), "\(child.output)")
        #expect(!FileManager.default.fileExists(atPath: fallback), "the probe must not bind its own socket")
    }

    @Test("without socket activation the listener binds the socket itself (replacing a stale one)")
    func fallbackBinds() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("api.sock")
        let stale = try SocketActivation.unixStreamListener(named: "api", in: [], orBindAt: path, mode: 0o660)
        #expect(!stale.activated)
        close(stale.fileDescriptor)  // leaves the socket file behind, as a crashed daemon would
        let listener = try SocketActivation.unixStreamListener(named: "api", in: [], orBindAt: path, mode: 0o660)
        defer { close(listener.fileDescriptor) }
        #expect(!listener.activated)
        var status = stat()
        #expect(stat(path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o660)
        #expect(ListenedFileDescriptor(fileDescriptor: listener.fileDescriptor, name: "api").isListeningUnixStreamSocket)
        let server = Thread {
            let client = accept(listener.fileDescriptor, nil, nil)
            _ = "hello\n".withCString { write(client, $0, 6) }
            close(client)
        }
        server.start()
        #expect(fetchLine(fromUnixSocket: path, timeoutSeconds: 10) == "hello\n")
    }

    @Test("a non-socket at the path is refused with the path in the error")
    func refusesNonSocket() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("api.sock")
        _ = FileManager.default.createFile(atPath: path, contents: Data("keep me".utf8))
        #expect {
            _ = try SocketActivation.unixStreamListener(named: "api", in: [], orBindAt: path)
        } throws: { error in
            "\(error)".contains(path) && "\(error)".contains("not a socket")
        }
        #expect(FileManager.default.contents(atPath: path) == Data("keep me".utf8))
    }

    @Test("nothing is passed to a process that was not socket-activated")
    func nothingPassed() throws {
        // The test runner is not socket-activated (LISTEN_PID, if set at all, is not this process).
        #expect(try SocketActivation.listenFileDescriptors(unsetEnvironment: false).isEmpty)
    }
}
