// The TS-200 station controller as the datasheet describes it (/work/shared/datasheets/TS-200-station-controller.md),
// on virtual time, over a `CellWorld`.

import Modbus

/// A simulated TS-200 station PLC: coils, discrete inputs and registers exactly as the datasheet lists them,
/// driving the cell world's infeed, fixture clamp, testers and outfeed.
///
/// Behaviour the datasheet leaves open, as this model decides it:
/// - `variant` starts at 1 (LEFT). A test is judged against the nominals of the variant at its start.
/// - Conveyors (infeed, outfeed) run only while `SAFETY_OK`; when it drops they stop where they are and resume the
///   rest of the index when it returns (the coil stays 1 meanwhile). Writing 0 to an advance coil while it indexes
///   cancels the index. An infeed index while a housing already waits ends without a new one (accumulating
///   conveyor); a starved infeed ends its index with no housing. The outfeed does not move while blocked.
/// - The clamp is not a conveyor: it moves regardless of `SAFETY_OK`. A coil change restarts its 250 ms motion.
///   `FIXTURE_CLAMPED` is set only when the clamp is closed and a part lies in the fixture (closing on an empty
///   fixture raises no fault).
/// - A test started with no clamped part runs and ends with a no-part result (leak `0xFFFF`; light 0 cd and 0.00°),
///   so the count still changes and the controller sees a failing value. The part is measured at the end of
///   the test; if it was unclamped meanwhile, the no-part result is reported.
/// - Faults: `status` is READY (bit0) with no fault, FAULT (bit1) with one. The datasheet has no reset for the
///   station: a fault clears when its cause is cleared (`clearInfeedJam()`, `clearFault()`). While INFEED_JAM the
///   infeed does not move; while CLAMP_FAULT the clamp does not move; while TESTER_FAULT running tests abort (count
///   unchanged) and start edges are ignored.
/// - Lot registers read the lot of the item waiting at each pick point, 0 when none waits.
///
/// Thread: not thread-safe. `step()` and the `ModbusDevice` methods are called by one thread at a time (the
/// simulator wraps the model in a locked adapter for `ModbusTCPServer`). `step()` and the Modbus methods do not
/// allocate.
public final class TS200Model: ModbusDevice {
    /// Virtual time per `step()`, ns (the same as the arm model, so the cell steps every model in lockstep).
    public static let stepNanoseconds: UInt64 = 250_000
    /// Fixture clamp motion, either way.
    public static let clampMotionNanoseconds: UInt64 = 250_000_000
    /// Infeed index time.
    public static let infeedIndexNanoseconds: UInt64 = 1_500_000_000
    /// Outfeed index time.
    public static let outfeedIndexNanoseconds: UInt64 = 1_000_000_000
    /// Leak test duration.
    public static let leakTestNanoseconds: UInt64 = 3_000_000_000
    /// Light test duration.
    public static let lightTestNanoseconds: UInt64 = 2_000_000_000

    /// Number of coils (addresses 0..7).
    public static let coilCount = 8
    /// Number of discrete inputs (addresses 0..11).
    public static let discreteInputCount = 12
    /// Number of holding registers (address 0).
    public static let holdingRegisterCount = 1
    /// Number of input registers (addresses 0..15).
    public static let inputRegisterCount = 16

    /// Coil addresses.
    public enum Coil: Int, Sendable, CaseIterable {
        case fixtureClamp = 0, infeedAdvance, leakTestStart, lightTestStart, outfeedAdvance
        case lampGreen, lampAmber, lampRed
    }

    /// Discrete input addresses.
    public enum DiscreteInput: Int, Sendable, CaseIterable {
        case housingAtInfeed = 0, fixtureClamped, partInFixture, leakTestBusy, lightTestBusy, outfeedClear
        case safetyOK, estopPressed, guardOpen, ledModuleAvailable, lensAvailable, rejectBinFull
    }

