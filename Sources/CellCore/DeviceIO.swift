// The process image exchanged with the cell's devices every control period.
//
// These are plain fixed-size values: the control thread fills `…Inputs` from the devices (CellModbus drivers, or the
// in-process models in virtual-time mode), steps the cell, and sends `…Outputs` back. Nothing here allocates.

/// Six joint values (radians, rad/s, …) in a fixed-size vector; lanes 6 and 7 are unused and kept at 0.
public typealias JointVector = SIMD8<Double>

/// Number of joints of an RA-610.
public let armJointCount = 6

/// How the link to a device is doing, as the driver saw it in the last exchange.
public enum DeviceLinkState: UInt8, Sendable, Equatable {
    /// The last exchange succeeded.
    case ok
    /// Not connected: waiting for the next reconnect attempt (with backoff).
    case disconnected
    /// The last request timed out.
    case timeout
    /// The device answered with a Modbus exception.
    case exception
    /// The reply could not be used (bad data, wrong transaction).
    case badData
}

/// What a driver reports about its link each period.
public struct DeviceLink: Sendable, Equatable {
    public var state: DeviceLinkState = .disconnected
    /// Modbus exception code or errno of the last failure, 0 when none.
    public var detail: Int32 = 0
    /// Failed exchanges in a row; 0 after a success.
    public var consecutiveFailures: UInt32 = 0
    /// Identity read after each connect (RA-610: input registers 100..103; TS-200: none, 0).
    public var model: UInt16 = 0
    public var firmware: UInt16 = 0
    public var serialNumber: UInt32 = 0

    public init() {}

    /// True when the device has failed `failures` exchanges in a row (the controller's threshold: a few late
    /// replies are tolerated, a device silent for longer than its arms' watchdog is not).
    public func isLost(after failures: UInt32) -> Bool { consecutiveFailures >= failures }
}

/// RA-610 `status` bits (input register 0).
public struct ArmStatus: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let powered = ArmStatus(rawValue: 1 << 0)
    public static let enabled = ArmStatus(rawValue: 1 << 1)
    public static let inMotion = ArmStatus(rawValue: 1 << 2)
    public static let fault = ArmStatus(rawValue: 1 << 3)
    public static let estop = ArmStatus(rawValue: 1 << 4)
    public static let protectiveStop = ArmStatus(rawValue: 1 << 5)
    public static let streaming = ArmStatus(rawValue: 1 << 6)
    public static let inPosition = ArmStatus(rawValue: 1 << 7)
    public static let remoteReady = ArmStatus(rawValue: 1 << 8)
}

/// RA-610 `command` bits (holding register 0).
public struct ArmCommand: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let enable = ArmCommand(rawValue: 1 << 0)
    public static let reset = ArmCommand(rawValue: 1 << 1)
    public static let stop = ArmCommand(rawValue: 1 << 2)
    public static let stream = ArmCommand(rawValue: 1 << 3)
}

/// RA-610 `tool_state` bits (input register 3).
public struct ToolState: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let holdingPart = ToolState(rawValue: 1 << 0)
    public static let busy = ToolState(rawValue: 1 << 1)
    public static let done = ToolState(rawValue: 1 << 2)
    public static let error = ToolState(rawValue: 1 << 3)
}

/// RA-610 `tool_command` values (holding register 2).
public enum ArmToolCommand: UInt16, Sendable, Equatable {
    case none = 0, grip = 1, release = 2, screw = 3, press = 4, dispenseOn = 5, dispenseOff = 6
}

/// RA-610 fault codes (input register 1), with the datasheet's names.
public enum ArmFaultCode {
    public static let commWatchdog: UInt16 = 0x0101
    public static let setpointJump: UInt16 = 0x0201
    public static let followingError: UInt16 = 0x0202
    public static let positionLimit: UInt16 = 0x0203
    public static let toolFault: UInt16 = 0x0301
    public static let collision: UInt16 = 0x0401
    public static let overtemperature: UInt16 = 0x0501
    public static let estop: UInt16 = 0x0601

    /// The datasheet name of `code`, or "UNKNOWN".
    public static func name(_ code: UInt16) -> StaticString {
        switch code {
        case 0: "NONE"
        case commWatchdog: "COMM_WATCHDOG"
        case setpointJump: "SETPOINT_JUMP"
        case followingError: "FOLLOWING_ERROR"
        case positionLimit: "POSITION_LIMIT"
        case toolFault: "TOOL_FAULT"
        case collision: "COLLISION"
        case overtemperature: "OVERTEMP"
        case estop: "ESTOP"
        default: "UNKNOWN"
        }
    }
}

/// What the controller reads from one RA-610 each period.
public struct ArmInputs: Sendable, Equatable {
    public var link = DeviceLink()
    public var status = ArmStatus()
    public var faultCode: UInt16 = 0
    public var heartbeatEcho: UInt16 = 0
    public var toolState = ToolState()
    public var toolAckID: UInt16 = 0
    public var toolResult: UInt16 = 0
    public var uptimeMilliseconds: UInt32 = 0
    public var toolKind: UInt16 = 0
    public var actualPositionsRadians = JointVector()
    public var actualVelocitiesRadiansPerSecond = JointVector()
    public init() {}
}

