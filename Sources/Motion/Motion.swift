// Motion: jerk-limited, time-synchronised multi-joint trajectories. Pure math, no I/O.
//
// Files:
// - Motion.swift       public value types: `JointState`, `MotionLimits`, `MotionError`, constants.
// - AxisPlanner.swift  single-axis jerk-limited profiles (internal): velocity changes, minimum-time and
//                      fixed-duration position profiles.
// - Trajectory.swift   `Trajectory`: planners (point-to-point, path, stop) and allocation-free sampling.
//
// Conventions: joint values are stored in `SIMD8<Double>` lanes 0..<jointCount (at most 6 joints, padded to 8 lanes
// for SIMD alignment); lanes at and beyond `jointCount` are ignored on input and set to 0 on output.

/// The largest number of joints a trajectory can have (an RA-610 arm has six).
public let motionMaxJointCount = 6

/// The largest number of waypoints a `Trajectory.path` accepts (fixed-size storage: one leg per waypoint).
public let motionMaxWaypointCount = 16

/// The state of up to six joints at one instant: position, velocity, acceleration and jerk.
///
/// A plain fixed-size value (four `SIMD8<Double>`, lanes 0..<6 used, lanes 6 and 7 padding) so that the real-time
/// control thread can own one and have `Trajectory.sample(atSeconds:into:)` fill it without any heap allocation.
/// Any thread may create and use values of this type.
public struct JointState: Sendable, Equatable {
    /// Joint positions in radians (lanes 0..<jointCount).
    public var positionsRadians: SIMD8<Double>
    /// Joint velocities in rad/s.
    public var velocitiesRadiansPerSecond: SIMD8<Double>
    /// Joint accelerations in rad/s².
    public var accelerationsRadiansPerSecondSquared: SIMD8<Double>
    /// Joint jerks in rad/s³ (informational on input: planners ignore the initial jerk).
    public var jerksRadiansPerSecondCubed: SIMD8<Double>

    /// Creates a state; omitted derivatives are zero (a joint at rest).
    public init(
        positionsRadians: SIMD8<Double> = .zero,
        velocitiesRadiansPerSecond: SIMD8<Double> = .zero,
        accelerationsRadiansPerSecondSquared: SIMD8<Double> = .zero,
        jerksRadiansPerSecondCubed: SIMD8<Double> = .zero
    ) {
        self.positionsRadians = positionsRadians
        self.velocitiesRadiansPerSecond = velocitiesRadiansPerSecond
        self.accelerationsRadiansPerSecondSquared = accelerationsRadiansPerSecondSquared
        self.jerksRadiansPerSecondCubed = jerksRadiansPerSecondCubed
    }

    /// A state with all joints at rest at `positionsRadians`.
    public static func atRest(_ positionsRadians: SIMD8<Double>) -> JointState {
        JointState(positionsRadians: positionsRadians)
    }
}

/// Per-joint kinematic limits for planning: maximum |velocity|, |acceleration| and |jerk| of each joint, and how many
/// joints there are. Validated on creation (every used limit finite and > 0). Any thread.
public struct MotionLimits: Sendable, Equatable {
    /// Number of joints, 1...`motionMaxJointCount`.
    public let jointCount: Int
    /// Maximum |velocity| per joint, rad/s (lanes 0..<jointCount; other lanes are 0).
    public let maxVelocitiesRadiansPerSecond: SIMD8<Double>
    /// Maximum |acceleration| per joint, rad/s².
    public let maxAccelerationsRadiansPerSecondSquared: SIMD8<Double>
    /// Maximum |jerk| per joint, rad/s³.
    public let maxJerksRadiansPerSecondCubed: SIMD8<Double>

