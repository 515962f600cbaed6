import CellCore
import Foundation
import GRDB
import Glibc
import Testing

@testable import Ledger

/// Prints throughput figures; asserts nothing about speed. Run alone for clean figures:
/// `swift test --filter LedgerBenchmark`.
@Suite("LedgerBenchmark")
struct LedgerBenchmark {
    /// Time budget of each fsync-bound phase.
    static let phaseSeconds = 2.5
    /// Upper bound of appends per fsync-bound phase.
    static let maximumAppends = 5000
    /// Records the verify phase walks.
    static let verifyRecords = 10_000

    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    @Test("Committed appends per second (one fsync per lamp) beside raw SQLite inserts; verify throughput")
    func benchmark() throws {
        let directory = try TemporaryDirectory("ledger-bench")
        defer { directory.remove() }
        let entries = Fixture.entries(count: Self.maximumAppends, seed: 21)

        // Ledger: one transaction (and fsync) per entry, hashing, idempotence check, JSON columns.
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        var ledgerCount = 0
        let ledgerStart = Self.now()
        while ledgerCount < entries.count, Self.now() - ledgerStart < Self.phaseSeconds {
            try writer.append(entries[ledgerCount])
            ledgerCount += 1
        }
        let ledgerSeconds = Self.now() - ledgerStart

        // Raw: the same durability (WAL, synchronous=FULL), a plain INSERT of a comparable row, no hashing.
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let raw = try DatabaseQueue(path: directory.file("raw.db"), configuration: configuration)
        try raw.write { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, serial TEXT UNIQUE, payload TEXT, lot INTEGER)")
        }
        let payload = String(repeating: "x", count: 1200)
        var rawCount = 0
        let rawStart = Self.now()
        while rawCount < entries.count, Self.now() - rawStart < Self.phaseSeconds {
            try raw.write { db in
                try db.execute(
                    sql: "INSERT INTO t (serial, payload, lot) VALUES (?, ?, ?)",
                    arguments: [entries[rawCount].serial, payload, entries[rawCount].lensLot])
            }
            rawCount += 1
        }
        let rawSeconds = Self.now() - rawStart

        // Verify: a ledger of `verifyRecords` entries, appended in batches.
        let big = try LedgerWriter(path: directory.file("verify.db"))
        let bigEntries = Fixture.entries(count: Self.verifyRecords, seed: 22)
        let appendStart = Self.now()
        for start in stride(from: 0, to: bigEntries.count, by: 1000) {
            try big.append(Array(bigEntries[start..<min(start + 1000, bigEntries.count)]))
        }
        let batchSeconds = Self.now() - appendStart
        let verifyStart = Self.now()
        let verification = try big.ledger.verify()
        let verifySeconds = Self.now() - verifyStart
        #expect(verification.isValid && verification.verifiedCount == Int64(Self.verifyRecords))

        func rate(_ count: Int, _ seconds: Double) -> String { String(format: "%.0f/s", Double(count) / seconds) }
        print(
            """
            LedgerBenchmark:
              ledger append, 1 entry per transaction (fsync each): \(ledgerCount) in \(String(format: "%.2f", ledgerSeconds)) s = \(rate(ledgerCount, ledgerSeconds))
              raw SQLite INSERT, 1 per transaction (fsync each):   \(rawCount) in \(String(format: "%.2f", rawSeconds)) s = \(rate(rawCount, rawSeconds))
              ledger append, 1000 entries per transaction:          \(Self.verifyRecords) in \(String(format: "%.2f", batchSeconds)) s = \(rate(Self.verifyRecords, batchSeconds))
              verify:                                               \(Self.verifyRecords) in \(String(format: "%.2f", verifySeconds)) s = \(rate(Self.verifyRecords, verifySeconds))
            """)
    }
}
