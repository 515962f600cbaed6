import CSystemd

#if canImport(Glibc)
import Glibc
#endif

/// One file descriptor the service manager passed (`LISTEN_FDS`), with its name (`FileDescriptorName=` in the socket
/// unit, `--fdname=` of `systemd-socket-activate`; `"unknown"` when unnamed).
public struct ListenedFileDescriptor: Sendable, Equatable {
    /// The descriptor, from `SocketActivation.firstFileDescriptor` on; close-on-exec is set.
    public var fileDescriptor: Int32
    /// Its name.
    public var name: String

    public init(fileDescriptor: Int32, name: String) {
        self.fileDescriptor = fileDescriptor
        self.name = name
    }

    /// Whether it is a listening Unix stream socket (`sd_is_socket_unix`). Any thread.
    public var isListeningUnixStreamSocket: Bool {
        sd_is_socket_unix(fileDescriptor, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }
}

/// A listening socket the service uses, and where it came from.
public struct ListeningSocket: Sendable, Equatable {
    /// The listening descriptor; the caller owns it.
    public var fileDescriptor: Int32
    /// True when the service manager passed it (socket activation), false when this process bound it itself.
    public var activated: Bool
}

/// Socket activation (`sd_listen_fds_with_names(3)`): the sockets a service manager (or `systemd-socket-activate`)
/// opened for the service and passed from descriptor 3 on, with their names; and a fallback that binds a Unix socket
/// itself when it was not passed.
public enum SocketActivation {
    /// The first passed descriptor (`SD_LISTEN_FDS_START`).
    public static let firstFileDescriptor: Int32 = 3
    /// Listen backlog of sockets bound by `unixStreamListener` itself.
    public static let defaultBacklog: Int32 = 16
    /// Longest Unix socket path, bytes (`sun_path` minus the terminating NUL).
    public static let maximumUnixPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// The descriptors passed to this process (none when `LISTEN_PID` is not this process or `LISTEN_FDS` is unset).
    /// With `unsetEnvironment` (the default) the `LISTEN_*` variables are removed so children do not inherit them;
    /// a second call then returns nothing. Call once, early, from the main thread (it may change the environment).
    public static func listenFileDescriptors(unsetEnvironment: Bool = true) throws(SystemdError) -> [ListenedFileDescriptor] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(unsetEnvironment ? 1 : 0, &names)
        guard count >= 0 else { throw SystemdError("sd_listen_fds_with_names", errorNumber: -count) }
        defer {
            if let names {
                for index in 0..<Int(count) { free(names[index]) }
                free(names)
            }
        }
        var result: [ListenedFileDescriptor] = []
        for index in 0..<count {
            let name = names?[Int(index)].map { String(cString: $0) } ?? "unknown"
            result.append(ListenedFileDescriptor(fileDescriptor: firstFileDescriptor + index, name: name))
        }
        return result
    }

    /// The listening Unix stream socket named `name` among `passed` (from `listenFileDescriptors`), or, when there is
    /// none, one bound here at `path` (a stale socket file there is replaced) with permission bits `mode` and
    /// listening with `backlog`. Throws with the path when binding fails, or when the passed descriptor of that name
    /// is not a listening Unix stream socket. Any thread (start-up).
    public static func unixStreamListener(
        named name: String, in passed: [ListenedFileDescriptor], orBindAt path: String, mode: mode_t = 0o666,
        backlog: Int32 = defaultBacklog
    ) throws(SystemdError) -> ListeningSocket {
        if let activated = passed.first(where: { $0.name == name }) {
            guard activated.isListeningUnixStreamSocket else {
                throw SystemdError(
                    "socket activation: descriptor \(activated.fileDescriptor) named \(name) is not a listening Unix stream socket",
                    errorNumber: ENOTSOCK)
            }
            return ListeningSocket(fileDescriptor: activated.fileDescriptor, activated: true)
        }
        return ListeningSocket(fileDescriptor: try bindUnixStream(path: path, mode: mode, backlog: backlog), activated: false)
    }

    /// Binds and listens on a Unix stream socket at `path` (replacing a stale socket file), close-on-exec.
    public static func bindUnixStream(path: String, mode: mode_t, backlog: Int32) throws(SystemdError) -> Int32 {
        guard path.utf8.count <= maximumUnixPathBytes else {
            throw SystemdError("bind \(path): path longer than \(maximumUnixPathBytes) bytes", errorNumber: ENAMETOOLONG)
        }
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard (existing.st_mode & S_IFMT) == S_IFSOCK else {
                throw SystemdError("bind \(path): exists and is not a socket", errorNumber: EEXIST)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemdError("socket for \(path)", errorNumber: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SystemdError("bind \(path)", errorNumber: code)
        }
        guard chmod(path, mode) == 0 else {
            let code = errno
            close(fd)
            throw SystemdError("chmod \(path)", errorNumber: code)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SystemdError("listen \(path)", errorNumber: code)
        }
        return fd
    }
}
