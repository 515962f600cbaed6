import CellCore
import CellService
import CellSimulator
import Foundation
import Testing

/// Suspend by itself when starved or blocked and resume when material returns; Hold and Unhold at a safe point.
@Suite("Suspend, hold end to end", .serialized)
struct InterlockTests {
    @Test("no housings: Suspended (starved); housings back: Execute, and the lamp is made")
    func starvedHousings() throws {
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 31, sinks: [sink])
        defer { cell.shutdown() }
        cell.models { $0.world.starveHousings(true) }
        #expect(cell.produce(lamps: 1) == nil)
        #expect(cell.waitFor(seconds: 20) { $0.unit.state == .suspended })
        let snapshot = cell.daemon.snapshot()
        #expect(snapshot.unit.machine.suspendCause == .starved)
        #expect(snapshot.materialWait == .housing)
        cell.models { $0.world.starveHousings(false) }
        #expect(cell.waitFor(seconds: 20) { $0.unit.state == .execute })
        #expect(cell.waitForLamps(1, seconds: 60))
        #expect(sink.lamps.first?.verdict == .ok)
        #expect(cell.armFaults().isEmpty)
    }

    @Test("outfeed blocked: Suspended (blocked) before the unload; clear again: Execute, the lamp goes out")
    func blockedOutfeed() throws {
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 32, sinks: [sink])
        defer { cell.shutdown() }
        cell.models { $0.world.blockOutfeed(true) }
        #expect(cell.produce(lamps: 1) == nil)
        #expect(cell.waitFor(seconds: 60) { $0.unit.state == .suspended })
        let snapshot = cell.daemon.snapshot()
        #expect(snapshot.unit.machine.suspendCause == .blocked)
        #expect(snapshot.materialWait == .outfeed)
        #expect(snapshot.lampInCell != nil)
        cell.models { $0.world.blockOutfeed(false) }
        #expect(cell.waitFor(seconds: 20) { $0.unit.state == .execute || $0.unit.state == .complete })
        #expect(cell.waitForLamps(1, seconds: 30))
        #expect(sink.lamps.first?.verdict == .ok)
        #expect(cell.models { $0.world.lampsLeftToOutfeed } == 1)
    }

    @Test("Hold finishes the steps under way and holds with every arm at rest; Unhold resumes and the lamp is OK")
    func holdAndUnhold() throws {
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 33, sinks: [sink])
        defer { cell.shutdown() }
        #expect(cell.produce(lamps: 1) == nil)
        #expect(cell.waitFor(seconds: 30) { $0.lampInCell != nil })
        Thread.sleep(forTimeInterval: 2)
        let reply = cell.daemon.request(.command(.hold))
        #expect(reply?.refusal == nil)
        #expect(cell.waitFor(seconds: 20) { $0.unit.state == .held })
        // Held is a safe point: nothing moves for a while.
        let still = cell.waitFor(seconds: 1.5) { snapshot in
            (0..<snapshot.armCount).contains { snapshot.armInputs[$0].status.contains(.inMotion) }
        }
        #expect(!still, "an arm moved while Held")
        #expect(cell.daemon.snapshot().unit.state == .held)
        #expect(cell.daemon.request(.command(.unhold))?.refusal == nil)
        #expect(cell.waitFor(seconds: 5) { $0.unit.state == .execute })
        #expect(cell.waitForLamps(1, seconds: 60))
        #expect(sink.lamps.first?.verdict == .ok)
        #expect(cell.armFaults().isEmpty)
    }
}
