import Foundation
import Logging
import Testing

@testable import SystemdSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("Journal log handler")
struct JournalTests {
    @Test("metadata keys become journal field names")
    func fieldNames() {
        #expect(JournalLogHandler.fieldName(forMetadataKey: "lamp_serial") == "LAMP_SERIAL")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "PACKML_STATE") == "PACKML_STATE")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "fault-code") == "FAULT_CODE")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "device.name") == "DEVICE_NAME")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "_pid") == "PID")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "2nd") == "ND")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "message") == "META_MESSAGE")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "priority") == "META_PRIORITY")
        #expect(JournalLogHandler.fieldName(forMetadataKey: "_") == "META_")
        #expect(JournalLogHandler.fieldName(forMetadataKey: String(repeating: "a", count: 100)).utf8.count == 64)
    }

    @Test("priorities follow syslog")
    func priorities() {
        let expected: [(Logger.Level, Int)] = [
            (.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
        ]
        for (level, priority) in expected { #expect(JournalLogHandler.priority(of: level) == priority) }
    }

    @Test("JOURNAL_STREAM matches only the descriptor with that device and inode")
    func journalStream() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let first = open(directory.file("a"), O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        let second = open(directory.file("b"), O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        defer {
            close(first)
            close(second)
        }
        var status = stat()
        #expect(fstat(first, &status) == 0)
        let value = "\(status.st_dev):\(status.st_ino)"
        #expect(JournalStream.matches(value, fileDescriptor: first))
        #expect(!JournalStream.matches(value, fileDescriptor: second))
        #expect(!JournalStream.matches(nil, fileDescriptor: first))
        #expect(!JournalStream.matches("\(status.st_dev)", fileDescriptor: first))
        #expect(!JournalStream.matches("x:\(status.st_ino)", fileDescriptor: first))
        #expect(!JournalStream.matches(value, fileDescriptor: -1))
    }

    /// The real `sd_journal_sendv` path: the probe runs in a private mount namespace (`unshare -m`) in which a socket
    /// this test owns is bind-mounted over /run/systemd/journal/socket (libsystemd always sends there).
    @Test("entries reach the journal socket with PRIORITY, MESSAGE, SYSLOG_IDENTIFIER, CODE_* and metadata fields")
    func entriesOnTheWire() throws {
        let probe = try product("lampcell-systemd-probe")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let journal = try DatagramListener(path: directory.file("journal.sock"))
        defer { journal.stop() }
        let script = """
            mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && : > /run/systemd/journal/socket \
            && mount --bind "$0" /run/systemd/journal/socket && exec "$1" journal lampcell-test
            """
        let result = try run(
            "/usr/bin/unshare", ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, journal.path, probe],
            timeoutSeconds: 60)
        try #require(result.status == 0, "unshare/probe failed: \(result.output)")
        #expect(waitUntil(timeoutSeconds: 5) { journal.datagrams.count == 2 })
        let entries = journal.datagrams.compactMap { parseJournalEntry($0.bytes) }
        try #require(entries.count == 2, "\(journal.datagrams.map(\.text))")

        let warning = Dictionary(entries[0].map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(warning["MESSAGE"]?.hasPrefix("lamp rejected") == true)
        #expect(warning["MESSAGE"]?.contains("lamp_serial=HL-000042") == true)
        #expect(warning["PRIORITY"] == "4")
        #expect(warning["SYSLOG_IDENTIFIER"] == "lampcell-test")
        #expect(warning["CODE_FILE"] == "lampcell_systemd_probe/main.swift")
        #expect(warning["CODE_LINE"].flatMap { Int($0) }.map { $0 > 0 } == true)
        #expect(warning["CODE_FUNC"]?.isEmpty == false)
        #expect(warning["LOGGER_LABEL"] == "probe")
        #expect(warning["LAMP_SERIAL"] == "HL-000042")
        #expect(warning["DEVICE"] == "assembler")
        #expect(warning["FAULT_CODE"] == "0x2a")
        #expect(warning["PACKML_STATE"] == "Held")
        #expect(warning["CELL"] == "HL-CELL-01", "handler metadata is sent too")

        // A message with a newline goes in the protocol's binary form; a colliding key is prefixed.
        let debug = Dictionary(entries[1].map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        #expect(debug["MESSAGE"]?.hasPrefix("two\nlines") == true)
        #expect(debug["PRIORITY"] == "7")
        #expect(debug["META_MESSAGE"] == "collides")
        #expect(journal.datagrams[1].bytes.contains(0), "the binary field form carries a 64-bit length")
    }
}
