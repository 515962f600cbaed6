// Read access to a ledger database: recovery helpers, queries, verification (Verify.swift), export (Export.swift).

import CellCore
import Foundation
import GRDB

/// The head of the chain at some moment: how many entries and the last one's hash. Published by the daemon in
/// its status and its log every `Checkpoint.publishIntervalLamps` lamps, so that a later `verify(against:)` can
/// tell a truncated or rewritten tail (see docs/LEDGER.md).
public struct Checkpoint: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Lamps between two checkpoints the daemon writes to its log.
    public static let publishIntervalLamps: Int64 = 100

    /// Entries in the ledger (= position of the head entry).
    public var count: Int64
    /// `hash` of the entry at `count` (64 zeros when empty).
    public var headHash: String
    /// Serial of the entry at `count` (empty when empty), to name it when it goes missing.
    public var headSerial: String

    /// The checkpoint of an empty ledger.
    public static let genesis = Checkpoint(count: 0, headHash: LedgerCanonical.genesisHash, headSerial: "")

    /// Creates a checkpoint.
    public init(count: Int64, headHash: String, headSerial: String) {
        self.count = count
        self.headHash = headHash
        self.headSerial = headSerial
    }

    /// Parses the `description` form (`ledger-checkpoint count=<n> head=<hash> serial=<serial>`), e.g. copied from
    /// the log; nil when it is not one.
    public init?(_ text: String) {
        var fields: [Substring: Substring] = [:]
        let words = text.split(separator: " ")
        guard let start = words.firstIndex(of: "ledger-checkpoint") else { return nil }
        for word in words[(start + 1)...] {
            guard let equals = word.firstIndex(of: "=") else { continue }
            fields[word[..<equals]] = word[word.index(after: equals)...]
        }
        guard let countText = fields["count"], let count = Int64(countText), count >= 0,
            let head = fields["head"], head.count == 64, head.allSatisfy({ $0.isHexDigit && !$0.isUppercase })
        else { return nil }
        self.init(count: count, headHash: String(head), headSerial: String(fields["serial"] ?? ""))
    }

    /// `ledger-checkpoint count=<n> head=<hash> serial=<serial>` (the log line's text).
    public var description: String { "ledger-checkpoint count=\(count) head=\(headHash) serial=\(headSerial)" }
}

/// Which entries a query, an export or a count is about. Every set field must match (AND); nil fields do not
/// restrict. Results come in chain order (ascending `position`).
public struct LedgerFilter: Sendable, Equatable {
    /// Exactly this serial.
    public var serial: String?
    /// Entries that ended (left the cell) at or after this wall time, ns since the epoch.
    public var endedAtOrAfterWallNanoseconds: Int64?
    /// Entries that ended before this wall time, ns since the epoch.
    public var endedBeforeWallNanoseconds: Int64?
    /// Housing lot (recall query; indexed).
    public var housingLot: Int64?
    /// LED module lot (recall query; indexed).
    public var ledModuleLot: Int64?
    /// Lens lot (recall query; indexed).
    public var lensLot: Int64?
    /// Verdict.
    public var verdict: LampVerdict?
    /// Chain positions (inclusive).
    public var positions: ClosedRange<Int64>?
    /// At most this many entries (the first ones in chain order).
    public var limit: Int?

    /// Creates a filter; no arguments means every entry.
    public init(
        serial: String? = nil, endedAtOrAfterWallNanoseconds: Int64? = nil, endedBeforeWallNanoseconds: Int64? = nil,
        housingLot: Int64? = nil, ledModuleLot: Int64? = nil, lensLot: Int64? = nil, verdict: LampVerdict? = nil,
        positions: ClosedRange<Int64>? = nil, limit: Int? = nil
    ) {
        self.serial = serial
        self.endedAtOrAfterWallNanoseconds = endedAtOrAfterWallNanoseconds
        self.endedBeforeWallNanoseconds = endedBeforeWallNanoseconds
        self.housingLot = housingLot
        self.ledModuleLot = ledModuleLot
        self.lensLot = lensLot
        self.verdict = verdict
        self.positions = positions
        self.limit = limit
    }

