// Shared helpers for the CellWorld and TS200Model tests: a small cell (three arms' teach points), and a harness
// that steps the station in virtual time and talks to it through the ModbusDevice methods.

@testable import CellSimulator
import Modbus
import Testing

/// Arm names of the test cell.
enum TestArm {
    static let loader = "loader"
    static let assembler = "assembler"
    static let lens = "lens"
}

/// Teach poses of the test cell, by arm and location (6 joints, radians).
let testPoses: [String: [WorldLocation: [Double]]] = [
    TestArm.loader: [
        .infeed: [0.10, 0.20, -0.30, 0.00, 0.50, 0.00],
        .fixture: [0.60, 0.20, -0.30, 0.00, 0.50, 0.00],
        .outfeed: [1.10, 0.20, -0.30, 0.00, 0.50, 0.00],
        .reject: [-0.60, 0.20, -0.30, 0.00, 0.50, 0.00],
    ],
    TestArm.assembler: [
        .ledFeeder: [-0.40, 0.30, -0.20, 0.10, 0.40, 0.00],
        .fixture: [0.20, 0.30, -0.20, 0.10, 0.40, 0.00],
        .reject: [-1.20, 0.30, -0.20, 0.10, 0.40, 0.00],
    ],
    TestArm.lens: [
        .lensFeeder: [0.90, 0.10, -0.40, 0.00, 0.60, 1.00],
        .fixture: [0.30, 0.10, -0.40, 0.00, 0.60, 1.00],
        .reject: [-0.90, 0.10, -0.40, 0.00, 0.60, 1.00],
    ],
]

/// A pose no arm has taught.
let poseNowhere: [Double] = [2.5, 1.0, -1.0, 1.0, 1.0, 3.0]

/// Nominals of a made-up variant 2 whose windows do not overlap variant 1's (to tell which one a test used).
let distinctRightVariant = LampVariantNominals(
    leakRateHundredthsCubicCentimetrePerMinute: 150, leakRateToleranceHundredthsCubicCentimetrePerMinute: 20,
    luminousIntensityCandela: 12_000, luminousIntensityToleranceFraction: 0.03,
    cutoffAngleHundredthsDegree: -20, cutoffAngleToleranceHundredthsDegree: 8)

/// The test cell's configuration.
func testConfiguration(
    defectRate: Double = 0, lotSizeRange: ClosedRange<Int> = 24...200,
    initialLots: InitialLots = InitialLots(housing: 0x0002_0003, ledModule: 0x0004_0005, lens: 0x0006_0007),
    rejectBinCapacity: Int = 50, rightVariant: LampVariantNominals = .right
) -> CellWorldConfiguration {
    let arms = testPoses.keys.sorted().map { arm in
        ArmStations(
            arm: arm,
            locations: (testPoses[arm] ?? [:]).sorted { $0.key.rawValue < $1.key.rawValue }.map {
                TeachLocation(poseRadians: $0.value, location: $0.key)
            })
    }
    return CellWorldConfiguration(
        arms: arms, defectRate: defectRate, lotSizeRange: lotSizeRange, initialLots: initialLots,
        rejectBinCapacity: rejectBinCapacity, rightVariant: rightVariant)
}

/// What one built lamp measured.
struct LampRun: Equatable {
    var partID: UInt64
    var housingLot: UInt32
    var ledModuleLot: UInt32
    var lensLot: UInt32
    var screwTorques: [UInt16]
    var glueResult: UInt16
    var pressForce: UInt16
    var leakRate: UInt16
    var luminousIntensity: UInt16
    var cutoffAngle: Int16
}

/// A station over a world, stepped in virtual time; reads and writes go through the ModbusDevice methods.
final class StationHarness {
    let world: CellWorld
    let station: TS200Model
    var armRandom: SimulationRandom

    init(seed: UInt64 = 42, configuration: CellWorldConfiguration = testConfiguration()) {
        var random = SimulationRandom(seed: seed)
        world = CellWorld(configuration: configuration, random: random.split())
        station = TS200Model(world: world, random: random.split())
        armRandom = random.split()
    }

    // MARK: Time

