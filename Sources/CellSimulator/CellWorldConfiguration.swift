import CellCore
// The simulated cell's physical layout, parts and process values: configuration and value types.

/// A place in the cell an arm's tool can be at (decided from the arm's joint positions and its teach points).
public enum WorldLocation: String, Sendable, CaseIterable {
    /// The housing pick point at the end of the infeed conveyor.
    case infeed
    /// The assembly fixture (with its clamp), where the lamp is built and tested.
    case fixture
    /// The LED-module feeder's pick point.
    case ledFeeder
    /// The lens feeder's pick point.
    case lensFeeder
    /// The outfeed conveyor's place point.
    case outfeed
    /// The reject chute (into the reject bin).
    case reject
    /// Anywhere else.
    case none
}

/// One taught arm pose and the location it reaches.
public struct TeachLocation: Sendable, Equatable {
    /// Joint positions J1..J6 in radians (6 values).
    public var poseRadians: [Double]
    /// The location the tool is at in this pose.
    public var location: WorldLocation

    /// Creates a teach location.
    public init(poseRadians: [Double], location: WorldLocation) {
        self.poseRadians = poseRadians
        self.location = location
    }
}

/// The teach locations of one arm, by the arm's name (the name `RA610Model` passes to `toolFinished`).
public struct ArmStations: Sendable, Equatable {
    /// The arm's name, e.g. "loader".
    public var arm: String
    /// Its teach locations; the first whose pose matches within tolerance wins.
    public var locations: [TeachLocation]

    /// Creates the teach locations of `arm`.
    public init(arm: String, locations: [TeachLocation]) {
        self.arm = arm
        self.locations = locations
    }
}

/// A hidden defect a housing carries from the infeed; it shows only in a measurement.
public enum PartDefect: String, Sendable, CaseIterable {
    /// No defect.
    case none
    /// A bad thread: SCREW reaches only 60–85 % of the target torque.
    case screw
    /// A bad lens seat: PRESS peaks 15–30 % over or under the target force.
    case press
    /// A porous housing: the leak test reads 300..800 (0.01 cm³/min).
    case leak
    /// A bad reflector: the light test reads 60–80 % intensity and a cut-off of −1.50°..−1.20°.
    case light
}

extension PartDefect {
    /// The measurements in which this defect shows (those it can push outside a recipe's window): what a lamp made
    /// of such a part must be NG for. Thread: any.
    public var measurementsShown: Set<MeasurementKind> {
        switch self {
        case .none: []
        case .screw: [.screwTorque1, .screwTorque2, .screwTorque3, .screwTorque4]
        case .press: [.pressForce]
        case .leak: [.leakRate]
        case .light: [.luminousIntensity, .cutoffAngle]
        }
    }
}

/// The nominal test values of one lamp variant (what a good lamp measures; uniform within the tolerances).
public struct LampVariantNominals: Sendable, Equatable {
    /// Nominal leak rate, 0.01 cm³/min.
    public var leakRateHundredthsCubicCentimetrePerMinute: Double
    /// Half-width of the good leak-rate window, 0.01 cm³/min.
    public var leakRateToleranceHundredthsCubicCentimetrePerMinute: Double
    /// Nominal luminous intensity at the test point, cd.
    public var luminousIntensityCandela: Double
    /// Half-width of the good intensity window as a fraction of nominal (0.03 = ± 3 %).
    public var luminousIntensityToleranceFraction: Double
    /// Nominal cut-off angle, 0.01° (negative = below the horizon).
    public var cutoffAngleHundredthsDegree: Double
    /// Half-width of the good cut-off window, 0.01°.
    public var cutoffAngleToleranceHundredthsDegree: Double

    /// Creates nominal values.
    public init(
        leakRateHundredthsCubicCentimetrePerMinute: Double,
        leakRateToleranceHundredthsCubicCentimetrePerMinute: Double,
        luminousIntensityCandela: Double, luminousIntensityToleranceFraction: Double,
        cutoffAngleHundredthsDegree: Double, cutoffAngleToleranceHundredthsDegree: Double
    ) {
        self.leakRateHundredthsCubicCentimetrePerMinute = leakRateHundredthsCubicCentimetrePerMinute
        self.leakRateToleranceHundredthsCubicCentimetrePerMinute = leakRateToleranceHundredthsCubicCentimetrePerMinute
        self.luminousIntensityCandela = luminousIntensityCandela
        self.luminousIntensityToleranceFraction = luminousIntensityToleranceFraction
        self.cutoffAngleHundredthsDegree = cutoffAngleHundredthsDegree
        self.cutoffAngleToleranceHundredthsDegree = cutoffAngleToleranceHundredthsDegree
    }

