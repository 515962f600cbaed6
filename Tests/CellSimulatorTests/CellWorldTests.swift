// CellWorld: locations, parts flow through tool requests, feeders and lots, defects, the exit ledger,
// reproducibility.

@testable import CellSimulator
import Modbus
import Testing

@Suite("Cell world")
struct CellWorldTests {
    @Test("an arm is at a location only when every joint is within the tolerance")
    func locations() throws {
        let h = StationHarness()
        let fixture = try #require(testPoses[TestArm.loader]?[.fixture])
        #expect(h.world.location(arm: TestArm.loader, jointPositionsRadians: fixture) == .fixture)
        for joint in 0..<6 {
            var near = fixture
            near[joint] += 0.004
            #expect(h.world.location(arm: TestArm.loader, jointPositionsRadians: near) == .fixture)
            var off = fixture
            off[joint] -= 0.006
            #expect(h.world.location(arm: TestArm.loader, jointPositionsRadians: off) == .none)
        }
        #expect(h.world.location(arm: "nobody", jointPositionsRadians: fixture) == .none)
        // The assembler has its own teach points.
        #expect(h.world.location(arm: TestArm.assembler, jointPositionsRadians: fixture) == .none)
    }

    @Test("an invalid configuration names its field")
    func configurationValidation() {
        var configuration = testConfiguration()
        configuration.arms[0].locations[0].poseRadians = [0, 0, 0]
        #expect(throws: CellWorldConfigurationError.self) { try configuration.validate() }
        do {
            try configuration.validate()
        } catch {
            #expect(error.field == "arms[0].locations[0].poseRadians")
        }
        var rate = testConfiguration()
        rate.defectRate = 1.5
        #expect(throws: CellWorldConfigurationError(field: "defectRate", reason: "must be within 0...1, is 1.5")) {
            try rate.validate()
        }
        #expect(throws: Never.self) { try testConfiguration().validate() }
    }

    @Test("the safety chain is closed only with no e-stop pressed and the guard closed")
    func safetyRelay() {
        let world = StationHarness().world
        #expect(world.safetyChainClosed)
        world.pressEstop()
        #expect(!world.safetyChainClosed)
        world.openGuard()
        world.releaseEstop()
        #expect(!world.safetyChainClosed)
        world.closeGuard()
        #expect(world.safetyChainClosed)
    }

    @Test("GRIP where nothing is ends DONE with result 0 and not holding")
    func gripNothing() {
        let h = StationHarness()
        for (arm, location) in [
            (TestArm.loader, WorldLocation.infeed), (TestArm.loader, .fixture), (TestArm.loader, .outfeed),
            (TestArm.loader, .reject), (TestArm.loader, .none),
        ] {
            #expect(h.tool(arm, .grip, at: location) == ToolOutcome(succeeded: true, result: 0, holdingPart: false))
        }
        #expect(h.tool(TestArm.lens, .release, at: .fixture) == ToolOutcome(succeeded: true, result: 0, holdingPart: false))
    }

    @Test("parts never vanish: a release where the part cannot go is ERROR, still holding")
    func releaseRules() {
        let h = StationHarness()
        h.presentHousing()
        #expect(h.tool(TestArm.loader, .grip, at: .infeed) == ToolOutcome(succeeded: true, result: 1, holdingPart: true))
        #expect(!h.input(.housingAtInfeed))
        // A second GRIP keeps what is held.
        #expect(h.tool(TestArm.loader, .grip, at: .infeed) == ToolOutcome(succeeded: true, result: 1, holdingPart: true))
        for location in [WorldLocation.infeed, .none] {
            #expect(h.tool(TestArm.loader, .release, at: location) == ToolOutcome(succeeded: false, result: 0, holdingPart: true))
        }
        // Not into a closed clamp.
        h.set(.fixtureClamp, true)
        h.run(seconds: 0.3)
        #expect(!h.tool(TestArm.loader, .release, at: .fixture).succeeded)
        h.set(.fixtureClamp, false)
        h.run(seconds: 0.3)
        #expect(h.tool(TestArm.loader, .release, at: .fixture) == ToolOutcome(succeeded: true, result: 0, holdingPart: false))

        // An LED module needs the part clamped.
        #expect(h.tool(TestArm.assembler, .grip, at: .ledFeeder).holdingPart)
        #expect(h.tool(TestArm.assembler, .release, at: .fixture) == ToolOutcome(succeeded: false, result: 0, holdingPart: true))
        // SCREW and PRESS need the part clamped, at the fixture.
        #expect(!h.tool(TestArm.assembler, .screw, at: .fixture, param: 200).succeeded)
        #expect(!h.tool(TestArm.lens, .press, at: .fixture, param: 500).succeeded)
        h.clamp(true)
        #expect(!h.tool(TestArm.assembler, .screw, at: .ledFeeder, param: 200).succeeded)
        // A clamped part cannot be gripped out.
        #expect(h.tool(TestArm.loader, .grip, at: .fixture) == ToolOutcome(succeeded: false, result: 0, holdingPart: false))
        #expect(h.tool(TestArm.assembler, .release, at: .fixture) == ToolOutcome(succeeded: true, result: 0, holdingPart: false))
        #expect(h.world.fixturePart?.ledModuleLot == 0x0004_0005)
        // A second LED module cannot go onto the same part.
        h.run(seconds: 1.1)
        #expect(h.tool(TestArm.assembler, .grip, at: .ledFeeder).holdingPart)
        #expect(!h.tool(TestArm.assembler, .release, at: .fixture).succeeded)
        #expect(h.tool(TestArm.assembler, .release, at: .reject).succeeded)
        #expect(h.world.ledModulesDiscarded == 1)
        #expect(h.world.lampsLeftToReject == 0)
    }

    @Test("outfeed must be clear and the reject bin not full, else ERROR and the lamp stays in the gripper")
    func exitRules() {
        let h = StationHarness()
        _ = h.buildLamp()
        h.world.blockOutfeed(true)
        #expect(h.tool(TestArm.loader, .release, at: .outfeed) == ToolOutcome(succeeded: false, result: 0, holdingPart: true))
        h.world.blockOutfeed(false)
        h.world.setRejectBinFull(true)
        #expect(h.tool(TestArm.loader, .release, at: .reject) == ToolOutcome(succeeded: false, result: 0, holdingPart: true))
        h.world.setRejectBinFull(false)
        #expect(h.tool(TestArm.loader, .release, at: .reject) == ToolOutcome(succeeded: true, result: 0, holdingPart: false))
        #expect(h.world.lampsLeftToReject == 1)
        #expect(h.world.lampsLeftToOutfeed == 0)
        #expect(h.world.exits.map(\.destination) == [.reject])

        // A lamp on the outfeed place point: the next one waits for the outfeed to index.
        _ = h.buildLamp()
        #expect(h.tool(TestArm.loader, .release, at: .outfeed).succeeded)
        _ = h.buildLamp()
        #expect(h.tool(TestArm.loader, .release, at: .outfeed) == ToolOutcome(succeeded: false, result: 0, holdingPart: true))
        h.set(.outfeedAdvance, true)
        h.deliverToOutfeed()
        #expect(h.world.exits.map(\.destination) == [.reject, .outfeed, .outfeed])
        #expect(h.world.lampsLeftToOutfeed == 2)
        #expect(h.world.lampsInRejectBin == 1)
    }

    @Test("DISPENSE_OFF reports ml × 100 and puts the glue on the fixture part, else it is wasted")
    func glue() {
        let h = StationHarness()
        #expect(h.tool(TestArm.lens, .dispenseOff, at: .fixture, dispensedMilliliters: 0.2) == ToolOutcome(succeeded: true, result: 20, holdingPart: false))
        #expect(abs(h.world.glueWastedMilliliters - 0.2) < 1e-12)
        h.presentHousing()
        _ = h.tool(TestArm.loader, .grip, at: .infeed)
        _ = h.tool(TestArm.loader, .release, at: .fixture)
        #expect(h.tool(TestArm.lens, .dispenseOff, at: .fixture, dispensedMilliliters: 0.456).result == 46)
        #expect(abs((h.world.fixturePart?.glueMilliliters ?? 0) - 0.456) < 1e-12)
    }

    @Test("feeders refill after a pick; LED_MODULE_AVAILABLE/LENS_AVAILABLE follow")
    func feederRefill() {
        let h = StationHarness()
        #expect(h.tool(TestArm.assembler, .grip, at: .ledFeeder).result == 1)
        #expect(!h.input(.ledModuleAvailable))
        #expect(h.tool(TestArm.assembler, .release, at: .reject).succeeded)
        // Nothing to pick until the refill.
        #expect(h.tool(TestArm.assembler, .grip, at: .ledFeeder).result == 0)
        h.run(seconds: 0.9)
        #expect(!h.input(.ledModuleAvailable))
        h.run(seconds: 0.2)
        #expect(h.input(.ledModuleAvailable))
        #expect(h.world.ledModulesPicked == 1)
    }

    @Test("lots change every lotSizeRange parts, for the infeed and both feeders")
    func lotChanges() {
        let sizes = 3...7
        let h = StationHarness(
            configuration: testConfiguration(lotSizeRange: sizes, rejectBinCapacity: 10_000))
        var housingLots: [UInt32] = []
        var ledLots: [UInt32] = []
        var lensLots: [UInt32] = []
        for _ in 0..<120 {
            h.presentHousing()
            housingLots.append(h.register32(8))
            _ = h.tool(TestArm.loader, .grip, at: .infeed)
            _ = h.tool(TestArm.loader, .release, at: .reject)
            #expect(h.run(untilTimeoutSeconds: 2) { h.input(.ledModuleAvailable) && h.input(.lensAvailable) })
            ledLots.append(h.register32(10))
            lensLots.append(h.register32(12))
            _ = h.tool(TestArm.assembler, .grip, at: .ledFeeder)
            _ = h.tool(TestArm.assembler, .release, at: .reject)
            _ = h.tool(TestArm.lens, .grip, at: .lensFeeder)
            _ = h.tool(TestArm.lens, .release, at: .reject)
        }
        #expect(h.world.exits.count == 120)
        for (name, lots, first) in [
            ("housing", housingLots, UInt32(0x0002_0003)), ("LED", ledLots, 0x0004_0005), ("lens", lensLots, 0x0006_0007),
        ] {
            #expect(lots.first == first, "\(name)")
            var runs: [Int] = []
            var current = lots[0]
            var length = 0
            for lot in lots {
                if lot == current {
                    length += 1
                } else {
                    #expect(lot == current + 1, "\(name) lots count up by one")
                    runs.append(length)
                    current = lot
                    length = 1
                }
            }
            #expect(runs.count >= 120 / sizes.upperBound - 1, "\(name)")
            for run in runs { #expect(sizes.contains(run), "\(name) lot of \(run) parts") }
            #expect(Set(runs).count > 1, "\(name) lot sizes vary")
        }
    }

    @Test("one whole lamp: infeed → gripper → fixture → LED, screws, glue, lens, press → tests → outfeed")
    func wholeLamp() throws {
        let h = StationHarness()
        let run = h.buildLamp(screwTorque: 250, pressForce: 800, glueMilliliters: 0.6)
        #expect(h.world.fixturePart == nil)
        #expect(h.world.heldItem(arm: TestArm.loader) != nil)
        #expect(h.world.lampsLeftToOutfeed == 0)
        h.deliverToOutfeed()
        #expect(h.world.heldItem(arm: TestArm.loader) == nil)
        #expect(h.world.lampsLeftToOutfeed == 1)
        #expect(h.world.lampsLeftToReject == 0)
        #expect(!h.input(.outfeedClear))
        #expect(h.run(untilTimeoutSeconds: 2) { !h.coil(.outfeedAdvance) })
        #expect(h.input(.outfeedClear))

        let exit = try #require(h.world.exits.first)
        #expect(h.world.exits.count == 1)
        #expect(exit.destination == .outfeed)
        #expect(exit.partID == run.partID && run.partID == 1)
        #expect(exit.housingLot == 0x0002_0003 && run.housingLot == exit.housingLot)
        #expect(exit.ledModuleLot == run.ledModuleLot && run.ledModuleLot == 0x0004_0005)
        #expect(exit.lensLot == run.lensLot && run.lensLot == 0x0006_0007)
        #expect(exit.part.screwTorquesHundredthsNewtonMetre == run.screwTorques)
        #expect(exit.part.screwTorquesHundredthsNewtonMetre.count == 2)
        #expect(exit.part.pressForcesNewton == [run.pressForce])
        #expect(run.glueResult == 60)
        #expect(abs(exit.part.glueMilliliters - 0.6) < 1e-12)
        #expect(exit.part.lastLeakRateHundredths == run.leakRate)
        #expect(exit.part.lastLuminousIntensityCandela == run.luminousIntensity)
        #expect(exit.part.lastCutoffAngleHundredthsDegree == run.cutoffAngle)
        #expect(exit.part.defect == .none)
        #expect(LampVariantNominals.left.leakRateWindow.contains(Double(run.leakRate)))
        #expect(h.world.housingsPresented == 1 && h.world.ledModulesPicked == 1 && h.world.lensesPicked == 1)
    }

    @Test("too little glue or no lens makes the leak test fail")
    func leakFromAssembly() {
        let h = StationHarness()
        let run = h.buildLamp(glueMilliliters: 0.1)
        #expect(h.world.configuration.defectLeakRateRange.contains(Double(run.leakRate)))
    }

    @Test("with defect rate 0 every measurement lies inside its nominal window")
    func noDefects() {
        let h = StationHarness(seed: 7, configuration: testConfiguration(defectRate: 0))
        for _ in 0..<25 {
            let run = h.buildLamp(screwTorque: 300, pressForce: 1000)
            h.deliverToOutfeed()
            for torque in run.screwTorques { #expect(abs(Double(torque) - 300) <= 300 * 0.075) }
            #expect(abs(Double(run.pressForce) - 1000) <= 1000 * 0.10)
            #expect(LampVariantNominals.left.leakRateWindow.contains(Double(run.leakRate)))
            #expect(LampVariantNominals.left.luminousIntensityWindow.contains(Double(run.luminousIntensity)))
            #expect(LampVariantNominals.left.cutoffAngleWindow.contains(Double(run.cutoffAngle)))
        }
        #expect(h.world.exits.allSatisfy { $0.part.defect == .none })
        #expect(h.world.lampsLeftToOutfeed == 25)
    }

    @Test("with defect rate 1 every lamp's defect shows in some measurement")
    func allDefects() throws {
        let h = StationHarness(seed: 11, configuration: testConfiguration(defectRate: 1))
        var kinds = Set<PartDefect>()
        for _ in 0..<30 {
            let run = h.buildLamp(screwTorque: 300, pressForce: 1000)
            h.deliverToOutfeed()
            let defect = try #require(h.world.exits.last?.part.defect)
            kinds.insert(defect)
            let screwBad = run.screwTorques.contains { abs(Double($0) - 300) > 300 * 0.075 }
            let pressBad = abs(Double(run.pressForce) - 1000) > 1000 * 0.10
            let leakBad = !LampVariantNominals.left.leakRateWindow.contains(Double(run.leakRate))
            let lightBad = !LampVariantNominals.left.luminousIntensityWindow.contains(Double(run.luminousIntensity))
                || !LampVariantNominals.left.cutoffAngleWindow.contains(Double(run.cutoffAngle))
            switch defect {
            case .none: Issue.record("defect rate 1 produced a good housing")
            case .screw: #expect(screwBad && run.screwTorques.allSatisfy { $0 >= 180 && $0 <= 255 })
            case .press: #expect(pressBad)
            case .leak: #expect(leakBad && run.leakRate >= 300 && run.leakRate <= 800)
            case .light: #expect(lightBad && run.cutoffAngle >= -150 && run.cutoffAngle <= -120)
            }
            // Only the lamp's own defect shows.
            #expect(screwBad == (defect == .screw))
            #expect(pressBad == (defect == .press))
            #expect(leakBad == (defect == .leak))
            #expect(lightBad == (defect == .light))
        }
        #expect(kinds == [.screw, .press, .leak, .light])
    }

    @Test("the same seed gives the identical sequence of results; another seed does not")
    func reproducible() {
        func shift(seed: UInt64) -> ([LampRun], [LampExit]) {
            let h = StationHarness(seed: seed, configuration: testConfiguration(defectRate: 0.5, lotSizeRange: 2...4))
            var runs: [LampRun] = []
            for _ in 0..<8 {
                runs.append(h.buildLamp())
                h.deliverToOutfeed()
            }
            return (runs, h.world.exits)
        }
        let first = shift(seed: 1234)
        let second = shift(seed: 1234)
        #expect(first.0 == second.0)
        #expect(first.1 == second.1)
        let other = shift(seed: 4321)
        #expect(other.0 != first.0)
    }
}
