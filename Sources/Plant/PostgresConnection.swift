// A thin, owned wrapper of one libpq connection: parameterised statements in text format, COPY FROM STDIN, errors
// with their SQLSTATE. Everything the plant database needs (replication, migration, queries) goes through it.

import CPostgres
import Foundation

/// An error from the plant database or from reaching it. Names the operation and, for a server error, its SQLSTATE
/// and the server's message and detail.
public struct PlantError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The SQLSTATE of a server error (`23505`, `42501`, `LC001` …); nil for a connection or client-side failure.
    public var sqlState: String?
    /// What was being done (`connect to host=/tmp/pg dbname=plant`, `ship batch 1001…2000`).
    public var operation: String
    /// The server's or libpq's message, one line.
    public var message: String
    /// The server's DETAIL field, when it sent one.
    public var detail: String?

    public init(sqlState: String? = nil, operation: String, message: String, detail: String? = nil) {
        self.sqlState = sqlState
        self.operation = operation
        self.message = message
        self.detail = detail
    }

    /// SQLSTATE of a chain check refused by the server (`lampcell.check_chain`, docs/PLANT.md): its DETAIL is the
    /// first bad position.
    public static let chainBreakState = "LC001"
    /// Not from the server: the local ledger disagrees with the server's chain head (it was replaced, truncated or
    /// rewritten). DETAIL is the position. Refused like a chain break.
    public static let localChainState = "LC002"
    /// Not from the server: the local ledger cannot be read.
    public static let localLedgerState = "LC003"
    /// SQLSTATE of a unique violation (a position the server already holds).
    public static let uniqueViolationState = "23505"
    /// SQLSTATE class of insufficient privilege / row-level security refusals.
    public static let insufficientPrivilegeState = "42501"

    /// True when retrying cannot help until someone acts: the server refused the rows (its chain check, a check
    /// constraint or another integrity rule, class 23 but a duplicate; a privilege or row-level security refusal,
    /// class 42), or the local ledger disagrees with the server (`LC002`).
    public var isRefusal: Bool {
        guard let sqlState else { return false }
        if sqlState == Self.chainBreakState || sqlState == Self.localChainState { return true }
        if sqlState == Self.uniqueViolationState { return false }
        return sqlState.hasPrefix("23") || sqlState.hasPrefix("42")
    }

    public var description: String {
        var text = "\(operation): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail, !detail.isEmpty { text += " [\(detail)]" }
        return text
    }
}

/// The rows of one statement's result, as text (libpq's text format); nil for SQL NULL. Any thread.
public struct PostgresRows: Sendable, Equatable {
    /// Column names, in order.
    public var columns: [String]
    /// Each row's values, in column order.
    public var rows: [[String?]]
    /// The command tag's row count (`INSERT 0 5` → 5), 0 when the command has none.
    public var affectedRows: Int
}

/// One libpq connection. Not thread-safe: one thread owns it (the replication thread, or a CLI command), and
/// every call blocks that thread on the network. Closes itself when released.
public final class PostgresConnection {
    /// Seconds libpq waits for a connection to be made (`connect_timeout`).
    public static let connectTimeoutSeconds = 5
    /// TCP keepalive: idle seconds before the first probe, seconds between probes, probes before the link counts as
    /// dead: an idle link to a cut cable is noticed within about 10 + 3 × 5 = 25 s.
    public static let keepaliveIdleSeconds = 10
    public static let keepaliveIntervalSeconds = 5
    public static let keepaliveCount = 3
    /// Longest that sent data may stay unacknowledged by the peer (`tcp_user_timeout`), ms: a cable cut while a
    /// batch is being sent fails within this, not after the kernel's ~15 minutes of retransmissions.
    public static let tcpUserTimeoutMilliseconds = 30_000

    private var handle: OpaquePointer?
    /// `host=… port=… dbname=… user=…` of this connection (no password), for messages.
    public let target: String

