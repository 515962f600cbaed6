// RA-610 arm controller model: registers, servo dynamics, faults, e-stop, tool — as the datasheet
// (/work/shared/datasheets/RA-610-arm-controller.md) says.

#if canImport(Glibc)
import Glibc
#endif
import Modbus

/// A simulated RA-610 arm controller: its Modbus register tables, its 4 kHz servo loop and its tool.
///
/// The model runs on virtual time: `step()` advances exactly `stepNanoseconds`; Modbus requests (the
/// `ModbusDevice` methods) act at the current model time, between steps. Everything it does is deterministic
/// given the `SimulationRandom` seed, the requests and the world.
///
/// Thread: not `Sendable`; one thread at a time (the simulated cell's lock). A server wraps it in a locked adapter.
/// The model keeps a strong reference to its `world`; a world that owns its arms forms a cycle for its lifetime.
///
/// Interpretations of the datasheet where it leaves room (documented here so a driver does not rely on them):
/// - A new streamed setpoint is checked against the previous *setpoint*; the reference then interpolates from its
///   current value (equal to the previous setpoint once the previous period has elapsed) to the new setpoint over
///   `stream_period_us`, so it never jumps when a setpoint arrives early.
/// - The servo does not saturate velocity; a controlled stop decelerates at each joint's max acceleration; an
///   e-stop uses at least that, more only if a joint runs faster than its max velocity, so it ends within 300 ms.
/// - A tool request that cannot run (not ENABLED, in motion, fault) ends ERROR with `tool_result` 0 and leaves
///   HOLDING_PART unchanged. A request with command NONE ends DONE at once with result 0 and does not call the world.
/// - A write that clears STREAM (or sets STOP) ends streaming before its `target[]` is looked at: a target it
///   changes is stored, not followed.
/// - After a controlled stop the setpoint stays the last accepted one (IN_POSITION tells whether the arm reached it);
///   after a STOP-bit stop or on enabling, the setpoint is where the arm holds.
public final class RA610Model: ModbusDevice {
    /// Number of joints.
    public static let jointCount = 6
    /// One servo-loop period (the datasheet's 4 kHz).
    public static let stepNanoseconds: UInt64 = 250_000

    // MARK: Identity and collaborators

    /// Arm name passed to the world (e.g. "loader").
    public let name: String
    /// `serial_number` input registers.
    public let serialNumber: UInt32
    /// `firmware` input register (major × 256 + minor).
    public let firmware: UInt16
    /// `tool_kind` input register.
    public let toolKind: ToolKind
    private let world: ArmToolWorld
    private var random: SimulationRandom

    /// Model time since power-up (also `uptime_ms`). Thread: the owner.
    public private(set) var timeNanoseconds: UInt64 = 0

    /// Every fault latched (including ESTOP replacing another), in order; for invariant checks. Thread: the owner.
    public private(set) var faultHistory: [(timeNanoseconds: UInt64, code: UInt16)] = []

    /// Scales every tool duration (1 = the datasheet's). Values ≤ 0 make tools finish on the next step.
    /// Thread: the owner.
    public var toolDurationScale: Double = 1

    // MARK: Holding registers (0..27)

    /// Holding registers 0..27.
    private var holding = [UInt16](repeating: 0, count: RA610Register.holdingCount)

    // MARK: Servo and motion state

    private enum ServoState: Equatable {
        case off
        case enabling(readyAtNanoseconds: UInt64)
        case on
    }

    private enum MotionMode: Equatable {
        /// Tracking the reference (interpolated setpoint) as a critically damped second-order system.
        case tracking
        /// Decelerating every joint to standstill; then servos off (`servosOff`) or hold.
        case decelerating(servosOff: Bool)
    }

    private var servo: ServoState = .off
    private var motion: MotionMode = .tracking
    // Joint state in fixed-size vectors (lanes 0..5; lanes 6 and 7 stay 0): read into locals once per step and
    // written back once, so the 4 kHz loop does not pay an exclusivity check and a bounds check per element.
    private var positions = SIMD8<Double>()
    private var velocities = SIMD8<Double>()
    /// The servo's setpoint (the end of the reference ramp).
    private var setpoints = SIMD8<Double>()
    /// The reference at `rampStartNanoseconds`.
    private var rampStarts = SIMD8<Double>()
    private var rampStartNanoseconds: UInt64 = 0
    private var rampEndNanoseconds: UInt64 = 0
    private var decelerations = SIMD8<Double>()
    /// The travel stops per joint (lanes 6 and 7: 0...0).
    private let minimumPositions: SIMD8<Double>
    private let maximumPositions: SIMD8<Double>

    private var streaming = false
    private var streamingStartNanoseconds: UInt64 = 0
    private var heartbeatChangeNanoseconds: UInt64 = 0
    /// ENABLE has been seen clear since the last fault (servos may come on when it is set).
    private var enableArmed = true
    /// The arm decelerated for the STOP bit and holds; cleared when STOP clears.
    private var heldForStop = false

    // MARK: Fault state

    private var latchedFault: UInt16 = 0
    private var estop = false
    private var protectiveStop = false

    // MARK: Tool state

    private var toolBusy = false
    private var toolDone = false
    private var toolError = false
    private var holdingPart = false
    private var toolAckID: UInt16 = 0
    private var toolResult: UInt16 = 0
    private var runningRequestID: UInt16 = 0
    private var runningCommand: ToolCommand = .none
    private var runningParam: UInt16 = 0
    private var toolEndNanoseconds: UInt64 = 0
    private var runningJammed = false
    private var jamNextRequest = false
    private var dispensing = false
    private var dispensedMilliliters: Double = 0

