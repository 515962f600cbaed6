// `Trajectory`: multi-joint jerk-limited trajectories, their planners and allocation-free sampling.

/// A planned multi-joint trajectory: up to `motionMaxJointCount` joints, made of up to `motionMaxWaypointCount`
/// synchronised *legs* (a point-to-point move or a stop is one leg; a path has one leg per waypoint).
///
/// Storage is fixed-size (`InlineArray`, no classes, no arrays): a value is about 20 KB. Keep one in place, plan into
/// it (`planPointToPoint`, `planPath`, `planStop`: they write only the legs and joints the plan uses) and sample it,
/// rather than copying it; the static planners return a new value and cost a 20 KB copy more. Planning allocates
/// nothing on the heap except `path`'s waypoint array argument; it may run on any thread, the real-time control thread
/// included (see the timings below). `sample(atSeconds:into:)` and `isFinished(atSeconds:)` use no arrays, no classes
/// and no heap, take no locks and do no I/O: they may be called on the real-time control thread. `jerkPieces`
/// allocates (tests and diagnostics).
///
/// Time is in seconds from the start of the trajectory (t = 0 is the `from` state).
///
/// Limits guarantee (checked by the property tests): if the initial state is *feasible* for a joint — |v0| <= vmax,
/// |a0| <= amax and |v0 + a0·|a0|/(2·jmax)| <= vmax (ramping the acceleration to 0 at full jerk does not overshoot
/// vmax) — then at all times |v| <= vmax, |a| <= amax and |j| <= jmax. Otherwise the overshoot is unavoidable: the
/// trajectory first ramps the acceleration to within amax at full jerk and brings the velocity back within vmax at
/// full jerk/acceleration (the peak |v| is then max(|v0|, |v0 + a0·|a0|/(2·jmax)|), the least possible, and the peak
/// |a| is |a0|). |a| stays within amax from the moment it is back within amax, and |v| within vmax from the moment the
/// state is feasible again in the sense above.
///
/// Synchronisation: all joints of a leg take the slowest joint's minimum time; the others get a lower cruise velocity
/// found by search. For some moving initial states no such profile exists in the planner's profile family; the joint
/// then follows its minimum-time profile and waits at rest at the target until the common end (counted in
/// `synchronisationFallbackCount`; measured ~0.01 % of joints for random moving states, never for a joint starting at
/// rest).
///
/// Measured (x86-64, release build, `make bench` items 4 and 11): planning in place ~4 µs per 6-joint point-to-point
/// move, ~0.4 µs for one joint; ~10 ms for a 16-waypoint path (the blend check dominates); sampling ~0.6 µs
/// (point-to-point) to ~0.9 µs (path).
public struct Trajectory: Sendable {
    /// Number of joints (lanes 0..<jointCount of every `JointState`); 0 for empty storage (`init()`).
    public private(set) var jointCount = 0
    /// Total duration in seconds; at and after it every joint is at rest at its final position.
    public private(set) var durationSeconds: Double = 0
    /// How many (leg, joint) profiles could not be stretched to the synchronised duration by the cruise-velocity search
    /// and instead reach their target early and wait at rest (still within limits and ending together). Diagnostic.
    public private(set) var synchronisationFallbackCount = 0

    var legCount = 0
    var legStarts = InlineArray<16, Double>(repeating: 0)
    var legDurations = InlineArray<16, Double>(repeating: 0)
    /// Axis profiles, flat: leg k, joint j at index k * motionMaxJointCount + j (flat so that sampling reads one
    /// profile in place instead of copying a whole leg).
    var profiles = InlineArray<96, AxisProfile>(repeating: AxisProfile())

    /// The default for `path(...)`'s `blendToleranceRadians`.
    public static let defaultBlendToleranceRadians = 0.01

