import ControlAPIClient
import Foundation
import Glibc

/// Why the API could not start; the message names the socket path and what failed.
public struct APIStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The listening Unix socket and the thread that accepts on it.
///
/// The socket file is created with mode 0666 (any local user may connect; commands are checked per connection).
/// A socket file left by a crashed daemon is removed when nobody listens on it; when another process does listen,
/// start-up fails rather than steal its socket. The accept thread reads each peer's credentials on the raw
/// descriptor and hands the connection on; `close()` stops it and removes the socket file.
final class UnixListener: @unchecked Sendable {
    /// Pending connections the kernel queues before accept.
    static let backlog: Int32 = 128

    let path: String
    private let descriptor: Int32
    /// The socket was passed by the service manager: not ours to remove.
    private let adopted: Bool
    /// A pipe: writing to [1] wakes the accept thread to stop.
    private let wakePipe: (read: Int32, write: Int32)
    private var thread: Thread?
    private let finished = NSCondition()
    private var running = false

    /// Serves a listening socket passed by the service manager (socket activation). Start-up thread.
    init(adopting fd: Int32, path: String) throws {
        self.path = path
        adopted = true
        descriptor = fd
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw APIStartError("API socket \(path) (activated fd \(fd)): pipe(): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        wakePipe = (ends[0], ends[1])
    }

    /// Binds and listens on `path` (creating its directory, mode 0755, when missing). Start-up thread.
    init(path: String) throws {
        self.path = path
        adopted = false
        guard path.utf8.count <= UnixSocketAddress.maximumPathBytes else {
            throw APIStartError("API socket \(path): the path is \(path.utf8.count) bytes; at most \(UnixSocketAddress.maximumPathBytes) fit")
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            } catch {
                throw APIStartError("API socket \(path): cannot create directory \(directory): \(error)")
            }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw APIStartError("API socket \(path): socket(): \(String(cString: strerror(errno)))") }
        do {
            try Self.bind(fd, path: path)
            // Mode 0666 whatever the umask: every local user may connect (and read); POST is checked per peer.
            guard chmod(path, 0o666) == 0 else {
                throw APIStartError("API socket \(path): chmod 0666: \(String(cString: strerror(errno)))")
            }
            guard listen(fd, Self.backlog) == 0 else {
                throw APIStartError("API socket \(path): listen(): \(String(cString: strerror(errno)))")
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
        descriptor = fd
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            Glibc.close(fd)
            throw APIStartError("API socket \(path): pipe(): \(String(cString: strerror(errno)))")
        }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        wakePipe = (ends[0], ends[1])
    }

    /// Binds, removing a stale socket file (nobody accepts on it) once.
    private static func bind(_ fd: Int32, path: String) throws {
        for attempt in 0..<2 {
            let result = UnixSocketAddress.with(path) { address, length in Glibc.bind(fd, address, length) }
            if result == 0 { return }
            let bindError = errno
            guard bindError == EADDRINUSE, attempt == 0 else {
                throw APIStartError("API socket \(path): bind(): \(String(cString: strerror(bindError)))")
            }
            if isListenedOn(path) {
                throw APIStartError("API socket \(path): another process is listening on it (is lampcelld already running?)")
            }
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else {
                throw APIStartError("API socket \(path): the path exists and is not a socket; not removing it")
            }
            guard unlink(path) == 0 else {
                throw APIStartError("API socket \(path): cannot remove the stale socket: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// True when a connect to `path` succeeds (a live listener).
    static func isListenedOn(_ path: String) -> Bool {
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { Glibc.close(probe) }
        return UnixSocketAddress.with(path) { address, length in connect(probe, address, length) } == 0
    }

    /// Starts the accept thread; `accepted` runs on it for each connection with the peer's credentials (nil
    /// when the kernel gave none) and owns the descriptor from then on. Once.
    func start(nice: Int32, accepted: @escaping @Sendable (Int32, PeerCredentials?) -> Void) {
        running = true
        let listenDescriptor = descriptor
        let wake = wakePipe.read
        let thread = Thread { [self] in
            APIServer.lowerPriority(nice)
            var fds = [
                pollfd(fd: listenDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
            ]
            while true {
                fds[0].revents = 0
                fds[1].revents = 0
                let ready = poll(&fds, 2, -1)
                if ready < 0 {
                    if errno == EINTR { continue }
                    break
                }
                if fds[1].revents != 0 { break }
                guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
                let connection = accept(listenDescriptor, nil, nil)
                if connection < 0 {
                    // EMFILE/ENFILE: back off briefly instead of spinning; the client stays queued.
                    if errno == EMFILE || errno == ENFILE { usleep(50_000) }
                    continue
                }
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                accepted(connection, PeerCredentials.read(descriptor: connection))
            }
            finished.lock()
            running = false
            finished.broadcast()
            finished.unlock()
        }
        thread.name = "lampcell-api-accept"
        self.thread = thread
        thread.start()
    }

    /// Stops accepting, waits for the accept thread, closes the socket and removes the socket file. Any thread.
    func close() {
        var one: UInt8 = 1
        _ = write(wakePipe.write, &one, 1)
        finished.lock()
        while running && thread != nil { finished.wait() }
        finished.unlock()
        Glibc.close(descriptor)
        Glibc.close(wakePipe.read)
        Glibc.close(wakePipe.write)
        if !adopted { unlink(path) }
    }
}
