// The ledger's replication to a real PostgreSQL 15 (a private server per test): the schema's refusals, store and
// forward, and each fault case ending with the central rows equal to the local ledger, row by row.

import Foundation
import GRDB
import Ledger
import LampCellTestSupport
@testable import Plant
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Plant database: schema and replication", .serialized)
struct PlantReplicationTests {
    /// Longest wait for a replicator to reach a state, ms (a few thousand entries take a few seconds).
    static let catchUpTimeoutMilliseconds: UInt64 = 120_000

    /// Waits until `replicator` has shipped every local entry of `cell` and says so.
    static func caughtUp(_ replicator: PlantReplicator, _ cell: TestCell) throws -> PlantReplicator.Status {
        let local = try cell.writer.ledger.count()
        return replicator.waitForStatus(timeoutMilliseconds: catchUpTimeoutMilliseconds) {
            $0.state == .caughtUp && $0.acknowledgedPosition == local && $0.lagEntries == 0
        }
    }

    @Test("migrate is idempotent; a cell's role inserts only its own, chained, consistent rows; nobody updates or deletes; quality only reads")
    func schemaRefusals() throws {
        let server = try LocalPostgresServer()
        let admin = try server.connect(database: LocalPostgresServer.database)
        #expect(try PlantSchema.migrate(admin) == [])  // already applied by the fixture
        #expect(try PlantSchema.appliedMigrations(admin) == PlantSchema.migrations.map(\.id))
        let a = try TestCell("CELL-A", role: "cell_a", server: server, seed: 1)
        let b = try TestCell("CELL-B", role: "cell_b", server: server, seed: 2)
        // Registering the same pair again is fine; the cell under another role is refused.
        try PlantSchema.addCell(admin, cellID: "CELL-A", role: "cell_a")
        #expect(throws: PlantError.self) { try PlantSchema.addCell(admin, cellID: "CELL-A", role: "cell_x") }
        #expect(throws: PlantError.self) { try PlantSchema.addCell(admin, cellID: "CELL-A", role: "Robert'); DROP") }

        try a.produce(3)
        try b.produce(3)
        let aEntries = try a.writer.ledger.entries(matching: .all)
        let bEntries = try b.writer.ledger.entries(matching: .all)
        let cellA = try server.connect(user: "cell_a", database: LocalPostgresServer.database)
        func insert(_ entry: LedgerEntry, as connection: PostgresConnection, edit: (inout [String?]) -> Void = { _ in })
            throws
        {
            var values: [String?] = PlantReplicator.shippedValues(entry)
            edit(&values)
            try connection.execute(
                "INSERT INTO lampcell.lamp (\(PlantReplicator.shippedColumns)) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                values)
        }
        func refusal(_ body: () throws -> Void) -> String? {
            do {
                try body()
                return nil
            } catch let error as PlantError {
                return error.sqlState
            } catch {
                return "\(error)"
            }
        }
        // Cell A's role forging a row of cell B (a valid row of B's own chain): row-level security.
        #expect(refusal { try insert(bEntries[0], as: cellA) } == PlantError.insufficientPrivilegeState)
        // A row whose hash is not its content's: the chain check.
        #expect(refusal { try insert(aEntries[0], as: cellA) { $0[12] = String(repeating: "0", count: 64) } } == "LC001")
        // A row whose typed column disagrees with its canonical text (a lot changed): the check constraint.
        #expect(refusal { try insert(aEntries[0], as: cellA) { $0[7] = "999" } } == "23514")
        // Starting anywhere but after the head: the chain check.
        #expect(refusal { try insert(aEntries[1], as: cellA) } == "LC001")
        // The real first entry is accepted; the same position again is a duplicate.
        #expect(refusal { try insert(aEntries[0], as: cellA) } == nil)
        #expect(refusal { try insert(aEntries[0], as: cellA) } == PlantError.uniqueViolationState)
        // No role updates, deletes or truncates, not even the owner.
        #expect(refusal { try cellA.execute("UPDATE lampcell.lamp SET verdict = 'OK'") } == PlantError.insufficientPrivilegeState)
        #expect(refusal { try cellA.execute("DELETE FROM lampcell.lamp") } == PlantError.insufficientPrivilegeState)
        #expect(refusal { try admin.execute("UPDATE lampcell.lamp SET verdict = 'NG'") } == PlantError.insufficientPrivilegeState)
        #expect(refusal { try admin.execute("DELETE FROM lampcell.lamp") } == PlantError.insufficientPrivilegeState)
        #expect(refusal { try admin.execute("TRUNCATE lampcell.lamp") } == PlantError.insufficientPrivilegeState)
        // Cell A sees only its own rows; the quality role sees all and inserts nothing.
        let replicatorB = b.replicator(server)
        replicatorB.start()
        _ = try Self.caughtUp(replicatorB, b)
        replicatorB.stop()
        #expect(try cellA.execute("SELECT DISTINCT cell_id FROM lampcell.lamp").rows == [["CELL-A"]])
        try admin.execute("CREATE ROLE quality_eng LOGIN IN ROLE \(PlantSchema.qualityRole)")
        let quality = try server.connect(user: "quality_eng", database: LocalPostgresServer.database)
        #expect(try quality.execute("SELECT cell_id, count(*) FROM lampcell.lamp GROUP BY 1 ORDER BY 1").rows == [["CELL-A", "1"], ["CELL-B", "3"]])
        #expect(refusal { try insert(aEntries[1], as: quality) } == PlantError.insufficientPrivilegeState)
    }

    @Test("store and forward: a backlog ships in batches, new lamps follow, a restart sends nothing twice")
    func replicatesIdempotently() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-01", role: "cell_01", server: server, seed: 3)
        try cell.produce(1_234)
        let replicator = cell.replicator(server, batchEntries: 500)
        replicator.start()
        var status = try Self.caughtUp(replicator, cell)
        #expect(status.acknowledgedPosition == 1_234, "\(status)")
        #expect(status.shippedEntries == 1_234)
        try cell.produce(66)
        status = try Self.caughtUp(replicator, cell)
        #expect(status.acknowledgedPosition == 1_300, "\(status)")
        replicator.stop()
        #expect(try cell.differenceFromCentral(server) == nil)
        // The typed columns hold the values themselves (an order id with a backslash, a tab, a newline), as recorded.
        let admin = try server.connect(database: LocalPostgresServer.database)
        for order in ["ORD\\3", "ORD\t2", "ORD\n4", "ÄØ-5"] {
            let local = try cell.writer.ledger.entries(matching: .all).filter { $0.orderID == order }.count
            let central = try admin.execute("SELECT count(*) FROM lampcell.lamp WHERE order_id = $1", [order]).rows
            #expect(central == [[String(local)]] && local > 0, "\(order)")
        }

        // A new run (and one that forgot its acknowledged position) reads the server's head: nothing is resent.
        try FileManager.default.removeItem(atPath: cell.directory + "/plant-acknowledged")
        try cell.produce(10)
        let again = cell.replicator(server)
        again.start()
        status = try Self.caughtUp(again, cell)
        again.stop()
        #expect(status.shippedEntries == 10, "\(status)")
        #expect(try cell.differenceFromCentral(server) == nil)
    }