    /// Samples per blend window when the path planner checks the distance of the blended path to a waypoint.
    static let blendCheckSampleCount = 32
    /// Bisection steps of the path planner's search for the largest blend overlap within tolerance.
    static let blendSearchIterationCount = 24

    /// Empty storage to plan into: no joints, zero duration (sampling gives all lanes 0). Make it once, where a heap
    /// or stack copy of 20 KB does not matter, then plan into it in place. Any thread.
    public init() {}

    /// Makes `self` an empty plan of `jointCount` joints, ready for `appendLeg`. The inline storage is left as it is:
    /// only what the new legs write is ever read.
    private mutating func reset(jointCount n: Int) {
        assert(n >= 1 && n <= motionMaxJointCount, "MotionLimits guarantees 1...motionMaxJointCount joints")
        jointCount = n
        durationSeconds = 0
        synchronisationFallbackCount = 0
        legCount = 0
    }

    // MARK: - Planners

    /// A synchronised point-to-point move: from `state` (any position, velocity and acceleration per joint) to rest at
    /// `targetPositionsRadians`. Every joint is planned jerk-limited; joints faster than the slowest one are slowed
    /// down (lower cruise velocity) so that all joints start together and arrive together at `durationSeconds`.
    /// Any thread; allocation-free. Returns a new value; `planPointToPoint` plans in place.
    /// - Throws: `MotionError.nonFiniteInput` for a NaN/infinite input lane.
    public static func pointToPoint(
        from state: JointState, to targetPositionsRadians: SIMD8<Double>, limits: MotionLimits
    ) throws(MotionError) -> Trajectory {
        var trajectory = Trajectory()
        try trajectory.planPointToPoint(from: state, to: targetPositionsRadians, limits: limits)
        return trajectory
    }

    /// `pointToPoint`, planned into `self` in place (the previous plan is replaced; on a throw `self` is unchanged).
    /// Any thread; allocation-free.
    public mutating func planPointToPoint(
        from state: JointState, to targetPositionsRadians: SIMD8<Double>, limits: MotionLimits
    ) throws(MotionError) {
        let n = limits.jointCount
        try Trajectory.validate(state, jointCount: n)
        try Trajectory.validate(targetPositionsRadians, field: "targetPositionsRadians", jointCount: n)
        reset(jointCount: n)
        var starts = InlineArray<6, AxisState>(repeating: AxisState(p: 0, v: 0, a: 0))
        var specs = InlineArray<6, AxisSpec>(repeating: AxisSpec(velocity: 1, acceleration: 1, jerk: 1))
        for j in 0..<n {
            starts[j] = AxisState(
                p: state.positionsRadians[j], v: state.velocitiesRadiansPerSecond[j],
                a: state.accelerationsRadiansPerSecondSquared[j])
            specs[j] = AxisSpec(
                velocity: limits.maxVelocitiesRadiansPerSecond[j],
                acceleration: limits.maxAccelerationsRadiansPerSecondSquared[j],
                jerk: limits.maxJerksRadiansPerSecondCubed[j])
        }
        appendLeg(starts: starts, targets: targetPositionsRadians, specs: specs, startSeconds: 0)
        durationSeconds = legDurations[0]
    }