/// What the controller writes to one RA-610 each period (holding registers 0..27).
public struct ArmOutputs: Sendable, Equatable {
    public var command = ArmCommand()
    public var heartbeat: UInt16 = 0
    public var toolCommand = ArmToolCommand.none
    public var toolRequestID: UInt16 = 0
    public var toolParam: UInt16 = 0
    public var watchdogMilliseconds: UInt16 = 100
    public var streamPeriodMicroseconds: UInt16 = 4000
    public var targetsRadians = JointVector()
    public init() {}
}

/// TS-200 coils (read/write).
public struct StationCoils: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let fixtureClamp = StationCoils(rawValue: 1 << 0)
    public static let infeedAdvance = StationCoils(rawValue: 1 << 1)
    public static let leakTestStart = StationCoils(rawValue: 1 << 2)
    public static let lightTestStart = StationCoils(rawValue: 1 << 3)
    public static let outfeedAdvance = StationCoils(rawValue: 1 << 4)
    public static let lampGreen = StationCoils(rawValue: 1 << 5)
    public static let lampAmber = StationCoils(rawValue: 1 << 6)
    public static let lampRed = StationCoils(rawValue: 1 << 7)
    /// Number of coils on the TS-200.
    public static let count = 8
}

/// TS-200 discrete inputs (read only).
public struct StationSignals: OptionSet, Sendable, Equatable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let housingAtInfeed = StationSignals(rawValue: 1 << 0)
    public static let fixtureClamped = StationSignals(rawValue: 1 << 1)
    public static let partInFixture = StationSignals(rawValue: 1 << 2)
    public static let leakTestBusy = StationSignals(rawValue: 1 << 3)
    public static let lightTestBusy = StationSignals(rawValue: 1 << 4)
    public static let outfeedClear = StationSignals(rawValue: 1 << 5)
    public static let safetyOK = StationSignals(rawValue: 1 << 6)
    public static let estopPressed = StationSignals(rawValue: 1 << 7)
    public static let guardOpen = StationSignals(rawValue: 1 << 8)
    public static let ledModuleAvailable = StationSignals(rawValue: 1 << 9)
    public static let lensAvailable = StationSignals(rawValue: 1 << 10)
    public static let rejectBinFull = StationSignals(rawValue: 1 << 11)
    /// Number of discrete inputs on the TS-200.
    public static let count = 12
}

/// TS-200 fault codes (input register 1).
public enum StationFaultCode {
    public static let infeedJam: UInt16 = 0x1001
    public static let clampFault: UInt16 = 0x1002
    public static let testerFault: UInt16 = 0x1003

    /// The datasheet name of `code`, or "UNKNOWN".
    public static func name(_ code: UInt16) -> StaticString {
        switch code {
        case 0: "NONE"
        case infeedJam: "INFEED_JAM"
        case clampFault: "CLAMP_FAULT"
        case testerFault: "TESTER_FAULT"
        default: "UNKNOWN"
        }
    }
}

/// What the controller reads from the TS-200 each period.
public struct StationInputs: Sendable, Equatable {
    public var link = DeviceLink()
    public var coils = StationCoils()
    public var signals = StationSignals()
    /// Input register 0: bit0 READY, bit1 FAULT.
    public var statusWord: UInt16 = 0
    public var faultCode: UInt16 = 0
    public var leakTestCount: UInt16 = 0
    /// Leak rate of the last test, 0.01 cm³/min.
    public var leakRateHundredths: UInt16 = 0
    public var lightTestCount: UInt16 = 0
    public var luminousIntensityCandela: UInt16 = 0
    /// Cut-off line of the last light test, 0.01°.
    public var cutoffAngleHundredthsDegree: Int16 = 0
    public var housingLot: UInt32 = 0
    public var ledModuleLot: UInt32 = 0
    public var lensLot: UInt32 = 0
    public var uptimeMilliseconds: UInt32 = 0
    /// Holding register 0 as last read back (1 LEFT, 2 RIGHT).
    public var variant: UInt16 = 0
    public init() {}

    public var isReady: Bool { statusWord & 1 != 0 }
    public var isFaulted: Bool { statusWord & 2 != 0 }
}

/// What the controller writes to the TS-200 (the driver writes only what changed).
public struct StationOutputs: Sendable, Equatable {
    /// Level coils: clamp, test starts, stack light. `.infeedAdvance`/`.outfeedAdvance` are ignored here: the
    /// conveyors are indexed through the request counters below.
    public var coils = StationCoils()
    /// Lamp variant the testers judge against: 1 LEFT, 2 RIGHT.
    public var variant: UInt16 = 1
    /// Incremented by the controller to ask for one infeed index (INFEED_ADVANCE written to 1 once per change).
    public var infeedRequests: UInt32 = 0
    /// Incremented by the controller to ask for one outfeed index.
    public var outfeedRequests: UInt32 = 0
    public init() {}
}

/// Where the controller's arms' and station's values live each period.
public struct ProcessImage: Sendable {
    public var armInputs: [ArmInputs]
    public var armOutputs: [ArmOutputs]
    public var stationInputs = StationInputs()
    public var stationOutputs = StationOutputs()

    /// Allocates the image for `armCount` arms. Thread: start-up.
    public init(armCount: Int) {
        armInputs = Array(repeating: ArmInputs(), count: armCount)
        armOutputs = Array(repeating: ArmOutputs(), count: armCount)
    }
}
