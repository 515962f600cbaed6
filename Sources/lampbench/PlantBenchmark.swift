import CRealtime
import Foundation
import Ledger
import Logging
import Plant

// Item 10: the plant database (docs/PLANT.md), on a private PostgreSQL 15 started for the run.
// - Catch-up: one cell's replicator ships a backlog of `backlogEntries` ledger entries (read from SQLite, canonical
//   text built, COPY into staging, INSERT with the chain check), against COPY of the same rows into a table of the
//   same columns and indexes (no check, no trigger, no row-level security) on the same server in the same run.
// - Lag: `cells` cells produce at once, each appending a lamp every `lampIntervalMilliseconds`, each with its own
//   replicator; the time from a lamp's commit in its ledger to the server's acknowledgement, against one cell alone.

enum PlantBenchmark {
    static let backlogEntries = 1_000_000
    static let batchEntries = 5_000
    static let referenceChunkEntries = 50_000
    static let cells = 50
    static let lampIntervalMilliseconds: UInt64 = 200
    static let lagWindowSeconds = 30.0

    static func run(scale: Double, scratch: String, table: ResultTable) {
        do {
            let server = try LocalPostgresServer()
            try catchUp(server: server, entries: max(10_000, Int(Double(backlogEntries) * scale)), scratch: scratch, table: table)
            let window = max(5, lagWindowSeconds * scale)
            let alone = try lag(server: server, cells: 1, windowSeconds: window, prefix: "SOLO")
            let many = try lag(server: server, cells: cells, windowSeconds: window, prefix: "MANY")
            table.add(
                ResultRow(
                    item: "10", what: "plant replication lag, \(cells) cells each committing a lamp every \(lampIntervalMilliseconds) ms (commit → server acknowledgement)",
                    figure: many.text, reference: "1 cell alone: " + alone.text,
                    ratio: String(format: "p99 %.2f×", many.p99 / max(alone.p99, 1e-9))))
        } catch {
            table.note("plant benchmark: \(error)")
        }
    }

    /// One cell's backlog shipped by its replicator, against COPY of the same rows.
    static func catchUp(server: LocalPostgresServer, entries count: Int, scratch: String, table: ResultTable) throws {
        let directory = server.directory + "/backlog"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let writer = try LedgerWriter(path: directory + "/ledger.sqlite")
        var written = 0
        while written < count {
            let chunk = min(referenceChunkEntries, count - written)
            _ = try writer.append(
                LedgerBenchmark.entries(count: chunk, seed: UInt64(written) + 1, firstSequence: UInt64(written) + 1))
            written += chunk
        }
        let cellID = LedgerBenchmark.context.cellID
        let admin = try server.connect(database: LocalPostgresServer.database)
        try PlantSchema.addCell(admin, cellID: cellID, role: "bench_cell")

        var settings = PlantReplicator.Settings(
            connectionParameters: server.parameters(user: "bench_cell"), cellID: cellID)
        settings.batchEntries = batchEntries
        var logger = Logger(label: "plant-bench")
        logger.logLevel = .error
        let replicator = PlantReplicator(
            ledgerPath: writer.path, settings: settings, logger: logger)
        let start = nowSeconds()
        replicator.start()
        let status = replicator.waitForStatus(timeoutMilliseconds: 3_600_000) {
            $0.acknowledgedPosition == Int64(count)
        }
        let shipSeconds = nowSeconds() - start
        replicator.stop()
        guard status.acknowledgedPosition == Int64(count) else {
            table.note("plant catch-up did not finish: \(status)")
            return
        }

        // The reference: the same rows, COPY into a plain table of the same columns and indexes.
        try admin.execute(
            "CREATE TABLE public.copy_reference (LIKE lampcell.lamp INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING COMPRESSION INCLUDING INDEXES)")
        let ledger = writer.ledger
        var copySeconds = 0.0
        var position: Int64 = 1
        while position <= Int64(count) {
            let last = min(Int64(count), position + Int64(referenceChunkEntries) - 1)
            let chunk = try ledger.entries(matching: LedgerFilter(positions: position...last))
            let begin = nowSeconds()
            var data: [UInt8] = []
            data.reserveCapacity(chunk.count * 2_400)
            for entry in chunk { PlantReplicator.appendCopyRow(entry, to: &data) }
            try admin.copyIn(
                "COPY public.copy_reference (\(PlantReplicator.shippedColumns)) FROM STDIN", data: data,
                operation: "reference COPY")
            copySeconds += nowSeconds() - begin
            position = last + 1
        }
        let rate = Double(count) / shipSeconds
        let reference = Double(count) / copySeconds
        table.add(
            ResultRow(
                item: "10", what: "plant catch-up of a \(count)-entry backlog (SQLite → chain-checked INSERT, \(batchEntries)-entry transactions)",
                figure: String(format: "%.0f entries/s (%.1f s)", rate, shipSeconds),
                reference: String(format: "COPY of the same rows into the same columns and indexes: %.0f rows/s (%.1f s)", reference, copySeconds),
                ratio: String(format: "%.2f × COPY (aim ≥ 0.5)", rate / reference)))
    }