    /// A path through `waypoints` (joint positions) that does not stop at the intermediate waypoints and ends at rest
    /// at the last one. Any thread; allocates only what the caller's array already holds.
    ///
    /// Method (blending by superposition): each leg waypoint[k-1] → waypoint[k] is planned as a synchronised
    /// rest-to-rest move with **half** the joint limits (vmax/2, amax/2, jmax/2); the first leg starts from `state`
    /// and, for a joint whose initial state is not within the half limits, may use the full acceleration and jerk to
    /// bring it within vmax/2 before its cruise (that part never overlaps another leg). Consecutive legs
    /// overlap in time: leg k+1 starts before leg k has ended and the joint motion is the sum of the two leg motions
    /// (position = leg k's absolute position + leg k+1's displacement). At most two legs overlap at any time and
    /// overlaps only cover the part of a leg planned with half limits, so the sum never exceeds the full limits.
    ///
    /// Guarantees: per-joint |v| <= vmax, |a| <= amax, |j| <= jmax (for a feasible initial state; see the type's
    /// documentation); the path passes within `blendToleranceRadians` (max over joints) of every intermediate
    /// waypoint — the overlap is the longest one, up to half of the shorter leg, for which a point of the blended path
    /// was checked at plan time to lie that close; ends at rest exactly at the last waypoint. With a zero tolerance
    /// legs do not overlap and the path stops at each waypoint. Joints keep moving through gentle corners; at sharp
    /// corners, or with a tolerance much smaller than a leg's braking distance, the speed dips at the corner.
    /// The price of the guarantee is that each leg cruises at no more than half of vmax.
    /// Returns a new value; `planPath` plans in place.
    /// - Throws: `MotionError.noWaypoints`, `.tooManyWaypoints`, `.nonFiniteInput`, `.invalidBlendTolerance`.
    public static func path(
        from state: JointState, through waypoints: [SIMD8<Double>], limits: MotionLimits,
        blendToleranceRadians: Double = defaultBlendToleranceRadians
    ) throws(MotionError) -> Trajectory {
        var trajectory = Trajectory()
        try trajectory.planPath(
            from: state, through: waypoints, limits: limits, blendToleranceRadians: blendToleranceRadians)
        return trajectory
    }

    /// `path`, planned into `self` in place (the previous plan is replaced; on a throw `self` is unchanged). Any thread;
    /// allocates only what the caller's array already holds.
    public mutating func planPath(
        from state: JointState, through waypoints: [SIMD8<Double>], limits: MotionLimits,
        blendToleranceRadians: Double = defaultBlendToleranceRadians
    ) throws(MotionError) {
        let n = limits.jointCount
        guard !waypoints.isEmpty else { throw .noWaypoints }
        guard waypoints.count <= motionMaxWaypointCount else {
            throw .tooManyWaypoints(count: waypoints.count, maximum: motionMaxWaypointCount)
        }
        guard blendToleranceRadians.isFinite, blendToleranceRadians >= 0 else {
            throw .invalidBlendTolerance(blendToleranceRadians)
        }
        try Trajectory.validate(state, jointCount: n)
        // By index, and the field's name made only for the error: at -Onone `enumerated()` and an interpolated string
        // per waypoint would allocate, and an arm may plan a path on the control thread.
        for index in waypoints.indices {
            try Trajectory.validate(waypoints[index], field: "waypoints[\(index)]", jointCount: n)
        }
        if waypoints.count == 1 {
            return try planPointToPoint(from: state, to: waypoints[0], limits: limits)
        }

        reset(jointCount: n)
        var starts = InlineArray<6, AxisState>(repeating: AxisState(p: 0, v: 0, a: 0))
        var firstSpecs = InlineArray<6, AxisSpec>(repeating: AxisSpec(velocity: 1, acceleration: 1, jerk: 1))
        var halfSpecs = firstSpecs
        for j in 0..<n {
            starts[j] = AxisState(
                p: state.positionsRadians[j], v: state.velocitiesRadiansPerSecond[j],
                a: state.accelerationsRadiansPerSecondSquared[j])
            let v = limits.maxVelocitiesRadiansPerSecond[j]
            let a = limits.maxAccelerationsRadiansPerSecondSquared[j]
            let jerk = limits.maxJerksRadiansPerSecondCubed[j]
            halfSpecs[j] = AxisSpec(velocity: v / 2, acceleration: a / 2, jerk: jerk / 2)
            // The first leg's head may use the full acceleration and jerk, but only where the initial state needs it
            // (it is not feasible for the half limits); otherwise it is planned like every other leg, which keeps
            // the first blend as smooth as the others.
            let v0 = starts[j].v, a0 = starts[j].a
            let feasibleForHalf =
                abs(v0) <= v / 2 && abs(a0) <= a / 2 && abs(v0 + a0 * abs(a0) / jerk) <= v / 2
            firstSpecs[j] =
                feasibleForHalf
                ? halfSpecs[j]
                : AxisSpec(
                    maxCruiseVelocity: v / 2, headAcceleration: a, headJerk: jerk, tailAcceleration: a / 2,
                    tailJerk: jerk / 2)
        }
        // Plan every leg first (start times are fixed afterwards).
        appendLeg(starts: starts, targets: waypoints[0], specs: firstSpecs, startSeconds: 0)
        for k in 1..<waypoints.count {
            for j in 0..<n { starts[j] = AxisState(p: waypoints[k - 1][j], v: 0, a: 0) }
            appendLeg(starts: starts, targets: waypoints[k], specs: halfSpecs, startSeconds: 0)
        }
        // Choose the overlaps and the leg start times.
        var startSeconds = 0.0
        for k in 0..<(waypoints.count - 1) {
            let overlap = blendOverlap(afterLeg: k, corner: waypoints[k], toleranceRadians: blendToleranceRadians)
            startSeconds += legDurations[k] - overlap
            legStarts[k + 1] = startSeconds
        }
        let last = legCount - 1
        durationSeconds = legStarts[last] + legDurations[last]
    }

