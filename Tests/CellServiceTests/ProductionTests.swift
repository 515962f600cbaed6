import CellCore
import CellService
import CellSimulator
import Testing

/// End to end over Modbus TCP on loopback, in real time: the real drivers, controller and control thread against
/// the simulated cell.
@Suite("Production end to end", .serialized)
struct ProductionTests {
    @Test("a LEFT lamp is made and judged OK; the arms never fault")
    func oneLamp() throws {
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 7, defectRate: 0, sinks: [sink])
        defer { cell.shutdown() }
        #expect(cell.produce(lamps: 1) == nil)
        #expect(cell.waitForLamps(1, seconds: 60))
        let lamps = sink.lamps
        try #require(lamps.count == 1)
        #expect(lamps[0].verdict == .ok, "\(LampLogSink.line(lamps[0], cellID: "HL"))")
        #expect(cell.armFaults().isEmpty, "\(cell.armFaults())")
        #expect(cell.models { $0.world.lampsLeftToOutfeed } == 1)
    }
}
