// The cell's alarm and event history: a SQLite file beside the ledger (`events.sqlite` in the state directory).
// Alarms and stops have a start and an end; commands, logins and state changes are instants.

import Foundation
import GRDB

/// What an entry of the history is.
public enum EventKind: String, Codable, Sendable, CaseIterable {
    /// A condition that needs someone: a device fault, a lost link, the safety chain open, a material wait, the
    /// plant link's warning. Starts when it appears, ends when it is gone.
    case alarm
    /// Why the cell stopped producing (abort, stop or hold, with PackML's stop reason). Starts at the stop, ends
    /// when the cell is in Execute again: its duration is the downtime the Pareto of stop reasons adds up.
    case stop
    /// A PackML state change (`code` is the new state's name).
    case state
    /// A command, mode change or order, with who gave it and what came of it.
    case command
    /// An operator's login, logout, session end or refused login on the panel.
    case login
}

/// One entry of the history.
public struct CellEvent: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "event"

    /// Row id (ascending in order of recording); nil before insertion.
    public var id: Int64?
    public var kind: EventKind
    /// A stable word for grouping: a stop reason kind (`emergencyStop`), an alarm key (`loader.fault.0x0401`), a
    /// state name, a command word.
    public var code: String
    /// The device or part of the cell concerned (`loader`, `station`, `cell`, `plant`).
    public var source: String
    /// What the operator reads.
    public var message: String
    /// What to do about it (alarms, stops), or the outcome (commands: `accepted` or the refusal).
    public var detail: String
    /// Who gave a command or logged in: an operator's name on the panel, `uid N` on the Unix socket; empty else.
    public var actor: String
    public var startedWallNanoseconds: Int64
    /// nil while an alarm or stop is active; equal to the start for instants.
    public var endedWallNanoseconds: Int64?

    public init(
        id: Int64? = nil, kind: EventKind, code: String, source: String, message: String, detail: String = "",
        actor: String = "", startedWallNanoseconds: Int64, endedWallNanoseconds: Int64?
    ) {
        self.id = id
        self.kind = kind
        self.code = code
        self.source = source
        self.message = message
        self.detail = detail
        self.actor = actor
        self.startedWallNanoseconds = startedWallNanoseconds
        self.endedWallNanoseconds = endedWallNanoseconds
    }

    enum CodingKeys: String, CodingKey {
        case id, kind, code, source, message, detail, actor
        case startedWallNanoseconds = "started_ns"
        case endedWallNanoseconds = "ended_ns"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    /// Seconds from start to end (to `nowWallNanoseconds` while active).
    public func durationSeconds(nowWallNanoseconds: Int64) -> Double {
        Double((endedWallNanoseconds ?? nowWallNanoseconds) - startedWallNanoseconds) / 1e9
    }
}

/// One stop reason's share of the downtime in a window: the rows of a Pareto chart.
public struct StopReasonTotal: Codable, Sendable, Equatable {
    public var code: String
    /// The message of its latest stop.
    public var message: String
    public var stops: Int
    public var downtimeSeconds: Double
}

/// The alarm and event history (docs/HMI.md). Durable: each record is its own transaction, WAL with
/// `synchronous=FULL` as the ledger. The daemon records on its event-recorder and API job threads; queries run on
/// the API's job threads and in `lampctl report`. Never on the control thread. Thread: any (GRDB serialises
/// writers).
public final class EventHistory: Sendable {
    /// Rows a history query returns at most.
    public static let maximumQueryRows = 10_000
    public let path: String
    private let pool: DatabasePool