    /// Input register addresses (32-bit values: the high word's address).
    public enum InputRegister: Int, Sendable, CaseIterable {
        case status = 0, faultCode, leakTestCount, leakRate, lightTestCount, luminousIntensity, cutoffAngle
        case reserved7, housingLot, ledModuleLot = 10, lensLot = 12, uptimeMilliseconds = 14
    }

    /// `status` bits.
    public enum StatusBit {
        /// No fault.
        public static let ready: UInt16 = 1 << 0
        /// A fault is active (see `fault_code`).
        public static let fault: UInt16 = 1 << 1
    }

    /// `fault_code` values.
    public enum FaultCode: UInt16, Sendable, CaseIterable {
        case infeedJam = 0x1001, clampFault = 0x1002, testerFault = 0x1003
    }

    /// Holding register 0 values: the lamp variants.
    public static let validVariants: ClosedRange<UInt16> = 1...2

    /// The world the station drives and senses.
    public let world: CellWorld
    private var random: SimulationRandom

    /// Virtual time since power-up, ns.
    public private(set) var timeNanoseconds: UInt64 = 0

    private var coils = [Bool](repeating: false, count: TS200Model.coilCount)
    /// Holding register 0: the variant the testers judge against.
    public private(set) var variant: UInt16 = 1

    /// The active fault code, 0 when none.
    public private(set) var faultCode: UInt16 = 0

    private var clampMotionRemainingNanoseconds: UInt64?
    private var infeedRemainingNanoseconds: UInt64?
    private var outfeedRemainingNanoseconds: UInt64?
    private var leakTestRemainingNanoseconds: UInt64?
    private var leakTestNominals = LampVariantNominals.left
    private var lightTestRemainingNanoseconds: UInt64?
    private var lightTestNominals = LampVariantNominals.left

    /// `leak_test_count` (internal setter so tests can exercise wrapping).
    public internal(set) var leakTestCount: UInt16 = 0
    /// `leak_rate` of the last leak test, 0.01 cm³/min.
    public private(set) var leakRateHundredths: UInt16 = 0
    /// `light_test_count` (internal setter so tests can exercise wrapping).
    public internal(set) var lightTestCount: UInt16 = 0
    /// `luminous_intensity` of the last light test, cd.
    public private(set) var luminousIntensityCandela: UInt16 = 0
    /// `cutoff_angle` of the last light test, 0.01°.
    public private(set) var cutoffAngleHundredthsDegree: Int16 = 0

    /// Creates a powered-up station over `world`, with its own random source for measurement noise.
    public init(world: CellWorld, random: SimulationRandom) {
        self.world = world
        self.random = random
    }

    // MARK: Fault injection (simulator control; same thread as step())

    /// Jams the infeed: fault INFEED_JAM (0x1001), the infeed does not move until `clearInfeedJam()`.
    public func jamInfeed() { faultCode = FaultCode.infeedJam.rawValue }

    /// Clears an infeed jam (the INFEED_JAM fault clears with it).
    public func clearInfeedJam() {
        if faultCode == FaultCode.infeedJam.rawValue { faultCode = 0 }
    }

    /// Makes `code` the active fault (replacing any other); a known code also has its effect (see the type).
    public func injectFault(code: FaultCode) { faultCode = code.rawValue }

    /// Clears whatever fault is active (its cause is gone).
    public func clearFault() { faultCode = 0 }

    // MARK: Stepping