    /// Connects with libpq keyword/value `parameters` (`host`, `port`, `dbname`, `user`, `password`, `sslmode` …; a
    /// `dbname` that is a connection string or URI is expanded);
    /// keywords not given come from libpq's environment variables (`PGHOST` …) and defaults, as for `psql`.
    /// Throws `PlantError` naming the target when the server cannot be reached or refuses the login.
    public init(parameters: [(String, String)], applicationName: String) throws(PlantError) {
        try Self.loadLibrary()
        var all = parameters.filter { !$0.1.isEmpty }
        all.append(("application_name", applicationName))
        all.append(("connect_timeout", String(Self.connectTimeoutSeconds)))
        all.append(("keepalives", "1"))
        all.append(("keepalives_idle", String(Self.keepaliveIdleSeconds)))
        all.append(("keepalives_interval", String(Self.keepaliveIntervalSeconds)))
        all.append(("keepalives_count", String(Self.keepaliveCount)))
        all.append(("tcp_user_timeout", String(Self.tcpUserTimeoutMilliseconds)))
        // Texts are UTF-8 whatever the environment says: the chain's hashes are over UTF-8 bytes.
        all.append(("client_encoding", "UTF8"))
        target = Self.describe(all)
        let keys = all.map { strdup($0.0) }
        let values = all.map { strdup($0.1) }
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        var keyPointers: [UnsafePointer<CChar>?] = keys.map { UnsafePointer($0) } + [nil]
        var valuePointers: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) } + [nil]
        let connection = keyPointers.withUnsafeMutableBufferPointer { k in
            valuePointers.withUnsafeMutableBufferPointer { v in PQconnectdbParams(k.baseAddress, v.baseAddress, 1) }
        }
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let message = connection.map { Self.oneLine(String(cString: PQerrorMessage($0))) } ?? "out of memory"
            if let connection { PQfinish(connection) }
            throw PlantError(operation: "connect to \(target.isEmpty ? "the default server" : target)", message: message)
        }
        handle = connection
    }

    /// Connects with a libpq connection string or URI (`host=/run/postgresql dbname=plant`,
    /// `postgresql://quality@plantdb/plant`); an empty string takes everything from the environment.
    public convenience init(connectionString: String, applicationName: String) throws(PlantError) {
        try self.init(parameters: [("dbname", connectionString)], applicationName: applicationName)
    }

    deinit { close() }

    /// Closes the connection (idempotent).
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Runs `sql` with text `parameters` (`$1` …; nil for NULL) and returns its rows. Throws `PlantError` with the
    /// server's SQLSTATE, message and detail.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [String?] = [], operation: @autoclosure () -> String = "query")
        throws(PlantError) -> PostgresRows
    {
        guard let handle else { throw PlantError(operation: operation(), message: "the connection is closed") }
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        var pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let result = pointers.withUnsafeMutableBufferPointer { buffer in
            PQexecParams(handle, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        defer { PQclear(result) }
        return try rows(of: result, operation: operation())
    }

    /// Runs several statements without parameters in one round trip (`BEGIN; …; COMMIT`, migrations).
    public func executeScript(_ sql: String, operation: @autoclosure () -> String) throws(PlantError) {
        guard let handle else { throw PlantError(operation: operation(), message: "the connection is closed") }
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        _ = try rows(of: result, operation: operation())
    }

    /// Sends `sql` (one or more statements, no parameters) without waiting for its results, so that the caller can
    /// work while the server runs it; `finishSent` collects them. Nothing else may be sent in between.
    public func send(_ sql: String, operation: @autoclosure () -> String) throws(PlantError) {
        guard let handle else { throw PlantError(operation: operation(), message: "the connection is closed") }
        guard PQsendQuery(handle, sql) == 1 else {
            throw PlantError(operation: operation(), message: Self.oneLine(String(cString: PQerrorMessage(handle))))
        }
    }

    /// Waits for every result of what `send` sent; throws the first error among them.
    public func finishSent(operation: @autoclosure () -> String) throws(PlantError) {
        _ = try pendingResults(operation: operation())
    }

    /// Reads every pending result (libpq's until it returns none); throws the first error among them, else returns
    /// the last one's affected-row count.
    private func pendingResults(operation: String) throws(PlantError) -> Int {
        guard let handle else { throw PlantError(operation: operation, message: "the connection is closed") }
        var affected = 0
        var failure: PlantError?
        while let result = PQgetResult(handle) {
            do throws(PlantError) {
                affected = try rows(of: result, operation: operation).affectedRows
            } catch {
                failure = failure ?? error
            }
            PQclear(result)
        }
        if let failure { throw failure }
        return affected
    }

    /// `COPY … FROM STDIN` (text format): runs `sql`, sends `data` (whole lines, tab-separated, `\N` for NULL), ends
    /// the copy and returns the number of rows copied. Throws with the server's error, e.g. a malformed line.
    @discardableResult
    public func copyIn(_ sql: String, data: [UInt8], operation: @autoclosure () -> String) throws(PlantError) -> Int {
        guard let handle else { throw PlantError(operation: operation(), message: "the connection is closed") }
        let start = PQexec(handle, sql)
        let startStatus = PQresultStatus(start)
        if startStatus != PGRES_COPY_IN {
            defer { PQclear(start) }
            _ = try rows(of: start, operation: operation())
            throw PlantError(operation: operation(), message: "the server did not enter COPY IN")
        }
        PQclear(start)
        let sent = data.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        }
        let ended = PQputCopyEnd(handle, sent == 1 ? nil : "client failed to send the data")
        guard ended == 1 else {
            throw PlantError(operation: operation(), message: Self.oneLine(String(cString: PQerrorMessage(handle))))
        }
        return try pendingResults(operation: operation())
    }

    private func rows(of result: OpaquePointer?, operation: String) throws(PlantError) -> PostgresRows {
        guard let result else {
            throw PlantError(
                operation: operation,
                message: handle.map { Self.oneLine(String(cString: PQerrorMessage($0))) } ?? "no result")
        }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            func field(_ code: Int32) -> String? {
                guard let value = PQresultErrorField(result, code) else { return nil }
                return String(cString: value)
            }
            let message =
                field(Int32(UInt8(ascii: "M"))) ?? handle.map { Self.oneLine(String(cString: PQerrorMessage($0))) }
                ?? "failed"
            throw PlantError(
                sqlState: field(Int32(UInt8(ascii: "C"))), operation: operation, message: Self.oneLine(message),
                detail: field(Int32(UInt8(ascii: "D"))))
        }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        for column in 0..<columnCount { columns.append(String(cString: PQfname(result, Int32(column)))) }
        var rows: [[String?]] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
            rows.append(values)
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected)
    }

    /// Opens libpq on first use (it is not linked: see CPostgres.h). Throws `PlantError` naming the library when it
    /// cannot be loaded. Thread: any.
    static func loadLibrary() throws(PlantError) {
        var reason = [CChar](repeating: 0, count: Self.loadErrorBytes)
        guard lampcell_pq_load(&reason, reason.count) == 0 else {
            let message = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw PlantError(operation: "open the PostgreSQL client library", message: message)
        }
    }

    /// Room for the reason `lampcell_pq_load` gives.
    static let loadErrorBytes = 512

    /// `host=… port=… dbname=… user=… sslmode=…` of `parameters`, a connection string in `dbname` parsed by libpq;
    /// never a password.
    static func describe(_ parameters: [(String, String)]) -> String {
        let shown = ["host", "port", "dbname", "user", "sslmode"]
        var values: [String: String] = [:]
        for (key, value) in parameters where shown.contains(key) {
            if key == "dbname", value.contains("=") || value.contains("://") {
                guard let options = PQconninfoParse(value, nil) else {
                    values[key] = "(unreadable connection string)"
                    continue
                }
                defer { PQconninfoFree(options) }
                var option = options
                while let keyword = option.pointee.keyword {
                    let name = String(cString: keyword)
                    if shown.contains(name), let setting = option.pointee.val { values[name] = String(cString: setting) }
                    option += 1
                }
            } else {
                values[key] = value
            }
        }
        return shown.compactMap { key in values[key].map { "\(key)=\($0)" } }.joined(separator: " ")
    }

    /// libpq's messages end in a newline and may span lines: one line for logs and status.
    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