    /// Creates a powered arm controller at time 0 with servos off, default registers and all targets 0.
    /// `initialPositionsRadians` (6 values; clamped to the travel stops) is where the arm stands.
    /// Thread: any; the model is then owned by one thread at a time.
    public init(
        name: String, serialNumber: UInt32, firmware: UInt16, toolKind: ToolKind,
        world: ArmToolWorld, random: SimulationRandom,
        initialPositionsRadians: [Double] = [Double](repeating: 0, count: RA610Model.jointCount)
    ) {
        precondition(initialPositionsRadians.count == Self.jointCount, "RA610Model \(name): 6 initial positions")
        self.name = name
        self.serialNumber = serialNumber
        self.firmware = firmware
        self.toolKind = toolKind
        self.world = world
        self.random = random
        var minimum = SIMD8<Double>()
        var maximum = SIMD8<Double>()
        for j in 0..<Self.jointCount {
            minimum[j] = RA610Limits.joints[j].minimumRadians
            maximum[j] = RA610Limits.joints[j].maximumRadians
        }
        minimumPositions = minimum
        maximumPositions = maximum
        holding[RA610Register.watchdogMilliseconds] = RA610Limits.watchdogMillisecondsDefault
        holding[RA610Register.streamPeriodMicroseconds] = RA610Limits.streamPeriodMicrosecondsDefault
        for j in 0..<Self.jointCount {
            let limit = RA610Limits.joints[j]
            let p = min(max(initialPositionsRadians[j], limit.minimumRadians), limit.maximumRadians)
            positions[j] = p
            setpoints[j] = p
            rampStarts[j] = p
        }
    }

    // MARK: Observation

    /// Measured joint positions, rad. Thread: the owner.
    public var actualPositionsRadians: [Double] { Self.array(positions) }
    /// Measured joint velocities, rad/s. Thread: the owner.
    public var actualVelocitiesRadiansPerSecond: [Double] { Self.array(velocities) }
    /// The servo setpoints, rad (for the simulator UI). Thread: the owner.
    public var setpointsRadians: [Double] { Self.array(setpoints) }

    private static func array(_ vector: SIMD8<Double>) -> [Double] { (0..<jointCount).map { vector[$0] } }
    /// `fault_code` (0 when none). Thread: the owner.
    public var faultCode: UInt16 { latchedFault }

    /// `status` input register. Thread: the owner.
    public var statusWord: UInt16 {
        var word = RA610StatusBit.powered
        if servo == .on { word |= RA610StatusBit.enabled }
        if isInMotion { word |= RA610StatusBit.inMotion }
        if latchedFault != 0 { word |= RA610StatusBit.fault }
        if estop { word |= RA610StatusBit.estop }
        if protectiveStop { word |= RA610StatusBit.protectiveStop }
        if streaming { word |= RA610StatusBit.streaming }
        if isInPosition { word |= RA610StatusBit.inPosition }
        if latchedFault == 0 && !estop { word |= RA610StatusBit.remoteReady }
        return word
    }

    /// `tool_state` input register. Thread: the owner.
    public var toolStateWord: UInt16 {
        var word: UInt16 = 0
        if holdingPart { word |= RA610ToolStateBit.holdingPart }
        if toolBusy { word |= RA610ToolStateBit.busy }
        if toolDone { word |= RA610ToolStateBit.done }
        if toolError { word |= RA610ToolStateBit.error }
        return word
    }

    /// Glue dispensed since the last DISPENSE_ON, ml. Thread: the owner.
    public var dispensedGlueMilliliters: Double { dispensedMilliliters }

    private var isInMotion: Bool {
        let v = velocities
        for j in 0..<Self.jointCount where abs(v[j]) > RA610Limits.inMotionVelocityRadiansPerSecond { return true }
        return false
    }

    private var isInPosition: Bool {
        let p = positions
        let v = velocities
        let sp = setpoints
        for j in 0..<Self.jointCount {
            if abs(p[j] - sp[j]) > RA610Limits.inPositionRadians { return false }
            if abs(v[j]) >= RA610Limits.inMotionVelocityRadiansPerSecond { return false }
        }
        return true
    }

    private var commandWord: UInt16 { holding[RA610Register.command] }
    private var streamPeriodNanoseconds: UInt64 {
        UInt64(holding[RA610Register.streamPeriodMicroseconds]) * 1_000
    }

    // MARK: Fault injection

    /// Latches `code` as if its cause had occurred (0x0401 also sets PROTECTIVE_STOP, 0x0601 acts as an e-stop
    /// that may be reset while the chain is closed). Only the first fault latches, except ESTOP. Code 0 is ignored.
    /// Thread: the owner.
    public func injectFault(code: UInt16) {
        guard code != 0 else { return }
        latchFault(code)
    }

    /// Makes the next tool request (not NONE) jam: it runs its duration, then ends ERROR with result 0 without
    /// acting on the world. Thread: the owner.
    public func failNextToolRequest() {
        jamNextRequest = true
    }

    // MARK: Stepping

