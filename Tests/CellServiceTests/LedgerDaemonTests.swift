import CRealtime
import CellConfig
import CellCore
import CellService
import CellTestSupport
import CellSimulator
import Foundation
import LampCellTestSupport
import Ledger
import Testing

/// The ledger as the daemon writes it: what a row holds after real production, and recovery of a lamp left in the
/// cell by a process that ended without its controlled shutdown.
@Suite("Ledger in the daemon", .serialized)
struct LedgerDaemonTests {
    static let cellID = "HL-CELL-01"
    static let genesis = String(repeating: "0", count: 64)

    /// SHA-256 of a file by coreutils' `sha256sum` (independent of the code under test).
    static func sha256sum(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(String(decoding: data, as: UTF8.self).prefix(64))
    }

    /// Waits until `path` exists and names a lamp other than `excluding`; returns its serial.
    static func waitForLampInCell(state: String, excluding: String?, seconds: Double) -> String? {
        let deadline = lampcell_monotonic_ns() + UInt64(seconds * 1e9)
        while lampcell_monotonic_ns() < deadline {
            if let serial = lampInCellSerial(stateDirectory: state, cellID: cellID), serial != excluding { return serial }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return nil
    }

    @Test("A lamp from real production: every field of its row is filled and matches the simulator and the files; a lamp left in the cell by an abrupt end is recorded as scrapped (controller restart) exactly once")
    func rowFieldsAndRestartRecovery() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-ledger-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let ledgerPath = state + "/ledger.sqlite"
        let sink = CollectingSink()
        let orderID = "PO-LEDGER-\(UUID().uuidString.prefix(6))"
        let first = try CellFixture(seed: 3, stateDirectory: state, sinks: [sink])
        var firstStopped = false
        defer { if !firstStopped { first.shutdown(keepState: true) } }
        #expect(
            first.daemon.autoStart(variant: .left, lamps: 5, orderID: orderID, timeoutNanoseconds: 60_000_000_000) == nil)
        try #require(first.waitForLamps(1, seconds: 120), "no lamp left the cell")
        try #require(sink.lamps.first?.verdict != .scrapped, "the first lamp was scrapped: \(first.armFaults())")

        // --- The row of the lamp that left.
        let ledger = try Ledger.openReadOnly(path: ledgerPath)
        let verification = try ledger.verify()
        #expect(verification.isValid, "\(verification)")
        let entries = try ledger.entries(matching: .all)
        try #require(entries.count == 1)
        let entry = entries[0]
        let lamp = try #require(sink.lamps.first)
        let exit = try #require(first.models { $0.world.exits.first })
        let arms = first.models { models in
            models.arms.enumerated().map { (name: models.armNames[$0], serial: $1.serialNumber, firmware: $1.firmware) }
        }
        let recipe = try Recipe.load(from: Repository.root + "/Hardware/recipes/left.toml", cell: first.definition)

