// Store-and-forward replication of the cell's ledger to the plant database, on a thread of its own.
//
// The thread reads the local ledger (SQLite, its own read-only connection: WAL lets it read beside the writer) and
// ships the entries after the last position the server acknowledged, in batches, each batch one transaction: COPY
// into a temporary staging table, then one INSERT … SELECT into `lampcell.lamp` (row-level security allows no COPY
// into the table itself). The server checks the chain as the rows arrive (`lampcell.check_chain`) and refuses a
// break with SQLSTATE LC001 naming the first bad position. The acknowledged position is the server's: it is read
// back from `lampcell.chain_head` at every connect, so a batch whose COMMIT reply was lost is never sent twice, and
// the primary key (cell_id, position) refuses a duplicate in any case. The control thread is never touched: this
// thread only reads the ledger file.

import Foundation
import Ledger
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The cell's replication to the plant database: one thread, started once, stopped once. `status()` may be called
/// from any thread.
public final class PlantReplicator: @unchecked Sendable {
    /// How the replicator reaches the server and how it behaves.
    public struct Settings: Sendable {
        /// libpq keyword/value pairs: `host` (a name, an address or a Unix-socket directory), `port`, `dbname`,
        /// `user` (the cell's role), `password`, `sslmode`.
        public var connectionParameters: [(String, String)]
        /// The cell whose ledger this is (the server refuses rows of any other cell for this role).
        public var cellID: String
        /// Entries per transaction.
        public var batchEntries: Int = PlantReplicator.defaultBatchEntries
        /// The status carries a warning once the lag passes either bound.
        public var lagWarningSeconds: Double = PlantReplicator.defaultLagWarningSeconds
        public var lagWarningEntries: Int64 = PlantReplicator.defaultLagWarningEntries
        /// Where the last acknowledged position is remembered across restarts (for the lag while the server cannot
        /// be reached); nil keeps it in memory only. The server's own head always wins once it answers.
        public var acknowledgedFilePath: String?

        public init(connectionParameters: [(String, String)], cellID: String) {
            self.connectionParameters = connectionParameters
            self.cellID = cellID
        }

        /// libpq parameters for a server, database and role: TLS off (`sslmode=disable`), on (`require`), or on
        /// with the server's certificate checked against `caFile` and its host name (`verify-full`). Several
        /// comma-separated servers (a primary and its standby): libpq keeps the one that takes writes.
        public static func connectionParameters(
            server: String, port: Int, database: String, role: String, password: String?, tls: Bool, caFile: String?
        ) -> [(String, String)] {
            var parameters: [(String, String)] = [
                ("host", server), ("port", String(port)), ("dbname", database), ("user", role),
                ("sslmode", !tls ? "disable" : caFile == nil ? "require" : "verify-full"),
                ("target_session_attrs", "read-write"),
            ]
            if tls, let caFile { parameters.append(("sslrootcert", caFile)) }
            if let password { parameters.append(("password", password)) }
            return parameters
        }
    }

    /// What the replicator is doing.
    public enum State: String, Sendable, Equatable {
        /// Not yet connected since start.
        case connecting
        /// Shipping a backlog.
        case replicating
        /// Every local entry is on the server.
        case caughtUp
        /// The server cannot be reached; entries wait in the local ledger.
        case disconnected
        /// The server refused the chain (or the local ledger disagrees with the server): an alarm. Retried slowly.
        case refused
        /// Stopped.
        case stopped
    }

    /// The replication as status and metrics show it.
    public struct Status: Sendable, Equatable {
        public var state: State
        /// `host=… port=… dbname=… user=…` (no password).
        public var server: String
        /// Entries in the local ledger.
        public var localPosition: Int64
        /// The last position the server acknowledged (its chain head for this cell); nil while never known.
        public var acknowledgedPosition: Int64?
        /// Local entries not yet on the server; nil while the acknowledged position is not known.
        public var lagEntries: Int64?
        /// Age of the oldest entry not yet on the server (its end time to now), s; 0 when caught up.
        public var lagSeconds: Double?
        /// Entries this replicator shipped since it started.
        public var shippedEntries: Int64
        /// The last error, one line (server unreachable, refused batch).
        public var lastError: String?
        /// The first position the server refused, when it refused the chain.
        public var chainBreakPosition: Int64?
        /// Set when the lag passes a bound or the chain was refused: what is wrong, in words.
        public var warning: String?
    }