    /// Advances the station and the world by `stepNanoseconds`: world time, clamp, conveyors, testers.
    public func step() {
        let dt = Self.stepNanoseconds
        timeNanoseconds &+= dt
        world.advance(byNanoseconds: dt)
        let safetyOK = world.safetyChainClosed

        if faultCode != FaultCode.clampFault.rawValue, let remaining = clampMotionRemainingNanoseconds {
            if remaining <= dt {
                clampMotionRemainingNanoseconds = nil
                world.setFixtureClamp(closed: coils[Coil.fixtureClamp.rawValue])
            } else {
                clampMotionRemainingNanoseconds = remaining - dt
            }
        }

        if safetyOK, faultCode != FaultCode.infeedJam.rawValue, let remaining = infeedRemainingNanoseconds {
            if remaining <= dt {
                infeedRemainingNanoseconds = nil
                world.presentNextHousing()
                coils[Coil.infeedAdvance.rawValue] = false
            } else {
                infeedRemainingNanoseconds = remaining - dt
            }
        }

        if safetyOK, !world.outfeedBlocked, let remaining = outfeedRemainingNanoseconds {
            if remaining <= dt {
                outfeedRemainingNanoseconds = nil
                world.outfeedIndexed()
                coils[Coil.outfeedAdvance.rawValue] = false
            } else {
                outfeedRemainingNanoseconds = remaining - dt
            }
        }

        if !safetyOK || faultCode == FaultCode.testerFault.rawValue {
            // Abort: the count and results do not change.
            leakTestRemainingNanoseconds = nil
            lightTestRemainingNanoseconds = nil
            return
        }

        if let remaining = leakTestRemainingNanoseconds {
            if remaining <= dt {
                leakTestRemainingNanoseconds = nil
                leakRateHundredths = world.measureLeakRate(nominals: leakTestNominals, random: &random)
                leakTestCount &+= 1
            } else {
                leakTestRemainingNanoseconds = remaining - dt
            }
        }

        if let remaining = lightTestRemainingNanoseconds {
            if remaining <= dt {
                lightTestRemainingNanoseconds = nil
                let light = world.measureLight(nominals: lightTestNominals, random: &random)
                luminousIntensityCandela = light.luminousIntensityCandela
                cutoffAngleHundredthsDegree = light.cutoffAngleHundredthsDegree
                lightTestCount &+= 1
            } else {
                lightTestRemainingNanoseconds = remaining - dt
            }
        }
    }

    // MARK: Skipping quiet steps (the exact model)

    /// Steps of a timer that has `remaining` ns left before its event: the steps that end before it fires.
    private static func stepsBefore(_ remaining: UInt64?) -> UInt64 {
        guard let remaining else { return .max }
        return remaining == 0 ? 0 : (remaining - 1) / stepNanoseconds
    }

    /// How many of the next steps (at most `limit`) are quiet: `step()` would change nothing but time in them (no clamp,
    /// conveyor or test ends, no test aborts, no feeder refill), so `skip(steps:)` may advance them at once. 0: the next
    /// step holds an event and must be run by `step()`. Constant-time; does not allocate. Thread: the owner.
    public func quietSteps(limit: Int) -> Int {
        guard limit > 0 else { return 0 }
        let safetyOK = world.safetyChainClosed
        var quiet = min(UInt64(limit), world.stepsBeforeFeederEvent(stepNanoseconds: Self.stepNanoseconds))
        if faultCode != FaultCode.clampFault.rawValue { quiet = min(quiet, Self.stepsBefore(clampMotionRemainingNanoseconds)) }
        if safetyOK, faultCode != FaultCode.infeedJam.rawValue {
            quiet = min(quiet, Self.stepsBefore(infeedRemainingNanoseconds))
        }
        if safetyOK, !world.outfeedBlocked { quiet = min(quiet, Self.stepsBefore(outfeedRemainingNanoseconds)) }
        if !safetyOK || faultCode == FaultCode.testerFault.rawValue {
            // A running test aborts at the next step.
            if leakTestRemainingNanoseconds != nil || lightTestRemainingNanoseconds != nil { return 0 }
        } else {
            quiet = min(quiet, Self.stepsBefore(leakTestRemainingNanoseconds))
            quiet = min(quiet, Self.stepsBefore(lightTestRemainingNanoseconds))
        }
        return Int(quiet)
    }

