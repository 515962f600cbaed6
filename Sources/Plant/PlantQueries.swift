// Queries across cells on the plant database (`lampctl plant …`): recall by lot, by serial, by time and verdict,
// counts per cell and shift with OEE quality, export, and the verification of each cell's whole chain.

import Foundation
import Ledger

/// Which central rows a query is about. Every set field must match (AND); nil fields do not restrict.
public struct PlantFilter: Sendable, Equatable {
    /// Only this cell.
    public var cellID: String?
    /// Exactly this serial.
    public var serial: String?
    /// The recall query: lamps holding this lot, of the given kind (nil: housing, LED module or lens).
    public var lot: Int64?
    public var lotKind: LotKind?
    /// Lamps that left their cell in [from, to), ns since the epoch.
    public var endedAtOrAfterWallNanoseconds: Int64?
    public var endedBeforeWallNanoseconds: Int64?
    /// `OK`, `NG` or `SCRAPPED`.
    public var verdict: String?
    /// At most this many rows.
    public var limit: Int?

    /// The three lots a lamp records.
    public enum LotKind: String, Sendable, CaseIterable {
        case housing, led, lens
        /// The column holding it.
        var column: String {
            switch self {
            case .housing: "housing_lot"
            case .led: "led_module_lot"
            case .lens: "lens_lot"
            }
        }
    }

    public init(
        cellID: String? = nil, serial: String? = nil, lot: Int64? = nil, lotKind: LotKind? = nil,
        endedAtOrAfterWallNanoseconds: Int64? = nil, endedBeforeWallNanoseconds: Int64? = nil,
        verdict: String? = nil, limit: Int? = nil
    ) {
        self.cellID = cellID
        self.serial = serial
        self.lot = lot
        self.lotKind = lotKind
        self.endedAtOrAfterWallNanoseconds = endedAtOrAfterWallNanoseconds
        self.endedBeforeWallNanoseconds = endedBeforeWallNanoseconds
        self.verdict = verdict
        self.limit = limit
    }

    /// `WHERE …` (or empty) and its parameters, every value a parameter.
    func whereClause() -> (sql: String, parameters: [String?]) {
        var conditions: [String] = []
        var parameters: [String?] = []
        func add(_ condition: (String) -> String, _ value: String) {
            parameters.append(value)
            conditions.append(condition("$\(parameters.count)"))
        }
        if let cellID { add({ "cell_id = \($0)" }, cellID) }
        if let serial { add({ "serial = \($0)" }, serial) }
        if let lot {
            if let lotKind {
                add({ "\(lotKind.column) = \($0)" }, String(lot))
            } else {
                add({ "(housing_lot = \($0) OR led_module_lot = \($0) OR lens_lot = \($0))" }, String(lot))
            }
        }
        if let from = endedAtOrAfterWallNanoseconds { add({ "end_wall_ns >= \($0)" }, String(from)) }
        if let to = endedBeforeWallNanoseconds { add({ "end_wall_ns < \($0)" }, String(to)) }
        if let verdict { add({ "verdict = \($0)" }, verdict) }
        return (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "), parameters)
    }
}

/// One cell's counts in one shift (or over the whole filter when not by shift).
public struct PlantCounts: Sendable, Equatable {
    public var cellID: String
    /// Start of the shift, ns since the epoch; nil when not counted by shift.
    public var shiftStartWallNanoseconds: Int64?
    public var total: Int64
    public var ok: Int64
    public var ng: Int64
    public var scrapped: Int64
    /// OEE quality: good lamps over all lamps (PackML: good count / total count); nil with no lamps.
    public var quality: Double? { total > 0 ? Double(ok) / Double(total) : nil }
}

/// The result of walking one cell's central chain.
public struct PlantChainVerification: Sendable, Equatable, CustomStringConvertible {
    public var cellID: String
    /// Entries checked (all of them when valid).
    public var verifiedCount: Int64
    /// The server's recorded head for the cell.
    public var headPosition: Int64
    /// The first problem, nil when the chain is whole.
    public var failure: String?

    public var isValid: Bool { failure == nil }

    public var description: String {
        if let failure { return "\(cellID): INVALID after \(verifiedCount) entries: \(failure)" }
        return "\(cellID): OK, \(verifiedCount) entries, head position \(headPosition)"
    }
}

/// Queries of the plant database. Thread: whichever owns the connection.
public enum PlantQueries {
    /// Rows fetched per round trip when walking a large result with a cursor.
    public static let fetchRows = 2_000

    /// Calls `body` with each lamp matching `filter`, ordered by cell and position, decoded from its canonical text
    /// (the exact entry the cell recorded). Walks a server-side cursor, `fetchRows` at a time, so memory does not
    /// grow with the result. Throws when a row's text is not a ledger entry. Runs in a read-only transaction of its
    /// own, or in the caller's when `inTransaction` (one snapshot for several reads).
    public static func forEachLamp(
        _ connection: PostgresConnection, matching filter: PlantFilter, inTransaction: Bool = false,
        _ body: (LedgerEntry) throws -> Void
    ) throws {
        let clause = filter.whereClause()
        var sql = "SELECT position, canonical, prev_hash, hash, cell_id FROM lampcell.lamp\(clause.sql) ORDER BY cell_id, position"
        if let limit = filter.limit { sql += " LIMIT \(max(0, limit))" }
        if !inTransaction { try connection.executeScript("BEGIN READ ONLY", operation: "query lamps") }
        defer {
            if inTransaction {
                _ = try? connection.executeScript("CLOSE lamps", operation: "close the cursor")
            } else {
                _ = try? connection.executeScript("COMMIT", operation: "end the query")
            }
        }
        try connection.execute("DECLARE lamps NO SCROLL CURSOR FOR \(sql)", clause.parameters, operation: "query lamps")
        while true {
            let rows = try connection.execute("FETCH \(fetchRows) FROM lamps", operation: "fetch lamps").rows
            for row in rows {
                guard let canonical = row[1], let prevHash = row[2], let hash = row[3],
                    let entry = LedgerCanonical.decode(canonical, prevHash: prevHash, hash: hash)
                else {
                    throw PlantError(
                        operation: "decode lamp", message: "cell \(row[4] ?? "?") position \(row[0] ?? "?") is not a ledger entry")
                }
                try body(entry)
            }
            if rows.count < fetchRows { break }
        }
    }