        #expect(entry.position == 1 && entry.prevHash == Self.genesis)
        #expect(entry.hash.count == 64 && entry.hash.allSatisfy(\.isHexDigit) && entry.hash != Self.genesis)
        #expect(entry.serial == lamp.serial.text(cellID: Self.cellID))
        let parts = entry.serial.split(separator: "-")
        #expect(parts.count == 5 && parts[3].count == 8 && parts[4].count == 8, "\(entry.serial)")
        #expect(parts.count == 5 && parts[3] == "\(LampSerial.dateCode(wallNanoseconds: UInt64(entry.startWallNanoseconds)))")
        #expect(entry.serialSequence == Int64(lamp.serial.sequence) && entry.serialSequence > 0)
        #expect(entry.cellID == Self.cellID)
        #expect(entry.variant == "LEFT")
        #expect(entry.recipeID == "HL-LEFT")
        #expect(entry.recipeSHA256 == (try Self.sha256sum(Repository.root + "/Hardware/recipes/left.toml")))
        #expect(entry.orderID == orderID)
        #expect(entry.verdict == "OK" && entry.reasons.isEmpty, "\(entry.verdict) \(entry.reasons)")
        #expect(entry.startWallNanoseconds > 0 && entry.endWallNanoseconds > entry.startWallNanoseconds)
        #expect(entry.startUTC.hasSuffix("Z") && entry.endUTC.hasSuffix("Z") && entry.startUTC < entry.endUTC)
        let wallSeconds = Double(entry.endWallNanoseconds - entry.startWallNanoseconds) / 1e9
        #expect(entry.cycleTimeSeconds > 5 && abs(entry.cycleTimeSeconds - wallSeconds) < 1, "\(entry.cycleTimeSeconds) s")
        // Lots: what the simulator put into this lamp.
        #expect(entry.housingLot == Int64(exit.housingLot) && entry.housingLot > 0)
        #expect(entry.ledModuleLot == Int64(exit.ledModuleLot ?? 0) && entry.ledModuleLot > 0)
        #expect(entry.lensLot == Int64(exit.lensLot ?? 0) && entry.lensLot > 0)
        // Every measurement of the recipe, with its window and the value the controller measured.
        let names = MeasurementKind.allCases.map(\.name)
        #expect(entry.measurements.map(\.name) == names, "\(entry.measurements.map(\.name))")
        let windows = recipe.processWindows
        for measurement in entry.measurements {
            guard let kind = MeasurementKind.allCases.first(where: { $0.name == measurement.name }) else { continue }
            #expect(measurement.value == lamp.measurements[kind], "\(measurement.name)")
            #expect(measurement.unit == kind.unit)
            let window: ProcessWindow =
                switch kind {
                case .screwTorque1, .screwTorque2, .screwTorque3, .screwTorque4: windows.screwTorque
                case .pressForce: windows.pressForce
                case .glueVolume: windows.glueVolume
                case .leakRate: windows.leakRate
                case .luminousIntensity: windows.luminousIntensity
                case .cutoffAngle: windows.cutoffAngle
                }
            #expect(measurement.minimum == window.minimum && measurement.maximum == window.maximum, "\(measurement.name)")
            #expect(measurement.value >= window.minimum && measurement.value <= window.maximum, "\(measurement.name)")
        }
        // The devices: the three arms' serial numbers and firmware as they report them, and the station.
        #expect(entry.devices.map(\.name) == (arms.map(\.name) + ["station"]).sorted())
        for arm in arms {
            let device = entry.devices.first { $0.name == arm.name }
            #expect(device?.serialNumber == String(arm.serial) && device?.serialNumber != "0", "\(arm.name)")
            #expect(device?.firmware == "\(arm.firmware >> 8).\(arm.firmware & 0xFF)", "\(arm.name)")
        }
        #expect(entry.devices.first { $0.name == "station" } == DeviceIdentity(name: "station", serialNumber: "", firmware: ""))
        #expect(entry.softwareVersion == "lampcelld \(LampCellVersion.current)")
        #expect(first.daemon.ledger.head == Checkpoint(count: 1, headHash: entry.hash, headSerial: entry.serial))

        // --- The next lamp enters the cell; the process "dies": the threads and sockets go, no Stop, no scrap.
        let inCell = try #require(
            Self.waitForLampInCell(state: state, excluding: entry.serial, seconds: 60), "the next lamp did not start")
        first.daemon.loop.stop()
        first.daemon.drain.stop()
        first.server.stop()
        firstStopped = true
        #expect(try Ledger.openReadOnly(path: ledgerPath).count() == 1, "the lamp in the cell is not recorded yet")

        // --- Restart on the same state: the lamp is recorded as scrapped "controller restart".
        let second = try CellFixture(seed: 4, stateDirectory: state)
        second.shutdown(keepState: true)
        do {
            let reader = try Ledger.openReadOnly(path: ledgerPath)
            #expect(try reader.verify().isValid)
            let all = try reader.entries(matching: .all)
            #expect(all.count == 2)
            let scrapped = try #require(try reader.entry(serial: inCell))
            #expect(scrapped.position == 2 && scrapped.prevHash == entry.hash)
            #expect(scrapped.verdict == "SCRAPPED" && scrapped.reasons == "controller restart")
            #expect(scrapped.variant == "LEFT" && scrapped.recipeID == "HL-LEFT" && scrapped.recipeSHA256 == entry.recipeSHA256)
            #expect(scrapped.housingLot > 0, "the housing lot was known when the lamp entered")
            // Traceable like any other row: its order and the devices that worked on it.
            #expect(scrapped.orderID == orderID)
            #expect(scrapped.devices == entry.devices)
            #expect(scrapped.softwareVersion == entry.softwareVersion && scrapped.cellID == Self.cellID)
            #expect(scrapped.endWallNanoseconds > scrapped.startWallNanoseconds)
            #expect(all.filter { $0.reasons == "controller restart" }.count == 1)
            // Serials are never reused: the second run's allocator starts above every recorded serial.
            #expect(all.map(\.serialSequence) == all.map(\.serialSequence).sorted() && Set(all.map(\.serial)).count == 2)
        }
        #expect(!FileManager.default.fileExists(atPath: state + "/lamp-in-cell"))

        // --- Another restart: nothing more is recorded (exactly once).
        let third = try CellFixture(seed: 5, stateDirectory: state)
        third.shutdown(keepState: true)
        let reader = try Ledger.openReadOnly(path: ledgerPath)
        #expect(try reader.count() == 2)
        #expect(try reader.verify().isValid)
    }
}
