import CellCore
import Foundation
import GRDB
import Ledger
import SeededRandom

// Item 7: the ledger's committed appends (one transaction, so one fsync, per lamp: hash chain, canonical encoding,
// JSON columns) beside raw SQLite inserts with the same durability (WAL, synchronous=FULL, one transaction per row)
// on the same disk in the same run; and verify throughput over a ledger of `verifyRecords` entries.

enum LedgerBenchmark {
    static let windowSeconds = 5.0
    static let maximumAppends = 60_000
    /// Ledger and raw take turns this many times within the window, so that a burst of load hits both alike.
    static let interleavedRounds = 10
    static let verifyRecords = 20_000

    static let windows = ProcessWindows(
        screwTorque: ProcessWindow(minimum: 1.12, maximum: 1.28, unit: "N·m"),
        pressForce: ProcessWindow(minimum: 410, maximum: 490, unit: "N"),
        glueVolume: ProcessWindow(minimum: 0.35, maximum: 1.2, unit: "ml"),
        leakRate: ProcessWindow(minimum: 0, maximum: 2.0, unit: "cm³/min"),
        luminousIntensity: ProcessWindow(minimum: 15_800, maximum: 20_200, unit: "cd"),
        cutoffAngle: ProcessWindow(minimum: -0.9, maximum: -0.24, unit: "°"))

    static let context = LedgerContext(
        cellID: "HL-CELL-01",
        recipes: [
            LedgerRecipe(id: "HL-LEFT", contentSHA256: LedgerRecipe.sha256Hex(of: Array("HL-LEFT\n".utf8)), windows: windows)
        ],
        orderIDs: [1: "BENCH-1"],
        devices: [
            DeviceIdentity.ra610(name: "loader", serialNumber: 61_000_001, firmwareRegister: 0x0102),
            DeviceIdentity.ra610(name: "assembler", serialNumber: 61_000_002, firmwareRegister: 0x0102),
            DeviceIdentity.ra610(name: "lens", serialNumber: 61_000_003, firmwareRegister: 0x0102),
            DeviceIdentity(name: "station", serialNumber: "", firmware: ""),
        ],
        softwareVersion: "lampbench")

    /// Lamps as the cell makes them (measurements inside the windows, lots changing, ~8 % NG).
    static func entries(count: Int, seed: UInt64, firstSequence: UInt64) -> [LedgerEntry] {
        var random = SplitMix64(seed: seed)
        var wall: UInt64 = 1_795_860_000_000_000_000
        var monotonic: UInt64 = 1_000_000_000
        return (0..<count).map { index in
            var lamp = LampRecord(
                serial: LampSerial(dateCode: LampSerial.dateCode(wallNanoseconds: wall), sequence: firstSequence + UInt64(index)),
                variant: 1, startWallNanoseconds: wall, startMonotonicNanoseconds: monotonic)
            lamp.recipeIndex = 0
            lamp.orderSequence = 1
            let cycle = UInt64.random(in: 26_000_000_000...27_000_000_000, using: &random)
            lamp.endWallNanoseconds = wall + cycle
            lamp.endMonotonicNanoseconds = monotonic + cycle
            for screw in 0..<4 { lamp.measurements[.screwTorque(screw)] = Double(Int.random(in: 115...125, using: &random)) / 100 }
            lamp.measurements[.pressForce] = Double(Int.random(in: 430...470, using: &random))
            lamp.measurements[.glueVolume] = Double(Int.random(in: 55...65, using: &random)) / 100
            lamp.measurements[.leakRate] = Double(Int.random(in: 10...90, using: &random)) / 100
            lamp.measurements[.luminousIntensity] = Double(Int.random(in: 17_000...19_000, using: &random))
            lamp.measurements[.cutoffAngle] = Double(Int.random(in: -65 ... -50, using: &random)) / 100
            lamp.housingLot = UInt32(100_000 + index / 100)
            lamp.ledModuleLot = UInt32(200_000 + index / 150)
            lamp.lensLot = UInt32(300_000 + index / 120)
            if Int.random(in: 0..<100, using: &random) < 8 {
                lamp.verdict = .ng
                lamp.measurements[.leakRate] = 3.5
                lamp.outOfWindowMask = 1 << MeasurementKind.leakRate.rawValue
            } else {
                lamp.verdict = .ok
            }
            wall += cycle
            monotonic += cycle
            return LedgerEntry(lamp, context: context)
        }
    }

