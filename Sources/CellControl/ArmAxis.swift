import CellCore
import Motion

/// The controller's side of one RA-610: power and streaming hand-shake, the setpoint stream, tool requests.
///
/// Setpoints come from a jerk-limited trajectory sampled once per period on a trajectory clock that advances by
/// exactly one period per period run whose exchange reached the arm (so a late wake-up, a skipped period or a lost
/// exchange never makes a setpoint jump). Before
/// streaming starts or resumes, the setpoint is re-synced to the arm's actual position: the arm never jumps.
///
/// Thread: the control thread only. Nothing here allocates.
public struct ArmAxis: Sendable {
    /// What the controller wants of the arm's power.
    public enum Power: UInt8, Sendable {
        /// ENABLE clear: servos off (a moving arm performs a controlled stop).
        case off
        /// RESET set (with ENABLE clear): clears a latched fault whose cause is gone.
        case reset
        /// ENABLE and STREAM: servos on, following setpoints.
        case on
    }

    /// ENABLE | STREAM. Spelt with `union`, not an array literal: at -Onone an OptionSet array literal builds an
    /// Array on the heap, and this is written every period.
    static let enableAndStream = ArmCommand.enable.union(.stream)

    public let index: Int
    public var power: Power = .off
    /// The commanded state (position, velocity, acceleration) the stream follows.
    public private(set) var setpoint = JointState.atRest(JointVector())
    /// True once the arm reports STREAMING and the setpoint was re-synced to its actual position.
    public private(set) var isStreaming = false
    /// The trajectory being streamed when `hasTrajectory` (a ~20 KB value kept in place: planned into, never copied per
    /// period).
    private var trajectory = Trajectory()
    private var hasTrajectory = false
    private var trajectoryTicks: UInt64 = 0
    private var heartbeat: UInt16 = 0
    /// Last tool request id written; the arm runs a request each time this changes.
    public private(set) var toolRequestID: UInt16 = 0
    private var toolCommand = ArmToolCommand.none
    private var toolParam: UInt16 = 0
    /// A tool request is outstanding (not yet acknowledged by `tool_ack_id`).
    public private(set) var toolPending = false

    public init(index: Int, toolRequestSeed: UInt16 = 0) {
        self.index = index
        toolRequestID = toolRequestSeed
    }

    /// True while a trajectory is being streamed.
    public var isMoving: Bool { hasTrajectory }

    /// Starts a point-to-point move from the current setpoint state to `target`. Returns false when the planner
    /// refuses (the caller aborts with that reason). Thread: control.
    public mutating func move(to target: JointVector, limits: MotionLimits) -> Bool {
        guard isStreaming else { return false }
        do {
            try trajectory.planPointToPoint(from: setpoint, to: target, limits: limits)
            hasTrajectory = true
            trajectoryTicks = 0
            return true
        } catch {
            return false
        }
    }

    /// Starts a path through `waypoints` (at most `motionMaxWaypointCount`; the caller reuses one preallocated
    /// array, so this does not allocate). Thread: control.
    public mutating func path(through waypoints: [JointVector], limits: MotionLimits) -> Bool {
        guard isStreaming else { return false }
        do {
            try trajectory.planPath(from: setpoint, through: waypoints, limits: limits)
            hasTrajectory = true
            trajectoryTicks = 0
            return true
        } catch {
            return false
        }
    }

    /// Streams a trajectory planned ahead (a path from rest at `start`) if the setpoint is at rest there; false
    /// otherwise (the caller plans online). Copies the trajectory once; does not allocate. Thread: control.
    public mutating func follow(_ planned: Trajectory, plannedFrom start: JointVector) -> Bool {
        guard isStreaming, !hasTrajectory, setpointIsAt(start, toleranceRadians: 1e-6),
            setpoint.velocitiesRadiansPerSecond == JointVector(),
            setpoint.accelerationsRadiansPerSecondSquared == JointVector()
        else { return false }
        trajectory = planned
        hasTrajectory = true
        trajectoryTicks = 0
        return true
    }

    /// Replaces any motion by a jerk-limited stop from the current setpoint state. Thread: control.
    public mutating func stop(limits: MotionLimits) {
        guard isStreaming, hasTrajectory || setpoint.velocitiesRadiansPerSecond != JointVector() else { return }
        do {
            try trajectory.planStop(from: setpoint, limits: limits)
            hasTrajectory = true
        } catch {
            hasTrajectory = false
        }
        trajectoryTicks = 0
    }

