// The invariants a virtual shift checks every period.

import CellCore
import CellModbus
import CellSimulator
import Motion

/// The first invariant a run broke: where, when, and what.
public struct InvariantBreach: Error, Sendable, CustomStringConvertible {
    /// The invariant's short name (`setpoint-jump`, `enabled-with-chain-open`, `lamp-exactly-once`, …).
    public var invariant: String
    /// What was seen.
    public var message: String
    /// Seed of the run.
    public var seed: UInt64
    /// Control period index (0-based) and virtual time of the breach.
    public var periodIndex: UInt64
    public var virtualNanoseconds: UInt64
    /// The command that replays the run (filled in by the caller that knows the command line).
    public var replayCommand: String = ""

    public var description: String {
        let seconds = Double(virtualNanoseconds) / 1e9
        var text =
            "INVARIANT BREACH [\(invariant)] seed \(seed), period \(periodIndex) (virtual time \(String(format: "%.3f", seconds)) s): \(message)"
        if !replayCommand.isEmpty { text += "\nreplay: \(replayCommand)" }
        return text
    }
}

/// Small documented tolerances and bounds of the checks.
public enum InvariantLimits {
    /// Relative tolerance on the configured velocity limit (finite differences of the setpoints per period).
    public static let velocityTolerance = 0.005
    /// Relative tolerance on the configured acceleration limit (second differences per period).
    public static let accelerationTolerance = 0.02
    /// Absolute slack on both (rounding): rad/s and rad/s².
    public static let velocitySlackRadiansPerSecond = 1e-6
    public static let accelerationSlackRadiansPerSecondSquared = 1e-3
    /// Slack on the datasheet's setpoint-jump rule: 1 µrad (the register resolution).
    public static let jumpSlackMicroradians: Int64 = 1
    /// Periods the safety chain may be open in the world before the controller must have stopped commanding
    /// ENABLE/STREAM: the controller learns it from the station read, which may fail for up to
    /// `deviceLostAfterFailures` periods before the station counts as lost (then the cell aborts).
    public static let chainOpenGracePeriods: UInt64 = 2
    /// Liveness: from the operator's last recovery command (or the fault's clearing, for faults that need none)
    /// to Execute.
    public static let resumeBoundNanoseconds: UInt64 = 90_000_000_000
    /// Liveness: from Execute after a recovery to the next lamp finished, in ideal cycle times.
    public static let firstLampBoundIdealCycles: Double = 4
}

/// Watches the setpoint streams: what the controller commands (configured limits, on the sequence of advanced
/// setpoints) and what each arm accepted (the datasheet's jump rule on consecutive streamed writes).
struct StreamChecker {
    let limits: [MotionLimits]
    let periodSeconds: Double
    private var previous: [JointVector]
    private var previousVelocity: [JointVector]
    private var hasPrevious: [Bool]
    private var hasVelocity: [Bool]
    /// Last streamed target each arm accepted, µrad; nil after a write outside streaming.
    var lastAccepted: [SIMD8<Int64>]
    var hasAccepted: [Bool]

    init(limits: [MotionLimits], periodSeconds: Double) {
        self.limits = limits
        self.periodSeconds = periodSeconds
        previous = Array(repeating: JointVector(), count: limits.count)
        previousVelocity = previous
        hasPrevious = Array(repeating: false, count: limits.count)
        hasVelocity = hasPrevious
        lastAccepted = Array(repeating: SIMD8<Int64>(), count: limits.count)
        hasAccepted = hasPrevious
    }

    /// Forgets the history (a new controller).
    mutating func reset() {
        for arm in hasPrevious.indices {
            hasPrevious[arm] = false
            hasVelocity[arm] = false
        }
    }

    /// The controller's outputs for `arm` after a step. Returns a message on a breach.
    mutating func checkCommanded(arm: Int, outputs: ArmOutputs, streaming: Bool) -> String? {
        guard streaming, outputs.command.contains(.stream) else {
            hasPrevious[arm] = false
            hasVelocity[arm] = false
            return nil
        }
        let target = outputs.targetsRadians
        guard hasPrevious[arm] else {
            previous[arm] = target
            previousVelocity[arm] = JointVector()
            hasPrevious[arm] = true
            hasVelocity[arm] = true
            return nil
        }
        if target == previous[arm] { return nil }  // not advanced this period (a lost exchange or at rest)
        let velocity = (target - previous[arm]) / periodSeconds
        let limit = limits[arm]
        for joint in 0..<limit.jointCount {
            let vmax = limit.maxVelocitiesRadiansPerSecond[joint]
            if abs(velocity[joint])
                > vmax * (1 + InvariantLimits.velocityTolerance) + InvariantLimits.velocitySlackRadiansPerSecond
            {
                return "arm \(arm) joint \(joint + 1): setpoint velocity \(velocity[joint]) rad/s exceeds the configured \(vmax) rad/s"
            }
            if hasVelocity[arm] {
                let acceleration = (velocity[joint] - previousVelocity[arm][joint]) / periodSeconds
                let amax = limit.maxAccelerationsRadiansPerSecondSquared[joint]
                if abs(acceleration)
                    > amax * (1 + InvariantLimits.accelerationTolerance)
                    + InvariantLimits.accelerationSlackRadiansPerSecondSquared
                {
                    return "arm \(arm) joint \(joint + 1): setpoint acceleration \(acceleration) rad/s² exceeds the configured \(amax) rad/s²"
                }
            }
        }
        previous[arm] = target
        previousVelocity[arm] = velocity
        hasVelocity[arm] = true
        return nil
    }

    /// A 0x17 the arm applied (`words`: holding 0..27 as written). Returns a message on a breach of the datasheet's
    /// rule: a new setpoint differs from the previous one by at most 1.5 × v_max × stream_period_us per joint.
    mutating func checkAccepted(arm: Int, words: UnsafeBufferPointer<UInt16>, armWasStreaming: Bool) -> String? {
        var target = SIMD8<Int64>()
        for joint in 0..<armJointCount {
            let high = words[RA610Registers.targetOffset + 2 * joint]
            let low = words[RA610Registers.targetOffset + 2 * joint + 1]
            target[joint] = Int64(Int32(bitPattern: UInt32(high) << 16 | UInt32(low)))
        }
        let streamBit = words[0] & ArmCommand.stream.rawValue != 0
        let had = hasAccepted[arm]
        let last = lastAccepted[arm]
        lastAccepted[arm] = target
        hasAccepted[arm] = armWasStreaming && streamBit
        guard armWasStreaming, streamBit, had else { return nil }
        let periodSeconds = Double(words[6]) / 1e6
        for joint in 0..<armJointCount {
            let allowed =
                RA610Limits.setpointJumpFactor * RA610Limits.joints[joint].maximumVelocityRadiansPerSecond
                * periodSeconds * 1e6
            let step = abs(target[joint] - last[joint])
            if Double(step) > allowed + Double(InvariantLimits.jumpSlackMicroradians) {
                return "arm \(arm) joint \(joint + 1): streamed setpoint moved \(step) µrad in one write (datasheet allows \(Int(allowed)) µrad)"
            }
        }
        return nil
    }
}