    /// The fastest jerk-limited stop from `state`: each joint independently ramps its acceleration (to within amax if
    /// needed) and brings its velocity to zero in minimum time with its own limits. Joints are NOT synchronised: each
    /// stops as early as it can and then holds; `durationSeconds` is the slowest joint's stop time. Position is not
    /// controlled (each joint ends where its braking takes it). Any thread; allocation-free. Returns a new value;
    /// `planStop` plans in place.
    /// - Throws: `MotionError.nonFiniteInput`.
    public static func stop(from state: JointState, limits: MotionLimits) throws(MotionError) -> Trajectory {
        var trajectory = Trajectory()
        try trajectory.planStop(from: state, limits: limits)
        return trajectory
    }

    /// `stop`, planned into `self` in place (the previous plan is replaced; on a throw `self` is unchanged). Any thread;
    /// allocation-free.
    public mutating func planStop(from state: JointState, limits: MotionLimits) throws(MotionError) {
        let n = limits.jointCount
        try Trajectory.validate(state, jointCount: n)
        reset(jointCount: n)
        var duration = 0.0
        for j in 0..<n {
            let start = AxisState(
                p: state.positionsRadians[j], v: state.velocitiesRadiansPerSecond[j],
                a: state.accelerationsRadiansPerSecondSquared[j])
            let spec = AxisSpec(
                velocity: limits.maxVelocitiesRadiansPerSecond[j],
                acceleration: limits.maxAccelerationsRadiansPerSecondSquared[j],
                jerk: limits.maxJerksRadiansPerSecondCubed[j])
            profiles[j] = AxisProfile(start: start, plan: Motion.planStop(from: start, spec))
            duration = max(duration, profiles[j].duration)
        }
        legCount = 1
        legStarts[0] = 0
        legDurations[0] = duration
        durationSeconds = duration
    }

    // MARK: - Sampling (real-time safe)

    /// Writes position, velocity, acceleration and jerk of every joint at `t` seconds into `state` (lanes
    /// 0..<jointCount; other lanes are set to 0). t < 0 gives the initial state; t >= `durationSeconds` gives rest at
    /// the final positions. O(legs + joints × segments), no heap allocation, no arrays or classes, no locks:
    /// safe on the real-time control thread.
    public func sample(atSeconds t: Double, into state: inout JointState) {
        var p = SIMD8<Double>.zero
        var v = SIMD8<Double>.zero
        var a = SIMD8<Double>.zero
        var jerk = SIMD8<Double>.zero
        for joint in 0..<jointCount {
            let s = jointSample(joint: joint, atSeconds: t)
            p[joint] = s.state.p
            v[joint] = s.state.v
            a[joint] = s.state.a
            jerk[joint] = s.jerk
        }
        state.positionsRadians = p
        state.velocitiesRadiansPerSecond = v
        state.accelerationsRadiansPerSecondSquared = a
        state.jerksRadiansPerSecondCubed = jerk
    }

