import CellCore
import CellService
import CellSimulator
import Foundation
import Testing

/// Abort and recovery end to end: e-stop in mid-motion, a lost arm, every RA-610 fault code.
@Suite("Abort and recovery end to end", .serialized)
struct AbortRecoveryTests {
    /// Runs production until an arm is moving with a lamp in the cell.
    func waitForMotionWithLamp(_ cell: CellFixture) -> Bool {
        cell.waitFor(seconds: 40) { snapshot in
            snapshot.unit.state == .execute && snapshot.lampInCell != nil
                && (0..<snapshot.armCount).contains { snapshot.armInputs[$0].status.contains(.inMotion) }
        }
    }

    @Test("e-stop in mid-motion: Aborted from the period that sees it, nothing enabled until Clear and Reset, lamp scrapped, production resumes without a setpoint jump")
    func estopMidMotion() throws {
        let sink = CollectingSink()
        let trace = PeriodTrace()
        let cell = try CellFixture(seed: 11, hooks: trace.hooks, sinks: [sink])
        trace.attach(cell.daemon.loop)
        defer { cell.shutdown() }
        #expect(cell.produce(lamps: 2) == nil)
        try #require(waitForMotionWithLamp(cell))

        cell.models { $0.world.pressEstop() }
        #expect(cell.waitFor(seconds: 5) { $0.unit.state == .aborted })
        #expect(cell.waitForLamps(1, seconds: 5))
        let scrapped = sink.lamps.first
        #expect(scrapped?.verdict == .scrapped)
        #expect(scrapped?.scrapReason == .aborted)

        // Nothing may be enabled or streamed while the chain is open, nor after it closes until Clear and Reset.
        Thread.sleep(forTimeInterval: 0.5)
        cell.models { $0.world.releaseEstop() }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(cell.daemon.snapshot().unit.state == .aborted)
        #expect(cell.produce(lamps: 2) == nil)  // Clear, Reset (purge, home), Start
        #expect(cell.waitForLamps(2, seconds: 60))

        let periods = trace.periods
        let firstOpen = try #require(periods.firstIndex { !$0.safetyOK })
        #expect(periods[firstOpen].state == .aborting || periods[firstOpen].state == .aborted)
        #expect(periods[..<firstOpen].allSatisfy { $0.state != .aborting })
        let resetting = try #require(periods[firstOpen...].firstIndex { $0.state == .resetting })
        let clearing = try #require(periods[firstOpen...].firstIndex { $0.state == .clearing })
        #expect(clearing < resetting)
        for period in periods[firstOpen..<resetting] {
            for arm in 0..<period.armCount {
                #expect(!period.armCommands[arm].contains(.enable), "arm \(arm) enabled in \(period.state)")
                #expect(!period.armCommands[arm].contains(.stream), "arm \(arm) streamed in \(period.state)")
            }
        }
        // The only arm faults are the e-stop's; no setpoint jump, following error or watchdog.
        let faults = cell.armFaults()
        #expect(faults.allSatisfy { $0.code == ArmFaultCode.estop }, "\(faults)")
        #expect(sink.lamps.last?.verdict == .ok, "\(String(describing: cell.daemon.snapshot().lastFault)) \(cell.daemon.snapshot().unit.state)")
        // Every housing that entered left exactly once: the scrapped one to the reject bin at Reset.
        #expect(cell.models { $0.world.exits.count } == sink.lamps.count)
    }

    @Test("a lost arm connection aborts; after the arm is back, Clear/Reset/Start resumes production")
    func lostArm() throws {
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 12, sinks: [sink])
        defer { cell.shutdown() }
        #expect(cell.produce(lamps: 2) == nil)
        try #require(waitForMotionWithLamp(cell))
        let assembler = try #require(cell.server.server(named: "assembler"))
        assembler.refusesConnections = true
        assembler.dropAllConnections()
        #expect(cell.waitFor(seconds: 5) { $0.unit.state == .aborted })
        #expect(cell.daemon.snapshot().lastFault?.code == .deviceLost)
        #expect(cell.waitForLamps(1, seconds: 5))
        #expect(sink.lamps.first?.verdict == .scrapped)
        assembler.refusesConnections = false
        #expect(cell.produce(lamps: 2, timeoutSeconds: 60) == nil)
        #expect(cell.waitForLamps(2, seconds: 60))
        #expect(sink.lamps.last?.verdict == .ok)
        // The assembler's own watchdog may trip while it was cut off (0x0101); no arm jumped or lagged.
        let faults = cell.armFaults()
        #expect(
            faults.allSatisfy { $0.code == ArmFaultCode.commWatchdog && $0.arm == "assembler" }, "\(faults)")
    }

    @Test("every RA-610 fault code aborts the cell, and Clear/Reset/Start brings it back to Execute")
    func everyFaultCode() throws {
        let codes: [UInt16] = [
            ArmFaultCode.commWatchdog, ArmFaultCode.setpointJump, ArmFaultCode.followingError,
            ArmFaultCode.positionLimit, ArmFaultCode.toolFault, ArmFaultCode.collision, ArmFaultCode.overtemperature,
            ArmFaultCode.estop,
        ]
        let sink = CollectingSink()
        let cell = try CellFixture(seed: 13, sinks: [sink])
        defer { cell.shutdown() }
        let arms = ["loader", "assembler", "lens"]
        for (index, code) in codes.enumerated() {
            #expect(cell.produce(lamps: 50, timeoutSeconds: 60) == nil, "before 0x\(String(code, radix: 16))")
            try #require(cell.waitFor(seconds: 20) { snapshot in
                snapshot.unit.state == .execute
                    && (0..<snapshot.armCount).contains { snapshot.armInputs[$0].status.contains(.inMotion) }
            })
            let arm = arms[index % arms.count]
            cell.models { $0.arm(named: arm)?.injectFault(code: code) }
            #expect(cell.waitFor(seconds: 5) { $0.unit.state == .aborted }, "0x\(String(code, radix: 16))")
            let snapshot = cell.daemon.snapshot()
            #expect(snapshot.lastFault?.deviceIndex == UInt8(cell.daemon.cell.arms.firstIndex { $0.name == arm }!))
        }
        #expect(cell.produce(lamps: 50, timeoutSeconds: 60) == nil)
        #expect(cell.waitFor(seconds: 10) { $0.unit.state == .execute })
        // Only the injected faults were latched: recovery itself never tripped an arm.
        let injected = Set(codes)
        #expect(cell.armFaults().allSatisfy { injected.contains($0.code) }, "\(cell.armFaults())")
        // Every lamp interrupted by an abort is accounted as scrapped.
        #expect(sink.lamps.allSatisfy { $0.verdict == .scrapped ? $0.scrapReason == .aborted : true })
    }
}