    /// Variant 1, LEFT: leak 0.50 ± 0.20 cm³/min, 18 000 cd ± 3 %, cut-off −0.57° ± 0.08°.
    public static let left = LampVariantNominals(
        leakRateHundredthsCubicCentimetrePerMinute: 50, leakRateToleranceHundredthsCubicCentimetrePerMinute: 20,
        luminousIntensityCandela: 18_000, luminousIntensityToleranceFraction: 0.03,
        cutoffAngleHundredthsDegree: -57, cutoffAngleToleranceHundredthsDegree: 8)

    /// Variant 2, RIGHT: leak 0.50 ± 0.20 cm³/min, 17 500 cd ± 3 %, cut-off −0.52° ± 0.08°.
    public static let right = LampVariantNominals(
        leakRateHundredthsCubicCentimetrePerMinute: 50, leakRateToleranceHundredthsCubicCentimetrePerMinute: 20,
        luminousIntensityCandela: 17_500, luminousIntensityToleranceFraction: 0.03,
        cutoffAngleHundredthsDegree: -52, cutoffAngleToleranceHundredthsDegree: 8)

    /// The good leak-rate window, 0.01 cm³/min.
    public var leakRateWindow: ClosedRange<Double> {
        let n = leakRateHundredthsCubicCentimetrePerMinute
        let t = leakRateToleranceHundredthsCubicCentimetrePerMinute
        return max(0, n - t)...(n + t)
    }

    /// The good luminous-intensity window, cd.
    public var luminousIntensityWindow: ClosedRange<Double> {
        let n = luminousIntensityCandela
        let t = n * luminousIntensityToleranceFraction
        return (n - t)...(n + t)
    }

    /// The good cut-off window, 0.01°.
    public var cutoffAngleWindow: ClosedRange<Double> {
        let n = cutoffAngleHundredthsDegree
        let t = cutoffAngleToleranceHundredthsDegree
        return (n - t)...(n + t)
    }
}

/// The first lot number of each supply (the next lot is the previous one + 1).
public struct InitialLots: Sendable, Equatable {
    /// First housing lot (infeed).
    public var housing: UInt32
    /// First LED-module lot (LED feeder).
    public var ledModule: UInt32
    /// First lens lot (lens feeder).
    public var lens: UInt32

    /// Creates initial lots.
    public init(housing: UInt32, ledModule: UInt32, lens: UInt32) {
        self.housing = housing
        self.ledModule = ledModule
        self.lens = lens
    }
}

/// A configuration value that `CellWorld` cannot work with; names the field and why.
public struct CellWorldConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field of `CellWorldConfiguration`.
    public var field: String
    /// What is wrong with it.
    public var reason: String

    public var description: String { "CellWorldConfiguration.\(field): \(reason)" }
}

/// Everything `CellWorld` needs to know about the cell: teach points, defect rate, lots, process values.
/// A plain value; the real cell's teach points come from the `Hardware/` files, tests build it directly.
public struct CellWorldConfiguration: Sendable, Equatable {
    /// Number of joints of an arm pose.
    public static let jointCount = 6

