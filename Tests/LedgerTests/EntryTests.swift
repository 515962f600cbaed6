import CellCore
import Foundation
import GRDB
import LampCellTestSupport
import Testing

@testable import Ledger

@Suite("Ledger entries, canonical encoding, round trip")
struct EntryTests {
    @Test("An entry made from a LampRecord carries every field with its names, units and windows")
    func entryFromLampRecord() {
        let entry = LedgerEntry(Fixture.goldenLamp(), context: Fixture.context)
        #expect(entry.position == 0 && entry.prevHash.isEmpty && entry.hash.isEmpty)
        #expect(entry.serial == "HL-CELL-01-20261128-00000042")
        #expect(entry.serialSequence == 42)
        #expect(entry.cellID == "HL-CELL-01")
        #expect(entry.variant == "LEFT")
        #expect(entry.recipeID == "HL-LEFT")
        #expect(entry.recipeSHA256 == LedgerRecipe.sha256Hex(of: Array("recipe HL-LEFT\n".utf8)))
        #expect(entry.recipeSHA256.count == 64)
        #expect(entry.orderID == "PO-2026-0001")
        #expect(entry.startUTC == "2026-11-28T10:00:00.123Z")
        #expect(entry.startWallNanoseconds == 1_795_860_000_123_456_789)
        #expect(entry.endUTC == "2026-11-28T10:00:31.623Z")
        #expect(entry.endWallNanoseconds == 1_795_860_031_623_456_789)
        #expect(entry.cycleTimeSeconds == 31.5)
        #expect(entry.verdict == "NG")
        #expect(entry.reasons == "leak_rate 3.41 cm³/min above 2.0")
        #expect(entry.measurements.map(\.name) == MeasurementKind.allCases.map(\.name))
        let leak = entry.measurements.first { $0.name == "leak_rate" }
        #expect(leak == LedgerMeasurement(name: "leak_rate", value: 3.41, unit: "cm³/min", minimum: 0, maximum: 2.0))
        let torque = entry.measurements.first { $0.name == "screw_torque_3" }
        #expect(torque == LedgerMeasurement(name: "screw_torque_3", value: 2.1, unit: "N·m", minimum: 1.8, maximum: 2.4))
        #expect(entry.housingLot == 700_123 && entry.ledModuleLot == 800_456 && entry.lensLot == 900_789)
        #expect(entry.devices.map(\.name) == ["arm1", "arm2", "arm3", "station"])
        #expect(entry.devices[0] == DeviceIdentity(name: "arm1", serialNumber: "610001", firmware: "2.7"))
        #expect(entry.devices[2].firmware == "3.1")
        #expect(entry.softwareVersion == "lampcelld 0.1.0 (test)")
    }

