// The cell definition (`Hardware/cell.toml`) as typed values: devices, arms, teach points, limits.
//
// All types here are plain immutable-by-convention values, loaded once at start-up and then copied to whoever
// needs them; any thread may read them.

/// Which product a device is; it decides the register map a driver or simulated device uses.
public enum DeviceKind: String, Sendable, Equatable, CaseIterable {
    /// RA-610 6-axis arm controller (`/work/shared/datasheets/RA-610-arm-controller.md`).
    case ra610 = "RA-610"
    /// TS-200 station PLC (`/work/shared/datasheets/TS-200-station-controller.md`).
    case ts200 = "TS-200"
}

/// Where a device is reached: a Modbus TCP server.
public struct DeviceEndpoint: Sendable, Equatable, Hashable {
    /// The device's name in the cell (`loader`, `station`, …); arms and recipe lanes use it.
    public var name: String
    /// Which product it is.
    public var kind: DeviceKind
    /// Host name or IP address of the Modbus TCP server.
    public var host: String
    /// TCP port, 1...65535 (502 on the real devices).
    public var port: Int
    /// Modbus unit id, 0...255 (both products answer unit id 1 only).
    public var unitID: UInt8

    /// Creates an endpoint.
    public init(name: String, kind: DeviceKind, host: String, port: Int, unitID: UInt8) {
        self.name = name
        self.kind = kind
        self.host = host
        self.port = port
        self.unitID = unitID
    }
}

/// The tool mounted on an arm (RA-610 input register 8 `tool_kind`).
public enum ArmToolKind: String, Sendable, Equatable, CaseIterable {
    case gripper = "GRIPPER"
    case vacuumScrewdriver = "VACUUM_SCREWDRIVER"
    case dispenserPress = "DISPENSER_PRESS"

    /// The datasheet's `tool_kind` register value (1, 2, 3).
    public var registerValue: UInt16 {
        switch self {
        case .gripper: 1
        case .vacuumScrewdriver: 2
        case .dispenserPress: 3
        }
    }

    /// The tool actions a recipe may ask of this tool. Every tool can pick and place a part (the vacuum
    /// screwdriver by suction, the dispenser/press with its press pad); only the screwdriver screws, only the
    /// dispenser/press dispenses and presses.
    public var supportedActions: [ToolAction] {
        switch self {
        case .gripper: [.grip, .release]
        case .vacuumScrewdriver: [.grip, .release, .screw]
        case .dispenserPress: [.grip, .release, .dispenseOn, .dispenseOff, .press]
        }
    }
}

/// Where a teach point is, as the simulator's parts flow sees it (which part a grip there picks, where a release
/// puts it).
public enum TeachPointLocation: String, Sendable, Equatable, CaseIterable {
    /// The housing pick point of the infeed conveyor.
    case infeed
    /// The assembly fixture (with its clamp): housings, LED modules and lenses are placed here, lamps picked.
    case fixture
    /// The LED-module feeder's pick point.
    case ledFeeder = "led_feeder"
    /// The lens feeder's pick point.
    case lensFeeder = "lens_feeder"
    /// The outfeed conveyor's place point (good lamps).
    case outfeed
    /// The reject chute (bad lamps).
    case reject
    /// In free space: no part can be picked or placed here.
    case none
}

/// A named joint pose of one arm.
public struct TeachPoint: Sendable, Equatable, Hashable {
    /// The name, unique within its arm (`home`, `infeed_pick`, `glue_3`, …).
    public var name: String
    /// Joint positions J1..J6 in radians (always 6 values, inside `JointLimits.ra610`).
    public var jointsRadians: [Double]
    /// What is at this pose for the parts flow.
    public var location: TeachPointLocation

    /// Creates a teach point.
    public init(name: String, jointsRadians: [Double], location: TeachPointLocation) {
        self.name = name
        self.jointsRadians = jointsRadians
        self.location = location
    }
}

/// Per-joint limits of an arm model, from its datasheet.
public struct JointLimits: Sendable, Equatable {
    /// Number of joints of an RA-610.
    public static let jointCount = 6

    /// Lowest position of each joint, rad.
    public let positionMinimumRadians: [Double]
    /// Highest position of each joint, rad.
    public let positionMaximumRadians: [Double]
    /// Highest speed of each joint, rad/s.
    public let maximumVelocityRadiansPerSecond: [Double]
    /// Highest acceleration of each joint, rad/s².
    public let maximumAccelerationRadiansPerSecondSquared: [Double]

    /// The RA-610 datasheet's joint-limit table (J1..J6).
    public static let ra610 = JointLimits(
        positionMinimumRadians: [-2.967, -1.571, -2.967, -3.316, -2.094, -6.283],
        positionMaximumRadians: [2.967, 2.618, 1.309, 3.316, 2.094, 6.283],
        maximumVelocityRadiansPerSecond: [3.14, 3.14, 3.14, 6.28, 6.28, 6.28],
        maximumAccelerationRadiansPerSecondSquared: [15, 15, 15, 30, 30, 30])

