// Shared helpers of the ledger tests: temporary directories, a deterministic lamp generator, raw SQL access.

import CellCore
import Foundation
import GRDB
import LampCellTestSupport
import Testing

@testable import Ledger

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "ledger") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "\(label)-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// `path/name`.
    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

enum Fixture {
    static let windows = ProcessWindows(
        screwTorque: ProcessWindow(minimum: 1.8, maximum: 2.4, unit: "N·m"),
        pressForce: ProcessWindow(minimum: 350, maximum: 450, unit: "N"),
        glueVolume: ProcessWindow(minimum: 1.1, maximum: 1.5, unit: "ml"),
        leakRate: ProcessWindow(minimum: 0, maximum: 2.0, unit: "cm³/min"),
        luminousIntensity: ProcessWindow(minimum: 20_000, maximum: 40_000, unit: "cd"),
        cutoffAngle: ProcessWindow(minimum: -0.8, maximum: -0.2, unit: "°"))

    static let context = LedgerContext(
        cellID: "HL-CELL-01",
        recipes: [
            LedgerRecipe(
                id: "HL-LEFT", contentSHA256: LedgerRecipe.sha256Hex(of: Array("recipe HL-LEFT\n".utf8)),
                windows: windows),
            LedgerRecipe(
                id: "HL-RIGHT", contentSHA256: LedgerRecipe.sha256Hex(of: Array("recipe HL-RIGHT\n".utf8)),
                windows: windows),
        ],
        orderIDs: [1: "PO-2026-0001", 2: "PO-2026-0002", 3: "PO-2026-0003"],
        devices: [
            DeviceIdentity(name: "station", serialNumber: "", firmware: ""),
            DeviceIdentity.ra610(name: "arm2", serialNumber: 610_002, firmwareRegister: 0x0207),
            DeviceIdentity.ra610(name: "arm1", serialNumber: 610_001, firmwareRegister: 0x0207),
            DeviceIdentity.ra610(name: "arm3", serialNumber: 610_003, firmwareRegister: 0x0301),
        ],
        softwareVersion: "lampcelld 0.1.0 (test)")

    /// 2026-11-28T10:00:00Z in ns.
    static let baseWallNanoseconds: UInt64 = 1_795_860_000_000_000_000

    /// The fixed lamp of the golden test: NG on leak rate, all measurements taken.
    static func goldenLamp() -> LampRecord {
        var lamp = LampRecord(
            serial: LampSerial(dateCode: 20_261_128, sequence: 42), variant: 1,
            startWallNanoseconds: baseWallNanoseconds + 123_456_789,
            startMonotonicNanoseconds: 5_000_000_000)
        lamp.recipeIndex = 0
        lamp.orderSequence = 1
        lamp.endWallNanoseconds = baseWallNanoseconds + 31_623_456_789
        lamp.endMonotonicNanoseconds = 36_500_000_000
        lamp.verdict = .ng
        lamp.outOfWindowMask = 1 << MeasurementKind.leakRate.rawValue
        for screw in 0..<4 { lamp.measurements[.screwTorque(screw)] = 2.0 + Double(screw) * 0.05 }
        lamp.measurements[.pressForce] = 402
        lamp.measurements[.glueVolume] = 1.32
        lamp.measurements[.leakRate] = 3.41
        lamp.measurements[.luminousIntensity] = 31_250
        lamp.measurements[.cutoffAngle] = -0.57
        lamp.housingLot = 700_123
        lamp.ledModuleLot = 800_456
        lamp.lensLot = 900_789
        return lamp
    }

