import Glibc

/// A Unix socket's address (`sockaddr_un`), for the server's bind and the client's connect. Any thread.
public enum UnixSocketAddress {
    /// Longest socket path in bytes: `sun_path` holds 108 bytes with the terminating NUL.
    public static let maximumPathBytes = 107

    /// Calls `body` with a `sockaddr_un` for `path` (cut at `maximumPathBytes`; callers check the length first).
    public static func with<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(maximumPathBytes))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
