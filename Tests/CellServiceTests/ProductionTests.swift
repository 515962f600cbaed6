import CellCore
import CellService
import CellTestSupport
import CellSimulator
import Foundation
import Testing

/// End to end over Modbus TCP on loopback, in real time: the real drivers, controller and control thread against
/// the simulated cell. The one short real-time production run of `make test`; production with many lamps and
/// defects is tested in virtual time (CellCampaignTests, `ControllerBehaviourTests`).
@Suite("Production end to end", .serialized)
struct ProductionTests {
    /// Lamps of the run: enough for a good and a defective part with this seed (≈ 27 s each in real time).
    static let lampCount = 2
    /// Bound on the run, s.
    static let runSeconds = 60.0 + 40.0 * Double(lampCount)

    /// The measurements a hidden defect of the simulator shows in, by name.
    static func expectedReasons(_ defect: PartDefect) -> Set<String> { Set(defect.measurementsShown.map(\.name)) }

    @Test("2 LEFT lamps with seeded defects: a defect gives NG with its reason, a good part OK; no arm faults; with memory locked, the control thread takes no page fault after the first lamp")
    func lampsWithDefects() throws {
        let sink = CollectingSink()
        // Memory locked as in production (Systemd/lampcelld.toml): mlockall with MCL_ONFAULT, here in the test
        // process, which keeps it locked for the tests after this one (harmless: pages are locked as touched).
        let cell = try CellFixture(seed: 21, defectRate: 0.5, sinks: [sink]) { $0.lockMemory = true }
        defer { cell.shutdown() }
        #expect(cell.produce(lamps: UInt32(Self.lampCount)) == nil)
        // The order counts good lamps; stop after `lampCount` lamps left the cell, whatever their verdicts.
        let snapshot0 = { cell.daemon.snapshot() }
        let waitMessage = {
            "state \(snapshot0().unit.state), fault \(String(describing: snapshot0().lastFault)), wait \(snapshot0().materialWait), lamps \(sink.lamps.count)"
        }
        // Steady production: from the first lamp's exit (every phase of a cycle has run once) to the last's.
        #expect(cell.waitForLamps(1, seconds: Self.runSeconds), "\(waitMessage())")
        let thread = cell.daemon.loop.thread
        let minorAfterFirst = thread.minorPageFaults
        let majorAfterFirst = thread.majorPageFaults
        #expect(cell.waitForLamps(UInt64(Self.lampCount), seconds: Self.runSeconds), "\(waitMessage())")
        if thread.realtimeReport?.memoryLocked == true {
            #expect(minorAfterFirst > 0, "the counter counts: the first periods touch their pages (the stack at least)")
            #expect(thread.minorPageFaults == minorAfterFirst, "control thread faults after the first lamp")
            #expect(thread.majorPageFaults == majorAfterFirst, "control thread major faults after the first lamp")
        } else if geteuid() == 0 {
            // Root may lock memory (CI runs as root): a refusal here is a failure, not a reason to skip the check.
            Issue.record("mlockall refused as root (errno \(thread.realtimeReport?.memoryLockErrno ?? 0))")
        }
        // Not root: mlockall is refused, as CellFixture's real-time set-up is, and the fault check does not apply.
        let lamps = Array(sink.lamps.prefix(Self.lampCount))
        let exits = cell.models { Array($0.world.exits.prefix(Self.lampCount)) }
        try #require(lamps.count == Self.lampCount && exits.count == Self.lampCount)
        var defective = 0
        for (lamp, exit) in zip(lamps, exits) {
            let reasons = Set(
                MeasurementKind.allCases.filter { lamp.outOfWindowMask & (1 << $0.rawValue) != 0 }.map(\.name))
            let expected = Self.expectedReasons(exit.part.defect)
            let line = LampLogSink.line(lamp, cellID: "HL-CELL-01")
            #expect(lamp.housingLot == exit.housingLot, "\(line)")
            #expect(lamp.ledModuleLot == exit.ledModuleLot, "\(line)")
            #expect(lamp.lensLot == exit.lensLot, "\(line)")
            if exit.part.defect == .none {
                #expect(lamp.verdict == .ok, "\(line)")
                #expect(exit.destination == .outfeed, "\(line)")
            } else {
                defective += 1
                #expect(lamp.verdict == .ng, "\(line) — defect \(exit.part.defect)")
                #expect(!reasons.isEmpty && reasons.isSubset(of: expected), "\(line) — defect \(exit.part.defect)")
                #expect(exit.destination == .reject, "\(line)")
            }
        }
        #expect(defective > 0, "the seed must give at least one defective part")
        #expect(defective < Self.lampCount, "the seed must give at least one good part")
        // Normal production never trips an arm.
        #expect(cell.armFaults().isEmpty, "\(cell.armFaults())")
        // Serials are unique and increasing.
        #expect(zip(lamps, lamps.dropFirst()).allSatisfy { $0.serial.sequence < $1.serial.sequence })
        let snapshot = cell.daemon.snapshot()
        #expect(snapshot.unit.counters.processed.count >= UInt64(Self.lampCount))
        #expect(snapshot.unit.counters.defective.count == UInt64(defective))
    }
}