    @Test("the server down for a while: the cell keeps recording, the status shows the lag and warns, the backlog drains")
    func serverDown() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-02", role: "cell_02", server: server, seed: 4)
        try cell.produce(100)
        var settings = PlantReplicator.Settings(
            connectionParameters: server.parameters(user: cell.role), cellID: cell.cellID)
        settings.lagWarningEntries = 200
        settings.acknowledgedFilePath = cell.directory + "/plant-acknowledged"
        let replicator = PlantReplicator(ledgerPath: cell.ledgerPath, settings: settings, logger: .init(label: "t"))
        replicator.start()
        _ = try Self.caughtUp(replicator, cell)
        try server.stop()
        try cell.produce(300)
        let waiting = replicator.waitForStatus(timeoutMilliseconds: 20_000) {
            $0.state == .disconnected && $0.lagEntries == 300
        }
        #expect(waiting.state == .disconnected, "\(waiting)")
        #expect(waiting.lagEntries == 300)
        #expect((waiting.lagSeconds ?? 0) > 0)
        #expect(waiting.warning?.contains("lags 300 entries") == true, "\(waiting)")
        #expect(waiting.lastError != nil)
        try server.start()
        let drained = try Self.caughtUp(replicator, cell)
        replicator.stop()
        #expect(drained.lagEntries == 0 && drained.warning == nil, "\(drained)")
        #expect(try cell.differenceFromCentral(server) == nil)
    }

    @Test("the server crashes (immediate stop) mid-backlog and restarts: every entry once, the chain intact")
    func serverRestartedMidBatch() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-03", role: "cell_03", server: server, seed: 5)
        try cell.produce(6_000)
        let replicator = cell.replicator(server, batchEntries: 200)
        replicator.start()
        let partway = replicator.waitForStatus(timeoutMilliseconds: Self.catchUpTimeoutMilliseconds) {
            ($0.acknowledgedPosition ?? 0) >= 1_000
        }
        try server.stop(mode: "immediate")
        // The crash came mid-backlog (most likely mid-batch: a batch is in flight nearly all the time).
        try #require((1_000..<6_000).contains(partway.acknowledgedPosition ?? 0), "\(partway)")
        let down = replicator.waitForStatus(timeoutMilliseconds: 20_000) { $0.state == .disconnected }
        #expect(down.state == .disconnected, "\(down)")
        try server.start()
        let status = try Self.caughtUp(replicator, cell)
        replicator.stop()
        #expect(status.acknowledgedPosition == 6_000, "\(status)")
        #expect(try cell.differenceFromCentral(server) == nil)
    }

    @Test("the connection cut three times mid-batch (the server closes its socket): the backlog drains, nothing lost or doubled")
    func connectionCut() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-04", role: "cell_04", server: server, seed: 6)
        try cell.produce(6_000)
        let replicator = cell.replicator(server, batchEntries: 200)
        replicator.start()
        let admin = try server.connect(database: LocalPostgresServer.database)
        var cuts = 0
        var lastAcknowledged: Int64 = 0
        while cuts < 3 {
            let status = replicator.waitForStatus(timeoutMilliseconds: Self.catchUpTimeoutMilliseconds) {
                ($0.acknowledgedPosition ?? 0) >= lastAcknowledged + 1_000 && $0.state == .replicating
            }
            try #require(status.state == .replicating, "\(status)")
            lastAcknowledged = status.acknowledgedPosition ?? 0
            let killed = try admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'lampcelld%'")
            if killed.rows.contains(["t"]) { cuts += 1 }
        }
        let status = try Self.caughtUp(replicator, cell)
        replicator.stop()
        #expect(status.acknowledgedPosition == 6_000, "\(status)")
        #expect(try cell.differenceFromCentral(server) == nil)
    }

    @Test("a tampered local ledger: the server refuses the changed entry, the cell alarms with its position, nothing after it lands")
    func tamperedLocalLedger() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-05", role: "cell_05", server: server, seed: 7)
        try cell.produce(300)
        // Someone edits entry 150 with the sqlite3 shell (dropping the append-only trigger first).
        try LedgerTampering.execute(
            cell.ledgerPath,
            "DROP TRIGGER lamp_no_update; UPDATE lamp SET housing_lot = housing_lot + 1 WHERE position = 150;")
        let replicator = cell.replicator(server, batchEntries: 100)
        replicator.start()
        let status = replicator.waitForStatus(timeoutMilliseconds: 30_000) { $0.state == .refused }
        replicator.stop()
        #expect(status.state == .refused, "\(status)")
        #expect(status.chainBreakPosition == 150)
        #expect(status.warning?.contains("refused at position 150") == true, "\(status)")
        #expect(status.lastError?.contains("hash is not SHA-256") == true, "\(status)")
        // The batches before the bad one landed; the bad one and everything after did not.
        #expect(try cell.centralCount(server) == 100)
    }

    @Test("a local ledger replaced behind the server's back: refused with the server's head position, nothing shipped")
    func replacedLocalLedger() throws {
        let server = try LocalPostgresServer()
        let cell = try TestCell("CELL-08", role: "cell_08", server: server, seed: 10)
        try cell.produce(100)
        let first = cell.replicator(server)
        first.start()
        _ = try Self.caughtUp(first, cell)
        first.stop()
        // Another ledger file, 50 other lamps, under the same path.
        let other = try TestCell("CELL-08", role: "cell_08", server: server, seed: 99, directory: cell.directory + "-other")
        try other.produce(50)
        try FileManager.default.removeItem(atPath: cell.ledgerPath)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: cell.ledgerPath + suffix) }
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: other.ledgerPath + suffix) {
            try FileManager.default.copyItem(atPath: other.ledgerPath + suffix, toPath: cell.ledgerPath + suffix)
        }
        let second = cell.replicator(server)
        second.start()
        let status = second.waitForStatus(timeoutMilliseconds: 20_000) { $0.state == .refused }
        second.stop()
        #expect(status.state == .refused, "\(status)")
        #expect(status.chainBreakPosition == 100)
        #expect(status.lastError?.contains("replaced or truncated") == true, "\(status)")
        #expect(status.warning?.contains("refused at position 100") == true)
        #expect(try cell.centralCount(server) == 100)
    }

    @Test("two cells replicate at once, each into its own chain")
    func twoCellsAtOnce() throws {
        let server = try LocalPostgresServer()
        let cells = [
            try TestCell("CELL-06", role: "cell_06", server: server, seed: 8),
            try TestCell("CELL-07", role: "cell_07", server: server, seed: 9),
        ]
        for cell in cells { try cell.produce(2_000) }
        let replicators = cells.map { $0.replicator(server, batchEntries: 200) }
        for replicator in replicators { replicator.start() }
        // Each cell keeps producing while both ship.
        for cell in cells { try cell.produce(500) }
        for (cell, replicator) in zip(cells, replicators) {
            let status = try Self.caughtUp(replicator, cell)
            #expect(status.acknowledgedPosition == 2_500, "\(cell.cellID): \(status)")
        }
        for replicator in replicators { replicator.stop() }
        for cell in cells { #expect(try cell.differenceFromCentral(server) == nil, "\(cell.cellID)") }
    }
}