    /// Asks the tool to run `command` once (a new request id). Thread: control.
    public mutating func requestTool(_ command: ArmToolCommand, param: UInt16) {
        toolRequestID &+= 1
        if toolRequestID == 0 { toolRequestID = 1 }
        toolCommand = command
        toolParam = param
        toolPending = true
    }

    /// The outcome of the outstanding tool request once the arm acknowledged it, else nil.
    public mutating func toolOutcome(_ inputs: ArmInputs) -> (succeeded: Bool, result: UInt16)? {
        guard toolPending, inputs.toolAckID == toolRequestID, !inputs.toolState.contains(.busy),
            inputs.toolState.contains(.done) || inputs.toolState.contains(.error)
        else { return nil }
        toolPending = false
        return (inputs.toolState.contains(.done) && !inputs.toolState.contains(.error), inputs.toolResult)
    }

    /// True when no trajectory runs and the arm reports IN_POSITION at the setpoint.
    public func isSettled(_ inputs: ArmInputs) -> Bool {
        isStreaming && !hasTrajectory && inputs.status.contains(.inPosition)
    }

    /// True when the arm is at rest (not IN_MOTION) or cannot move (servos off).
    public func isAtRest(_ inputs: ArmInputs) -> Bool {
        !inputs.status.contains(.inMotion)
    }

    /// True when the setpoint is within `toleranceRadians` of `target` in every joint.
    public func setpointIsAt(_ target: JointVector, toleranceRadians: Double) -> Bool {
        let delta = setpoint.positionsRadians - target
        let limit = toleranceRadians * toleranceRadians
        // Lane by lane, not `(delta * delta).max()`: at -Onone its generic witness table is instantiated (allocated)
        // on first use, here on the control thread.
        for lane in 0..<delta.scalarCount where !(delta[lane] * delta[lane] <= limit) { return false }
        return true
    }

    /// Computes this period's outputs from the arm's inputs. Thread: control; once per period.
    public mutating func update(
        _ inputs: ArmInputs, into outputs: inout ArmOutputs, periodSeconds: Double
    ) {
        heartbeat &+= 1
        outputs.heartbeat = heartbeat
        outputs.toolCommand = toolCommand
        outputs.toolRequestID = toolRequestID
        outputs.toolParam = toolParam

        let armStreams = inputs.status.contains(.streaming)
        switch power {
        case .off, .reset:
            outputs.command = power == .reset ? .reset : ArmCommand()
            isStreaming = false
            hasTrajectory = false
            if armStreams {
                // The write that clears STREAM is applied while the arm still streams: a changed target[] in it
                // would be a new setpoint, checked against the previous one. Keep the last setpoint until the arm
                // reports it has left streaming.
                outputs.targetsRadians = setpoint.positionsRadians
            } else {
                resync(inputs)
                outputs.targetsRadians = inputs.actualPositionsRadians
            }
            return
        case .on:
            break
        }
        guard inputs.status.contains(.enabled) else {
            outputs.command = .enable
            resync(inputs)
            isStreaming = false
            outputs.targetsRadians = inputs.actualPositionsRadians
            return
        }
        guard armStreams else {
            // ENABLED, streaming not (yet) begun, or the arm left streaming (STOP, fault): keep target = actual.
            outputs.command = Self.enableAndStream
            resync(inputs)
            isStreaming = false
            outputs.targetsRadians = inputs.actualPositionsRadians
            return
        }
        if !isStreaming {
            // Streaming has just begun from target = actual: the setpoint starts where the arm is.
            resync(inputs)
            isStreaming = true
        }
        // The trajectory clock advances only when this period's exchange reached the arm: after a lost or late
        // exchange the same setpoint is sent again, so consecutive setpoints the arm accepts never differ by more
        // than one period of motion (the datasheet's SETPOINT_JUMP rule allows 1.5 × v_max × period).
        if hasTrajectory && inputs.link.state == .ok {
            trajectoryTicks += 1
            let t = Double(trajectoryTicks) * periodSeconds
            trajectory.sample(atSeconds: t, into: &setpoint)
            if t >= trajectory.durationSeconds { hasTrajectory = false }
        }
        outputs.command = Self.enableAndStream
        outputs.targetsRadians = setpoint.positionsRadians
    }

    private mutating func resync(_ inputs: ArmInputs) {
        setpoint = JointState.atRest(inputs.actualPositionsRadians)
        hasTrajectory = false
    }
}
