// A lamp as the controller tracks it from the moment its housing is picked until it leaves the cell.
//
// `LampRecord` is a fixed-size value: the control thread fills it in place and hands it to the ledger writer
// through a preallocated queue, without allocating.

/// What the controller measures for a lamp, in the units the devices report.
public enum MeasurementKind: Int, CaseIterable, Sendable {
    case screwTorque1, screwTorque2, screwTorque3, screwTorque4
    case pressForce
    case glueVolume
    case leakRate
    case luminousIntensity
    case cutoffAngle

    /// Screws a lamp can have (one measurement each).
    public static let maximumScrews = 4

    /// The screw measurement of screw `index` (0-based).
    public static func screwTorque(_ index: Int) -> MeasurementKind {
        MeasurementKind(rawValue: screwTorque1.rawValue + index)!
    }

    /// Name used in reasons, logs, the ledger and the API.
    public var name: String {
        switch self {
        case .screwTorque1: "screw_torque_1"
        case .screwTorque2: "screw_torque_2"
        case .screwTorque3: "screw_torque_3"
        case .screwTorque4: "screw_torque_4"
        case .pressForce: "press_force"
        case .glueVolume: "glue_volume"
        case .leakRate: "leak_rate"
        case .luminousIntensity: "luminous_intensity"
        case .cutoffAngle: "cutoff_angle"
        }
    }

    /// Unit of the value as recorded (SI-style, converted from the register units).
    public var unit: String {
        switch self {
        case .screwTorque1, .screwTorque2, .screwTorque3, .screwTorque4: "N·m"
        case .pressForce: "N"
        case .glueVolume: "ml"
        case .leakRate: "cm³/min"
        case .luminousIntensity: "cd"
        case .cutoffAngle: "°"
        }
    }
}

/// The measurements of one lamp: a value per kind and whether it was taken.
public struct LampMeasurements: Sendable, Equatable {
    /// Values indexed by `MeasurementKind.rawValue`, in `MeasurementKind.unit`.
    public var values: SIMD16<Double> = .zero
    /// Bit `kind.rawValue` set when that measurement was taken.
    public var takenMask: UInt16 = 0

    public init() {}

    public subscript(kind: MeasurementKind) -> Double? {
        get { takenMask & (1 << kind.rawValue) != 0 ? values[kind.rawValue] : nil }
        set {
            if let value = newValue {
                values[kind.rawValue] = value
                takenMask |= 1 << kind.rawValue
            } else {
                values[kind.rawValue] = 0
                takenMask &= ~(1 << kind.rawValue)
            }
        }
    }
}

/// OK, NG, or scrapped (the lamp left the cell without a verdict: abort, stop, controller restart).
public enum LampVerdict: UInt8, Sendable, Equatable {
    case ok = 1
    case ng = 2
    case scrapped = 3

    public var name: String {
        switch self {
        case .ok: "OK"
        case .ng: "NG"
        case .scrapped: "SCRAPPED"
        }
    }
}

/// Why a lamp was scrapped.
public enum ScrapReason: UInt8, Sendable, Equatable {
    case none = 0
    case aborted = 1
    case stopped = 2
    case controllerRestart = 3
    case toolError = 4

    public var text: String {
        switch self {
        case .none: ""
        case .aborted: "cell aborted"
        case .stopped: "cell stopped"
        case .controllerRestart: "controller restart"
        case .toolError: "tool error"
        }
    }
}

/// A lamp's serial: cell id, production date (UTC) and a sequence number that never repeats for a cell.
/// The control thread keeps the numbers; the text form is made off the control thread.
public struct LampSerial: Sendable, Hashable, Comparable {
    /// UTC date the lamp was started, as YYYYMMDD.
    public var dateCode: UInt32
    /// Sequence number, unique per cell across restarts (see `SerialAllocator`).
    public var sequence: UInt64

    public init(dateCode: UInt32, sequence: UInt64) {
        self.dateCode = dateCode
        self.sequence = sequence
    }

    /// `<cell id>-<YYYYMMDD>-<sequence, 8 digits>`, e.g. `HL-CELL-01-20261128-00000042`.
    public func text(cellID: String) -> String {
        let digits = String(sequence)
        return "\(cellID)-\(dateCode)-\(String(repeating: "0", count: max(0, 8 - digits.count)))\(digits)"
    }

    public static func < (a: LampSerial, b: LampSerial) -> Bool { a.sequence < b.sequence }

    /// YYYYMMDD of a wall-clock time (UTC), computed without Foundation (civil-from-days, H. Hinnant).
    public static func dateCode(wallNanoseconds: UInt64) -> UInt32 {
        let days = Int64(wallNanoseconds / 1_000_000_000 / 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return UInt32(year * 10_000 + month * 100 + day)
    }
}

/// Whether a `LampRecord` handed over announces a lamp that entered the cell or one that left it.
public enum LampStage: UInt8, Sendable, Equatable {
    /// The housing was picked: the lamp is in the cell (written down durably so a crash cannot lose it).
    case started = 1
    /// The lamp left the cell (OK, NG) or was resolved as scrapped.
    case finished = 2
}

/// Everything the controller knows of one lamp. Fixed size: no allocation to create, fill or hand over.
public struct LampRecord: Sendable, Equatable {
    /// Started (in the cell) or finished (left the cell) when handed over.
    public var stage = LampStage.finished
    public var serial: LampSerial
    /// 1 LEFT, 2 RIGHT.
    public var variant: UInt16
    /// Index of the recipe in the controller's recipe table.
    public var recipeIndex: UInt8 = 0
    /// Sequence number of the production order (the order's text id is kept beside it, off the control thread).
    public var orderSequence: UInt32 = 0
    public var startWallNanoseconds: UInt64
    public var endWallNanoseconds: UInt64 = 0
    public var startMonotonicNanoseconds: UInt64
    public var endMonotonicNanoseconds: UInt64 = 0
    public var verdict: LampVerdict = .scrapped
    /// Bit `MeasurementKind.rawValue` set for each measurement outside its window (NG reasons), or missing.
    public var outOfWindowMask: UInt16 = 0
    public var scrapReason: ScrapReason = .none
    public var measurements = LampMeasurements()
    public var housingLot: UInt32 = 0
    public var ledModuleLot: UInt32 = 0
    public var lensLot: UInt32 = 0

    public init(
        serial: LampSerial, variant: UInt16, startWallNanoseconds: UInt64, startMonotonicNanoseconds: UInt64
    ) {
        self.serial = serial
        self.variant = variant
        self.startWallNanoseconds = startWallNanoseconds
        self.startMonotonicNanoseconds = startMonotonicNanoseconds
    }

    /// Cycle time from housing pick to release at the outfeed/reject place, in seconds.
    public var cycleTimeSeconds: Double {
        Double(endMonotonicNanoseconds &- startMonotonicNanoseconds) / 1e9
    }
}
