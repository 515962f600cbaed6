import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Whether a descriptor is connected to the journal (`JOURNAL_STREAM`, systemd.exec(5)): systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` of the stream it connected stdout/stderr to; the descriptor is the journal's only
/// when its `fstat` device and inode match (a child whose stderr was redirected inherits the variable, but not the
/// match).
public enum JournalStream {
    /// Whether `fileDescriptor` is the stream named by `value` (`"<dev>:<ino>"`, decimal). False for nil or malformed
    /// values. Any thread.
    public static func matches(_ value: String?, fileDescriptor: Int32) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(fileDescriptor, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    /// Whether this process's stderr goes to the journal. Any thread.
    public static var standardErrorIsJournal: Bool {
        matches(getenv("JOURNAL_STREAM").map { String(cString: $0) }, fileDescriptor: STDERR_FILENO)
    }
}

/// Chooses the log backend for a daemon: structured journal entries when systemd connected stderr to the journal,
/// plain lines on stderr otherwise.
public enum SystemdLogging {
    /// A factory for `LoggingSystem.bootstrap`: `JournalLogHandler` with `identifier` when stderr is the journal
    /// stream, else swift-log's `StreamLogHandler` on stderr. Decided once, when called. Main thread, at start-up.
    public static func handlerFactory(identifier: String) -> @Sendable (String) -> any LogHandler {
        if JournalStream.standardErrorIsJournal {
            return { JournalLogHandler(label: $0, identifier: identifier) }
        }
        return { StreamLogHandler.standardError(label: $0) }
    }
}