    /// Entries per transaction when the configuration does not say.
    public static let defaultBatchEntries = 2_000
    /// Lag bounds when the configuration does not say: 5 minutes, or 1,000 entries (about 7 hours of production).
    public static let defaultLagWarningSeconds: Double = 300
    public static let defaultLagWarningEntries: Int64 = 1_000
    /// How often an idle replicator looks for new local entries, ms.
    public static let pollIntervalMilliseconds: UInt64 = 250
    /// Reconnect back-off: first wait and the longest, ms (doubled after each failure).
    public static let reconnectInitialMilliseconds: UInt64 = 250
    public static let reconnectMaximumMilliseconds: UInt64 = 10_000
    /// Longest a statement of the replicator may run on the server, and wait for a lock there, ms: a batch takes
    /// well under a second; a server that hangs fails the batch instead of the thread.
    public static let statementTimeoutMilliseconds: UInt64 = 60_000
    public static let lockTimeoutMilliseconds: UInt64 = 30_000
    /// Wait before shipping again after the server refused the chain, ms: a refusal does not heal by itself.
    public static let refusedRetryMilliseconds: UInt64 = 30_000

    private let ledgerPath: String
    private let settings: Settings
    private let logger: Logger
    private let lock = NSCondition()
    private var current: Status
    private var stopping = false
    private var thread: Thread?
    private var finished = false
    /// Owned by the replication thread.
    private var connection: PostgresConnection?
    private var ledger: Ledger?

    /// A replicator of the ledger at `ledgerPath`; `start()` starts its thread. Thread: any.
    public init(ledgerPath: String, settings: Settings, logger: Logger) {
        precondition(settings.batchEntries > 0, "batchEntries must be positive")
        self.ledgerPath = ledgerPath
        self.settings = settings
        self.logger = logger
        let server = settings.connectionParameters.filter { ["host", "port", "dbname", "user"].contains($0.0) }
            .map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        current = Status(
            state: .connecting, server: server, localPosition: 0,
            acknowledgedPosition: Self.readAcknowledged(settings.acknowledgedFilePath), lagEntries: nil,
            lagSeconds: nil, shippedEntries: 0, lastError: nil, chainBreakPosition: nil, warning: nil)
    }

    /// Starts the replication thread (once). Thread: any.
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        precondition(thread == nil, "PlantReplicator.start() called twice")
        let thread = Thread { [self] in run() }
        thread.name = "plant-replicator"
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    /// Stops the thread: a batch in flight ends (committed or rolled back) first. Waits until it has, or
    /// `timeoutMilliseconds` (nil: for ever); returns whether the thread ended. A batch left behind at the timeout
    /// is harmless: its transaction either commits, or never happened, and the next run reads the server's head.
    /// Thread: any but the replication thread.
    @discardableResult
    public func stop(timeoutMilliseconds: UInt64? = nil) -> Bool {
        let deadline = timeoutMilliseconds.map { Date(timeIntervalSinceNow: Double($0) / 1000) }
        lock.lock()
        defer { lock.unlock() }
        stopping = true
        lock.broadcast()
        while thread != nil && !finished {
            if let deadline {
                if !lock.wait(until: deadline) { break }
            } else {
                lock.wait()
            }
        }
        return thread == nil || finished
    }

    /// The replication's latest status, its lag's age as of now. Thread: any.
    public func status() -> Status {
        lock.lock()
        defer { lock.unlock() }
        return withLagAge(current)
    }

    /// End time of the oldest local entry not yet acknowledged; nil when none is known to wait. Under `lock`.
    private var oldestPendingEndWallNanoseconds: Int64?

    /// `status` with `lagSeconds` computed now and the warning to match. Under `lock`.
    private func withLagAge(_ status: Status) -> Status {
        var status = status
        if status.lagEntries == 0 {
            status.lagSeconds = 0
        } else if let oldest = oldestPendingEndWallNanoseconds {
            let now = Int64(Date().timeIntervalSince1970 * 1e9)
            status.lagSeconds = max(0, Double(now - oldest) / 1e9)
        }
        status.warning = Self.warning(status, settings: settings)
        return status
    }

