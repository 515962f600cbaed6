import CellCore
import Foundation
import GRDB
import Glibc
import Testing

@testable import Ledger

/// A small tmpfs mounted for one test (needs root and mount permission).
struct SmallFilesystem {
    let directory: TemporaryDirectory

    /// True when this process may mount a tmpfs (root in a privileged container or on a host).
    static let isAvailable: Bool = {
        guard getuid() == 0, let probe = try? TemporaryDirectory("ledger-mount-probe") else { return false }
        defer { probe.remove() }
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.path]) else { return false }
        return run("/bin/umount", [probe.path])
    }()

    init(sizeKilobytes: Int) throws {
        directory = try TemporaryDirectory("ledger-tmpfs")
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKilobytes)k", "tmpfs", directory.path]) else {
            directory.remove()
            throw CocoaError(.fileWriteNoPermission)
        }
    }

    func unmount() {
        if !Self.run("/bin/umount", [directory.path]) { _ = Self.run("/bin/umount", ["-l", directory.path]) }
        directory.remove()
    }

    /// Writes a file of zeros until the filesystem is full; returns its path.
    func fill() throws -> String {
        let path = directory.file("filler")
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let written = chunk.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written <= 0 { break }
        }
        // Any last partial page.
        while chunk.withUnsafeBytes({ write(descriptor, $0.baseAddress, 1) }) > 0 {}
        return path
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return false
        }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

@Suite("Ledger disk full")
struct DiskFullTests {
    /// Entries with long reasons so a batch needs many fresh pages.
    static func bulkyEntries(count: Int, firstSequence: UInt64) -> [LedgerEntry] {
        Fixture.entries(count: count, seed: 9, firstSequence: firstSequence).map { entry in
            var copy = entry
            copy.reasons = String(repeating: "operator note \(entry.serialSequence); ", count: 30)
            return copy
        }
    }

    @Test(
        "On a full filesystem (real tmpfs) append fails with diskFull, stores nothing, and succeeds after space is freed",
        .enabled(if: SmallFilesystem.isAvailable, "needs permission to mount a tmpfs"))
    func tmpfsFull() throws {
        let filesystem = try SmallFilesystem(sizeKilobytes: 1024)
        defer { filesystem.unmount() }
        let path = filesystem.directory.file("ledger.db")
        do {
            let writer = try LedgerWriter(path: path)
            let early = try writer.append(Array(Fixture.entries(count: 3, seed: 9)))
            let filler = try filesystem.fill()
            let batch = Self.bulkyEntries(count: 150, firstSequence: 100)
            #expect {
                try writer.append(batch)
            } throws: { error in
                guard case .diskFull(let failure) = error as? LedgerError else {
                    Issue.record("expected diskFull, got \(error)")
                    return false
                }
                return failure.primaryCode == 13 && failure.operation.contains(path)
            }
            // Nothing partial: the ledger is what it was.
            #expect(try writer.ledger.entries(matching: .all) == early)
            #expect(try writer.ledger.verify().isValid)

            try FileManager.default.removeItem(atPath: filler)
            let stored = try writer.append(batch)
            #expect(stored.count == 150 && stored.first?.position == 4)
            #expect(try writer.ledger.count() == 153)
            #expect(try writer.ledger.verify().isValid)
        }
        do {
            // Reopened from the file: everything is there.
            let reader = try Ledger.openReadOnly(path: path)
            #expect(try reader.count() == 153)
            #expect(try reader.verify().isValid)
        }
    }

    @Test("A database at its page limit (PRAGMA max_page_count) fails with diskFull, then recovers")
    func pageLimitFull() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let early = try writer.append(Array(Fixture.entries(count: 3, seed: 9)))
        try writer.ledger.database.writeWithoutTransaction { db in
            let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            try db.execute(sql: "PRAGMA max_page_count = \(pages + 1)")
        }
        let batch = Self.bulkyEntries(count: 100, firstSequence: 100)
        #expect {
            try writer.append(batch)
        } throws: { error in
            guard case .diskFull = error as? LedgerError else { return false }
            return true
        }
        #expect(try writer.ledger.entries(matching: .all) == early)
        try writer.ledger.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = 1000000")
        }
        try writer.append(batch)
        #expect(try writer.ledger.count() == 103)
        #expect(try writer.ledger.verify().isValid)
    }
}
