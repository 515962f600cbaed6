import GRDB

/// An SQLite failure as the ledger saw it: the extended result code, SQLite's message, and what was being done.
public struct SQLiteFailure: Sendable, Equatable, CustomStringConvertible {
    /// SQLite extended result code (e.g. 13 SQLITE_FULL, 266 SQLITE_IOERR_READ).
    public var extendedCode: Int32
    /// SQLite primary result code (the low 8 bits of `extendedCode`).
    public var primaryCode: Int32 { extendedCode & 0xFF }
    /// SQLite's message.
    public var message: String
    /// What the ledger was doing, with the database path (e.g. `append 3 entries to /var/lib/lampcell/ledger.db`).
    public var operation: String

    /// Creates a failure record.
    public init(extendedCode: Int32, message: String, operation: String) {
        self.extendedCode = extendedCode
        self.message = message
        self.operation = operation
    }

    public var description: String { "\(operation): SQLite error \(extendedCode): \(message)" }
}

/// Why a ledger operation failed. Thrown (typed) by every throwing ledger method.
public enum LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The disk (or the database's page limit) is full: SQLITE_FULL. Nothing of the failed append is stored.
    case diskFull(SQLiteFailure)
    /// An I/O error: SQLITE_IOERR (any extended code). Nothing of the failed append is stored.
    case io(SQLiteFailure)
    /// Another connection holds a lock past the busy timeout: SQLITE_BUSY or SQLITE_LOCKED.
    case busy(SQLiteFailure)
    /// The file is damaged or not a database: SQLITE_CORRUPT or SQLITE_NOTADB.
    case corrupt(SQLiteFailure)
    /// Writing was refused: SQLITE_READONLY, or an append-only trigger fired (SQLITE_CONSTRAINT_TRIGGER).
    case refused(SQLiteFailure)
    /// The database file cannot be opened: SQLITE_CANTOPEN or SQLITE_PERM.
    case cannotOpen(SQLiteFailure)
    /// Any other SQLite error.
    case sqlite(SQLiteFailure)
    /// The file is an SQLite database but has no ledger schema (read-only open of a non-ledger file).
    case notALedger(path: String)
    /// The ledger's schema is newer than this software knows.
    case unknownSchema(path: String, migrations: [String])
    /// An entry with this serial is already stored with different content (its stored hash differs from the hash
    /// the new entry would have at the stored entry's place). Nothing of the batch is stored.
    case conflictingDuplicate(serial: String, storedHash: String, newHash: String)
    /// A stored row cannot be turned into an entry (damaged JSON column, wrong type); names the row.
    case undecodableRow(position: Int64, serial: String, message: String)
    /// An entry cannot be stored as given (e.g. its measurements cannot be encoded).
    case invalidEntry(serial: String, field: String, message: String)
    /// Export output could not be written.
    case exportFailed(message: String)

    public var description: String {
        switch self {
        case .diskFull(let failure): "ledger disk full: \(failure)"
        case .io(let failure): "ledger I/O error: \(failure)"
        case .busy(let failure): "ledger locked or busy: \(failure)"
        case .corrupt(let failure): "ledger database corrupt: \(failure)"
        case .refused(let failure): "ledger write refused: \(failure)"
        case .cannotOpen(let failure): "ledger cannot be opened: \(failure)"
        case .sqlite(let failure): "ledger SQLite error: \(failure)"
        case .notALedger(let path): "\(path): not a ledger database (no lamp table)"
        case .unknownSchema(let path, let migrations):
            "\(path): ledger schema has migrations this software does not know: \(migrations.joined(separator: ", "))"
        case .conflictingDuplicate(let serial, let storedHash, let newHash):
            "ledger already holds \(serial) with different content (stored hash \(storedHash), new \(newHash))"
        case .undecodableRow(let position, let serial, let message):
            "ledger row \(position) (\(serial)) cannot be read: \(message)"
        case .invalidEntry(let serial, let field, let message): "ledger entry \(serial), field \(field): \(message)"
        case .exportFailed(let message): "ledger export failed: \(message)"
        }
    }

    /// The SQLite failure behind the error, if any.
    public var sqliteFailure: SQLiteFailure? {
        switch self {
        case .diskFull(let f), .io(let f), .busy(let f), .corrupt(let f), .refused(let f), .cannotOpen(let f),
            .sqlite(let f):
            f
        default: nil
        }
    }

    /// True for failures that may go away on their own or after an operator acts (disk full, I/O, busy): the
    /// caller holds production and retries the same batch.
    public var isRetryable: Bool {
        switch self {
        case .diskFull, .io, .busy: true
        default: false
        }
    }

    /// Maps any error thrown inside a GRDB access to a ledger error; `operation` says what was being done.
    static func from(_ error: any Error, operation: String) -> LedgerError {
        if let ledgerError = error as? LedgerError { return ledgerError }
        guard let databaseError = error as? DatabaseError else {
            return .sqlite(SQLiteFailure(extendedCode: -1, message: "\(error)", operation: operation))
        }
        let failure = SQLiteFailure(
            extendedCode: databaseError.extendedResultCode.rawValue,
            message: databaseError.message ?? "(no message)", operation: operation)
        switch databaseError.resultCode {
        case .SQLITE_FULL: return .diskFull(failure)
        case .SQLITE_IOERR: return .io(failure)
        case .SQLITE_BUSY, .SQLITE_LOCKED: return .busy(failure)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return .corrupt(failure)
        case .SQLITE_READONLY: return .refused(failure)
        case .SQLITE_CANTOPEN, .SQLITE_PERM: return .cannotOpen(failure)
        case .SQLITE_CONSTRAINT where databaseError.extendedResultCode == .SQLITE_CONSTRAINT_TRIGGER:
            return .refused(failure)
        default: return .sqlite(failure)
        }
    }
}