/// Edits a ledger file behind the ledger's back, as the sqlite3 shell would.
enum LedgerTampering {
    static func execute(_ path: String, _ sql: String) throws {
        let database = try DatabaseQueue(path: path)
        try database.write { try $0.execute(sql: sql) }
    }
}

@Suite("Plant database: TLS")
struct PlantTLSTests {
    @Test("tls = true with ca_file: encrypted and the server authenticated; a wrong CA is refused; tls = false is clear text")
    func tlsOnAndOff() throws {
        let server = try LocalPostgresServer(tlsPort: try freeLoopbackPort())
        let port = try #require(server.tlsPort)
        func connection(tls: Bool, caFile: String?) throws -> PostgresConnection {
            try PostgresConnection(
                parameters: PlantReplicator.Settings.connectionParameters(
                    server: "localhost", port: port, database: LocalPostgresServer.database,
                    role: LocalPostgresServer.superuser, password: nil, tls: tls, caFile: caFile),
                applicationName: "lampcell-tls-test")
        }
        let query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        #expect(try connection(tls: true, caFile: server.certificatePath).execute(query).rows == [["t"]])
        #expect(try connection(tls: true, caFile: nil).execute(query).rows == [["t"]])
        #expect(try connection(tls: false, caFile: nil).execute(query).rows == [["f"]])
        // A CA that did not sign the server's certificate: refused before any query.
        let otherCA = server.directory + "/other-ca.crt"
        try FileManager.default.copyItem(atPath: Repository.root + "/Tests/PlantTests/other-ca.crt", toPath: otherCA)
        #expect(throws: PlantError.self) { try connection(tls: true, caFile: otherCA) }
    }
}