    /// True when every joint of `jointsRadians` (6 values) is within the position limits (inclusive).
    public func contains(_ jointsRadians: [Double]) -> Bool {
        guard jointsRadians.count == Self.jointCount else { return false }
        for joint in 0..<Self.jointCount
        where !(jointsRadians[joint] >= positionMinimumRadians[joint]
            && jointsRadians[joint] <= positionMaximumRadians[joint])
        {
            return false
        }
        return true
    }
}

/// The limits the cell controller plans an arm's motion with (at most the datasheet's), per joint J1..J6.
public struct ArmMotionLimits: Sendable, Equatable {
    /// Upper bound accepted for a jerk limit, rad/s³ (the datasheet gives none; this only catches unit mistakes).
    public static let jerkCeilingRadiansPerSecondCubed = 10_000.0

    /// Speed limit of each joint, rad/s; 0 < value ≤ datasheet maximum.
    public var maximumVelocityRadiansPerSecond: [Double]
    /// Acceleration limit of each joint, rad/s²; 0 < value ≤ datasheet maximum.
    public var maximumAccelerationRadiansPerSecondSquared: [Double]
    /// Jerk limit of each joint, rad/s³; 0 < value ≤ `jerkCeilingRadiansPerSecondCubed`.
    public var maximumJerkRadiansPerSecondCubed: [Double]

    /// Creates motion limits (6 values each; the loader checks them, this initializer does not).
    public init(
        maximumVelocityRadiansPerSecond: [Double], maximumAccelerationRadiansPerSecondSquared: [Double],
        maximumJerkRadiansPerSecondCubed: [Double]
    ) {
        self.maximumVelocityRadiansPerSecond = maximumVelocityRadiansPerSecond
        self.maximumAccelerationRadiansPerSecondSquared = maximumAccelerationRadiansPerSecondSquared
        self.maximumJerkRadiansPerSecondCubed = maximumJerkRadiansPerSecondCubed
    }
}

/// One RA-610 arm of the cell: where it is reached, its tool, its motion limits and its teach points.
public struct ArmDefinition: Sendable, Equatable {
    /// The arm's name, the same as its device's (`loader`, `assembler`, `lens`).
    public var name: String { endpoint.name }
    /// The arm controller's Modbus endpoint (kind `.ra610`).
    public var endpoint: DeviceEndpoint
    /// The tool mounted on the arm.
    public var tool: ArmToolKind
    /// The limits the controller plans with.
    public var motionLimits: ArmMotionLimits
    /// The datasheet joint limits of the arm model.
    public var jointLimits: JointLimits
    /// The teach points, sorted by name; always contains `home`.
    public var teachPoints: [TeachPoint]

    /// Creates an arm definition.
    public init(
        endpoint: DeviceEndpoint, tool: ArmToolKind, motionLimits: ArmMotionLimits, jointLimits: JointLimits = .ra610,
        teachPoints: [TeachPoint]
    ) {
        self.endpoint = endpoint
        self.tool = tool
        self.motionLimits = motionLimits
        self.jointLimits = jointLimits
        self.teachPoints = teachPoints
    }

    /// The teach point called `name`, or nil.
    public func teachPoint(named name: String) -> TeachPoint? {
        teachPoints.first { $0.name == name }
    }
}

/// The whole cell: its id, its arms and its station, as `Hardware/cell.toml` defines them.
public struct CellDefinition: Sendable, Equatable {
    /// The cell's id (e.g. `HL-CELL-01`), recorded with every lamp.
    public var cellID: String
    /// The arms, sorted by name.
    public var arms: [ArmDefinition]
    /// The TS-200 station controller.
    public var station: DeviceEndpoint

    /// Creates a cell definition.
    public init(cellID: String, arms: [ArmDefinition], station: DeviceEndpoint) {
        self.cellID = cellID
        self.arms = arms
        self.station = station
    }

    /// Every device: the arms' endpoints (sorted by name), then the station.
    public var devices: [DeviceEndpoint] { arms.map(\.endpoint) + [station] }

    /// The arm called `name`, or nil.
    public func arm(named name: String) -> ArmDefinition? {
        arms.first { $0.name == name }
    }

    /// A copy with every device's endpoint passed through `transform` (its name and kind are kept). The daemon and
    /// the simulator use it to point the real cell's definition at loopback ports.
    public func replacingEndpoints(_ transform: (DeviceEndpoint) -> DeviceEndpoint) -> CellDefinition {
        var copy = self
        for index in copy.arms.indices {
            var endpoint = transform(copy.arms[index].endpoint)
            endpoint.name = copy.arms[index].endpoint.name
            endpoint.kind = copy.arms[index].endpoint.kind
            copy.arms[index].endpoint = endpoint
        }
        var station = transform(copy.station)
        station.name = copy.station.name
        station.kind = copy.station.kind
        copy.station = station
        return copy
    }
}