    static func run(scratch: String, scale: Double, table: ResultTable) {
        let directory = scratch + "/ledger"
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let window = max(1, windowSeconds * scale)
            let lamps = entries(count: maximumAppends, seed: 21, firstSequence: 1)

            // Interleaved turns (ledger, raw, ledger, raw, …) so that a burst of load hits both alike.
            let writer = try LedgerWriter(path: directory + "/ledger.sqlite")
            var configuration = Configuration()
            configuration.prepareDatabase { db in
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            let raw = try DatabaseQueue(path: directory + "/raw.sqlite", configuration: configuration)
            try raw.write { db in
                try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, serial TEXT UNIQUE, payload TEXT, lot INTEGER)")
            }
            let payload = String(repeating: "x", count: 1200)  // about the size of a ledger row's text
            var ledgerCount = 0, rawCount = 0
            var ledgerSeconds = 0.0, rawSeconds = 0.0
            var ledgerUserSeconds = 0.0, rawUserSeconds = 0.0
            for _ in 0..<interleavedRounds {
                var start = nowSeconds()
                var user = threadUserSeconds()
                while ledgerCount < lamps.count, nowSeconds() - start < window / Double(2 * interleavedRounds) {
                    _ = try writer.append(lamps[ledgerCount])
                    ledgerCount += 1
                }
                ledgerSeconds += nowSeconds() - start
                ledgerUserSeconds += threadUserSeconds() - user
                start = nowSeconds()
                user = threadUserSeconds()
                while rawCount < lamps.count, nowSeconds() - start < window / Double(2 * interleavedRounds) {
                    let entry = lamps[rawCount]
                    try raw.write { db in
                        try db.execute(
                            sql: "INSERT INTO t (serial, payload, lot) VALUES (?, ?, ?)",
                            arguments: [entry.serial, payload, entry.lensLot])
                    }
                    rawCount += 1
                }
                rawSeconds += nowSeconds() - start
                rawUserSeconds += threadUserSeconds() - user
            }
            let ledgerRate = Double(ledgerCount) / ledgerSeconds
            let rawRate = Double(rawCount) / rawSeconds
            table.add(
                ResultRow(
                    item: "7", what: "ledger committed appends/s (1 transaction + fsync per lamp), user CPU per append",
                    figure: String(
                        format: "%.0f/s (%d in %.1f s), %.0f µs", ledgerRate, ledgerCount, ledgerSeconds,
                        ledgerUserSeconds / Double(max(1, ledgerCount)) * 1e6),
                    reference: String(
                        format: "raw SQLite INSERT, WAL, synchronous=FULL: %.0f/s (%d), %.0f µs", rawRate, rawCount,
                        rawUserSeconds / Double(max(1, rawCount)) * 1e6),
                    ratio: String(format: "ledger/raw = %.2f", ledgerRate / rawRate)))

            // Verify: a ledger of `verifyRecords` entries, appended in batches of 1000.
            let count = max(2000, Int(Double(verifyRecords) * min(1, scale)))
            let big = try LedgerWriter(path: directory + "/verify.sqlite")
            let bigEntries = entries(count: count, seed: 22, firstSequence: 1)
            let batchStart = nowSeconds()
            for start in stride(from: 0, to: bigEntries.count, by: 1000) {
                _ = try big.append(Array(bigEntries[start..<min(start + 1000, bigEntries.count)]))
            }
            let batchSeconds = nowSeconds() - batchStart
            let verifyStart = nowSeconds()
            let verification = try big.ledger.verify()
            let verifySeconds = nowSeconds() - verifyStart
            table.add(
                ResultRow(
                    item: "7", what: "ledger verify records/s",
                    figure: String(format: "%.0f/s (%d in %.2f s)", Double(verification.verifiedCount) / verifySeconds,
                        Int(verification.verifiedCount), verifySeconds) + (verification.isValid ? "" : " INVALID"),
                    reference: String(format: "batched appends (1000 per transaction): %.0f/s", Double(count) / batchSeconds),
                    ratio: String(format: "verify/batched append = %.2f", (Double(count) / verifySeconds) / (Double(count) / batchSeconds))))
        } catch {
            table.note("ledger: \(error)")
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// User CPU time of the calling thread, in seconds (RUSAGE_THREAD; Glibc does not export the constant's name).
private func threadUserSeconds() -> Double {
    let rusageThread = __rusage_who_t(1)
    var usage = rusage()
    getrusage(rusageThread, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
}
