// RA-610 arm controller: the datasheet's register map, limits and fault codes as named constants
// (/work/shared/datasheets/RA-610-arm-controller.md). Used by `RA610Model`.

/// One joint's limits from the RA-610 datasheet ("Joint limits").
public struct RA610JointLimit: Sendable, Equatable {
    /// Lower travel stop, rad.
    public var minimumRadians: Double
    /// Upper travel stop, rad.
    public var maximumRadians: Double
    /// Maximum joint velocity, rad/s.
    public var maximumVelocityRadiansPerSecond: Double
    /// Maximum joint acceleration (also the controlled-stop deceleration), rad/s².
    public var maximumAccelerationRadiansPerSecondSquared: Double

    /// Lower travel stop in µrad (the unit of `target[]`), rounded.
    public var minimumMicroradians: Int64 { Int64((minimumRadians * 1_000_000).rounded()) }
    /// Upper travel stop in µrad (the unit of `target[]`), rounded.
    public var maximumMicroradians: Int64 { Int64((maximumRadians * 1_000_000).rounded()) }
}

/// The RA-610 datasheet's numbers: joint limits, timing, thresholds.
public enum RA610Limits {
    /// J1..J6 limits, datasheet table "Joint limits".
    public static let joints: [RA610JointLimit] = [
        RA610JointLimit(minimumRadians: -2.967, maximumRadians: 2.967,
                        maximumVelocityRadiansPerSecond: 3.14, maximumAccelerationRadiansPerSecondSquared: 15),
        RA610JointLimit(minimumRadians: -1.571, maximumRadians: 2.618,
                        maximumVelocityRadiansPerSecond: 3.14, maximumAccelerationRadiansPerSecondSquared: 15),
        RA610JointLimit(minimumRadians: -2.967, maximumRadians: 1.309,
                        maximumVelocityRadiansPerSecond: 3.14, maximumAccelerationRadiansPerSecondSquared: 15),
        RA610JointLimit(minimumRadians: -3.316, maximumRadians: 3.316,
                        maximumVelocityRadiansPerSecond: 6.28, maximumAccelerationRadiansPerSecondSquared: 30),
        RA610JointLimit(minimumRadians: -2.094, maximumRadians: 2.094,
                        maximumVelocityRadiansPerSecond: 6.28, maximumAccelerationRadiansPerSecondSquared: 30),
        RA610JointLimit(minimumRadians: -6.283, maximumRadians: 6.283,
                        maximumVelocityRadiansPerSecond: 6.28, maximumAccelerationRadiansPerSecondSquared: 30),
    ]

    /// `model` input register value.
    public static let modelNumber: UInt16 = 610
    /// Servo natural frequency: 2π·25 rad/s (critically damped tracking).
    public static let servoNaturalFrequencyRadiansPerSecond = 2 * Double.pi * 25
    /// ENABLE → ENABLED delay (the datasheet allows up to 50 ms).
    public static let enableDelayNanoseconds: UInt64 = 20_000_000
    /// The datasheet's bound on an emergency stop.
    public static let emergencyStopMaximumNanoseconds: UInt64 = 300_000_000
    /// The model plans an e-stop to finish within this time even if a joint runs faster than its max velocity.
    public static let emergencyStopPlannedSeconds = 0.25
    /// A setpoint step larger than this factor × max velocity × stream period latches SETPOINT_JUMP.
    public static let setpointJumpFactor = 1.5
    /// Tracking error (reference − actual) above which FOLLOWING_ERROR latches, rad.
    public static let followingErrorRadians = 0.1
    /// A joint faster than this is "in motion" (IN_MOTION; tools refuse to run), rad/s.
    public static let inMotionVelocityRadiansPerSecond = 0.01
    /// IN_POSITION: every joint within this distance of its setpoint, rad.
    public static let inPositionRadians = 0.001
    /// Glue flow while dispensing and moving, ml/s.
    public static let glueFlowMillilitersPerSecond = 0.20

    /// `watchdog_ms` valid range.
    public static let watchdogMillisecondsRange: ClosedRange<UInt16> = 20...1000
    /// `watchdog_ms` at power-up.
    public static let watchdogMillisecondsDefault: UInt16 = 100
    /// `stream_period_us` valid range.
    public static let streamPeriodMicrosecondsRange: ClosedRange<UInt16> = 250...20000
    /// `stream_period_us` at power-up.
    public static let streamPeriodMicrosecondsDefault: UInt16 = 4000
    /// `tool_param` range for SCREW (target torque, 0.01 N·m).
    public static let screwTorqueParamRange: ClosedRange<UInt16> = 50...500
    /// `tool_param` range for PRESS (target force, N).
    public static let pressForceParamRange: ClosedRange<UInt16> = 50...1500