    /// Advances `steps` quiet steps (see `quietSteps(limit:)`) at once: exactly what `steps` calls of `step()` would
    /// do. Thread: the owner.
    public func skip(steps: Int) {
        assert(steps >= 0 && steps <= quietSteps(limit: steps), "TS200Model.skip: \(steps) steps are not all quiet")
        let elapsed = UInt64(steps) * Self.stepNanoseconds
        timeNanoseconds &+= elapsed
        world.advance(byNanoseconds: elapsed)
        let safetyOK = world.safetyChainClosed
        func run(_ remaining: inout UInt64?) {
            if let left = remaining { remaining = left - elapsed }
        }
        if faultCode != FaultCode.clampFault.rawValue { run(&clampMotionRemainingNanoseconds) }
        if safetyOK, faultCode != FaultCode.infeedJam.rawValue { run(&infeedRemainingNanoseconds) }
        if safetyOK, !world.outfeedBlocked { run(&outfeedRemainingNanoseconds) }
        if safetyOK, faultCode != FaultCode.testerFault.rawValue {
            run(&leakTestRemainingNanoseconds)
            run(&lightTestRemainingNanoseconds)
        }
    }

    // MARK: Values

    /// The current value of coil `coil`.
    public func coil(_ coil: Coil) -> Bool { coils[coil.rawValue] }

    /// The current value of discrete input `input`.
    public func discreteInput(_ input: DiscreteInput) -> Bool {
        switch input {
        case .housingAtInfeed: world.housingAtInfeed != nil
        case .fixtureClamped: world.partClamped
        case .partInFixture: world.fixturePart != nil
        case .leakTestBusy: leakTestRemainingNanoseconds != nil
        case .lightTestBusy: lightTestRemainingNanoseconds != nil
        case .outfeedClear: world.outfeedClear
        case .safetyOK: world.safetyChainClosed
        case .estopPressed: world.estopPressed
        case .guardOpen: world.guardOpen
        case .ledModuleAvailable: world.ledModuleLotAtPickPoint != nil
        case .lensAvailable: world.lensLotAtPickPoint != nil
        case .rejectBinFull: world.rejectBinFull
        }
    }

    /// The current value of input register `address` (0..15); reserved addresses read 0.
    public func inputRegister(_ address: Int) -> UInt16 {
        let housingLot = world.housingAtInfeed?.housingLot ?? 0
        let ledLot = world.ledModuleLotAtPickPoint ?? 0
        let lensLot = world.lensLotAtPickPoint ?? 0
        let uptimeMilliseconds = UInt32(truncatingIfNeeded: timeNanoseconds / 1_000_000)
        switch address {
        case 0: return faultCode == 0 ? StatusBit.ready : StatusBit.fault
        case 1: return faultCode
        case 2: return leakTestCount
        case 3: return leakRateHundredths
        case 4: return lightTestCount
        case 5: return luminousIntensityCandela
        case 6: return UInt16(bitPattern: cutoffAngleHundredthsDegree)
        case 8: return UInt16(truncatingIfNeeded: housingLot >> 16)
        case 9: return UInt16(truncatingIfNeeded: housingLot)
        case 10: return UInt16(truncatingIfNeeded: ledLot >> 16)
        case 11: return UInt16(truncatingIfNeeded: ledLot)
        case 12: return UInt16(truncatingIfNeeded: lensLot >> 16)
        case 13: return UInt16(truncatingIfNeeded: lensLot)
        case 14: return UInt16(truncatingIfNeeded: uptimeMilliseconds >> 16)
        case 15: return UInt16(truncatingIfNeeded: uptimeMilliseconds)
        default: return 0
        }
    }

    // MARK: ModbusDevice

    /// 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10 (not 0x17).
    public let supportedFunctions: Set<ModbusFunction> = [
        .readCoils, .readDiscreteInputs, .readHoldingRegisters, .readInputRegisters,
        .writeSingleCoil, .writeSingleRegister, .writeMultipleCoils, .writeMultipleRegisters,
    ]

    private static func inRange(address: Int, count: Int, tableSize: Int) -> Bool {
        address >= 0 && count >= 0 && address <= tableSize && count <= tableSize - address
    }