    /// Every entry.
    public static let all = LedgerFilter()

    /// The `WHERE … ORDER BY … LIMIT` clause and its arguments.
    func sqlClause() -> (sql: String, arguments: StatementArguments) {
        var conditions: [String] = []
        var values: [(any DatabaseValueConvertible)?] = []
        func add(_ condition: String, _ value: (any DatabaseValueConvertible)?) {
            conditions.append(condition)
            values.append(value)
        }
        if let serial { add("serial = ?", serial) }
        if let endedAtOrAfterWallNanoseconds { add("end_wall_ns >= ?", endedAtOrAfterWallNanoseconds) }
        if let endedBeforeWallNanoseconds { add("end_wall_ns < ?", endedBeforeWallNanoseconds) }
        if let housingLot { add("housing_lot = ?", housingLot) }
        if let ledModuleLot { add("led_module_lot = ?", ledModuleLot) }
        if let lensLot { add("lens_lot = ?", lensLot) }
        if let verdict { add("verdict = ?", verdict.name) }
        if let positions {
            add("position >= ?", positions.lowerBound)
            add("position <= ?", positions.upperBound)
        }
        var sql = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        sql += " ORDER BY position"
        if let limit { sql += " LIMIT \(max(0, limit))" }
        return (sql, StatementArguments(values))
    }
}

/// A ledger database opened for reading: recovery helpers, queries, `verify`, export.
///
/// Thread-safe: every method may be called from any thread (GRDB serializes access to the connection). Each call
/// reads one consistent snapshot. Long calls (verify, export of everything) hold the connection for their
/// duration; the daemon runs them on a read-only `Ledger` of its own so the writer is not delayed (WAL lets a
/// reader and the writer work at the same time).
public final class Ledger: Sendable {
    /// How long a connection waits for another connection's lock before failing with `.busy`.
    public static let busyTimeoutSeconds: Double = 2

    /// The database file.
    public let path: String
    /// True for a `openReadOnly` ledger.
    public let isReadOnly: Bool
    let database: DatabaseQueue

    init(path: String, database: DatabaseQueue, isReadOnly: Bool) {
        self.path = path
        self.database = database
        self.isReadOnly = isReadOnly
    }