    /// Advances the model by exactly `stepNanoseconds`: reads the safety chain, runs the enable/stream/stop logic
    /// and the watchdog, integrates the joints, checks following error, runs the tool. Thread: the owner.
    public func step() {
        let now = timeNanoseconds
        let next = now + Self.stepNanoseconds

        if !world.safetyChainClosed && !estop {
            latchFault(RA610FaultCode.emergencyStop)
        }
        let command = commandWord
        let enableBit = command & RA610CommandBit.enable != 0
        let stopBit = command & RA610CommandBit.stop != 0
        let streamBit = command & RA610CommandBit.stream != 0
        if !enableBit { enableArmed = true }
        if !stopBit { heldForStop = false }
        let faulted = latchedFault != 0 || estop

        switch servo {
        case .off:
            if enableBit && enableArmed && !faulted {
                servo = .enabling(readyAtNanoseconds: now + RA610Limits.enableDelayNanoseconds)
            }
        case .enabling(let readyAt):
            if !enableBit || faulted {
                servo = .off
            } else if now >= readyAt {
                servo = .on
                holdHere(at: now)
            }
        case .on:
            if !enableBit && motion != .decelerating(servosOff: true) {
                beginControlledStop(servosOff: true)
            }
        }

        if servo == .on {
            if stopBit && !heldForStop && motion == .tracking {
                beginControlledStop(servosOff: false)
            }
            if streaming && !streamBit { streaming = false }
            if !streaming && streamBit && !stopBit && !faulted && motion != .decelerating(servosOff: true) {
                startStreaming(at: now)
            }
        }

        if streaming {
            let watchdog = UInt64(holding[RA610Register.watchdogMilliseconds]) * 1_000_000
            let since = max(heartbeatChangeNanoseconds, streamingStartNanoseconds)
            if now - since > watchdog {
                latchFault(RA610FaultCode.commWatchdog)
            }
        }

        integrate(from: now, to: next)
        timeNanoseconds = next

        if servo == .on && motion == .tracking {
            let r = referenceVector(at: next)
            let p = positions
            for j in 0..<Self.jointCount where abs(r[j] - p[j]) > RA610Limits.followingErrorRadians {
                latchFault(RA610FaultCode.followingError)
                break
            }
        }

        if dispensing && isInMotion {
            dispensedMilliliters += RA610Limits.glueFlowMillilitersPerSecond * Double(Self.stepNanoseconds) / 1e9
        }

        if toolBusy {
            if !toolMayRun {
                endTool(succeeded: false, result: 0)
            } else if next >= toolEndNanoseconds {
                finishTool()
            }
        }
    }

    // MARK: Skipping quiet steps (the exact model)

    /// Margin kept from every threshold when a skip is judged from continuous bounds (following error, travel stops,
    /// IN_MOTION while a tool runs), rad or rad/s: a value this close to a threshold is left to `step()`, which
    /// decides it on the 4 kHz grid as the datasheet's controller does.
    static let skipMargin = 1e-9
    /// Steps a controlled stop's last joint is left to `step()` before it comes to rest: its stop step is computed
    /// from |v| / (a·dt), and near a whole number rounding could put it one step either side.
    static let stopStepMargin = 1e-6

    /// How many of the next steps (at most `limit`) are quiet: `step()` would change no discrete state in them (no
    /// enable, stream, stop, fault, watchdog, tool, travel-stop or following-error event, no glue flowing), so
    /// `skip(steps:)` may advance them in closed form. 0: the next step holds an event and must be run by `step()`.
    /// Conservative: it may answer fewer steps than are quiet, never more. Does not allocate. Thread: the owner.
    public func quietSteps(limit: Int) -> Int {
        guard limit > 0 else { return 0 }
        let now = timeNanoseconds
        let dt = Self.stepNanoseconds
        var quiet = UInt64(limit)
        // The step-start logic of `step()`: quiet only where none of its branches would fire.
        if !world.safetyChainClosed && !estop { return 0 }
        let command = commandWord
        let enableBit = command & RA610CommandBit.enable != 0
        let stopBit = command & RA610CommandBit.stop != 0
        let streamBit = command & RA610CommandBit.stream != 0
        if (!enableBit && !enableArmed) || (!stopBit && heldForStop) { return 0 }
        let faulted = latchedFault != 0 || estop
        switch servo {
        case .off:
            if enableBit && enableArmed && !faulted { return 0 }
        case .enabling(let readyAt):
            if !enableBit || faulted || now >= readyAt { return 0 }
            quiet = min(quiet, (readyAt - now + dt - 1) / dt)
        case .on:
            if !enableBit && motion != .decelerating(servosOff: true) { return 0 }
            if stopBit && !heldForStop && motion == .tracking { return 0 }
            if streaming != streamBit {
                if streaming { return 0 }
                if !stopBit && !faulted && motion != .decelerating(servosOff: true) { return 0 }
            }
        }
        if streaming {
            let watchdog = UInt64(holding[RA610Register.watchdogMilliseconds]) * 1_000_000
            let deadline = max(heartbeatChangeNanoseconds, streamingStartNanoseconds) + watchdog
            if now > deadline { return 0 }
            quiet = min(quiet, (deadline - now) / dt + 1)
        }
        // Glue flows step by step while the arm moves: dispensing is stepped.
        if dispensing { return 0 }
        if toolBusy {
            if !toolMayRun || now + dt >= toolEndNanoseconds { return 0 }
            quiet = min(quiet, (toolEndNanoseconds - now - 1) / dt)
        }
        guard servo == .on else { return Int(quiet) }
        switch motion {
        case .tracking:
            return trackingStaysQuiet(from: now, to: now + quiet * dt) ? Int(quiet) : 0
        case .decelerating:
            return Int(min(quiet, decelerationQuietSteps()))
        }
    }

    /// Advances `steps` quiet steps (see `quietSteps(limit:)`) in closed form: what `steps` calls of `step()` would
    /// do, to rounding. Thread: the owner.
    public func skip(steps: Int) {
        assert(steps >= 0 && steps <= quietSteps(limit: steps), "RA610Model \(name).skip: \(steps) steps are not all quiet")
        let start = timeNanoseconds
        let end = start + UInt64(steps) * Self.stepNanoseconds
        let motionBefore = motion
        let servoBefore = servo
        integrate(from: start, to: end)
        timeNanoseconds = end
        assert(motion == motionBefore && servo == servoBefore, "RA610Model \(name).skip: a controlled stop ended")
    }