    /// Steps the station for `seconds` of virtual time.
    func run(seconds: Double) {
        let steps = Int((seconds * 1e9 / Double(TS200Model.stepNanoseconds)).rounded())
        for _ in 0..<steps { station.step() }
    }

    /// Steps until `condition` holds or `timeoutSeconds` of virtual time passed; returns whether it held.
    @discardableResult
    func run(untilTimeoutSeconds timeoutSeconds: Double, _ condition: () -> Bool) -> Bool {
        let steps = Int(timeoutSeconds * 1e9 / Double(TS200Model.stepNanoseconds))
        for _ in 0..<steps {
            if condition() { return true }
            station.step()
        }
        return condition()
    }

    // MARK: Modbus access

    func readBits(_ table: ModbusTable, address: Int, count: Int) -> ([UInt8], ModbusExceptionCode?) {
        var values = [UInt8](repeating: 0xAA, count: count)
        let error = values.withUnsafeMutableBufferPointer { station.readBits(table, address: address, into: $0) }
        return (values, error)
    }

    func readRegisters(_ table: ModbusTable, address: Int, count: Int) -> ([UInt16], ModbusExceptionCode?) {
        var values = [UInt16](repeating: 0xAAAA, count: count)
        let error = values.withUnsafeMutableBufferPointer {
            station.readRegisters(table, address: address, into: $0)
        }
        return (values, error)
    }

    func writeCoils(address: Int, _ values: [UInt8]) -> ModbusExceptionCode? {
        values.withUnsafeBufferPointer { station.writeCoils(address: address, values: $0) }
    }

    func writeRegisters(address: Int, _ values: [UInt16]) -> ModbusExceptionCode? {
        values.withUnsafeBufferPointer { station.writeRegisters(address: address, values: $0) }
    }

    /// Writes one coil and expects success.
    func set(_ coil: TS200Model.Coil, _ on: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(writeCoils(address: coil.rawValue, [on ? 1 : 0]) == nil, sourceLocation: sourceLocation)
    }

    /// Reads one coil through readBits.
    func coil(_ coil: TS200Model.Coil) -> Bool {
        let (values, error) = readBits(.coils, address: coil.rawValue, count: 1)
        return error == nil && values[0] == 1
    }

    /// Reads one discrete input through readBits.
    func input(_ input: TS200Model.DiscreteInput) -> Bool {
        let (values, error) = readBits(.discreteInputs, address: input.rawValue, count: 1)
        return error == nil && values[0] == 1
    }

    /// Reads one input register.
    func register(_ address: Int) -> UInt16 {
        let (values, error) = readRegisters(.inputRegisters, address: address, count: 1)
        return error == nil ? values[0] : 0xDEAD
    }

    /// Reads a u32 input register pair, high word first.
    func register32(_ address: Int) -> UInt32 {
        let (values, error) = readRegisters(.inputRegisters, address: address, count: 2)
        guard error == nil else { return 0xDEAD_BEEF }
        return UInt32(values[0]) << 16 | UInt32(values[1])
    }

    // MARK: Tools

    /// Ends a tool request of `arm` at `location` (its taught pose; `.none`: a pose nowhere).
    func tool(
        _ arm: String, _ command: ToolCommand, at location: WorldLocation, param: UInt16 = 0,
        dispensedMilliliters: Double = 0
    ) -> ToolOutcome {
        let pose = location == .none ? poseNowhere : (testPoses[arm]?[location] ?? poseNowhere)
        return world.toolFinished(
            arm: arm, command: command, param: param, jointPositionsRadians: pose,
            dispensedMilliliters: dispensedMilliliters, random: &armRandom)
    }

    /// Indexes the infeed until a housing waits (expects it to arrive).
    func presentHousing(sourceLocation: SourceLocation = #_sourceLocation) {
        set(.infeedAdvance, true, sourceLocation: sourceLocation)
        #expect(run(untilTimeoutSeconds: 3) { !coil(.infeedAdvance) }, sourceLocation: sourceLocation)
        #expect(input(.housingAtInfeed), sourceLocation: sourceLocation)
    }

    /// Moves the clamp and waits for it (expects FIXTURE_CLAMPED to follow).
    func clamp(_ closed: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        set(.fixtureClamp, closed, sourceLocation: sourceLocation)
        #expect(run(untilTimeoutSeconds: 1) { input(.fixtureClamped) == closed }, sourceLocation: sourceLocation)
    }