    @Test("NG reasons name the bound crossed or the missing measurement; scrapped lamps give the scrap reason")
    func reasons() {
        var lamp = Fixture.goldenLamp()
        lamp.measurements[.pressForce] = 300
        lamp.measurements[.cutoffAngle] = nil
        lamp.outOfWindowMask |= 1 << MeasurementKind.pressForce.rawValue | 1 << MeasurementKind.cutoffAngle.rawValue
        #expect(
            LedgerEntry(lamp, context: Fixture.context).reasons
                == "press_force 300.0 N below 350.0; leak_rate 3.41 cm³/min above 2.0; cutoff_angle missing")
        lamp.verdict = .scrapped
        lamp.scrapReason = .toolError
        #expect(LedgerEntry(lamp, context: Fixture.context).reasons == "tool error")
        lamp.verdict = .ok
        #expect(LedgerEntry(lamp, context: Fixture.context).reasons == "")
    }

    @Test("A lamp in the cell at a crash is recorded as scrapped, controller restart, cycle from the wall clock")
    func scrappedAtRestart() {
        var lamp = LampRecord(
            serial: LampSerial(dateCode: 20_261_128, sequence: 77), variant: 2,
            startWallNanoseconds: Fixture.baseWallNanoseconds, startMonotonicNanoseconds: 9_000_000_000_000)
        lamp.recipeIndex = 1
        lamp.housingLot = 5
        let entry = LedgerEntry.scrappedAtRestart(
            lamp, recordedAtWallNanoseconds: Fixture.baseWallNanoseconds + 90_000_000_000, context: Fixture.context)
        #expect(entry.verdict == "SCRAPPED")
        #expect(entry.reasons == "controller restart")
        #expect(entry.variant == "RIGHT" && entry.recipeID == "HL-RIGHT")
        #expect(entry.cycleTimeSeconds == 90)
        #expect(entry.endUTC == "2026-11-28T10:01:30.000Z")
        #expect(entry.housingLot == 5 && entry.lensLot == 0)
        #expect(entry.measurements.isEmpty)
    }

    @Test("UTC text of wall times, including a leap day and the epoch")
    func isoTime() {
        #expect(LedgerTime.iso8601(wallNanoseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(LedgerTime.iso8601(wallNanoseconds: 951_782_400_999_999_999) == "2000-02-29T00:00:00.999Z")
        #expect(LedgerTime.iso8601(wallNanoseconds: 1_798_761_599_001_000_000) == "2026-12-31T23:59:59.001Z")
    }

    @Test("Canonical reals: %.17g, exact for every binary64, fixed words for non-finite values")
    func canonicalReals() {
        #expect(LedgerCanonical.real(3.41) == "3.4100000000000001")
        #expect(LedgerCanonical.real(2) == "2")
        #expect(LedgerCanonical.real(-0.57) == "-0.56999999999999995")
        #expect(LedgerCanonical.real(1e-7) == "9.9999999999999995e-08")
        #expect(LedgerCanonical.real(-0.0) == "-0")
        #expect(LedgerCanonical.real(.infinity) == "inf" && LedgerCanonical.real(-.infinity) == "-inf")
        #expect(LedgerCanonical.real(.nan) == "nan" && LedgerCanonical.real(-.nan) == "nan")
        var random = SplitMix64(seed: 7)
        for _ in 0..<10_000 {
            let value = Double(bitPattern: random.next())
            guard value.isFinite else { continue }
            #expect(Double(LedgerCanonical.real(value)) == value)
        }
    }

    /// The documented example (docs/LEDGER.md): the canonical encoding of the golden lamp as the first entry.
    static let goldenCanonical = """
        ledger-entry-v1
        position=1
        serial=HL-CELL-01-20261128-00000042
        serial_sequence=42
        cell_id=HL-CELL-01
        variant=LEFT
        recipe_id=HL-LEFT
        recipe_sha256=\(LedgerRecipe.sha256Hex(of: Array("recipe HL-LEFT\n".utf8)))
        order_id=PO-2026-0001
        start_utc=2026-11-28T10:00:00.123Z
        start_wall_ns=1795860000123456789
        end_utc=2026-11-28T10:00:31.623Z
        end_wall_ns=1795860031623456789
        cycle_time_s=31.5
        verdict=NG
        reasons=leak_rate 3.41 cm³/min above 2.0
        measurement_count=9
        measurement.0.name=screw_torque_1
        measurement.0.value=2
        measurement.0.unit=N·m
        measurement.0.min=1.8
        measurement.0.max=2.3999999999999999
        measurement.1.name=screw_torque_2
        measurement.1.value=2.0499999999999998
        measurement.1.unit=N·m
        measurement.1.min=1.8
        measurement.1.max=2.3999999999999999
        measurement.2.name=screw_torque_3
        measurement.2.value=2.1000000000000001
        measurement.2.unit=N·m
        measurement.2.min=1.8
        measurement.2.max=2.3999999999999999
        measurement.3.name=screw_torque_4
        measurement.3.value=2.1499999999999999
        measurement.3.unit=N·m
        measurement.3.min=1.8
        measurement.3.max=2.3999999999999999
        measurement.4.name=press_force
        measurement.4.value=402
        measurement.4.unit=N
        measurement.4.min=350
        measurement.4.max=450
        measurement.5.name=glue_volume
        measurement.5.value=1.3200000000000001
        measurement.5.unit=ml
        measurement.5.min=1.1000000000000001
        measurement.5.max=1.5
        measurement.6.name=leak_rate
        measurement.6.value=3.4100000000000001
        measurement.6.unit=cm³/min
        measurement.6.min=0
        measurement.6.max=2
        measurement.7.name=luminous_intensity
        measurement.7.value=31250
        measurement.7.unit=cd
        measurement.7.min=20000
        measurement.7.max=40000
        measurement.8.name=cutoff_angle
        measurement.8.value=-0.56999999999999995
        measurement.8.unit=°
        measurement.8.min=-0.80000000000000004
        measurement.8.max=-0.20000000000000001
        housing_lot=700123
        led_module_lot=800456
        lens_lot=900789
        device_count=4
        device.0.name=arm1
        device.0.serial_number=610001
        device.0.firmware=2.7
        device.1.name=arm2
        device.1.serial_number=610002
        device.1.firmware=2.7
        device.2.name=arm3
        device.2.serial_number=610003
        device.2.firmware=3.1
        device.3.name=station
        device.3.serial_number=
        device.3.firmware=
        software_version=lampcelld 0.1.0 (test)

        """

    /// Computed once with this implementation and frozen: any change of the encoding or hashing changes it.
    static let goldenHash = "31429936b9b0ba996d8e4be1fdec1fd352c4b055a488d1def6a94a968d296be7"

    @Test("Golden: the canonical bytes and the hash of a fixed record are frozen")
    func golden() throws {
        var entry = LedgerEntry(Fixture.goldenLamp(), context: Fixture.context)
        entry.position = 1
        entry.prevHash = LedgerCanonical.genesisHash
        let canonical = String(decoding: LedgerCanonical.encode(entry, position: 1), as: UTF8.self)
        #expect(canonical == Self.goldenCanonical)
        #expect(LedgerCanonical.expectedHash(of: entry) == Self.goldenHash)

        // The writer stores the same hash for it as the first entry.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let stored = try writer.append(LedgerEntry(Fixture.goldenLamp(), context: Fixture.context))
        #expect(stored.hash == Self.goldenHash)
        #expect(try writer.ledger.head() == Checkpoint(count: 1, headHash: Self.goldenHash, headSerial: stored.serial))
    }

    @Test("Texts are escaped in the canonical form: a newline in a field cannot forge another line")
    func canonicalEscaping() {
        var a = LedgerEntry(Fixture.goldenLamp(), context: Fixture.context)
        a.reasons = "x\nverdict=OK"
        var b = a
        b.reasons = "x\\nverdict=OK"
        let text = String(decoding: LedgerCanonical.encode(a, position: 1), as: UTF8.self)
        #expect(text.contains("reasons=x\\nverdict=OK\n"))
        #expect(LedgerCanonical.encode(a, position: 1) != LedgerCanonical.encode(b, position: 1))
    }

    @Test("Round trip: every field of every entry reads back exactly as stored, through a read-only connection")
    func roundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        var pending = Fixture.entries(count: 200, seed: 3, firstSequence: 1000)
        pending.append(LedgerEntry(Fixture.goldenLamp(), context: Fixture.context))
        var odd = LedgerEntry(Fixture.goldenLamp(), context: Fixture.context)
        odd.serial = "HL-CELL-01-odd"
        odd.reasons = "quote \" comma , newline \n tab \t backslash \\ unicode ³°·"
        odd.measurements[0].minimum = nil
        odd.measurements[0].maximum = nil
        odd.measurements[1].value = 0.1 + 0.2
        odd.measurements[2].value = -0.0
        odd.measurements[3].value = 1e-300
        odd.measurements[4].value = .greatestFiniteMagnitude
        odd.cycleTimeSeconds = 1.0 / 3.0
        pending.append(odd)
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let stored = try writer.append(pending)
        #expect(stored.count == pending.count)
        for (index, entry) in stored.enumerated() {
            #expect(entry.position == Int64(index + 1))
            #expect(entry.hasSameContent(as: pending[index]))
        }
        #expect(try writer.ledger.entries(matching: .all) == stored)

        let reader = try Ledger.openReadOnly(path: directory.file("ledger.db"))
        let read = try reader.entries(matching: .all)
        #expect(read == stored)
        let readOdd = try #require(try reader.entry(serial: "HL-CELL-01-odd"))
        #expect(readOdd.measurements[2].value.sign == .minus)
        #expect(readOdd.measurements[0].minimum == nil)
        #expect(try reader.verify().isValid)
        #expect(try reader.count() == Int64(pending.count))
        #expect(try reader.lastEntry() == stored.last)
        #expect(try reader.highestSerialSequence() == 1199)
    }

    @Test("The database is in WAL mode with synchronous=FULL and refuses UPDATE and DELETE")
    func durabilitySettingsAndTriggers() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (writer, stored) = try makeLedger(in: directory, count: 3)
        let (mode, synchronous) = try writer.ledger.database.read { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                try Int.fetchOne(db, sql: "PRAGMA synchronous")
            )
        }
        #expect(mode == "wal")
        #expect(synchronous == 2)  // FULL

        let raw = try RawDatabase(path: directory.file("ledger.db"))
        #expect(throws: DatabaseError.self) { try raw.execute("UPDATE lamp SET verdict = 'OK' WHERE position = 1") }
        #expect(throws: DatabaseError.self) { try raw.execute("DELETE FROM lamp WHERE position = 3") }
        #expect(try writer.ledger.entries(matching: .all) == stored)
    }

    @Test("Opening read-only: a missing file and a non-ledger database are named errors")
    func readOnlyErrors() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect {
            _ = try Ledger.openReadOnly(path: directory.file("missing.db"))
        } throws: { error in
            guard case .cannotOpen(let failure) = error as? LedgerError else { return false }
            return failure.operation.contains("missing.db")
        }
        let other = try DatabaseQueue(path: directory.file("other.db"))
        try other.write { db in try db.execute(sql: "CREATE TABLE t (x)") }
        #expect(throws: LedgerError.notALedger(path: directory.file("other.db"))) {
            _ = try Ledger.openReadOnly(path: directory.file("other.db"))
        }
    }
}