    /// While tracking: over the whole span no step would see a following error, a travel stop, or (a tool running)
    /// IN_MOTION. Judged from the closed form's exact extremes on each piece of the reference ramp (while it ramps,
    /// then at the setpoint), with `skipMargin`.
    private func trackingStaysQuiet(from start: UInt64, to end: UInt64) -> Bool {
        let split = min(max(rampEndNanoseconds, start), end)
        var p = positions
        var v = velocities
        func pieceStaysQuiet(reference: SIMD8<Double>, slope: SIMD8<Double>, seconds: Double) -> Bool {
            if Self.trackingStaysQuietForAnyDuration(
                positions: p, velocities: v, reference: reference, slope: slope, seconds: seconds,
                minimum: minimumPositions, maximum: maximumPositions, toolBusy: toolBusy)
            {
                return true
            }
            let decayAtEnd = exp(-RA610Limits.servoNaturalFrequencyRadiansPerSecond * seconds)
            for j in 0..<Self.jointCount {
                let extremes = Self.trackingExtremes(
                    position: p[j], velocity: v[j], reference: reference[j], slope: slope[j], seconds: seconds,
                    decayAtEnd: decayAtEnd)
                if !Self.staysClearOfEvents(
                    maximumAbsoluteError: extremes.maximumAbsoluteError, lowestPosition: extremes.minimumPosition,
                    highestPosition: extremes.maximumPosition, fastest: extremes.maximumAbsoluteVelocity,
                    minimum: minimumPositions[j], maximum: maximumPositions[j], toolBusy: toolBusy)
                {
                    return false
                }
            }
            return true
        }
        if split > start {
            let reference = referenceVector(at: start)
            let slope = rampSlopeVector()
            let seconds = Double(split - start) / 1e9
            guard pieceStaysQuiet(reference: reference, slope: slope, seconds: seconds) else { return false }
            trackExactly(&p, &v, referenceAtStart: reference, slope: slope, seconds: seconds)
        }
        if end > split {
            guard pieceStaysQuiet(reference: setpoints, slope: SIMD8<Double>(), seconds: Double(end - split) / 1e9)
            else { return false }
        }
        return true
    }

    /// The cheap test first, every joint at once: bounds that hold for all t ≥ 0 and need no exponential, from
    /// |(A + Bt)·e^(−ωn t)| ≤ |A| + |B|/(e·ωn) and |(C − ωn·B·t)·e^(−ωn t)| ≤ |C| + |B|/e (t·e^(−ωn t) ≤ 1/(e·ωn)).
    /// True: no step of the piece sees a following error, a travel stop or (a tool running) IN_MOTION. False: the
    /// exact extremes decide.
    static func trackingStaysQuietForAnyDuration(
        positions p: SIMD8<Double>, velocities v: SIMD8<Double>, reference r0: SIMD8<Double>, slope s: SIMD8<Double>,
        seconds: Double, minimum: SIMD8<Double>, maximum: SIMD8<Double>, toolBusy: Bool
    ) -> Bool {
        let wn = RA610Limits.servoNaturalFrequencyRadiansPerSecond
        let particular = -2 * s / wn
        let a = p - r0 - particular
        let b = (v - s) + wn * a
        let c = b - wn * a
        func magnitude(_ x: SIMD8<Double>) -> SIMD8<Double> { x.replacing(with: -x, where: x .< 0) }
        let decayingBound = magnitude(a) + magnitude(b) / (M_E * wn)
        let errorBound = magnitude(particular) + decayingBound
        let end = r0 + s * seconds
        let lowest = r0.replacing(with: end, where: end .< r0) + particular - decayingBound
        let highest = r0.replacing(with: end, where: end .> r0) + particular + decayingBound
        let speedBound = magnitude(s) + magnitude(c) + magnitude(b) / M_E
        for j in 0..<jointCount
        where !staysClearOfEvents(
            maximumAbsoluteError: errorBound[j], lowestPosition: lowest[j], highestPosition: highest[j],
            fastest: speedBound[j], minimum: minimum[j], maximum: maximum[j], toolBusy: toolBusy)
        {
            return false
        }
        return true
    }

    /// True when a joint whose tracking error, position and speed stay within these bounds over a span sees no
    /// following error, no travel stop and (a tool running) no IN_MOTION in it, with `skipMargin` from each threshold.
    static func staysClearOfEvents(
        maximumAbsoluteError: Double, lowestPosition: Double, highestPosition: Double, fastest: Double,
        minimum: Double, maximum: Double, toolBusy: Bool
    ) -> Bool {
        maximumAbsoluteError <= RA610Limits.followingErrorRadians - skipMargin
            && lowestPosition > minimum + skipMargin && highestPosition < maximum - skipMargin
            && !(toolBusy && fastest >= RA610Limits.inMotionVelocityRadiansPerSecond - skipMargin)
    }

    /// The exact ranges over [0, `seconds`] of the servo's tracking error e = x − r, its position x and its velocity,
    /// starting at (`position`, `velocity`) and tracking r(t) = `reference` + `slope`·t (the closed form of
    /// `trackExactly`, travel stops aside): e(t) = −2s/ωn + (A + Bt)·e^(−ωn t) and x'(t) = s + (C − ωn·B·t)·e^(−ωn t)
    /// with C = B − ωn·A, so each has at most one interior extremum (at t = C/(ωn·B) and t = (B + C)/(ωn·B)). The
    /// position range adds the error's range to the reference's, so it may be wider than the truth, never narrower.
    /// `decayAtEnd` is e^(−ωn·seconds), the same for every joint.
    static func trackingExtremes(
        position: Double, velocity: Double, reference: Double, slope: Double, seconds: Double, decayAtEnd: Double
    ) -> (maximumAbsoluteError: Double, minimumPosition: Double, maximumPosition: Double,
            maximumAbsoluteVelocity: Double)
    {
        let wn = RA610Limits.servoNaturalFrequencyRadiansPerSecond
        let particular = -2 * slope / wn
        let a = position - reference - particular
        let b = (velocity - slope) + wn * a
        let c = b - wn * a
        func error(_ t: Double, _ decay: Double) -> Double { particular + (a + b * t) * decay }
        func speed(_ t: Double, _ decay: Double) -> Double { abs(slope + (c - wn * b * t) * decay) }
        let errorAtStart = error(0, 1)
        let errorAtEnd = error(seconds, decayAtEnd)
        var lowError = min(errorAtStart, errorAtEnd)
        var highError = max(errorAtStart, errorAtEnd)
        var fastest = max(speed(0, 1), speed(seconds, decayAtEnd))
        if b != 0 {
            let errorTurn = c / (wn * b)
            if errorTurn > 0 && errorTurn < seconds {
                let turn = error(errorTurn, exp(-wn * errorTurn))
                lowError = min(lowError, turn)
                highError = max(highError, turn)
            }
            let speedTurn = (b + c) / (wn * b)
            if speedTurn > 0 && speedTurn < seconds { fastest = max(fastest, speed(speedTurn, exp(-wn * speedTurn))) }
        }
        let end = reference + slope * seconds
        return (
            max(abs(lowError), abs(highError)), min(reference, end) + lowError, max(reference, end) + highError, fastest
        )
    }