    /// Opens (creating when missing) the history at `path`; `readOnly` for reports of another process's file.
    public init(path: String, readOnly: Bool = false) throws(LedgerError) {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(Ledger.busyTimeoutSeconds)
        configuration.readonly = readOnly
        if !readOnly {
            configuration.prepareDatabase { db in
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            if !readOnly {
                try pool.write { db in
                    try db.execute(
                        sql: """
                            CREATE TABLE IF NOT EXISTS event (
                              id INTEGER PRIMARY KEY,
                              kind TEXT NOT NULL,
                              code TEXT NOT NULL,
                              source TEXT NOT NULL,
                              message TEXT NOT NULL,
                              detail TEXT NOT NULL,
                              actor TEXT NOT NULL,
                              started_ns INTEGER NOT NULL,
                              ended_ns INTEGER
                            );
                            CREATE INDEX IF NOT EXISTS event_started ON event(started_ns);
                            CREATE INDEX IF NOT EXISTS event_kind_started ON event(kind, started_ns);
                            CREATE INDEX IF NOT EXISTS event_open ON event(kind) WHERE ended_ns IS NULL;
                            """)
                }
            }
        } catch {
            throw LedgerError.from(error, operation: "event history \(path)")
        }
    }

    /// Records `event`; returns its id. Blocks on disk (one durable transaction).
    @discardableResult
    public func record(_ event: CellEvent) throws(LedgerError) -> Int64 {
        var row = event
        row.id = nil
        do {
            try pool.write { db in try row.insert(db) }
        } catch {
            throw LedgerError.from(error, operation: "event history \(path)")
        }
        assert(row.id != nil, "an inserted event has its row id")
        return row.id ?? 0
    }

    /// Ends the active alarm or stop `id` at `wallNanoseconds`.
    public func end(id: Int64, atWallNanoseconds wallNanoseconds: Int64) throws(LedgerError) {
        do {
            try pool.write { db in
                try db.execute(
                    sql: "UPDATE event SET ended_ns = ? WHERE id = ? AND ended_ns IS NULL", arguments: [wallNanoseconds, id])
            }
        } catch {
            throw LedgerError.from(error, operation: "event history \(path)")
        }
    }

    /// Ends every alarm and stop still active (left so by a daemon that stopped or crashed) at `wallNanoseconds`;
    /// returns how many. The daemon calls it at start, before recording.
    @discardableResult
    public func endActive(atWallNanoseconds wallNanoseconds: Int64) throws(LedgerError) -> Int {
        do {
            return try pool.write { db in
                try db.execute(
                    sql: "UPDATE event SET ended_ns = max(started_ns, ?) WHERE ended_ns IS NULL", arguments: [wallNanoseconds])
                return db.changesCount
            }
        } catch {
            throw LedgerError.from(error, operation: "event history \(path)")
        }
    }

    /// Alarms and stops active now, oldest first.
    public func active() throws(LedgerError) -> [CellEvent] {
        try read { db in
            try CellEvent.fetchAll(
                db, sql: "SELECT * FROM event WHERE ended_ns IS NULL AND kind IN ('alarm', 'stop') ORDER BY id")
        }
    }

    /// Entries of `kinds` (all when empty) that overlap [`fromWallNanoseconds`, `toWallNanoseconds`), newest
    /// first, at most `limit` (≤ `maximumQueryRows`).
    public func events(
        fromWallNanoseconds: Int64, toWallNanoseconds: Int64, kinds: [EventKind] = [], limit: Int = maximumQueryRows
    ) throws(LedgerError) -> [CellEvent] {
        let kindFilter = kinds.isEmpty ? "" : " AND kind IN (\(kinds.map { "'\($0.rawValue)'" }.joined(separator: ",")))"
        return try read { db in
            try CellEvent.fetchAll(
                db,
                sql: """
                    SELECT * FROM event WHERE started_ns < ? AND coalesce(ended_ns, ?) >= ?\(kindFilter)
                    ORDER BY started_ns DESC, id DESC LIMIT ?
                    """,
                arguments: [toWallNanoseconds, Int64.max, fromWallNanoseconds, min(max(1, limit), Self.maximumQueryRows)])
        }
    }

    /// The latest entry of `kind` that started before `wallNanoseconds` (e.g. the state the cell was in then).
    public func latest(_ kind: EventKind, beforeWallNanoseconds wallNanoseconds: Int64) throws(LedgerError) -> CellEvent? {
        try read { db in
            try CellEvent.fetchOne(
                db, sql: "SELECT * FROM event WHERE kind = ? AND started_ns < ? ORDER BY started_ns DESC, id DESC LIMIT 1",
                arguments: [kind.rawValue, wallNanoseconds])
        }
    }

    /// Stop reasons in [`fromWallNanoseconds`, `toWallNanoseconds`), by downtime inside the window (longest first):
    /// the Pareto of stop reasons. An active stop counts up to `nowWallNanoseconds`. Summed in SQL: no row limit.
    public func stopPareto(fromWallNanoseconds: Int64, toWallNanoseconds: Int64, nowWallNanoseconds: Int64) throws(LedgerError)
        -> [StopReasonTotal]
    {
        let rows = try read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT code, COUNT(*) AS stops,
                           SUM(max(0, min(coalesce(ended_ns, ?), ?) - max(started_ns, ?))) AS downtime,
                           (SELECT message FROM event AS latest WHERE latest.kind = 'stop' AND latest.code = event.code
                            ORDER BY started_ns DESC LIMIT 1) AS message
                    FROM event WHERE kind = 'stop' AND started_ns < ? AND coalesce(ended_ns, ?) >= ?
                    GROUP BY code
                    """,
                arguments: [
                    nowWallNanoseconds, toWallNanoseconds, fromWallNanoseconds, toWallNanoseconds, Int64.max,
                    fromWallNanoseconds,
                ])
        }
        return rows.map { row in
            StopReasonTotal(
                code: row["code"], message: row["message"] ?? "", stops: row["stops"],
                downtimeSeconds: Double(row["downtime"] as Int64? ?? 0) / 1e9)
        }.sorted { ($0.downtimeSeconds, $1.code) > ($1.downtimeSeconds, $0.code) }
    }

    /// The state changes in [`fromWallNanoseconds`, `toWallNanoseconds`), oldest first, all of them (a report's
    /// planned and run time).
    public func stateChanges(fromWallNanoseconds: Int64, toWallNanoseconds: Int64) throws(LedgerError) -> [CellEvent] {
        try read { db in
            try CellEvent.fetchAll(
                db, sql: "SELECT * FROM event WHERE kind = 'state' AND started_ns >= ? AND started_ns < ? ORDER BY started_ns, id",
                arguments: [fromWallNanoseconds, toWallNanoseconds])
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws(LedgerError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw LedgerError.from(error, operation: "event history \(path)")
        }
    }
}
