import Foundation
import LampCellTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The package's root directory.
let packageRoot = Repository.root

/// Where `swift build` put the products: the directory of the running test bundle.
let binDirectory: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}()

/// A built product; fails the test with a hint when it was not built.
func product(_ name: String) throws -> String {
    let path = binDirectory + "/" + name
    guard FileManager.default.isExecutableFile(atPath: path) else {
        Issue.record("\(path) is missing: run `swift build --build-tests` (it builds every product) first")
        throw CancellationError()
    }
    return path
}

func monotonicNow() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Polls `condition` every few ms until it holds or `timeoutSeconds` passed; returns whether it held.
@discardableResult
func waitUntil(timeoutSeconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNow() + UInt64(timeoutSeconds * 1e9)
    while monotonicNow() < deadline {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}

/// A fresh private directory under /tmp (short: Unix socket paths are limited to 107 bytes), removed by `remove()`.
final class TemporaryDirectory {
    let path: String
    init() throws {
        var template = Array("/tmp/lampcell-sd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        path = String(cString: made)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// One datagram a `DatagramListener` received, with the monotonic time it arrived.
struct ReceivedDatagram: Sendable {
    var bytes: [UInt8]
    var atNanoseconds: UInt64
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A Unix datagram socket the test owns (a NOTIFY_SOCKET, a journal socket) and a thread that records what arrives.
final class DatagramListener: @unchecked Sendable {
    static let maximumDatagramBytes = 256 * 1024
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [ReceivedDatagram] = []
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: Self.maximumDatagramBytes)
            while !lock.withLock({ stopping }) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { continue }
                let datagram = ReceivedDatagram(bytes: Array(buffer[0..<count]), atNanoseconds: monotonicNow())
                lock.withLock { received.append(datagram) }
            }
            done.signal()
        }
        thread.start()
    }

    var datagrams: [ReceivedDatagram] { lock.withLock { received } }

    func stop() {
        lock.withLock { stopping = true }
        done.wait()
        close(fd)
    }
}

/// A child process with its output in files; killed by `terminate()` if still running.
final class ChildProcess {
    let process = Process()
    let outputPath: String

    /// Starts `executable` with `arguments`; the environment is this process's minus every systemd variable, plus
    /// `environment`.
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], outputPath: String) throws {
        self.outputPath = outputPath
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("LISTEN_") || key.hasPrefix("WATCHDOG_")
            || ["NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID"].contains(key)
        {
            env[key] = nil
        }
        env.merge(environment) { $1 }
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = env
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits for the exit; its status, or nil if it was still running after `timeoutSeconds`.
    func waitForExit(timeoutSeconds: Double) -> Int32? {
        guard waitUntil(timeoutSeconds: timeoutSeconds, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func signal(_ number: Int32) { kill(pid, number) }

    func terminate() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Runs a command to completion (bounded); returns its exit status and combined output.
func run(_ executable: String, _ arguments: [String], in directory: String? = nil, timeoutSeconds: Double = 300) throws
    -> (status: Int32, output: String)
{
    let scratch = try TemporaryDirectory()
    defer { scratch.remove() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let outputPath = scratch.file("output")
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()
    if !waitUntil(timeoutSeconds: timeoutSeconds, { !process.isRunning }) {
        kill(process.processIdentifier, SIGKILL)
    }
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
}

/// Parses one datagram of journald's native protocol (systemd.io/JOURNAL_NATIVE_PROTOCOL): fields as
/// `NAME=value\n`, or, for values with a newline, `NAME\n` + 64-bit little-endian length + value + `\n`.
func parseJournalEntry(_ bytes: [UInt8]) -> [(name: String, value: String)]? {
    var fields: [(name: String, value: String)] = []
    var index = 0
    while index < bytes.count {
        guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "=") }) else {
            return nil
        }
        let name = String(decoding: bytes[index..<end], as: UTF8.self)
        if bytes[end] == UInt8(ascii: "=") {
            guard let newline = bytes[end...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            fields.append((name, String(decoding: bytes[(end + 1)..<newline], as: UTF8.self)))
            index = newline + 1
        } else {
            guard end + 9 <= bytes.count else { return nil }
            var length: UInt64 = 0
            for byte in bytes[(end + 1)..<(end + 9)].reversed() { length = length << 8 | UInt64(byte) }
            let start = end + 9
            guard start + Int(length) < bytes.count, bytes[start + Int(length)] == UInt8(ascii: "\n") else { return nil }
            fields.append((name, String(decoding: bytes[start..<(start + Int(length))], as: UTF8.self)))
            index = start + Int(length) + 1
        }
    }
    return fields
}