    /// While decelerating: the steps before the one in which the last moving joint comes to rest (that step ends the
    /// stop: servos off or hold), or 0 when a joint would reach a travel stop on its way to rest.
    private func decelerationQuietSteps() -> UInt64 {
        let stepSeconds = Double(Self.stepNanoseconds) / 1e9
        var lastStopStep = 0.0
        for j in 0..<Self.jointCount {
            let v = velocities[j]
            let a = decelerations[j]
            let rest = positions[j] + v * abs(v) / (2 * a)
            if min(positions[j], rest) <= minimumPositions[j] + Self.skipMargin
                || max(positions[j], rest) >= maximumPositions[j] - Self.skipMargin
            {
                return 0
            }
            // `step()` stops the joint in the first step that starts with |v| ≤ a·dt: step ⌈|v|/(a·dt) − 1⌉.
            lastStopStep = max(lastStopStep, abs(v) / (a * stepSeconds) - 1)
        }
        let quiet = (lastStopStep - Self.stopStepMargin).rounded(.up)
        return quiet <= 0 ? 0 : UInt64(quiet)
    }

    // MARK: Motion

    /// Servos on and holding still where the arm is.
    private func holdHere(at now: UInt64) {
        motion = .tracking
        setpoints = positions
        rampStarts = positions
        rampStartNanoseconds = now
        rampEndNanoseconds = now
    }

    /// The reference (the setpoint ramp) of every joint at `time`: the ramp start plus the elapsed fraction of the
    /// ramp, or the setpoint once the ramp has ended.
    private func referenceVector(at time: UInt64) -> SIMD8<Double> {
        if time >= rampEndNanoseconds || rampEndNanoseconds <= rampStartNanoseconds { return setpoints }
        let fraction = Double(time - rampStartNanoseconds) / Double(rampEndNanoseconds - rampStartNanoseconds)
        let starts = rampStarts
        return starts + (setpoints - starts) * fraction
    }

    private func rampSlopeVector() -> SIMD8<Double> {
        guard rampEndNanoseconds > rampStartNanoseconds else { return SIMD8<Double>() }
        return (setpoints - rampStarts) / (Double(rampEndNanoseconds - rampStartNanoseconds) / 1e9)
    }

    private func integrate(from start: UInt64, to end: UInt64) {
        switch servo {
        case .off, .enabling:
            velocities = SIMD8<Double>()
            return
        case .on:
            break
        }
        switch motion {
        case .tracking:
            // Split the step where the reference ramp ends; integrate each piece exactly.
            let split = min(max(rampEndNanoseconds, start), end)
            var p = positions
            var v = velocities
            if split > start {
                trackExactly(&p, &v, referenceAtStart: referenceVector(at: start), slope: rampSlopeVector(),
                             seconds: Double(split - start) / 1e9)
            }
            if end > split {
                trackExactly(&p, &v, referenceAtStart: setpoints, slope: SIMD8<Double>(),
                             seconds: Double(end - split) / 1e9)
            }
            positions = p
            velocities = v
        case .decelerating(let servosOff):
            let seconds = Double(end - start) / 1e9
            var allStopped = true
            var p = positions
            var w = velocities
            let d = decelerations
            for j in 0..<Self.jointCount {
                let v = w[j]
                let a = d[j]
                if abs(v) <= a * seconds {
                    p[j] += v * abs(v) / (2 * a)
                    w[j] = 0
                } else {
                    let sign: Double = v > 0 ? 1 : -1
                    p[j] += v * seconds - sign * 0.5 * a * seconds * seconds
                    w[j] = v - sign * a * seconds
                    allStopped = false
                }
                applyTravelStop(joint: j, &p, &w)
            }
            positions = p
            velocities = w
            if allStopped {
                if servosOff {
                    servo = .off
                    motion = .tracking
                } else {
                    holdHere(at: end)
                    heldForStop = commandWord & RA610CommandBit.stop != 0
                }
            }
        }
    }

    /// Critically damped tracking, x'' = ωn²(r − x) − 2ωn x', of a reference r(t) = r0 + s·t, solved exactly.
    /// Magnitude below which the servo's decaying error terms are flushed to 0 (see `trackExactly`).
    static let flushBelow = 1e-200

