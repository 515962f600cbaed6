import Foundation

/// Replaces a small file atomically and durably: write a temporary file beside it, fsync, rename over the old
/// one, fsync the directory. After a crash the file holds either the old or the new content, never a mix.
/// Thread: any thread that may block on disk (never the control thread).
public enum DurableFile {
    /// Writes `data` to `path`; throws a message naming the file that could not be written.
    public static func write(_ data: Data, to path: String) throws(DurableFileError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DurableFileError(path: temporary, message: "cannot create: \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0 else {
            throw DurableFileError(path: temporary, message: "cannot write: \(String(cString: strerror(errno)))")
        }
        guard rename(temporary, path) == 0 else {
            throw DurableFileError(path: path, message: "cannot replace: \(String(cString: strerror(errno)))")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}

/// A file `DurableFile` could not write, and why.
public struct DurableFileError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}