    /// Validates and stores the limits. Lanes at and beyond `jointCount` are ignored (stored as 0).
    /// - Throws: `MotionError.invalidJointCount` or `MotionError.invalidLimit` naming the joint and field.
    public init(
        jointCount: Int,
        maxVelocitiesRadiansPerSecond: SIMD8<Double>,
        maxAccelerationsRadiansPerSecondSquared: SIMD8<Double>,
        maxJerksRadiansPerSecondCubed: SIMD8<Double>
    ) throws(MotionError) {
        guard jointCount >= 1, jointCount <= motionMaxJointCount else {
            throw .invalidJointCount(jointCount)
        }
        var v = SIMD8<Double>.zero
        var a = SIMD8<Double>.zero
        var j = SIMD8<Double>.zero
        for joint in 0..<jointCount {
            let values = (
                maxVelocitiesRadiansPerSecond[joint], maxAccelerationsRadiansPerSecondSquared[joint],
                maxJerksRadiansPerSecondCubed[joint]
            )
            guard values.0.isFinite, values.0 > 0 else {
                throw .invalidLimit(joint: joint, field: "maxVelocitiesRadiansPerSecond", value: values.0)
            }
            guard values.1.isFinite, values.1 > 0 else {
                throw .invalidLimit(joint: joint, field: "maxAccelerationsRadiansPerSecondSquared", value: values.1)
            }
            guard values.2.isFinite, values.2 > 0 else {
                throw .invalidLimit(joint: joint, field: "maxJerksRadiansPerSecondCubed", value: values.2)
            }
            v[joint] = values.0
            a[joint] = values.1
            j[joint] = values.2
        }
        self.jointCount = jointCount
        self.maxVelocitiesRadiansPerSecond = v
        self.maxAccelerationsRadiansPerSecondSquared = a
        self.maxJerksRadiansPerSecondCubed = j
    }

    /// The same limits for every one of `jointCount` joints.
    public init(
        jointCount: Int, maxVelocityRadiansPerSecond: Double, maxAccelerationRadiansPerSecondSquared: Double,
        maxJerkRadiansPerSecondCubed: Double
    ) throws(MotionError) {
        try self.init(
            jointCount: jointCount,
            maxVelocitiesRadiansPerSecond: SIMD8(repeating: maxVelocityRadiansPerSecond),
            maxAccelerationsRadiansPerSecondSquared: SIMD8(repeating: maxAccelerationRadiansPerSecondSquared),
            maxJerksRadiansPerSecondCubed: SIMD8(repeating: maxJerkRadiansPerSecondCubed))
    }
}

/// Why a trajectory could not be planned. Thrown (typed) by the `MotionLimits` initialisers and `Trajectory` planners.
public enum MotionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `jointCount` outside 1...`motionMaxJointCount`.
    case invalidJointCount(Int)
    /// A limit that is not finite or not > 0; names the joint (0-based) and the `MotionLimits` field.
    case invalidLimit(joint: Int, field: String, value: Double)
    /// A NaN or infinite input; names the argument/field and the joint (0-based). For a waypoint, `field` names its
    /// index, e.g. "waypoints[3]".
    case nonFiniteInput(field: String, joint: Int)
    /// More waypoints than `motionMaxWaypointCount`.
    case tooManyWaypoints(count: Int, maximum: Int)
    /// `Trajectory.path` needs at least one waypoint.
    case noWaypoints
    /// A blend tolerance that is NaN, infinite or negative.
    case invalidBlendTolerance(Double)

    public var description: String {
        switch self {
        case .invalidJointCount(let count):
            return "Motion: jointCount \(count) is outside 1...\(motionMaxJointCount)"
        case .invalidLimit(let joint, let field, let value):
            return "Motion: MotionLimits.\(field)[\(joint)] = \(value) must be finite and > 0"
        case .nonFiniteInput(let field, let joint):
            return "Motion: \(field)[\(joint)] is NaN or infinite"
        case .tooManyWaypoints(let count, let maximum):
            return "Motion: \(count) waypoints given, at most \(maximum) are supported"
        case .noWaypoints:
            return "Motion: a path needs at least one waypoint"
        case .invalidBlendTolerance(let value):
            return "Motion: blendToleranceRadians = \(value) must be finite and >= 0"
        }
    }
}

extension MotionLimits {
    /// The same limits with velocities scaled by `fraction` (0 < fraction ≤ 1); `self` when that is invalid.
    /// Does not allocate.
    public func scaled(velocity fraction: Double) -> MotionLimits {
        guard fraction < 1 else { return self }
        return (try? MotionLimits(
            jointCount: jointCount, maxVelocitiesRadiansPerSecond: maxVelocitiesRadiansPerSecond * fraction,
            maxAccelerationsRadiansPerSecondSquared: maxAccelerationsRadiansPerSecondSquared,
            maxJerksRadiansPerSecondCubed: maxJerksRadiansPerSecondCubed)) ?? self
    }
}