    /// Every joint at once (lanes 0..5; the same arithmetic as joint by joint).
    private func trackExactly(
        _ positions: inout SIMD8<Double>, _ velocities: inout SIMD8<Double>, referenceAtStart r0: SIMD8<Double>,
        slope s: SIMD8<Double>, seconds t: Double
    ) {
        let wn = RA610Limits.servoNaturalFrequencyRadiansPerSecond
        // Error e = x − r obeys e'' + 2ωn e' + ωn² e = −2ωn s: particular solution −2s/ωn, homogeneous (A + Bt)e^(−ωn t).
        let particular = -2 * s / wn
        // The homogeneous part decays by e^(−ωn t) every step; a joint resting at exactly 0 rad would take it down
        // into subnormal numbers, which cost a hundred times a normal multiplication. Below 1e-200 (rad, rad/s) it
        // is flushed to exactly 0: far below anything a register can show.
        let tiny = SIMD8<Double>(repeating: Self.flushBelow)
        var a = positions - r0 - particular
        a.replace(with: 0, where: (a .< tiny) .& (-tiny .< a))
        var b = (velocities - s) + wn * a
        b.replace(with: 0, where: (b .< tiny) .& (-tiny .< b))
        let decay = exp(-wn * t)
        let u = (a + b * t) * decay
        let du = (b - wn * (a + b * t)) * decay
        positions = r0 + s * t + particular + u
        velocities = s + du
        for j in 0..<Self.jointCount { applyTravelStop(joint: j, &positions, &velocities) }
    }

    /// The joint ranges are hard travel stops: clamp the position and stop motion into the stop.
    private func applyTravelStop(joint j: Int, _ positions: inout SIMD8<Double>, _ velocities: inout SIMD8<Double>) {
        if positions[j] >= maximumPositions[j] {
            positions[j] = maximumPositions[j]
            if velocities[j] > 0 { velocities[j] = 0 }
        } else if positions[j] <= minimumPositions[j] {
            positions[j] = minimumPositions[j]
            if velocities[j] < 0 { velocities[j] = 0 }
        }
    }

    /// Decelerates every joint to standstill (at max acceleration; faster only for an e-stop of an over-speed
    /// joint), leaves streaming; then servos off (`servosOff`) or hold.
    private func beginControlledStop(servosOff: Bool) {
        streaming = false
        switch servo {
        case .off:
            return
        case .enabling:
            servo = .off
            return
        case .on:
            break
        }
        if case .decelerating(true) = motion, !servosOff { return }
        motion = .decelerating(servosOff: servosOff)
        for j in 0..<Self.jointCount {
            let limit = RA610Limits.joints[j].maximumAccelerationRadiansPerSecondSquared
            decelerations[j] = estop
                ? max(limit, abs(velocities[j]) / RA610Limits.emergencyStopPlannedSeconds) : limit
        }
    }

    private func startStreaming(at now: UInt64) {
        streaming = true
        streamingStartNanoseconds = now
        // The previous setpoint is the actual position; the current target[] is the first new setpoint.
        motion = .tracking
        setpoints = positions
        rampStarts = positions
        rampStartNanoseconds = now
        rampEndNanoseconds = now
        acceptSetpoint(at: now)
    }

    /// `target[]` as a new setpoint while streaming: jump and limit checks, then a ramp over `stream_period_us`.
    private func acceptSetpoint(at now: UInt64) {
        let periodSeconds = Double(holding[RA610Register.streamPeriodMicroseconds]) / 1e6
        for j in 0..<Self.jointCount {
            let limit = RA610Limits.joints[j]
            let target = targetMicroradians(joint: j)
            let step = abs(Double(target) / 1e6 - setpoints[j])
            if step > RA610Limits.setpointJumpFactor * limit.maximumVelocityRadiansPerSecond * periodSeconds {
                latchFault(RA610FaultCode.setpointJump)
                return
            }
        }
        for j in 0..<Self.jointCount {
            let limit = RA610Limits.joints[j]
            let target = targetMicroradians(joint: j)
            if target < limit.minimumMicroradians || target > limit.maximumMicroradians {
                latchFault(RA610FaultCode.positionLimit)
                return
            }
        }
        rampStarts = referenceVector(at: now)
        for j in 0..<Self.jointCount {
            setpoints[j] = Double(targetMicroradians(joint: j)) / 1e6
        }
        rampStartNanoseconds = now
        rampEndNanoseconds = now + streamPeriodNanoseconds
    }

    private func targetMicroradians(joint j: Int) -> Int64 {
        Self.int32(high: holding[RA610Register.target + 2 * j], low: holding[RA610Register.target + 2 * j + 1])
    }

    // MARK: Faults

    private func latchFault(_ code: UInt16) {
        if code == RA610FaultCode.emergencyStop {
            estop = true
            latchedFault = code
        } else if latchedFault == 0 {
            latchedFault = code
            if code == RA610FaultCode.collision { protectiveStop = true }
        } else {
            return
        }
        faultHistory.append((timeNanoseconds: timeNanoseconds, code: code))
        enableArmed = false
        beginControlledStop(servosOff: true)
        if toolBusy { endTool(succeeded: false, result: 0) }
    }

    /// RESET 0→1 edge: clears the fault if its cause is gone (ESTOP: the chain is closed again).
    private func resetEdge() {
        if estop {
            guard world.safetyChainClosed else { return }
            estop = false
        }
        latchedFault = 0
        protectiveStop = false
    }

    // MARK: Tool

    private var toolMayRun: Bool {
        servo == .on && motion == .tracking && latchedFault == 0 && !estop && !isInMotion
    }

    private func startToolRequest(id: UInt16) {
        let command = ToolCommand(rawValue: holding[RA610Register.toolCommand]) ?? .none
        toolDone = false
        toolError = false
        runningRequestID = id
        runningCommand = command
        runningParam = holding[RA610Register.toolParam]
        if command == .none {
            endTool(succeeded: true, result: 0)
            return
        }
        toolBusy = true
        runningJammed = jamNextRequest
        jamNextRequest = false
        let milliseconds: Double
        switch command {
        case .none: milliseconds = 0
        case .grip, .release: milliseconds = RA610Limits.gripReleaseMilliseconds
        case .screw: milliseconds = Double.random(in: RA610Limits.screwMillisecondsRange, using: &random)
        case .press: milliseconds = Double.random(in: RA610Limits.pressMillisecondsRange, using: &random)
        case .dispenseOn, .dispenseOff: milliseconds = RA610Limits.dispenseValveMilliseconds
        }
        let scaled = max(0, milliseconds * toolDurationScale)
        toolEndNanoseconds = timeNanoseconds + UInt64((scaled * 1_000_000).rounded())
        if !toolMayRun { endTool(succeeded: false, result: 0) }
    }