    /// Waits until `condition` holds for the status or `timeoutMilliseconds` pass; returns the last status.
    /// Thread: any (tests, the CLI).
    public func waitForStatus(timeoutMilliseconds: UInt64, _ condition: (Status) -> Bool) -> Status {
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMilliseconds) / 1000)
        lock.lock()
        defer { lock.unlock() }
        while !condition(withLagAge(current)) && lock.wait(until: deadline) {}
        return withLagAge(current)
    }

    // MARK: The replication thread

    private func run() {
        var backoffMilliseconds = Self.reconnectInitialMilliseconds
        func backOff(_ error: PlantError) {
            fail(error, state: .disconnected)
            connection?.close()
            connection = nil
            sleep(milliseconds: jittered(backoffMilliseconds))
            backoffMilliseconds = min(backoffMilliseconds * 2, Self.reconnectMaximumMilliseconds)
        }
        while !isStopping {
            refreshLocal()
            do {
                if connection == nil {
                    try connect()
                    backoffMilliseconds = Self.reconnectInitialMilliseconds
                }
                let shipped = try shipOneBatch()
                if shipped == 0 { sleep(milliseconds: Self.pollIntervalMilliseconds) }
            } catch {
                if error.isRefusal {
                    // The server refused the rows (chain, check, row-level security) or the local ledger disagrees
                    // with the server: an alarm that does not heal by itself. Try again, slowly.
                    fail(error, state: .refused)
                    connection?.close()
                    connection = nil
                    sleep(milliseconds: Self.refusedRetryMilliseconds)
                } else {
                    // The server is away, the link was cut, or another session shipped these positions (a previous
                    // run's batch committed late: a duplicate): back off, reconnect and read the server's head.
                    backOff(error)
                }
            }
        }
        connection?.close()
        connection = nil
        lock.lock()
        current.state = .stopped
        finished = true
        lock.broadcast()
        lock.unlock()
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    /// Connects, prepares the staging table and reads the server's head for this cell; checks that the local
    /// ledger holds the same entry there (a replaced or rewritten local ledger is refused, not shipped).
    private func connect() throws(PlantError) {
        let connection = try PostgresConnection(
            parameters: settings.connectionParameters + [
                ("options", "-c statement_timeout=\(Self.statementTimeoutMilliseconds) -c lock_timeout=\(Self.lockTimeoutMilliseconds)")
            ], applicationName: "lampcelld \(settings.cellID)")
        try connection.executeScript(
            """
            CREATE TEMPORARY TABLE IF NOT EXISTS lampcell_staging (\(Self.stagingColumns))
              ON COMMIT DELETE ROWS;
            ALTER TABLE lampcell_staging SET (toast_tuple_target = 8160);
            """, operation: "create the staging table")
        let head = try connection.execute(
            "SELECT position, hash FROM lampcell.chain_head WHERE cell_id = $1", [settings.cellID],
            operation: "read the server's chain head of \(settings.cellID)")
        let position = head.rows.first.flatMap { $0[0] }.flatMap { Int64($0) } ?? 0
        let hash = head.rows.first.flatMap { $0[1] } ?? LedgerCanonical.genesisHash
        if position > 0 {
            let local = try localEntries(position...position).first
            guard let local else {
                throw PlantError(
                    sqlState: PlantError.localChainState, operation: "compare with the server",
                    message: "the server holds \(position) entries of \(settings.cellID), the local ledger fewer: it was replaced or truncated",
                    detail: String(position))
            }
            guard local.hash == hash else {
                throw PlantError(
                    sqlState: PlantError.localChainState, operation: "compare with the server",
                    message: "the local entry at position \(position) differs from the server's (local \(local.hash.prefix(12))…, server \(hash.prefix(12))…): the local ledger was rewritten",
                    detail: String(position))
            }
        }
        self.connection = connection
        update { status in
            status.acknowledgedPosition = position
            if status.state != .refused { status.state = .replicating }
        }
        Self.writeAcknowledged(position, to: settings.acknowledgedFilePath)
        logger.info("plant: connected to \(connection.target); the server holds \(position) entries of \(settings.cellID)")
    }

    /// Ships the entries after the acknowledged position, at most one batch; returns how many (0: caught up).
    /// While the server inserts and commits one batch, this thread reads and encodes the next one (on two cores the
    /// two halves overlap: measured in `make bench` item 10).
    private func shipOneBatch() throws(PlantError) -> Int {
        guard let connection else { return 0 }
        let acknowledged = status().acknowledgedPosition ?? 0
        let batch = try nextBatch(after: acknowledged)
        guard let last = batch.entries.last else {
            update { if $0.state != .refused { $0.state = .caughtUp } }
            return 0
        }
        // A refusal stays the state until a batch commits (`acknowledge`), not while it is tried again.
        update { if $0.state != .refused { $0.state = .replicating } }
        let range = "\(batch.entries[0].position)…\(last.position)"
        do throws(PlantError) {
            try connection.executeScript("BEGIN", operation: "ship \(range)")
            try connection.copyIn("COPY lampcell_staging FROM STDIN", data: batch.data, operation: "ship \(range) (COPY)")
            try connection.send(
                "INSERT INTO lampcell.lamp (\(Self.shippedColumns)) SELECT \(Self.shippedColumns) FROM lampcell_staging ORDER BY position; COMMIT",
                operation: "ship \(range)")
            prefetched = try? prepareBatch(after: last.position)
            try connection.finishSent(operation: "ship \(range)")
        } catch {
            prefetched = nil
            _ = try? connection.executeScript("ROLLBACK", operation: "roll back")
            throw error
        }
        acknowledge(last.position, shipped: Int64(batch.entries.count))
        return batch.entries.count
    }

    /// A batch read from the local ledger and encoded as COPY text.
    private struct Batch {
        var entries: [LedgerEntry]
        var data: [UInt8]
    }

    /// The batch read ahead while the previous one was committing; nil when none is waiting.
    private var prefetched: Batch?

    /// The batch after `position`: the one read ahead when it starts there, else read now.
    private func nextBatch(after position: Int64) throws(PlantError) -> Batch {
        if let batch = prefetched, batch.entries.first?.position == position + 1 {
            prefetched = nil
            return batch
        }
        prefetched = nil
        return try prepareBatch(after: position)
    }

    /// Reads up to `batchEntries` local entries after `position` and encodes them as COPY text.
    private func prepareBatch(after position: Int64) throws(PlantError) -> Batch {
        let entries = try localEntries((position + 1)...(position + Int64(settings.batchEntries)))
        var data: [UInt8] = []
        data.reserveCapacity(entries.count * 2_400)
        for entry in entries { Self.appendCopyRow(entry, to: &data) }
        return Batch(entries: entries, data: data)
    }

    /// Reads local entries in `positions` (opening the ledger read-only on first use).
    private func localEntries(_ positions: ClosedRange<Int64>) throws(PlantError) -> [LedgerEntry] {
        do {
            if ledger == nil { ledger = try Ledger.openReadOnly(path: ledgerPath) }
            return try ledger!.entries(matching: LedgerFilter(positions: positions))
        } catch {
            ledger = nil
            throw PlantError(sqlState: PlantError.localLedgerState, operation: "read the local ledger \(ledgerPath)", message: "\(error)")
        }
    }

    /// Reads the local head and the end time of the oldest entry not yet acknowledged (the lag's age is computed
    /// from it whenever the status is read, so it grows even while this thread waits on the network).
    private func refreshLocal() {
        var head: Int64 = 0
        var oldestEndWallNanoseconds: Int64?
        do {
            if ledger == nil { ledger = try Ledger.openReadOnly(path: ledgerPath) }
            head = try ledger!.head().count
            let acknowledged = status().acknowledgedPosition ?? 0
            if head > acknowledged {
                oldestEndWallNanoseconds = try ledger!.entries(
                    matching: LedgerFilter(positions: (acknowledged + 1)...(acknowledged + 1))
                ).first?.endWallNanoseconds
            }
        } catch {
            ledger = nil  // no ledger yet (a fresh cell), or unreadable for now: the lag stays as it was
            return
        }
        update { status in
            status.localPosition = head
            oldestPendingEndWallNanoseconds = oldestEndWallNanoseconds
        }
    }

    /// A batch up to `position` committed: the server has it, and any alarm is over.
    private func acknowledge(_ position: Int64, shipped: Int64) {
        update { status in
            status.acknowledgedPosition = position
            status.shippedEntries += shipped
            if status.localPosition < position { status.localPosition = position }
            status.state = .replicating
            status.lastError = nil
            status.chainBreakPosition = nil
        }
        Self.writeAcknowledged(position, to: settings.acknowledgedFilePath)
    }

    private func fail(_ error: PlantError, state: State) {
        let previous = status()
        if previous.lastError != error.description {
            if state == .refused {
                logger.critical("plant: replication refused: \(error)")
            } else {
                logger.warning("plant: \(error); entries wait in the local ledger")
            }
        }
        update { status in
            status.state = state
            status.lastError = error.description
            if state == .refused { status.chainBreakPosition = error.detail.flatMap { Int64($0) } }
        }
    }

    /// Applies `change` to the status, recomputes the lag in entries, and wakes waiters (the lag's age and the
    /// warning are computed as the status is read: `withLagAge`).
    private func update(_ change: (inout Status) -> Void) {
        lock.lock()
        change(&current)
        if let acknowledged = current.acknowledgedPosition {
            current.lagEntries = max(0, current.localPosition - acknowledged)
        }
        lock.broadcast()
        lock.unlock()
    }

    /// The status's warning: a refused chain, or a lag past a bound. Nil when all is well.
    static func warning(_ status: Status, settings: Settings) -> String? {
        if status.state == .refused {
            let position = status.chainBreakPosition.map { " at position \($0)" } ?? ""
            return "plant replication refused\(position): \(status.lastError ?? "?")"
        }
        let entries = status.lagEntries ?? 0
        let seconds = status.lagSeconds ?? 0
        guard entries > settings.lagWarningEntries || seconds > settings.lagWarningSeconds else { return nil }
        let why = status.state == .disconnected ? ": \(status.lastError ?? "server unreachable")" : ""
        return "plant replication lags \(entries) entries (\(Int(seconds)) s)\(why)"
    }

    private func sleep(milliseconds: UInt64) {
        let deadline = Date(timeIntervalSinceNow: Double(milliseconds) / 1000)
        lock.lock()
        while !stopping && lock.wait(until: deadline) {}
        lock.unlock()
    }

    /// `milliseconds` ± 25 %, so that fifty cells that lost the server together do not all come back at once.
    private func jittered(_ milliseconds: UInt64) -> UInt64 {
        UInt64(Double(milliseconds) * Double.random(in: 0.75...1.25))
    }

    // MARK: Wire format

    /// The columns a cell ships, in staging and COPY order.
    public static let shippedColumns =
        "cell_id, position, serial, variant, order_id, end_wall_ns, verdict, housing_lot, led_module_lot, lens_lot, canonical, prev_hash, hash"
    static let stagingColumns =
        "cell_id text, position bigint, serial text, variant text, order_id text, end_wall_ns bigint, verdict text, housing_lot bigint, led_module_lot bigint, lens_lot bigint, canonical text, prev_hash text, hash text"

    /// The values of the shipped columns of `entry`, in `shippedColumns` order (the server's check compares each,
    /// escaped as the canonical text escapes it, with its line of the text).
    public static func shippedValues(_ entry: LedgerEntry) -> [String] {
        [
            entry.cellID, String(entry.position), entry.serial, entry.variant, entry.orderID,
            String(entry.endWallNanoseconds), entry.verdict, String(entry.housingLot), String(entry.ledModuleLot),
            String(entry.lensLot), String(decoding: LedgerCanonical.encode(entry, position: entry.position), as: UTF8.self),
            entry.prevHash, entry.hash,
        ]
    }

    /// One COPY text-format line of `entry`: `shippedValues`, tab-separated, each escaped for COPY.
    public static func appendCopyRow(_ entry: LedgerEntry, to data: inout [UInt8]) {
        let values = shippedValues(entry)
        for (index, value) in values.enumerated() {
            for byte in value.utf8 {
                switch byte {
                case UInt8(ascii: "\\"): data.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: data.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: data.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: data.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default: data.append(byte)
                }
            }
            data.append(index == values.count - 1 ? 0x0A : 0x09)
        }
    }

    // MARK: The acknowledged position across restarts

    static func readAcknowledged(_ path: String?) -> Int64? {
        guard let path, let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Written by rename, without fsync: it only feeds the lag shown while the server is away.
    static func writeAcknowledged(_ position: Int64, to path: String?) {
        guard let path else { return }
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data("\(position)\n".utf8)) else { return }
        _ = rename(temporary, path)
    }
}
