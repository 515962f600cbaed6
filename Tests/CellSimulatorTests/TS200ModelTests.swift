// TS200Model against the TS-200 datasheet, in virtual time, through the ModbusDevice methods.

@testable import CellSimulator
import Modbus
import Testing

@Suite("TS-200 station model")
struct TS200ModelTests {
    @Test("answers exactly the datasheet's function codes (not 0x17)")
    func supportedFunctions() {
        let h = StationHarness()
        #expect(
            h.station.supportedFunctions
                == [.readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters,
                    .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters])
        var out = [UInt16](repeating: 0, count: 1)
        let values: [UInt16] = [1]
        let error = values.withUnsafeBufferPointer { write in
            out.withUnsafeMutableBufferPointer { read in
                h.station.writeAndReadRegisters(writeAddress: 0, values: write, readAddress: 0, into: read)
            }
        }
        #expect(error == .illegalFunction)
    }

    @Test("power-up values of every coil, input and register, with their encodings")
    func powerUpValues() {
        let h = StationHarness()
        let (coils, coilError) = h.readBits(.coils, address: 0, count: 8)
        #expect(coilError == nil)
        #expect(coils == [0, 0, 0, 0, 0, 0, 0, 0])

        let (inputs, inputError) = h.readBits(.discreteInputs, address: 0, count: 12)
        #expect(inputError == nil)
        // HOUSING_AT_INFEED 0 (the infeed starts empty), OUTFEED_CLEAR, SAFETY_OK, LED and lens waiting.
        #expect(inputs == [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0])

        let (holding, holdingError) = h.readRegisters(.holdingRegisters, address: 0, count: 1)
        #expect(holdingError == nil)
        #expect(holding == [1])

        let (registers, registerError) = h.readRegisters(.inputRegisters, address: 0, count: 16)
        #expect(registerError == nil)
        #expect(
            registers == [
                TS200Model.StatusBit.ready, 0, 0, 0, 0, 0, 0, 0,
                0, 0,  // no housing at the infeed
                0x0004, 0x0005,  // LED-module lot 0x0004_0005, high word first
                0x0006, 0x0007,  // lens lot 0x0006_0007
                0, 0,  // uptime
            ])
    }

    @Test("uptime_ms is a u32, high word first")
    func uptime() {
        let h = StationHarness()
        h.run(seconds: 70)
        let (values, error) = h.readRegisters(.inputRegisters, address: 14, count: 2)
        #expect(error == nil)
        #expect(values == [1, 4_464])  // 70 000 ms = 1 × 65 536 + 4 464
        #expect(h.register32(14) == 70_000)
    }

    @Test("any address outside the tables is exception 0x02 and nothing is written")
    func illegalAddresses() {
        let h = StationHarness()
        #expect(h.readBits(.coils, address: 0, count: 9).1 == .illegalDataAddress)
        #expect(h.readBits(.coils, address: 8, count: 1).1 == .illegalDataAddress)
        #expect(h.readBits(.coils, address: -1, count: 1).1 == .illegalDataAddress)
        #expect(h.readBits(.coils, address: 7, count: 1).1 == nil)
        #expect(h.readBits(.discreteInputs, address: 12, count: 1).1 == .illegalDataAddress)
        #expect(h.readBits(.discreteInputs, address: 4, count: 9).1 == .illegalDataAddress)
        #expect(h.readBits(.discreteInputs, address: 11, count: 1).1 == nil)
        #expect(h.readRegisters(.holdingRegisters, address: 1, count: 1).1 == .illegalDataAddress)
        #expect(h.readRegisters(.holdingRegisters, address: 0, count: 2).1 == .illegalDataAddress)
        #expect(h.readRegisters(.inputRegisters, address: 16, count: 1).1 == .illegalDataAddress)
        #expect(h.readRegisters(.inputRegisters, address: 15, count: 2).1 == .illegalDataAddress)
        #expect(h.readRegisters(.inputRegisters, address: 15, count: 1).1 == nil)

        #expect(h.writeCoils(address: 8, [1]) == .illegalDataAddress)
        #expect(h.writeCoils(address: 5, [1, 1, 1, 1]) == .illegalDataAddress)
        #expect(h.readBits(.coils, address: 5, count: 3).0 == [0, 0, 0])
        #expect(h.writeRegisters(address: 1, [1]) == .illegalDataAddress)
        #expect(h.writeRegisters(address: 0, [2, 2]) == .illegalDataAddress)
        #expect(h.station.variant == 1)
    }

    @Test("variant accepts 1 and 2; any other value is 0x03 with nothing written")
    func variantRegister() {
        let h = StationHarness()
        #expect(h.writeRegisters(address: 0, [2]) == nil)
        #expect(h.readRegisters(.holdingRegisters, address: 0, count: 1).0 == [2])
        for bad: UInt16 in [0, 3, 0xFFFF] {
            #expect(h.writeRegisters(address: 0, [bad]) == .illegalDataValue)
            #expect(h.readRegisters(.holdingRegisters, address: 0, count: 1).0 == [2])
        }
        #expect(h.writeRegisters(address: 0, [1]) == nil)
        #expect(h.readRegisters(.holdingRegisters, address: 0, count: 1).0 == [1])
    }

    @Test("a coil value other than 0/1 is 0x03 and nothing of the request is written")
    func badCoilValue() {
        let h = StationHarness()
        #expect(h.writeCoils(address: 5, [1, 2]) == .illegalDataValue)
        #expect(h.readBits(.coils, address: 5, count: 3).0 == [0, 0, 0])
    }

    @Test("stack-light coils read back what was written and do nothing else")
    func stackLights() {
        let h = StationHarness()
        #expect(h.writeCoils(address: 5, [1, 0, 1]) == nil)
        #expect(h.readBits(.coils, address: 0, count: 8).0 == [0, 0, 0, 0, 0, 1, 0, 1])
        h.run(seconds: 2)
        #expect(h.readBits(.coils, address: 0, count: 8).0 == [0, 0, 0, 0, 0, 1, 0, 1])
        #expect(h.register(2) == 0 && h.register(4) == 0)
    }

    @Test("the fixture clamp closes and opens in 250 ms; FIXTURE_CLAMPED needs a part")
    func clampTiming() {
        let h = StationHarness()
        // Empty fixture: the clamp closes, but FIXTURE_CLAMPED stays clear.
        h.set(.fixtureClamp, true)
        h.run(seconds: 0.5)
        #expect(h.world.fixtureClampClosed)
        #expect(!h.input(.fixtureClamped))
        #expect(h.input(.partInFixture) == false)
        h.set(.fixtureClamp, false)
        h.run(seconds: 0.5)

        h.presentHousing()
        #expect(h.tool(TestArm.loader, .grip, at: .infeed).result == 1)
        #expect(h.tool(TestArm.loader, .release, at: .fixture).succeeded)
        #expect(h.input(.partInFixture))
        h.set(.fixtureClamp, true)
        h.run(seconds: 0.24)
        #expect(!h.input(.fixtureClamped))
        h.run(seconds: 0.02)
        #expect(h.input(.fixtureClamped))
        h.set(.fixtureClamp, false)
        h.run(seconds: 0.24)
        #expect(h.input(.fixtureClamped))
        h.run(seconds: 0.02)
        #expect(!h.input(.fixtureClamped))
        #expect(h.input(.partInFixture))
    }

    @Test("INFEED_ADVANCE indexes in about 1.5 s, is written back to 0, and presents a housing with its lot")
    func infeedIndex() {
        let h = StationHarness()
        h.set(.infeedAdvance, true)
        h.run(seconds: 1.4)
        #expect(h.coil(.infeedAdvance))
        #expect(!h.input(.housingAtInfeed))
        h.run(seconds: 0.2)
        #expect(!h.coil(.infeedAdvance))
        #expect(h.input(.housingAtInfeed))
        #expect(h.readRegisters(.inputRegisters, address: 8, count: 2).0 == [0x0002, 0x0003])
        let first = h.world.housingAtInfeed?.id

        // Indexing with a housing waiting keeps it (accumulating conveyor).
        h.set(.infeedAdvance, true)
        h.run(seconds: 1.6)
        #expect(!h.coil(.infeedAdvance))
        #expect(h.world.housingAtInfeed?.id == first)
        #expect(h.world.housingsPresented == 1)

        // Picked: the pick point is empty and the lot register reads 0.
        #expect(h.tool(TestArm.loader, .grip, at: .infeed).holdingPart)
        #expect(!h.input(.housingAtInfeed))
        #expect(h.register32(8) == 0)
    }

    @Test("a starved infeed ends its index without a housing")
    func infeedStarved() {
        let h = StationHarness()
        h.world.starveHousings(true)
        h.set(.infeedAdvance, true)
        h.run(seconds: 1.6)
        #expect(!h.coil(.infeedAdvance))
        #expect(!h.input(.housingAtInfeed))
        h.world.starveHousings(false)
        h.presentHousing()
    }

    @Test("INFEED_JAM: fault 0x1001 until cleared, the infeed does not move meanwhile")
    func infeedJam() {
        let h = StationHarness()
        h.station.jamInfeed()
        #expect(h.register(0) == TS200Model.StatusBit.fault)
        #expect(h.register(1) == 0x1001)
        h.set(.infeedAdvance, true)
        h.run(seconds: 3)
        #expect(h.coil(.infeedAdvance))
        #expect(!h.input(.housingAtInfeed))
        h.station.clearInfeedJam()
        #expect(h.register(0) == TS200Model.StatusBit.ready)
        #expect(h.register(1) == 0)
        h.run(seconds: 1.6)
        #expect(!h.coil(.infeedAdvance))
        #expect(h.input(.housingAtInfeed))
    }

    @Test("injected faults show in status and fault_code and clear when their cause is cleared")
    func injectedFaults() {
        let h = StationHarness()
        for fault in TS200Model.FaultCode.allCases {
            h.station.injectFault(code: fault)
            #expect(h.readRegisters(.inputRegisters, address: 0, count: 2).0 == [TS200Model.StatusBit.fault, fault.rawValue])
            h.station.clearFault()
            #expect(h.readRegisters(.inputRegisters, address: 0, count: 2).0 == [TS200Model.StatusBit.ready, 0])
        }
        // CLAMP_FAULT: the clamp does not move.
        h.station.injectFault(code: .clampFault)
        h.set(.fixtureClamp, true)
        h.run(seconds: 1)
        #expect(!h.world.fixtureClampClosed)
        h.station.clearFault()
        h.run(seconds: 0.3)
        #expect(h.world.fixtureClampClosed)
        // TESTER_FAULT: a start edge is ignored.
        h.station.injectFault(code: .testerFault)
        h.set(.leakTestStart, true)
        #expect(!h.input(.leakTestBusy))
        h.run(seconds: 4)
        #expect(h.register(2) == 0)
    }

    @Test("OUTFEED_ADVANCE moves the lamp off the place point in about 1 s and is written back to 0")
    func outfeed() {
        let h = StationHarness()
        _ = h.buildLamp()
        #expect(h.input(.outfeedClear))
        #expect(h.tool(TestArm.loader, .release, at: .outfeed).succeeded)
        #expect(!h.input(.outfeedClear))
        h.set(.outfeedAdvance, true)
        h.run(seconds: 0.9)
        #expect(h.coil(.outfeedAdvance))
        #expect(!h.input(.outfeedClear))
        h.run(seconds: 0.2)
        #expect(!h.coil(.outfeedAdvance))
        #expect(h.input(.outfeedClear))

        // Blocked downstream: not clear, and the conveyor does not index until unblocked.
        h.world.blockOutfeed(true)
        #expect(!h.input(.outfeedClear))
        h.set(.outfeedAdvance, true)
        h.run(seconds: 3)
        #expect(h.coil(.outfeedAdvance))
        h.world.blockOutfeed(false)
        h.run(seconds: 1.1)
        #expect(!h.coil(.outfeedAdvance))
        #expect(h.input(.outfeedClear))
    }

    @Test("a test's count and results change together, once, when it ends; the start coil stays set")
    func testCountSemantics() {
        let h = StationHarness()
        h.presentHousing()
        _ = h.tool(TestArm.loader, .grip, at: .infeed)
        _ = h.tool(TestArm.loader, .release, at: .fixture)
        h.clamp(true)
        _ = h.tool(TestArm.assembler, .grip, at: .ledFeeder)
        #expect(h.tool(TestArm.assembler, .release, at: .fixture).succeeded)

        for (start, busy, countAddress, resultAddresses, seconds) in [
            (TS200Model.Coil.leakTestStart, TS200Model.DiscreteInput.leakTestBusy, 2, [3], 3.0),
            (.lightTestStart, .lightTestBusy, 4, [5, 6], 2.0),
        ] {
            func snapshot() -> [UInt16] { h.readRegisters(.inputRegisters, address: 2, count: 5).0 }
            let before = snapshot()
            h.set(start, true)
            #expect(h.input(busy))
            var changes = 0
            var elapsedSteps = 0
            var previous = before
            while elapsedSteps < Int((seconds + 1) * 4000) {
                h.station.step()
                elapsedSteps += 1
                let now = snapshot()
                if now != previous {
                    changes += 1
                    #expect(now[countAddress - 2] == previous[countAddress - 2] &+ 1)
                    for address in resultAddresses { #expect(now[address - 2] != previous[address - 2]) }
                    #expect(!h.input(busy))
                    let elapsedSeconds = Double(elapsedSteps) / 4000
                    #expect(abs(elapsedSeconds - seconds) < 0.01)
                }
                previous = now
            }
            #expect(changes == 1)
            // The station never clears the start coil; writing 1 again is no edge.
            #expect(h.coil(start))
            h.set(start, true)
            #expect(!h.input(busy))
            // 0 then 1 is a new edge.
            h.set(start, false)
            h.set(start, true)
            #expect(h.input(busy))
            let count = h.register(countAddress)
            // An edge while busy is ignored: still one test, ending on the first schedule.
            h.run(seconds: seconds / 2)
            h.set(start, false)
            h.set(start, true)
            h.run(seconds: seconds / 2 + 0.01)
            #expect(h.register(countAddress) == count &+ 1)
            #expect(!h.input(busy))
            h.run(seconds: seconds + 1)
            #expect(h.register(countAddress) == count &+ 1)
        }
    }

    @Test("test counts wrap from 65535 to 0")
    func countWraps() {
        let h = StationHarness()
        h.station.leakTestCount = 65_535
        h.station.lightTestCount = 65_535
        h.runTest(.leakTestStart)
        h.runTest(.lightTestStart)
        #expect(h.register(2) == 0)
        #expect(h.register(4) == 0)
    }

    @Test("a test with no clamped part ends with the no-part result (leak 0xFFFF, no light)")
    func testWithoutPart() {
        let h = StationHarness()
        h.runTest(.leakTestStart)
        #expect(h.readRegisters(.inputRegisters, address: 2, count: 2).0 == [1, 0xFFFF])
        h.runTest(.lightTestStart)
        #expect(h.readRegisters(.inputRegisters, address: 4, count: 3).0 == [1, 0, 0])
    }

    @Test("SAFETY_OK dropping aborts a running test (count unchanged) and stops the conveyors")
    func safetyDrop() {
        let h = StationHarness()
        #expect(h.input(.safetyOK) && !h.input(.estopPressed) && !h.input(.guardOpen))
        h.set(.leakTestStart, true)
        h.set(.lightTestStart, true)
        h.set(.infeedAdvance, true)
        h.run(seconds: 1)
        h.world.pressEstop()
        #expect(!h.input(.safetyOK) && h.input(.estopPressed))
        h.run(seconds: 0.001)
        #expect(!h.input(.leakTestBusy) && !h.input(.lightTestBusy))
        h.run(seconds: 5)
        #expect(h.register(2) == 0 && h.register(4) == 0)
        #expect(h.coil(.infeedAdvance))
        #expect(!h.input(.housingAtInfeed))

        // A start edge while SAFETY_OK is clear is ignored.
        h.set(.leakTestStart, false)
        h.set(.leakTestStart, true)
        #expect(!h.input(.leakTestBusy))

        h.world.releaseEstop()
        h.world.openGuard()
        #expect(!h.input(.safetyOK) && !h.input(.estopPressed) && h.input(.guardOpen))
        h.run(seconds: 2)
        #expect(h.coil(.infeedAdvance))
        h.world.closeGuard()
        #expect(h.input(.safetyOK))
        // The infeed resumes the rest of its index (0.5 s left); the aborted tests do not resume.
        h.run(seconds: 0.6)
        #expect(!h.coil(.infeedAdvance))
        #expect(h.input(.housingAtInfeed))
        h.run(seconds: 4)
        #expect(h.register(2) == 0 && h.register(4) == 0)
    }

    @Test("the testers judge against the variant register")
    func variantNominals() {
        let h = StationHarness(configuration: testConfiguration(rightVariant: distinctRightVariant))
        h.presentHousing()
        _ = h.tool(TestArm.loader, .grip, at: .infeed)
        _ = h.tool(TestArm.loader, .release, at: .fixture)
        h.clamp(true)
        _ = h.tool(TestArm.assembler, .grip, at: .ledFeeder)
        #expect(h.tool(TestArm.assembler, .release, at: .fixture).succeeded)
        _ = h.tool(TestArm.lens, .dispenseOff, at: .fixture, dispensedMilliliters: 0.5)
        _ = h.tool(TestArm.lens, .grip, at: .lensFeeder)
        #expect(h.tool(TestArm.lens, .release, at: .fixture).succeeded)

        for (variant, nominals) in [(UInt16(1), LampVariantNominals.left), (2, distinctRightVariant)] {
            #expect(h.writeRegisters(address: 0, [variant]) == nil)
            h.runTest(.leakTestStart)
            h.runTest(.lightTestStart)
            #expect(nominals.leakRateWindow.contains(Double(h.register(3))))
            #expect(nominals.luminousIntensityWindow.contains(Double(h.register(5))))
            #expect(nominals.cutoffAngleWindow.contains(Double(Int16(bitPattern: h.register(6)))))
        }
        // Negative cut-off angles are two's complement.
        #expect(h.register(6) >= 0x8000)
    }

    @Test("starvation and blockage show in the discrete inputs")
    func starvationInputs() {
        let h = StationHarness(configuration: testConfiguration(rejectBinCapacity: 1))
        h.world.starveLEDModules(true)
        h.world.starveLenses(true)
        // The item waiting stays; after a pick no new one comes.
        #expect(h.input(.ledModuleAvailable) && h.input(.lensAvailable))
        #expect(h.tool(TestArm.assembler, .grip, at: .ledFeeder).holdingPart)
        #expect(h.tool(TestArm.lens, .grip, at: .lensFeeder).holdingPart)
        h.run(seconds: 5)
        #expect(!h.input(.ledModuleAvailable) && !h.input(.lensAvailable))
        #expect(h.register32(10) == 0 && h.register32(12) == 0)
        h.world.starveLEDModules(false)
        h.world.starveLenses(false)
        h.run(seconds: 0.01)
        #expect(h.input(.ledModuleAvailable) && h.input(.lensAvailable))

        h.world.blockOutfeed(true)
        #expect(!h.input(.outfeedClear))
        h.world.blockOutfeed(false)
        #expect(h.input(.outfeedClear))

        h.world.setRejectBinFull(true)
        #expect(h.input(.rejectBinFull))
        h.world.setRejectBinFull(false)
        #expect(!h.input(.rejectBinFull))
        // By count: capacity 1.
        // Loose LED modules and lenses are not lamps: they do not fill the bin.
        #expect(h.tool(TestArm.assembler, .release, at: .reject).succeeded)
        #expect(h.tool(TestArm.lens, .release, at: .reject).succeeded)
        #expect(!h.input(.rejectBinFull))
        #expect(h.world.ledModulesDiscarded == 1 && h.world.lensesDiscarded == 1)
        _ = h.buildLamp()
        #expect(h.tool(TestArm.loader, .release, at: .reject).succeeded)
        #expect(h.input(.rejectBinFull))
        h.world.emptyRejectBin()
        #expect(!h.input(.rejectBinFull))
    }
}