    /// Reads coils (0..7) or discrete inputs (0..11); any address outside: 0x02.
    public func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode?
    {
        switch table {
        case .coils:
            guard Self.inRange(address: address, count: values.count, tableSize: Self.coilCount) else {
                return .illegalDataAddress
            }
            for index in 0..<values.count { values[index] = coils[address + index] ? 1 : 0 }
        case .discreteInputs:
            guard Self.inRange(address: address, count: values.count, tableSize: Self.discreteInputCount) else {
                return .illegalDataAddress
            }
            for index in 0..<values.count {
                guard let input = DiscreteInput(rawValue: address + index) else { return .serverDeviceFailure }
                values[index] = discreteInput(input) ? 1 : 0
            }
        case .holdingRegisters, .inputRegisters:
            return .illegalFunction
        }
        return nil
    }

    /// Reads the holding register (0) or input registers (0..15); any address outside: 0x02.
    public func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode?
    {
        switch table {
        case .holdingRegisters:
            guard Self.inRange(address: address, count: values.count, tableSize: Self.holdingRegisterCount) else {
                return .illegalDataAddress
            }
            for index in 0..<values.count { values[index] = variant }
        case .inputRegisters:
            guard Self.inRange(address: address, count: values.count, tableSize: Self.inputRegisterCount) else {
                return .illegalDataAddress
            }
            for index in 0..<values.count { values[index] = inputRegister(address + index) }
        case .coils, .discreteInputs:
            return .illegalFunction
        }
        return nil
    }

    /// Writes coils 0..7 (address 0x02 → value 0x03 → all applied in order, with their edges and motions).
    public func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        guard Self.inRange(address: address, count: values.count, tableSize: Self.coilCount) else {
            return .illegalDataAddress
        }
        for value in values where value > 1 { return .illegalDataValue }
        for index in 0..<values.count {
            guard let coil = Coil(rawValue: address + index) else { return .serverDeviceFailure }
            writeCoil(coil, values[index] == 1)
        }
        return nil
    }

    /// Writes `variant` (address 0 only; values 1 or 2, else 0x03 with nothing written).
    public func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        guard Self.inRange(address: address, count: values.count, tableSize: Self.holdingRegisterCount) else {
            return .illegalDataAddress
        }
        for value in values where !Self.validVariants.contains(value) { return .illegalDataValue }
        if let last = values.last { variant = last }
        return nil
    }

    /// 0x17 is not a TS-200 function: always 0x01 (the server answers that before calling here).
    public func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        .illegalFunction
    }

    /// Applies one coil write with its side effects (edges, motions).
    private func writeCoil(_ coil: Coil, _ value: Bool) {
        let previous = coils[coil.rawValue]
        coils[coil.rawValue] = value
        guard value != previous else { return }
        switch coil {
        case .fixtureClamp:
            clampMotionRemainingNanoseconds = Self.clampMotionNanoseconds
        case .infeedAdvance:
            infeedRemainingNanoseconds = value ? Self.infeedIndexNanoseconds : nil
        case .outfeedAdvance:
            outfeedRemainingNanoseconds = value ? Self.outfeedIndexNanoseconds : nil
        case .leakTestStart:
            if value, leakTestRemainingNanoseconds == nil, testsMayStart,
                let nominals = world.configuration.nominals(variant: variant)
            {
                leakTestNominals = nominals
                leakTestRemainingNanoseconds = Self.leakTestNanoseconds
            }
        case .lightTestStart:
            if value, lightTestRemainingNanoseconds == nil, testsMayStart,
                let nominals = world.configuration.nominals(variant: variant)
            {
                lightTestNominals = nominals
                lightTestRemainingNanoseconds = Self.lightTestNanoseconds
            }
        case .lampGreen, .lampAmber, .lampRed:
            break
        }
    }

    private var testsMayStart: Bool {
        world.safetyChainClosed && faultCode != FaultCode.testerFault.rawValue
    }
}