    private func finishTool() {
        if runningJammed {
            endTool(succeeded: false, result: 0)
            return
        }
        let outcome = world.toolFinished(
            arm: name, command: runningCommand, param: runningParam, jointPositionsRadians: actualPositionsRadians,
            dispensedMilliliters: dispensedMilliliters, random: &random)
        holdingPart = outcome.holdingPart
        switch runningCommand {
        case .dispenseOn where outcome.succeeded:
            dispensing = true
            dispensedMilliliters = 0
        case .dispenseOff:
            dispensing = false
        default:
            break
        }
        endTool(succeeded: outcome.succeeded, result: outcome.result)
    }

    private func endTool(succeeded: Bool, result: UInt16) {
        toolBusy = false
        toolDone = succeeded
        toolError = !succeeded
        toolAckID = runningRequestID
        toolResult = result
    }

    // MARK: Registers

    /// Input register `address` (0..39, 100..103; reserved → 0). Caller checked the address. The joint blocks come
    /// from `joints`, filled on first use, so a read of many registers converts each joint once.
    private func inputRegister(_ address: Int, joints: inout JointWords) -> UInt16 {
        switch address {
        case RA610Register.status: return statusWord
        case RA610Register.faultCode: return latchedFault
        case RA610Register.heartbeatEcho: return holding[RA610Register.heartbeat]
        case RA610Register.toolState: return toolStateWord
        case RA610Register.toolAckID: return toolAckID
        case RA610Register.toolResult: return toolResult
        case RA610Register.uptimeMilliseconds: return UInt16(truncatingIfNeeded: uptimeMilliseconds >> 16)
        case RA610Register.uptimeMilliseconds + 1: return UInt16(truncatingIfNeeded: uptimeMilliseconds)
        case RA610Register.toolKind: return toolKind.rawValue
        case RA610Register.actualPosition..<(RA610Register.actualPosition + 12):
            if joints.positions == nil { joints.positions = JointWords.words(positions) }
            return joints.positions![address - RA610Register.actualPosition]
        case RA610Register.actualVelocity..<(RA610Register.actualVelocity + 12):
            if joints.velocities == nil { joints.velocities = JointWords.words(velocities) }
            return joints.velocities![address - RA610Register.actualVelocity]
        case RA610Register.model: return RA610Limits.modelNumber
        case RA610Register.firmware: return firmware
        case RA610Register.serialNumber: return UInt16(truncatingIfNeeded: serialNumber >> 16)
        case RA610Register.serialNumber + 1: return UInt16(truncatingIfNeeded: serialNumber)
        default: return 0
        }
    }

    private var uptimeMilliseconds: UInt32 { UInt32(truncatingIfNeeded: timeNanoseconds / 1_000_000) }

    /// `value` as the datasheet's i32 µ-units (rounded, saturated), as the bits of its two registers.
    fileprivate static func microBits(_ value: Double) -> UInt32 {
        let micro = (value * 1e6).rounded()
        return UInt32(bitPattern: Int32(max(min(micro, Double(Int32.max)), Double(Int32.min))))
    }

    private static func int32(high: UInt16, low: UInt16) -> Int64 {
        Int64(Int32(bitPattern: UInt32(high) << 16 | UInt32(low)))
    }

    private static func inside(_ address: Int, _ count: Int, base: Int, size: Int) -> Bool {
        address >= base && count >= 0 && address + count <= base + size
    }

    private func holdingReadable(_ address: Int, _ count: Int) -> Bool {
        Self.inside(address, count, base: 0, size: RA610Register.holdingCount)
            || Self.inside(address, count, base: RA610Register.statusMirror, size: RA610Register.statusMirrorCount)
    }

    private func inputReadable(_ address: Int, _ count: Int) -> Bool {
        Self.inside(address, count, base: 0, size: RA610Register.inputCount)
            || Self.inside(address, count, base: RA610Register.model, size: RA610Register.identityCount)
    }

    private static func isReserved(_ address: Int) -> Bool {
        address > RA610Register.streamPeriodMicroseconds && address < RA610Register.target
    }

    private func readHolding(address: Int, into values: UnsafeMutableBufferPointer<UInt16>) {
        var joints = JointWords()
        for i in 0..<values.count {
            let a = address + i
            if a >= RA610Register.statusMirror {
                values[i] = inputRegister(a - RA610Register.statusMirror, joints: &joints)
            } else {
                values[i] = Self.isReserved(a) ? 0 : holding[a]
            }
        }
    }

    /// The joint blocks of the input registers (positions, velocities; 12 words each), converted once per read:
    /// a status read (the driver's 0x17 reads 40 registers every period) would otherwise round every joint twice.
    private struct JointWords {
        var positions: InlineArray<12, UInt16>?
        var velocities: InlineArray<12, UInt16>?

        /// The 6 joints of `vector` as 12 words, high word first.
        static func words(_ vector: SIMD8<Double>) -> InlineArray<12, UInt16> {
            var words = InlineArray<12, UInt16>(repeating: 0)
            for j in 0..<RA610Model.jointCount {
                let bits = RA610Model.microBits(vector[j])
                words[2 * j] = UInt16(truncatingIfNeeded: bits >> 16)
                words[2 * j + 1] = UInt16(truncatingIfNeeded: bits)
            }
            return words
        }
    }