    struct Lag {
        var p50: Double
        var p99: Double
        var max: Double
        var lamps: Int
        var text: String { String(format: "p50 %.3f s, p99 %.3f s, max %.3f s over %d lamps", p50, p99, max, lamps) }
    }

    /// `cells` cells producing and replicating at once for `windowSeconds`; the commit-to-acknowledgement times.
    static func lag(server: LocalPostgresServer, cells: Int, windowSeconds: Double, prefix: String) throws -> Lag {
        let admin = try server.connect(database: LocalPostgresServer.database)
        var writers: [LedgerWriter] = []
        var replicators: [PlantReplicator] = []
        var logger = Logger(label: "plant-bench")
        logger.logLevel = .error
        for index in 0..<cells {
            let cellID = "\(prefix)-\(index)"
            let directory = server.directory + "/" + cellID
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            writers.append(try LedgerWriter(path: directory + "/ledger.sqlite"))
            try PlantSchema.addCell(admin, cellID: cellID, role: "\(prefix.lowercased())_\(index)")
            var settings = PlantReplicator.Settings(
                connectionParameters: server.parameters(user: "\(prefix.lowercased())_\(index)"), cellID: cellID)
            settings.batchEntries = batchEntries
            replicators.append(PlantReplicator(ledgerPath: directory + "/ledger.sqlite", settings: settings, logger: logger))
        }
        for replicator in replicators { replicator.start() }
        // Commit times per cell and position; the monitor notes when each position is acknowledged.
        let commits = CommitTimes(cells: cells)
        var lags: [Double] = []
        var acknowledged = Array(repeating: Int64(0), count: cells)
        let end = nowSeconds() + windowSeconds
        var producers: [Thread] = []
        for index in 0..<cells {
            let writer = writers[index]
            let cellID = "\(prefix)-\(index)"
            let thread = Thread {
                var sequence: UInt64 = 1
                while nowSeconds() < end {
                    var entry = LedgerBenchmark.entries(count: 1, seed: sequence, firstSequence: sequence)[0]
                    entry.cellID = cellID
                    entry.serial = "\(cellID)-\(sequence)"
                    _ = try? writer.append(entry)
                    commits.note(cell: index, at: nowSeconds())
                    sequence += 1
                    usleep(UInt32(lampIntervalMilliseconds * 1000))
                }
            }
            producers.append(thread)
            thread.start()
        }
        while true {
            let now = nowSeconds()
            let committed = commits.snapshot()
            for index in 0..<cells {
                let position = replicators[index].status().acknowledgedPosition ?? 0
                while acknowledged[index] < position && acknowledged[index] < Int64(committed[index].count) {
                    acknowledged[index] += 1
                    lags.append(now - committed[index][Int(acknowledged[index]) - 1])
                }
            }
            let done = now >= end && (0..<cells).allSatisfy { acknowledged[$0] == Int64(committed[$0].count) }
            if done || now > end + 120 { break }
            usleep(5_000)
        }
        for replicator in replicators { replicator.stop() }
        lags.sort()
        func percentile(_ p: Double) -> Double { lags.isEmpty ? .nan : lags[min(lags.count - 1, Int(p * Double(lags.count)))] }
        return Lag(p50: percentile(0.5), p99: percentile(0.99), max: lags.last ?? .nan, lamps: lags.count)
    }
}

/// When each cell's lamps were committed, by position (1-based index + 1). Producers note, the monitor reads.
final class CommitTimes: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [[Double]]

    init(cells: Int) { times = Array(repeating: [], count: cells) }

    func note(cell: Int, at seconds: Double) {
        lock.lock()
        times[cell].append(seconds)
        lock.unlock()
    }

    func snapshot() -> [[Double]] {
        lock.lock()
        defer { lock.unlock() }
        return times
    }
}