    /// True at and after `durationSeconds` (every joint at rest at its final position). Real-time safe.
    public func isFinished(atSeconds t: Double) -> Bool {
        t >= durationSeconds
    }

    /// Final joint positions (lanes 0..<jointCount). Any thread.
    public var finalPositionsRadians: SIMD8<Double> {
        var p = SIMD8<Double>.zero
        for joint in 0..<jointCount { p[joint] = jointSample(joint: joint, atSeconds: durationSeconds).state.p }
        return p
    }

    /// One joint at time `t`: the sum of the (at most two) legs active at `t`. No allocation.
    @inline(__always)
    func jointSample(joint: Int, atSeconds time: Double) -> (state: AxisState, jerk: Double) {
        // Spans borrow the inline storage in place (indexing the InlineArrays of a large `let` directly can make the
        // optimiser copy the whole ~20 KB value).
        let starts = legStarts.span
        let durations = legDurations.span
        let axes = profiles.span
        guard legCount > 0 else { return (AxisState(p: 0, v: 0, a: 0), 0) }  // empty storage
        if time >= durationSeconds {
            // Exactly at rest: a profile's summed segment ends may pass the duration by a rounding step, and sampling
            // there would leave a velocity of ~1e-30 that callers comparing with 0 (ArmAxis.follow) would see.
            return (AxisState(p: axes[(legCount - 1) * motionMaxJointCount + joint].endPosition, v: 0, a: 0), 0)
        }
        let t = max(time, 0)
        var k = 0
        while k + 1 < legCount, starts[k + 1] <= t { k += 1 }
        let index = k * motionMaxJointCount + joint
        var result = axes[index].sample(at: t - starts[k])
        if k > 0, t < starts[k - 1] + durations[k - 1] {
            let previous = axes[index - motionMaxJointCount].sample(at: t - starts[k - 1])
            result.state.p += previous.state.p - axes[index].start.p
            result.state.v += previous.state.v
            result.state.a += previous.state.a
            result.jerk += previous.jerk
        }
        return result
    }

    // MARK: - Diagnostics

    /// One piece of a joint's piecewise-constant jerk.
    public struct JerkPiece: Sendable, Equatable {
        /// Start of the piece, seconds from the trajectory start.
        public var startSeconds: Double
        /// Length of the piece, seconds (> 0).
        public var durationSeconds: Double
        /// Constant jerk during the piece, rad/s³.
        public var jerkRadiansPerSecondCubed: Double
    }

    /// The joint's jerk as consecutive constant pieces covering [0, durationSeconds] (blended legs already summed).
    /// For tests and diagnostics (e.g. an independent integrator); allocates, so not for the real-time thread.
    public func jerkPieces(joint: Int) -> [JerkPiece] {
        guard joint >= 0, joint < jointCount else { return [] }
        var times: [Double] = [0, durationSeconds]
        for k in 0..<legCount {
            let profile = profiles[(k) * motionMaxJointCount + joint]
            times.append(legStarts[k])
            times.append(legStarts[k] + legDurations[k])
            for i in 0..<profile.segmentCount { times.append(legStarts[k] + profile.segmentEnds[i]) }
        }
        times = times.filter { $0 >= 0 && $0 <= durationSeconds }.sorted()
        var pieces: [JerkPiece] = []
        for i in 1..<times.count where times[i] > times[i - 1] {
            let mid = 0.5 * (times[i - 1] + times[i])
            pieces.append(
                JerkPiece(
                    startSeconds: times[i - 1], durationSeconds: times[i] - times[i - 1],
                    jerkRadiansPerSecondCubed: jointSample(joint: joint, atSeconds: mid).jerk))
        }
        return pieces
    }