    /// Checks a write of `values` at `address` (0x02, 0x03, 0x06 in that order) without changing anything.
    private func checkWrite(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        guard Self.inside(address, values.count, base: 0, size: RA610Register.holdingCount) else {
            return .illegalDataAddress
        }
        func proposed(_ register: Int) -> UInt16 {
            let i = register - address
            return i >= 0 && i < values.count ? values[i] : holding[register]
        }
        func written(_ register: Int) -> Bool { register >= address && register < address + values.count }

        if written(RA610Register.toolCommand) && proposed(RA610Register.toolCommand) > ToolCommand.dispenseOff.rawValue {
            return .illegalDataValue
        }
        if written(RA610Register.watchdogMilliseconds)
            && !RA610Limits.watchdogMillisecondsRange.contains(proposed(RA610Register.watchdogMilliseconds)) {
            return .illegalDataValue
        }
        if written(RA610Register.streamPeriodMicroseconds)
            && !RA610Limits.streamPeriodMicrosecondsRange.contains(proposed(RA610Register.streamPeriodMicroseconds)) {
            return .illegalDataValue
        }
        let requestStarts = proposed(RA610Register.toolRequestID) != holding[RA610Register.toolRequestID]
        if requestStarts {
            let param = proposed(RA610Register.toolParam)
            switch ToolCommand(rawValue: proposed(RA610Register.toolCommand)) {
            case .screw where !RA610Limits.screwTorqueParamRange.contains(param):
                return .illegalDataValue
            case .press where !RA610Limits.pressForceParamRange.contains(param):
                return .illegalDataValue
            default:
                break
            }
            if toolBusy { return .serverDeviceBusy }
        }
        return nil
    }

    /// Applies a checked write and its effects (RESET edge, heartbeat change, new setpoint, tool request).
    private func applyWrite(address: Int, values: UnsafeBufferPointer<UInt16>) {
        let oldCommand = holding[RA610Register.command]
        let oldHeartbeat = holding[RA610Register.heartbeat]
        let oldRequestID = holding[RA610Register.toolRequestID]
        var targetChanged = false
        holding.withUnsafeMutableBufferPointer { registers in
            for i in 0..<values.count {
                let a = address + i
                if Self.isReserved(a) { continue }
                if a >= RA610Register.target && registers[a] != values[i] { targetChanged = true }
                registers[a] = values[i]
            }
        }
        let command = holding[RA610Register.command]
        if command & RA610CommandBit.enable == 0 { enableArmed = true }
        if oldCommand & RA610CommandBit.reset == 0 && command & RA610CommandBit.reset != 0 { resetEdge() }
        if holding[RA610Register.heartbeat] != oldHeartbeat { heartbeatChangeNanoseconds = timeNanoseconds }
        leaveStreamingIfCommanded()
        if targetChanged && streaming { acceptSetpoint(at: timeNanoseconds) }
        let requestID = holding[RA610Register.toolRequestID]
        if requestID != oldRequestID { startToolRequest(id: requestID) }
    }

    /// The datasheet: clearing STREAM, or setting STOP, leaves streaming at once (the status read by the same 0x17
    /// already shows STREAMING clear), so it acts at the write, before the write's `target[]` is looked at: a target
    /// changed by that write is stored, not followed. STOP also begins its controlled stop here, exactly as the next
    /// `step()` would (writes land between steps).
    private func leaveStreamingIfCommanded() {
        guard streaming else { return }
        let command = commandWord
        if command & RA610CommandBit.stop != 0 && !heldForStop && motion == .tracking {
            beginControlledStop(servosOff: false)
        } else if command & RA610CommandBit.stream == 0 {
            streaming = false
        }
    }

    // MARK: ModbusDevice

    /// 0x03, 0x04, 0x06, 0x10, 0x17. Thread: any (constant).
    public var supportedFunctions: Set<ModbusFunction> {
        [.readHoldingRegisters, .readInputRegisters, .writeSingleRegister, .writeMultipleRegisters,
         .readWriteMultipleRegisters]
    }

    /// The RA-610 has no bit tables: exception 0x01. Thread: the owner.
    public func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode? {
        .illegalFunction
    }

    /// Reads holding (0..27, status mirror 256..295) or input (0..39, 100..103) registers; a range that leaves
    /// the valid addresses → 0x02. Thread: the owner.
    public func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode? {
        guard values.count > 0 else { return .illegalDataValue }
        switch table {
        case .holdingRegisters:
            guard holdingReadable(address, values.count) else { return .illegalDataAddress }
            readHolding(address: address, into: values)
        case .inputRegisters:
            guard inputReadable(address, values.count) else { return .illegalDataAddress }
            var joints = JointWords()
            for i in 0..<values.count { values[i] = inputRegister(address + i, joints: &joints) }
        case .coils, .discreteInputs:
            return .illegalFunction
        }
        return nil
    }

    /// The RA-610 has no coils: exception 0x01. Thread: the owner.
    public func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        .illegalFunction
    }

    /// Writes holding registers 0..27 all or nothing (0x02 address, 0x03 value, 0x06 tool busy). Thread: the owner.
    public func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        guard values.count > 0 else { return .illegalDataValue }
        if let exception = checkWrite(address: address, values: values) { return exception }
        applyWrite(address: address, values: values)
        return nil
    }

    /// 0x17: checks both ranges (0x02), then the values (0x03) and busy (0x06); writes, then reads holding
    /// registers (so the status mirror shows the write's effect). Thread: the owner.
    public func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        guard values.count > 0, readValues.count > 0 else { return .illegalDataValue }
        guard Self.inside(writeAddress, values.count, base: 0, size: RA610Register.holdingCount),
              holdingReadable(readAddress, readValues.count)
        else { return .illegalDataAddress }
        if let exception = checkWrite(address: writeAddress, values: values) { return exception }
        applyWrite(address: writeAddress, values: values)
        readHolding(address: readAddress, into: readValues)
        return nil
    }
}