    /// Teach locations per arm.
    public var arms: [ArmStations]
    /// An arm is "at" a teach location when every joint is within this of the taught pose.
    public var positionToleranceRadians: Double
    /// Share (0…1) of housings that carry a hidden defect (kind chosen uniformly among the four).
    public var defectRate: Double
    /// Parts per lot (each lot's size is drawn uniformly from this range), for every supply.
    public var lotSizeRange: ClosedRange<Int>
    /// The first lot of each supply.
    public var initialLots: InitialLots
    /// After a pick, the LED-module and lens feeders present the next one after this time.
    public var feederRefillNanoseconds: UInt64
    /// Lamps the reject bin holds before `REJECT_BIN_FULL`.
    public var rejectBinCapacity: Int
    /// Less glue than this on a lamp makes its leak test fail (300..800).
    public var minimumGlueMilliliters: Double
    /// Nominal test values of variant 1 (LEFT).
    public var leftVariant: LampVariantNominals
    /// Nominal test values of variant 2 (RIGHT).
    public var rightVariant: LampVariantNominals
    /// Leak rate of a leaking lamp (defect, too little glue, no lens), 0.01 cm³/min.
    public var defectLeakRateRange: ClosedRange<Double>
    /// Intensity of a `.light` defect lamp as a fraction of nominal.
    public var defectIntensityFractionRange: ClosedRange<Double>
    /// Cut-off angle of a `.light` defect lamp, 0.01°.
    public var defectCutoffAngleRange: ClosedRange<Double>
    /// Standard deviation of the achieved screw torque, as a fraction of the target.
    public var screwTorqueNoiseFraction: Double
    /// Achieved torque of a `.screw` defect part as a fraction of the target.
    public var screwDefectTorqueFractionRange: ClosedRange<Double>
    /// Standard deviation of the press peak force, as a fraction of the target.
    public var pressForceNoiseFraction: Double
    /// How far (fraction of target, over or under) a `.press` defect part's peak force is off.
    public var pressDefectDeviationFractionRange: ClosedRange<Double>

    /// Creates a configuration; every value but the teach points has a default.
    public init(
        arms: [ArmStations],
        positionToleranceRadians: Double = 0.005,
        defectRate: Double = 0.02,
        lotSizeRange: ClosedRange<Int> = 24...200,
        initialLots: InitialLots = InitialLots(housing: 100_001, ledModule: 200_001, lens: 300_001),
        feederRefillNanoseconds: UInt64 = 1_000_000_000,
        rejectBinCapacity: Int = 50,
        minimumGlueMilliliters: Double = 0.3,
        leftVariant: LampVariantNominals = .left,
        rightVariant: LampVariantNominals = .right,
        defectLeakRateRange: ClosedRange<Double> = 300...800,
        defectIntensityFractionRange: ClosedRange<Double> = 0.60...0.80,
        defectCutoffAngleRange: ClosedRange<Double> = -150 ... -120,
        screwTorqueNoiseFraction: Double = 0.015,
        screwDefectTorqueFractionRange: ClosedRange<Double> = 0.60...0.85,
        pressForceNoiseFraction: Double = 0.02,
        pressDefectDeviationFractionRange: ClosedRange<Double> = 0.15...0.30
    ) {
        self.arms = arms
        self.positionToleranceRadians = positionToleranceRadians
        self.defectRate = defectRate
        self.lotSizeRange = lotSizeRange
        self.initialLots = initialLots
        self.feederRefillNanoseconds = feederRefillNanoseconds
        self.rejectBinCapacity = rejectBinCapacity
        self.minimumGlueMilliliters = minimumGlueMilliliters
        self.leftVariant = leftVariant
        self.rightVariant = rightVariant
        self.defectLeakRateRange = defectLeakRateRange
        self.defectIntensityFractionRange = defectIntensityFractionRange
        self.defectCutoffAngleRange = defectCutoffAngleRange
        self.screwTorqueNoiseFraction = screwTorqueNoiseFraction
        self.screwDefectTorqueFractionRange = screwDefectTorqueFractionRange
        self.pressForceNoiseFraction = pressForceNoiseFraction
        self.pressDefectDeviationFractionRange = pressDefectDeviationFractionRange
    }

    /// The nominal values the testers judge against for `variant` (1 LEFT, 2 RIGHT), nil for any other value.
    public func nominals(variant: UInt16) -> LampVariantNominals? {
        switch variant {
        case 1: leftVariant
        case 2: rightVariant
        default: nil
        }
    }