    /// GRIP / RELEASE duration, ms.
    public static let gripReleaseMilliseconds: Double = 150
    /// SCREW duration range, ms (drawn uniformly from the arm's seeded source).
    public static let screwMillisecondsRange: ClosedRange<Double> = 900...1400
    /// PRESS duration range, ms (drawn uniformly from the arm's seeded source).
    public static let pressMillisecondsRange: ClosedRange<Double> = 600...900
    /// DISPENSE_ON / DISPENSE_OFF (valve) duration, ms.
    public static let dispenseValveMilliseconds: Double = 50
}

/// RA-610 register addresses (datasheet "Holding registers" / "Input registers").
public enum RA610Register {
    // Holding registers.
    /// `command` bits (`RA610CommandBit`).
    public static let command = 0
    /// `heartbeat` u16.
    public static let heartbeat = 1
    /// `tool_command` (`ToolCommand`).
    public static let toolCommand = 2
    /// `tool_request_id`: a change starts a tool request.
    public static let toolRequestID = 3
    /// `tool_param`.
    public static let toolParam = 4
    /// `watchdog_ms`.
    public static let watchdogMilliseconds = 5
    /// `stream_period_us`.
    public static let streamPeriodMicroseconds = 6
    /// First of 6 × i32 µrad (two registers each, high word first).
    public static let target = 16
    /// Holding registers 0..<holdingCount are writable (7..15 reserved).
    public static let holdingCount = 28
    /// Holding 256..295 mirror input registers 0..39 (read only).
    public static let statusMirror = 256
    /// Length of the status mirror.
    public static let statusMirrorCount = 40

    // Input registers.
    /// `status` bits (`RA610StatusBit`).
    public static let status = 0
    /// `fault_code` (`RA610FaultCode`).
    public static let faultCode = 1
    /// `heartbeat_echo`.
    public static let heartbeatEcho = 2
    /// `tool_state` bits (`RA610ToolStateBit`).
    public static let toolState = 3
    /// `tool_ack_id`.
    public static let toolAckID = 4
    /// `tool_result`.
    public static let toolResult = 5
    /// u32, high word first.
    public static let uptimeMilliseconds = 6
    /// `tool_kind` (`ToolKind`).
    public static let toolKind = 8
    /// 6 × i32 µrad.
    public static let actualPosition = 16
    /// 6 × i32 µrad/s.
    public static let actualVelocity = 28
    /// Input registers 0..<inputCount form the first table.
    public static let inputCount = 40
    /// `model` (610).
    public static let model = 100
    /// `firmware` (major × 256 + minor).
    public static let firmware = 101
    /// u32, high word first.
    public static let serialNumber = 102
    /// Identity block 100..103.
    public static let identityCount = 4
}

/// RA-610 `command` bits (holding register 0).
public enum RA610CommandBit {
    public static let enable: UInt16 = 1 << 0
    public static let reset: UInt16 = 1 << 1
    public static let stop: UInt16 = 1 << 2
    public static let stream: UInt16 = 1 << 3
}

/// RA-610 `status` bits (input register 0).
public enum RA610StatusBit {
    public static let powered: UInt16 = 1 << 0
    public static let enabled: UInt16 = 1 << 1
    public static let inMotion: UInt16 = 1 << 2
    public static let fault: UInt16 = 1 << 3
    public static let estop: UInt16 = 1 << 4
    public static let protectiveStop: UInt16 = 1 << 5
    public static let streaming: UInt16 = 1 << 6
    public static let inPosition: UInt16 = 1 << 7
    public static let remoteReady: UInt16 = 1 << 8
}

/// RA-610 `tool_state` bits (input register 3).
public enum RA610ToolStateBit {
    public static let holdingPart: UInt16 = 1 << 0
    public static let busy: UInt16 = 1 << 1
    public static let done: UInt16 = 1 << 2
    public static let error: UInt16 = 1 << 3
}

/// RA-610 fault codes (datasheet "Fault codes").
public enum RA610FaultCode {
    public static let commWatchdog: UInt16 = 0x0101
    public static let setpointJump: UInt16 = 0x0201
    public static let followingError: UInt16 = 0x0202
    public static let positionLimit: UInt16 = 0x0203
    public static let toolFault: UInt16 = 0x0301
    public static let collision: UInt16 = 0x0401
    public static let overtemperature: UInt16 = 0x0501
    public static let emergencyStop: UInt16 = 0x0601
}
