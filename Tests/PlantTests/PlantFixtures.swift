// Cell ledgers for the plant tests (real SQLite ledgers written by `LedgerWriter`), and the row-by-row comparison
// of a cell's central rows with its local ledger.

import CRealtime
import Foundation
import Ledger
import LampCellTestSupport
import Logging
import Plant

/// A cell's local ledger in a temporary folder, and the role the cell logs in with.
final class TestCell: @unchecked Sendable {
    let cellID: String
    let role: String
    let directory: String
    var ledgerPath: String { directory + "/ledger.sqlite" }
    let writer: LedgerWriter
    private var random: SplitMix64

    /// A cell `cellID` registered on `server` with role `role`, with an empty ledger in `directory` (by default a
    /// folder of its own in the server's).
    init(_ cellID: String, role: String, server: LocalPostgresServer, seed: UInt64, directory: String? = nil) throws {
        self.cellID = cellID
        self.role = role
        self.directory = directory ?? server.directory + "/cell-" + cellID
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
        writer = try LedgerWriter(path: self.directory + "/ledger.sqlite")
        random = SplitMix64(seed: seed)
        try PlantSchema.addCell(try server.connect(database: LocalPostgresServer.database), cellID: cellID, role: role)
    }

    /// Appends `count` lamps (in transactions of up to 1,000), with lots drawn from `lots`, some NG, and order ids
    /// holding characters COPY and the canonical form escape (tab, backslash, newline).
    func produce(_ count: Int, lots: ClosedRange<Int64> = 1...20) throws {
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 1_000)
            var entries: [LedgerEntry] = []
            for _ in 0..<batch { entries.append(nextEntry(lots: lots)) }
            _ = try writer.append(entries)
            remaining -= batch
        }
    }

    private var sequence: Int64 = 0

    private func nextEntry(lots: ClosedRange<Int64>) -> LedgerEntry {
        sequence += 1
        let end = Int64(lampcell_realtime_ns()) - Int64(random.below(1_000)) * 1_000_000
        let ok = random.chance(95)
        let orders = ["ORD-1", "ORD\t2", "ORD\\3", "ORD\n4", "ÄØ-5"]
        return LedgerEntry(
            serial: "HL-\(cellID)-20261207-\(String(format: "%08d", sequence))", serialSequence: sequence,
            cellID: cellID, variant: random.chance(50) ? "LEFT" : "RIGHT", recipeID: "left",
            recipeSHA256: String(repeating: "ab", count: 32), orderID: random.pick(orders),
            startWallNanoseconds: end - 27_000_000_000, endWallNanoseconds: end,
            cycleTimeSeconds: 27 + random.uniform(0, 1), verdict: ok ? "OK" : "NG",
            reasons: ok ? "" : "leak_rate 3.41 cm³/min above 2.0",
            measurements: [
                LedgerMeasurement(name: "leak_rate", value: random.uniform(0, 3), unit: "cm3/min", minimum: nil, maximum: 2),
                LedgerMeasurement(name: "luminous_flux", value: random.uniform(900, 1100), unit: "lm", minimum: 950, maximum: 1050),
            ],
            housingLot: Int64(random.int(Int(lots.lowerBound)...Int(lots.upperBound))),
            ledModuleLot: Int64(random.int(100...120)), lensLot: Int64(random.int(200...220)),
            devices: [DeviceIdentity(name: "loader", serialNumber: "RA610-0001", firmware: "2.4.1")],
            softwareVersion: "0.4.0")
    }

    /// A replicator of this cell's ledger to `server`, not started.
    func replicator(_ server: LocalPostgresServer, batchEntries: Int = 500) -> PlantReplicator {
        var settings = PlantReplicator.Settings(
            connectionParameters: server.parameters(user: role), cellID: cellID)
        settings.batchEntries = batchEntries
        settings.acknowledgedFilePath = directory + "/plant-acknowledged"
        var logger = Logger(label: "plant-test-\(cellID)")
        logger.logLevel = .critical
        return PlantReplicator(ledgerPath: ledgerPath, settings: settings, logger: logger)
    }

    /// The first difference between this cell's central rows and its local ledger, row by row (position, hash,
    /// prev_hash, canonical text); nil when they are equal. Read as the quality role would: every row.
    func differenceFromCentral(_ server: LocalPostgresServer) throws -> String? {
        let connection = try server.connect(database: LocalPostgresServer.database)
        let rows = try connection.execute(
            "SELECT position, hash, prev_hash, canonical FROM lampcell.lamp WHERE cell_id = $1 ORDER BY position",
            [cellID]
        ).rows
        let local = try writer.ledger.entries(matching: .all)
        guard rows.count == local.count else { return "central holds \(rows.count) rows, local \(local.count)" }
        for (row, entry) in zip(rows, local) {
            let canonical = String(decoding: LedgerCanonical.encode(entry, position: entry.position), as: UTF8.self)
            guard row[0] == String(entry.position), row[1] == entry.hash, row[2] == entry.prevHash, row[3] == canonical
            else { return "position \(entry.position): central \(row[0] ?? "?") \(row[1] ?? "?") differs" }
        }
        return nil
    }

    /// The chain head the server holds for this cell (0 when none).
    func centralCount(_ server: LocalPostgresServer) throws -> Int64 {
        let rows = try server.connect(database: LocalPostgresServer.database).execute(
            "SELECT count(*) FROM lampcell.lamp WHERE cell_id = $1", [cellID]
        ).rows
        return Int64(rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }
}
