import CellCore
import Foundation
import GRDB
import Testing

@testable import Ledger

/// Each test changes a good ledger behind the API's back (a second raw connection, triggers dropped) and checks
/// that `verify` reports the first bad row by serial and reason.
@Suite("Ledger tamper evidence")
struct TamperTests {
    static let entryCount = 12
    /// 1-based position of the row the tests tamper with.
    static let target: Int64 = 5

    /// A ledger of `entryCount` entries, its stored entries and a raw connection without triggers.
    func prepare(_ directory: TemporaryDirectory) throws -> (Ledger, [LedgerEntry], RawDatabase) {
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        var entries = Fixture.entries(count: Self.entryCount)
        // Every text field of the target non-empty, so each can have a byte flipped.
        entries[Int(Self.target) - 1].reasons = "leak_rate 2.5 cm³/min above 2.0"
        var stored: [LedgerEntry] = []
        for start in stride(from: 0, to: entries.count, by: 4) { stored += try writer.append(Array(entries[start..<start + 4])) }
        #expect(try writer.ledger.verify().isValid)
        let raw = try RawDatabase(path: directory.file("ledger.db"))
        try raw.dropTriggers()
        return (writer.ledger, stored, raw)
    }

    /// Flips the lowest bit of the first ASCII letter or digit at or after `offset` (so JSON stays JSON and the
    /// text stays valid UTF-8); a `9` becomes `8`.
    static func flipByte(_ text: String, at offset: Int) -> String {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return "x" }
        var index = min(offset, bytes.count - 1)
        while index < bytes.count - 1, !(bytes[index] < 0x80 && Character(UnicodeScalar(bytes[index])).isLetter
            || bytes[index] < 0x80 && Character(UnicodeScalar(bytes[index])).isNumber)
        {
            index += 1
        }
        bytes[index] = bytes[index] == UInt8(ascii: "9") ? UInt8(ascii: "8") : bytes[index] ^ 1
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test(
        "One flipped byte in one field is detected at that row",
        arguments: [
            "serial", "order_id", "start_utc", "reasons", "software_version", "recipe_sha256", "hash",
            "prev_hash", "measurements", "devices", "lens_lot", "end_wall_ns", "cycle_time_s",
        ])
    func flippedByte(column: String) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        let original = stored[Int(Self.target) - 1]
        switch column {
        case "lens_lot", "end_wall_ns":
            try raw.execute("UPDATE lamp SET \(column) = \(column) + 1 WHERE position = ?", [Self.target])
        case "cycle_time_s":
            try raw.execute("UPDATE lamp SET cycle_time_s = cycle_time_s + 0.001 WHERE position = ?", [Self.target])
        case "measurements":
            // A digit of the leak rate's value.
            let json = try #require(try raw.text("SELECT measurements FROM lamp WHERE position = ?", [Self.target]))
            let leak = try #require(json.range(of: "\"name\":\"leak_rate\""))
            let valueKey = try #require(json.range(of: "\"value\":", range: leak.upperBound..<json.endIndex))
            let offset = json.utf8.distance(from: json.startIndex, to: valueKey.upperBound)
            try raw.execute(
                "UPDATE lamp SET measurements = ? WHERE position = ?", [Self.flipByte(json, at: offset), Self.target])
        default:
            let value = try #require(try raw.text("SELECT \(column) FROM lamp WHERE position = ?", [Self.target]))
            try raw.execute(
                "UPDATE lamp SET \(column) = ? WHERE position = ?", [Self.flipByte(value, at: value.utf8.count / 2), Self.target])
        }
        let result = try ledger.verify()
        let failure = try #require(result.failure)
        #expect(failure.position == Self.target)
        #expect(result.verifiedCount == Self.target - 1)
        if column == "serial" {
            #expect(failure.serial == Self.flipByte(original.serial, at: original.serial.utf8.count / 2))
        } else {
            #expect(failure.serial == original.serial)
        }
        switch failure.reason {
        case .brokenLink: #expect(column == "prev_hash")
        case .hashMismatch(let storedHash, _): #expect(column != "prev_hash" && (column == "hash") == (storedHash != original.hash))
        default: Issue.record("unexpected reason \(failure)")
        }
    }

    @Test("A deleted row is detected at the row after the gap")
    func deletedRow() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        try raw.execute("DELETE FROM lamp WHERE position = ?", [Self.target])
        let failure = try #require(try ledger.verify().failure)
        #expect(failure.serial == stored[Int(Self.target)].serial)
        #expect(failure.position == Self.target + 1)
        #expect(failure.reason == .positionGap(expected: Self.target, found: Self.target + 1))
    }

    @Test("A deleted row with the positions after it renumbered is detected by the broken link")
    func deletedRowRenumbered() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        try raw.execute("DELETE FROM lamp WHERE position = ?", [Self.target])
        try raw.execute("UPDATE lamp SET position = -position WHERE position > ?", [Self.target])
        try raw.execute("UPDATE lamp SET position = -position - 1 WHERE position < 0")
        let failure = try #require(try ledger.verify().failure)
        #expect(failure.serial == stored[Int(Self.target)].serial)
        #expect(failure.position == Self.target)
        guard case .brokenLink(let previousSerial, _, _) = failure.reason else {
            Issue.record("expected a broken link, got \(failure)")
            return
        }
        #expect(previousSerial == stored[Int(Self.target) - 2].serial)
    }

    @Test("A forged row inserted in the middle with a correctly recomputed hash is detected at its successor")
    func forgedRow() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        // Make room after the target, then insert a forged OK lamp chained to the target with a valid hash.
        try raw.execute("UPDATE lamp SET position = -position WHERE position > ?", [Self.target])
        try raw.execute("UPDATE lamp SET position = -position + 1 WHERE position < 0")
        var forged = LedgerEntry(Fixture.goldenLamp(), context: Fixture.context)
        forged.serial = "HL-CELL-01-20261128-99999999"
        forged.verdict = "OK"
        forged.reasons = ""
        forged.position = Self.target + 1
        forged.prevHash = stored[Int(Self.target) - 1].hash
        forged.hash = LedgerCanonical.expectedHash(of: forged)
        try raw.queue.write { db in
            try db.execute(
                sql: LedgerSchema.insertSQL, arguments: LedgerSchema.arguments(forged))
        }
        let result = try ledger.verify()
        let failure = try #require(result.failure)
        // The forged row itself links and hashes correctly; the row after it does not link to it.
        #expect(result.verifiedCount == Self.target + 1)
        #expect(failure.serial == stored[Int(Self.target)].serial)
        #expect(failure.position == Self.target + 2)
        guard case .brokenLink(let previousSerial, let expected, let storedLink) = failure.reason else {
            Issue.record("expected a broken link, got \(failure)")
            return
        }
        #expect(previousSerial == forged.serial)
        #expect(expected == forged.hash)
        #expect(storedLink == stored[Int(Self.target) - 1].hash)
    }

    @Test("Two rows swapped (their positions exchanged) are detected at the first of them")
    func swappedRows() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        try raw.execute("UPDATE lamp SET position = -1 WHERE position = ?", [Self.target])
        try raw.execute("UPDATE lamp SET position = ? WHERE position = ?", [Self.target, Self.target + 1])
        try raw.execute("UPDATE lamp SET position = ? WHERE position = -1", [Self.target + 1])
        let failure = try #require(try ledger.verify().failure)
        #expect(failure.position == Self.target)
        #expect(failure.serial == stored[Int(Self.target)].serial)  // the later row, now first
        guard case .brokenLink = failure.reason else {
            Issue.record("expected a broken link, got \(failure)")
            return
        }
    }

    @Test("A truncated tail passes the chain walk but is caught against a published checkpoint")
    func truncatedTail() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        let checkpoint = try ledger.head()
        #expect(checkpoint == Checkpoint(count: Int64(Self.entryCount), headHash: stored.last!.hash, headSerial: stored.last!.serial))
        // The checkpoint as published in the log parses back.
        #expect(Checkpoint("lampcelld: \(checkpoint)") == checkpoint)
        #expect(try ledger.verify(against: checkpoint).isValid)

        try raw.execute("DELETE FROM lamp WHERE position > ?", [Int64(Self.entryCount - 3)])
        #expect(try ledger.verify().isValid)  // what is left is a valid chain
        let result = try ledger.verify(against: checkpoint)
        let failure = try #require(result.failure)
        #expect(failure.serial == stored.last!.serial)
        #expect(failure.position == Int64(Self.entryCount - 2))
        #expect(
            failure.reason
                == .truncated(
                    checkpointCount: Int64(Self.entryCount), ledgerCount: Int64(Self.entryCount - 3),
                    lastSerial: stored[Self.entryCount - 4].serial))
        #expect(result.verifiedCount == Int64(Self.entryCount - 3))
    }

    @Test("A tail truncated and re-appended with a valid chain is caught as a checkpoint mismatch")
    func rewrittenTail() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        let earlier = Checkpoint(count: 6, headHash: stored[5].hash, headSerial: stored[5].serial)
        let checkpoint = try ledger.head()
        try raw.execute("DELETE FROM lamp WHERE position > 8")
        // Re-append the deleted lamps with one of them changed: a consistent chain, but not the one published.
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        var replacement = Array(stored[8...]).map { entry -> LedgerEntry in
            var copy = entry
            copy.position = 0
            return copy
        }
        replacement[1].reasons = "rewritten after the checkpoint"
        try writer.append(replacement)
        #expect(try ledger.verify().isValid)
        #expect(try ledger.verify(against: earlier).isValid)
        let failure = try #require(try ledger.verify(against: [earlier, checkpoint]).failure)
        #expect(failure.position == Int64(Self.entryCount))
        #expect(failure.serial == stored.last!.serial)
        guard case .checkpointMismatch(let published, _) = failure.reason else {
            Issue.record("expected a checkpoint mismatch, got \(failure)")
            return
        }
        #expect(published == checkpoint)
    }

    @Test("A damaged JSON column is reported as undecodable at its row")
    func undecodableRow() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (ledger, stored, raw) = try prepare(directory)
        try raw.execute("UPDATE lamp SET devices = '[{' WHERE position = ?", [Self.target])
        let failure = try #require(try ledger.verify().failure)
        #expect(failure.serial == stored[Int(Self.target) - 1].serial)
        guard case .undecodable = failure.reason else {
            Issue.record("expected undecodable, got \(failure)")
            return
        }
    }
}