    /// `count` lamps as a cell would make them: increasing serials and times, lots changing every 24…200
    /// parts, mostly OK, some NG (one or two measurements out of window or missing), a few scrapped.
    static func lamps(count: Int, seed: UInt64 = 1, firstSequence: UInt64 = 1) -> [LampRecord] {
        var random = SplitMix64(seed: seed)
        var lots: [UInt32] = [100_000, 200_000, 300_000]
        var remaining: [Int] = [0, 0, 0]
        var lamps: [LampRecord] = []
        var wall = baseWallNanoseconds
        var monotonic: UInt64 = 1_000_000_000
        for index in 0..<count {
            for kind in 0..<3 {
                if remaining[kind] == 0 {
                    lots[kind] += 1
                    remaining[kind] = Int.random(in: 24...200, using: &random)
                }
                remaining[kind] -= 1
            }
            let sequence = firstSequence + UInt64(index)
            var lamp = LampRecord(
                serial: LampSerial(dateCode: LampSerial.dateCode(wallNanoseconds: wall), sequence: sequence),
                variant: UInt16(1 + index % 2), startWallNanoseconds: wall, startMonotonicNanoseconds: monotonic)
            lamp.recipeIndex = UInt8(index % 2)
            lamp.orderSequence = UInt32(1 + index / 1000 % 3)
            let cycle = UInt64.random(in: 30_000_000_000...34_000_000_000, using: &random)
            lamp.endWallNanoseconds = wall + cycle
            lamp.endMonotonicNanoseconds = monotonic + cycle
            for screw in 0..<4 {
                lamp.measurements[.screwTorque(screw)] = Double(Int.random(in: 190...230, using: &random)) * 0.01
            }
            lamp.measurements[.pressForce] = Double(Int.random(in: 380...420, using: &random))
            lamp.measurements[.glueVolume] = Double(Int.random(in: 120...140, using: &random)) * 0.01
            lamp.measurements[.leakRate] = Double(Int.random(in: 10...180, using: &random)) * 0.01
            lamp.measurements[.luminousIntensity] = Double(Int.random(in: 25_000...35_000, using: &random))
            lamp.measurements[.cutoffAngle] = Double(Int.random(in: -70 ... -30, using: &random)) * 0.01
            lamp.housingLot = lots[0]
            lamp.ledModuleLot = lots[1]
            lamp.lensLot = lots[2]
            let roll = Int.random(in: 0..<100, using: &random)
            if roll < 8 {
                lamp.verdict = .ng
                lamp.measurements[.leakRate] = Double(Int.random(in: 201...500, using: &random)) * 0.01
                lamp.outOfWindowMask = 1 << MeasurementKind.leakRate.rawValue
                if roll < 2 {
                    lamp.measurements[.cutoffAngle] = nil
                    lamp.outOfWindowMask |= 1 << MeasurementKind.cutoffAngle.rawValue
                }
            } else if roll < 10 {
                lamp.verdict = .scrapped
                lamp.scrapReason = .aborted
                lamp.measurements[.luminousIntensity] = nil
                lamp.measurements[.cutoffAngle] = nil
            } else {
                lamp.verdict = .ok
            }
            lamps.append(lamp)
            wall += cycle / 3
            monotonic += cycle / 3
        }
        return lamps
    }

    /// Pending entries of `lamps(count:seed:)`.
    static func entries(count: Int, seed: UInt64 = 1, firstSequence: UInt64 = 1) -> [LedgerEntry] {
        lamps(count: count, seed: seed, firstSequence: firstSequence).map { LedgerEntry($0, context: context) }
    }
}

/// Raw SQL on a ledger file through a second connection, bypassing the ledger API (the tamper tests' attacker).
struct RawDatabase {
    let queue: DatabaseQueue

    init(path: String) throws {
        queue = try DatabaseQueue(path: path)
    }

    /// Drops the append-only triggers (an attacker with file access can).
    func dropTriggers() throws {
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "DROP TRIGGER lamp_no_update; DROP TRIGGER lamp_no_delete")
        }
    }

    func execute(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws {
        try queue.write { db in try db.execute(sql: sql, arguments: arguments) }
    }

    func text(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> String? {
        try queue.read { db in try String.fetchOne(db, sql: sql, arguments: arguments) }
    }
}

/// A writer on a fresh ledger file holding `count` generated entries; returns the stored entries.
func makeLedger(in directory: TemporaryDirectory, count: Int, batch: Int = 500, seed: UInt64 = 1) throws
    -> (LedgerWriter, [LedgerEntry])
{
    let writer = try LedgerWriter(path: directory.file("ledger.db"))
    var stored: [LedgerEntry] = []
    let entries = Fixture.entries(count: count, seed: seed)
    var start = 0
    while start < entries.count {
        let end = min(start + batch, entries.count)
        stored += try writer.append(Array(entries[start..<end]))
        start = end
    }
    return (writer, stored)
}
