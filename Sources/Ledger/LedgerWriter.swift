// Appending to the ledger: one transaction per batch, durable at commit (WAL, synchronous=FULL).

import Foundation
import GRDB

/// Appends lamps to the ledger. The only way to change the ledger: there is no update and no delete.
///
/// Opening creates the file and schema when missing (migrations), sets WAL and `synchronous=FULL`, so a commit
/// is on disk (fsync of the WAL) before `append` returns: a lamp counts as recorded only then.
///
/// Thread: meant for one writer thread (the daemon's lamp drain); safe from any thread (calls are serialized).
/// Do not block the control thread on it.
public final class LedgerWriter: Sendable {
    /// The ledger this writer appends to, for queries on the writer's own connection (they wait for appends).
    public let ledger: Ledger

    /// The database file.
    public var path: String { ledger.path }

    /// Opens (creating if needed) the ledger at `path` for appending; runs pending migrations.
    /// Thread: any (start-up).
    /// - Throws: `.cannotOpen`, `.corrupt`, `.diskFull`, `.io` …, `.unknownSchema` when the file was written by
    ///   newer software.
    public init(path: String) throws(LedgerError) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(Ledger.busyTimeoutSeconds)
        configuration.label = "ledger-writer"
        // Not `journalMode = .wal`: GRDB's WAL set-up lowers `synchronous` to NORMAL, which may lose the last
        // commits on power loss. WAL and FULL are set here instead, on every connection.
        configuration.prepareDatabase { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            guard mode == "wal" else {
                throw DatabaseError(message: "cannot switch \(db.description) to WAL (journal_mode is \(mode ?? "?"))")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let database: DatabaseQueue
        do {
            database = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw LedgerError.from(error, operation: "open \(path) for writing")
        }
        let ledger = Ledger(path: path, database: database, isReadOnly: false)
        do {
            let applied = try database.read { db in try LedgerSchema.migrator.appliedIdentifiers(db) }
            let unknown = applied.filter { !LedgerSchema.migrationIdentifiers.contains($0) }.sorted()
            guard unknown.isEmpty else { throw LedgerError.unknownSchema(path: path, migrations: unknown) }
            try LedgerSchema.migrator.migrate(database)
        } catch {
            throw LedgerError.from(error, operation: "migrate \(path)")
        }
        self.ledger = ledger
    }

    /// Appends `entries` in one transaction (group commit) and returns them as stored, with `position`,
    /// `prevHash` and `hash` set. Entries are chained in the order given.
    ///
    /// Idempotent: an entry whose serial is already stored with the same content (the hash it would have at the
    /// stored place equals the stored hash) is not stored again; the stored entry is returned for it. So retrying
    /// a batch after an ambiguous failure never duplicates a lamp. Any entry's `position`, `prevHash` and `hash`
    /// on input are ignored.
    ///
    /// All or nothing: on any error nothing of the batch is stored. Thread: the writer thread (any thread; calls
    /// are serialized). Blocks for the commit's fsync.
    /// - Throws: `.diskFull`, `.io`, `.busy`, `.corrupt` (with SQLite's code and message) — retry the same batch
    ///   later; `.conflictingDuplicate` when a serial is stored with other content (a serial was reused: do not
    ///   retry); `.invalidEntry`.
    @discardableResult
    public func append(_ entries: [LedgerEntry]) throws(LedgerError) -> [LedgerEntry] {
        if entries.isEmpty { return [] }
        do {
            // IMMEDIATE: take the write lock before reading the head, so another connection cannot commit in
            // between (it waits for the busy timeout instead).
            return try ledger.database.writeWithoutTransaction { db in
                var stored: [LedgerEntry] = []
                try db.inTransaction(.immediate) {
                    var head = try Ledger.head(db)
                    var batchSerials: [String: Int] = [:]
                    stored.reserveCapacity(entries.count)
                    for entry in entries {
                        if let earlier = batchSerials[entry.serial] {
                            let previous = stored[earlier]
                            guard previous.hasSameContent(as: entry) else {
                                throw LedgerError.conflictingDuplicate(
                                    serial: entry.serial, storedHash: previous.hash,
                                    newHash: LedgerCanonical.hash(entry, position: previous.position, prevHash: previous.prevHash))
                            }
                            stored.append(previous)
                            continue
                        }
                        if let row = try Row.fetchOne(
                            db.cachedStatement(sql: "SELECT \(LedgerSchema.columnList) FROM lamp WHERE serial = ?"),
                            arguments: [entry.serial])
                        {
                            let existing = try LedgerSchema.entry(row, decoder: LedgerSchema.makeDecoder())
                            let newHash = LedgerCanonical.hash(entry, position: existing.position, prevHash: existing.prevHash)
                            guard newHash == existing.hash else {
                                throw LedgerError.conflictingDuplicate(
                                    serial: entry.serial, storedHash: existing.hash, newHash: newHash)
                            }
                            batchSerials[entry.serial] = stored.count
                            stored.append(existing)
                            continue
                        }
                        var chained = entry
                        chained.position = head.count + 1
                        chained.prevHash = head.headHash
                        chained.hash = LedgerCanonical.expectedHash(of: chained)
                        let statement = try db.cachedStatement(sql: LedgerSchema.insertSQL)
                        try statement.execute(arguments: LedgerSchema.arguments(chained))
                        head = Checkpoint(count: chained.position, headHash: chained.hash, headSerial: chained.serial)
                        batchSerials[entry.serial] = stored.count
                        stored.append(chained)
                    }
                    return .commit
                }
                return stored
            }
        } catch {
            throw LedgerError.from(error, operation: "append \(entries.count) entries to \(path)")
        }
    }

    /// Appends one entry (its own transaction and fsync). See `append(_:)`.
    @discardableResult
    public func append(_ entry: LedgerEntry) throws(LedgerError) -> LedgerEntry {
        let stored = try append([entry])
        return stored.first ?? entry
    }
}