    /// Checks every field `CellWorld` relies on; throws naming the first bad one.
    public func validate() throws(CellWorldConfigurationError) {
        var seenArms = Set<String>()
        for (armIndex, arm) in arms.enumerated() {
            guard seenArms.insert(arm.arm).inserted else {
                throw CellWorldConfigurationError(field: "arms[\(armIndex)].arm", reason: "duplicate arm \"\(arm.arm)\"")
            }
            for (index, location) in arm.locations.enumerated()
            where location.poseRadians.count != Self.jointCount || !location.poseRadians.allSatisfy(\.isFinite) {
                throw CellWorldConfigurationError(
                    field: "arms[\(armIndex)].locations[\(index)].poseRadians",
                    reason: "needs \(Self.jointCount) finite joint positions, has \(location.poseRadians)")
            }
        }
        guard positionToleranceRadians.isFinite, positionToleranceRadians > 0 else {
            throw CellWorldConfigurationError(field: "positionToleranceRadians", reason: "must be > 0")
        }
        guard defectRate >= 0, defectRate <= 1 else {
            throw CellWorldConfigurationError(field: "defectRate", reason: "must be within 0...1, is \(defectRate)")
        }
        guard lotSizeRange.lowerBound >= 1 else {
            throw CellWorldConfigurationError(field: "lotSizeRange", reason: "lots need at least 1 part")
        }
        guard rejectBinCapacity >= 1 else {
            throw CellWorldConfigurationError(field: "rejectBinCapacity", reason: "must be >= 1")
        }
        guard minimumGlueMilliliters >= 0, minimumGlueMilliliters.isFinite else {
            throw CellWorldConfigurationError(field: "minimumGlueMilliliters", reason: "must be >= 0")
        }
    }
}

/// One part in the cell: a housing from the infeed and everything assembled onto it (the lamp).
public struct SimPart: Sendable, Equatable {
    /// Unique id, counting from 1 in the order housings reach the infeed pick point.
    public let id: UInt64
    /// Housing lot (from the infeed).
    public let housingLot: UInt32
    /// The hidden defect the housing carries (chosen by the world's seed).
    public let defect: PartDefect
    /// LED-module lot, once an LED module is installed.
    public var ledModuleLot: UInt32?
    /// Lens lot, once a lens is placed.
    public var lensLot: UInt32?
    /// Achieved torque of every screw driven, 0.01 N·m, in order.
    public var screwTorquesHundredthsNewtonMetre: [UInt16] = []
    /// Glue dispensed onto this part, ml.
    public var glueMilliliters: Double = 0
    /// Peak force of every press, N, in order.
    public var pressForcesNewton: [UInt16] = []
    /// Result of the last leak test of this part, 0.01 cm³/min.
    public var lastLeakRateHundredths: UInt16?
    /// Intensity of the last light test of this part, cd.
    public var lastLuminousIntensityCandela: UInt16?
    /// Cut-off angle of the last light test of this part, 0.01°.
    public var lastCutoffAngleHundredthsDegree: Int16?

    /// Creates a bare housing.
    public init(id: UInt64, housingLot: UInt32, defect: PartDefect) {
        self.id = id
        self.housingLot = housingLot
        self.defect = defect
    }

    /// An LED module is installed.
    public var ledModuleInstalled: Bool { ledModuleLot != nil }
    /// A lens is placed.
    public var lensPlaced: Bool { lensLot != nil }
}

/// What an arm's gripper holds.
public enum HeldItem: Sendable, Equatable {
    /// A housing or (partly) assembled lamp.
    case part(SimPart)
    /// A loose LED module of this lot.
    case ledModule(lot: UInt32)
    /// A loose lens of this lot.
    case lens(lot: UInt32)
}

/// Where a lamp left the cell.
public enum LampDestination: String, Sendable, Equatable {
    case outfeed, reject
}

/// One lamp that left the cell: the world's own ledger, independent of any controller.
public struct LampExit: Sendable, Equatable {
    /// The lamp as it left (id, lots, defect, assembly and test values).
    public var part: SimPart
    /// Where it went.
    public var destination: LampDestination
    /// World time of the release, ns.
    public var timeNanoseconds: UInt64

    /// The lamp's part id.
    public var partID: UInt64 { part.id }
    /// Its housing lot.
    public var housingLot: UInt32 { part.housingLot }
    /// Its LED-module lot, nil when none was installed.
    public var ledModuleLot: UInt32? { part.ledModuleLot }
    /// Its lens lot, nil when none was placed.
    public var lensLot: UInt32? { part.lensLot }
}