    /// Runs one test (leak or light) by a fresh 0→1 edge and waits for its count to change.
    func runTest(_ start: TS200Model.Coil, sourceLocation: SourceLocation = #_sourceLocation) {
        let countRegister = start == .leakTestStart ? 2 : 4
        let before = register(countRegister)
        set(start, false, sourceLocation: sourceLocation)
        set(start, true, sourceLocation: sourceLocation)
        #expect(
            run(untilTimeoutSeconds: 5) { register(countRegister) != before }, sourceLocation: sourceLocation)
    }

    /// Builds one lamp from the infeed to the loader's gripper (tested, unclamped, gripped out of the fixture).
    func buildLamp(
        screwTorque: UInt16 = 250, pressForce: UInt16 = 800, glueMilliliters: Double = 0.6,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> LampRun {
        func expectOK(_ outcome: ToolOutcome, result: UInt16? = nil, holding: Bool) {
            #expect(outcome.succeeded, sourceLocation: sourceLocation)
            #expect(outcome.holdingPart == holding, sourceLocation: sourceLocation)
            if let result { #expect(outcome.result == result, sourceLocation: sourceLocation) }
        }
        presentHousing(sourceLocation: sourceLocation)
        let housingLot = register32(8)
        let partID = world.housingAtInfeed?.id ?? 0
        expectOK(tool(TestArm.loader, .grip, at: .infeed), result: 1, holding: true)
        expectOK(tool(TestArm.loader, .release, at: .fixture), holding: false)
        clamp(true, sourceLocation: sourceLocation)

        #expect(run(untilTimeoutSeconds: 5) { input(.ledModuleAvailable) }, sourceLocation: sourceLocation)
        let ledLot = register32(10)
        expectOK(tool(TestArm.assembler, .grip, at: .ledFeeder), result: 1, holding: true)
        expectOK(tool(TestArm.assembler, .release, at: .fixture), holding: false)
        let torques = (0..<2).map { _ in tool(TestArm.assembler, .screw, at: .fixture, param: screwTorque) }
        for outcome in torques { expectOK(outcome, holding: false) }

        expectOK(tool(TestArm.lens, .dispenseOn, at: .fixture), result: 0, holding: false)
        let glue = tool(TestArm.lens, .dispenseOff, at: .none, dispensedMilliliters: glueMilliliters)
        expectOK(glue, holding: false)
        #expect(run(untilTimeoutSeconds: 5) { input(.lensAvailable) }, sourceLocation: sourceLocation)
        let lensLot = register32(12)
        expectOK(tool(TestArm.lens, .grip, at: .lensFeeder), result: 1, holding: true)
        expectOK(tool(TestArm.lens, .release, at: .fixture), holding: false)
        let press = tool(TestArm.lens, .press, at: .fixture, param: pressForce)
        expectOK(press, holding: false)

        runTest(.leakTestStart, sourceLocation: sourceLocation)
        runTest(.lightTestStart, sourceLocation: sourceLocation)
        let leak = register(3)
        let intensity = register(5)
        let cutoff = Int16(bitPattern: register(6))

        clamp(false, sourceLocation: sourceLocation)
        expectOK(tool(TestArm.loader, .grip, at: .fixture), result: 1, holding: true)
        return LampRun(
            partID: partID, housingLot: housingLot, ledModuleLot: ledLot, lensLot: lensLot,
            screwTorques: torques.map(\.result), glueResult: glue.result, pressForce: press.result,
            leakRate: leak, luminousIntensity: intensity, cutoffAngle: cutoff)
    }

    /// Releases the loader's lamp onto the outfeed (waiting for it to be clear) and indexes the outfeed.
    func deliverToOutfeed(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(run(untilTimeoutSeconds: 3) { input(.outfeedClear) }, sourceLocation: sourceLocation)
        let outcome = tool(TestArm.loader, .release, at: .outfeed)
        #expect(outcome.succeeded && !outcome.holdingPart, sourceLocation: sourceLocation)
        set(.outfeedAdvance, true, sourceLocation: sourceLocation)
    }
}