    // MARK: - Planning helpers

    private static func validate(_ state: JointState, jointCount n: Int) throws(MotionError) {
        try validate(state.positionsRadians, field: "state.positionsRadians", jointCount: n)
        try validate(state.velocitiesRadiansPerSecond, field: "state.velocitiesRadiansPerSecond", jointCount: n)
        try validate(
            state.accelerationsRadiansPerSecondSquared, field: "state.accelerationsRadiansPerSecondSquared",
            jointCount: n)
    }

    private static func validate(
        _ values: SIMD8<Double>, field: @autoclosure () -> String, jointCount n: Int
    ) throws(MotionError) {
        for j in 0..<n where !values[j].isFinite {
            throw .nonFiniteInput(field: field(), joint: j)
        }
    }

    /// Plans one synchronised leg (all joints take the slowest joint's minimum time) and appends it.
    private mutating func appendLeg(
        starts: InlineArray<6, AxisState>, targets: SIMD8<Double>, specs: InlineArray<6, AxisSpec>,
        startSeconds: Double
    ) {
        var minimum = InlineArray<6, AxisMotionPlan>(repeating: AxisMotionPlan())
        var duration = 0.0
        for j in 0..<jointCount {
            minimum[j] = planMinimumTime(from: starts[j], to: targets[j], specs[j])
            duration = max(duration, minimum[j].duration)
        }
        let k = legCount
        for j in 0..<jointCount {
            let plan = planWithDuration(
                from: starts[j], to: targets[j], specs[j], duration: duration, minimum: minimum[j])
            if plan.usedDwellFallback { synchronisationFallbackCount += 1 }
            profiles[(k) * motionMaxJointCount + j] = AxisProfile(start: starts[j], plan: plan)
        }
        legStarts[k] = startSeconds
        legDurations[k] = duration
        legCount += 1
    }

    /// The overlap (seconds) between leg `k` and leg `k + 1`: the largest found, up to half of the shorter leg (and,
    /// for the first leg, not reaching into the part planned with full limits), for which the blended path was seen
    /// within `toleranceRadians` (max over joints) of `corner`.
    private func blendOverlap(afterLeg k: Int, corner: SIMD8<Double>, toleranceRadians: Double) -> Double {
        let firstBase = k * motionMaxJointCount
        let secondBase = (k + 1) * motionMaxJointCount
        let firstDuration = legDurations[k]
        var limit = 0.5 * min(firstDuration, legDurations[k + 1])
        if k == 0 {
            for j in 0..<jointCount { limit = min(limit, firstDuration - profiles[firstBase + j].headEnd) }
        }
        guard limit > 0, toleranceRadians > 0 else { return 0 }

        func closestDistance(_ overlap: Double) -> Double {
            var best = Double.infinity
            let count = Trajectory.blendCheckSampleCount
            for i in 0...count {
                let u = overlap * Double(i) / Double(count)
                var worst = 0.0
                for j in 0..<jointCount {
                    let p1 = profiles[firstBase + j].sample(at: firstDuration - overlap + u).state.p
                    let p2 = profiles[secondBase + j].sample(at: u).state.p
                    worst = max(worst, abs((p1 - corner[j]) + (p2 - profiles[secondBase + j].start.p)))
                }
                best = min(best, worst)
            }
            return best
        }
        if closestDistance(limit) <= toleranceRadians { return limit }
        var good = 0.0
        var bad = limit
        for _ in 0..<Trajectory.blendSearchIterationCount {
            let mid = 0.5 * (good + bad)
            if closestDistance(mid) <= toleranceRadians { good = mid } else { bad = mid }
        }
        return good
    }
}