    /// Every lamp matching `filter` (see `forEachLamp`), in memory.
    public static func lamps(_ connection: PostgresConnection, matching filter: PlantFilter) throws -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        try forEachLamp(connection, matching: filter) { entries.append($0) }
        return entries
    }

    /// Lamp counts by verdict per cell, and per shift when `shiftHours` is given: shifts of `shiftHours` hours,
    /// the first starting `firstShiftStartSeconds` after midnight UTC.
    public static func counts(
        _ connection: PostgresConnection, matching filter: PlantFilter, shiftHours: Int? = nil,
        firstShiftStartSeconds: Int = 0
    ) throws(PlantError) -> [PlantCounts] {
        let clause = filter.whereClause()
        let shift: String
        if let shiftHours {
            precondition(shiftHours > 0 && 24 % shiftHours == 0, "shifts must divide the day")
            let length = Int64(shiftHours) * 3_600_000_000_000
            let offset = Int64(firstShiftStartSeconds) * 1_000_000_000
            shift = "(floor((end_wall_ns - \(offset))::numeric / \(length)) * \(length) + \(offset))::bigint"
        } else {
            shift = "NULL::bigint"
        }
        let rows = try connection.execute(
            """
            SELECT cell_id, \(shift) AS shift, count(*), count(*) FILTER (WHERE verdict = 'OK'),
              count(*) FILTER (WHERE verdict = 'NG'), count(*) FILTER (WHERE verdict = 'SCRAPPED')
            FROM lampcell.lamp\(clause.sql) GROUP BY 1, 2 ORDER BY 1, 2
            """, clause.parameters, operation: "count lamps"
        ).rows
        return rows.map { row in
            PlantCounts(
                cellID: row[0] ?? "?", shiftStartWallNanoseconds: row[1].flatMap { Int64($0) },
                total: Int64(row[2] ?? "0") ?? 0, ok: Int64(row[3] ?? "0") ?? 0, ng: Int64(row[4] ?? "0") ?? 0,
                scrapped: Int64(row[5] ?? "0") ?? 0)
        }
    }

    /// The cells registered on the server, in order.
    public static func cells(_ connection: PostgresConnection) throws(PlantError) -> [String] {
        try connection.execute("SELECT cell_id FROM lampcell.cell ORDER BY cell_id", operation: "list cells").rows
            .compactMap { $0[0] }
    }

    /// Walks cell `cellID`'s whole central chain on this side of the wire: positions 1, 2, … without a gap, each
    /// `prev_hash` the hash before it, each hash recomputed from the canonical text, and the last one the server's
    /// recorded head.
    /// The head and the rows are read in one snapshot, so a cell committing meanwhile cannot make a whole chain
    /// look broken.
    public static func verify(_ connection: PostgresConnection, cellID: String) throws -> PlantChainVerification {
        try connection.executeScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", operation: "verify \(cellID)")
        defer { _ = try? connection.executeScript("COMMIT", operation: "end the verification") }
        let head = try connection.execute(
            "SELECT position, hash FROM lampcell.chain_head WHERE cell_id = $1", [cellID], operation: "read the head"
        ).rows.first
        let headPosition = head.flatMap { $0[0] }.flatMap { Int64($0) } ?? 0
        let headHash = head.flatMap { $0[1] } ?? LedgerCanonical.genesisHash
        var result = PlantChainVerification(cellID: cellID, verifiedCount: 0, headPosition: headPosition, failure: nil)
        var previousHash = LedgerCanonical.genesisHash
        do {
            try forEachLamp(connection, matching: PlantFilter(cellID: cellID), inTransaction: true) { entry in
                let expected = result.verifiedCount + 1
                if entry.position != expected {
                    throw VerificationStop("position \(expected) expected, found \(entry.position) (\(entry.serial))")
                }
                if entry.prevHash != previousHash {
                    throw VerificationStop("position \(entry.position) (\(entry.serial)): prev_hash is not the hash before it")
                }
                if LedgerCanonical.expectedHash(of: entry) != entry.hash {
                    throw VerificationStop("position \(entry.position) (\(entry.serial)): hash does not match its content")
                }
                previousHash = entry.hash
                result.verifiedCount = expected
            }
            if result.verifiedCount != headPosition || previousHash != headHash {
                throw VerificationStop(
                    "the chain ends at \(result.verifiedCount), the server's head says \(headPosition)")
            }
        } catch let stop as VerificationStop {
            result.failure = stop.message
        } catch let error as PlantError where error.operation == "decode lamp" {
            result.failure = error.message
        }
        return result
    }

    private struct VerificationStop: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }
}