    /// Opens an existing ledger read-only (the CLI, the daemon's verifier). Thread: any.
    /// - Throws: `.cannotOpen` when the file is missing or unreadable, `.notALedger` when it has no ledger schema,
    ///   `.unknownSchema` when it was written by newer software.
    public static func openReadOnly(path: String) throws(LedgerError) -> Ledger {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .cannotOpen(
                SQLiteFailure(extendedCode: 14, message: "no such file", operation: "open \(path) read-only"))
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.label = "ledger-reader"
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw LedgerError.from(error, operation: "open \(path) read-only")
        }
        let ledger = Ledger(path: path, database: database, isReadOnly: true)
        try ledger.checkSchema()
        return ledger
    }

    /// Throws unless the schema is exactly one this software knows.
    func checkSchema() throws(LedgerError) {
        let applied = try read("read schema") { db in try LedgerSchema.migrator.appliedIdentifiers(db) }
        let unknown = applied.filter { !LedgerSchema.migrationIdentifiers.contains($0) }.sorted()
        guard unknown.isEmpty else { throw .unknownSchema(path: path, migrations: unknown) }
        guard applied.contains("v1-lamp-table") else { throw .notALedger(path: path) }
    }

    /// Runs `body` in one read transaction, mapping errors.
    func read<T>(_ operation: @autoclosure () -> String, _ body: (Database) throws -> T) throws(LedgerError) -> T {
        do {
            return try database.read(body)
        } catch {
            throw LedgerError.from(error, operation: "\(operation()) (\(path))")
        }
    }

    // MARK: Recovery helpers

    /// Number of entries. Thread: any.
    public func count() throws(LedgerError) -> Int64 {
        try read("count entries") { db in try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM lamp") ?? 0 }
    }

    /// The head as a checkpoint: count and the last entry's hash (`Checkpoint.genesis` when empty). Thread: any.
    public func head() throws(LedgerError) -> Checkpoint {
        try read("read head") { db in try Self.head(db) }
    }

    static func head(_ db: Database) throws -> Checkpoint {
        // Cached: the writer asks for the head on every append, and compiling a statement costs more than running it.
        let statement = try db.cachedStatement(sql: "SELECT position, hash, serial FROM lamp ORDER BY position DESC LIMIT 1")
        guard let row = try Row.fetchOne(statement)
        else { return .genesis }
        return Checkpoint(
            count: try row.decode(atIndex: 0), headHash: try row.decode(atIndex: 1), headSerial: try row.decode(atIndex: 2))
    }

    /// The last entry in chain order (the last one committed), or nil when empty. Thread: any.
    public func lastEntry() throws(LedgerError) -> LedgerEntry? {
        try tail(1).last
    }

    /// The highest `serialSequence` recorded (0 when empty): a floor for the serial allocator at start.
    /// Thread: any.
    public func highestSerialSequence() throws(LedgerError) -> UInt64 {
        let value = try read("read highest serial sequence") { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(serial_sequence) FROM lamp") ?? 0
        }
        return UInt64(clamping: value)
    }

    // MARK: Queries

    /// The entry with `serial`, or nil. Thread: any.
    public func entry(serial: String) throws(LedgerError) -> LedgerEntry? {
        try entries(matching: LedgerFilter(serial: serial)).first
    }

    /// The last `count` entries in chain order (oldest first). Thread: any.
    public func tail(_ count: Int) throws(LedgerError) -> [LedgerEntry] {
        let decoder = LedgerSchema.makeDecoder()
        let rows = try read("read tail") { db in
            try Row.fetchAll(
                db, sql: "SELECT \(LedgerSchema.columnList) FROM lamp ORDER BY position DESC LIMIT ?",
                arguments: [max(0, count)])
        }
        var entries: [LedgerEntry] = []
        for row in rows.reversed() { entries.append(try LedgerSchema.entry(row, decoder: decoder)) }
        return entries
    }

    /// Every entry matching `filter`, in chain order, loaded into memory (use `forEachEntry` for large results).
    /// Thread: any.
    public func entries(matching filter: LedgerFilter) throws(LedgerError) -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        try forEachEntry(matching: filter) { entries.append($0) }
        return entries
    }

    /// Number of entries matching `filter` (its `limit` ignored). Thread: any.
    public func count(matching filter: LedgerFilter) throws(LedgerError) -> Int64 {
        var unlimited = filter
        unlimited.limit = nil
        let clause = unlimited.sqlClause()
        return try read("count entries") { db in
            try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM lamp" + clause.sql, arguments: clause.arguments) ?? 0
        }
    }

    /// Calls `body` with each entry matching `filter`, in chain order, one row at a time from a database cursor
    /// (memory does not grow with the result). `body` runs inside the read; an error it throws ends the walk and
    /// is rethrown. Thread: any.
    public func forEachEntry(
        matching filter: LedgerFilter, _ body: (LedgerEntry) throws(LedgerError) -> Void
    ) throws(LedgerError) {
        let clause = filter.sqlClause()
        let decoder = LedgerSchema.makeDecoder()
        try read("query entries") { db in
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT \(LedgerSchema.columnList) FROM lamp" + clause.sql, arguments: clause.arguments)
            while let row = try cursor.next() {
                try body(try LedgerSchema.entry(row, decoder: decoder))
            }
        }
    }

    /// The SQLite query plan of the query `filter` makes (to check that the recall query uses its index).
    public func queryPlan(matching filter: LedgerFilter) throws(LedgerError) -> String {
        let clause = filter.sqlClause()
        return try read("explain query") { db in
            try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN SELECT \(LedgerSchema.columnList) FROM lamp" + clause.sql,
                arguments: clause.arguments
            ).map { row in (try? row.decode(String.self, forColumn: "detail")) ?? "" }.joined(separator: "\n")
        }
    }
}
