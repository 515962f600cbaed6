import Glibc
import LampCellTestSupport
import Motion
import Testing

private func limits(
    _ n: Int, v: Double = 1, a: Double = 2, j: Double = 10
) throws -> MotionLimits {
    try MotionLimits(
        jointCount: n, maxVelocityRadiansPerSecond: v, maxAccelerationRadiansPerSecondSquared: a,
        maxJerkRadiansPerSecondCubed: j)
}

@Test("Rest-to-rest durations match the textbook double-S formulas (time-optimal for these cases)")
func restToRestDurations() throws {
    let l = try limits(1)
    // vmax and amax reached: T = d/v + v/a + a/j = 3 + 0.5 + 0.2.
    let long = try Trajectory.pointToPoint(from: JointState(), to: [3, 0, 0, 0, 0, 0, 0, 0], limits: l)
    #expect(abs(long.durationSeconds - 3.7) < 1e-9)
    // Neither reached: T = 4 (d / (2 j))^(1/3).
    let short = try Trajectory.pointToPoint(from: JointState(), to: [-0.01, 0, 0, 0, 0, 0, 0, 0], limits: l)
    #expect(abs(short.durationSeconds - 4 * cbrt(0.01 / 20)) < 1e-9)
    // Peak velocity of the long move is exactly vmax, at mid-time.
    var s = JointState()
    long.sample(atSeconds: 1.85, into: &s)
    #expect(abs(s.velocitiesRadiansPerSecond[0] - 1) < 1e-12)
    #expect(abs(s.positionsRadians[0] - 1.5) < 1e-12)
}

@Test("Zero-length move from rest takes no time and holds the position")
func zeroLengthMove() throws {
    let start: SIMD8<Double> = [0.3, -0.2, 1, 0, 0, 0, 0, 0]
    let trajectory = try Trajectory.pointToPoint(from: .atRest(start), to: start, limits: try limits(3))
    #expect(trajectory.durationSeconds == 0)
    #expect(trajectory.isFinished(atSeconds: 0))
    var s = JointState()
    trajectory.sample(atSeconds: 0.5, into: &s)
    #expect(s.positionsRadians == start)
    #expect(s.velocitiesRadiansPerSecond == .zero)
}

@Test("Synchronisation: a short move is stretched to the long move's duration with a lower peak velocity")
func synchronisedJoints() throws {
    let l = try limits(2)
    let trajectory = try Trajectory.pointToPoint(from: JointState(), to: [3, 0.5, 0, 0, 0, 0, 0, 0], limits: l)
    #expect(abs(trajectory.durationSeconds - 3.7) < 1e-9)
    #expect(trajectory.synchronisationFallbackCount == 0)
    var peak = SIMD2<Double>(0, 0)
    var s = JointState()
    var t = 0.0
    var stillMoving = false
    while t <= trajectory.durationSeconds {
        trajectory.sample(atSeconds: t, into: &s)
        peak[0] = max(peak[0], abs(s.velocitiesRadiansPerSecond[0]))
        peak[1] = max(peak[1], abs(s.velocitiesRadiansPerSecond[1]))
        if t > trajectory.durationSeconds - 0.05, abs(s.velocitiesRadiansPerSecond[1]) > 1e-6 { stillMoving = true }
        t += 1e-3
    }
    #expect(abs(peak[0] - 1) < 1e-9)
    #expect(peak[1] < 0.2)  // 0.5 rad in 3.7 s
    #expect(stillMoving)  // joint 1 arrives together with joint 0, not early
    trajectory.sample(atSeconds: trajectory.durationSeconds, into: &s)
    #expect(abs(s.positionsRadians[1] - 0.5) < 1e-9)
}

@Test("Initial velocity and acceleration beyond the limits are brought back and then respected")
func beyondLimitsInitialState() throws {
    let l = try limits(2, v: 1, a: 2, j: 10)
    let start = JointState(
        positionsRadians: .zero, velocitiesRadiansPerSecond: [2.5, -0.5, 0, 0, 0, 0, 0, 0],
        accelerationsRadiansPerSecondSquared: [0, -3.5, 0, 0, 0, 0, 0, 0])
    let trajectory = try Trajectory.pointToPoint(from: start, to: [4, 0, 0, 0, 0, 0, 0, 0], limits: l)
    var s = JointState()
    var backWithinV = false
    var backWithinA = false
    var t = 0.0
    while t <= trajectory.durationSeconds + 0.01 {
        trajectory.sample(atSeconds: t, into: &s)
        let v0 = abs(s.velocitiesRadiansPerSecond[0])
        let a1 = abs(s.accelerationsRadiansPerSecondSquared[1])
        if backWithinV { #expect(v0 <= 1 + 1e-9) } else if v0 <= 1 { backWithinV = true }
        if backWithinA { #expect(a1 <= 2 + 1e-9) } else if a1 <= 2 { backWithinA = true }
        #expect(v0 <= 2.5 + 1e-9)
        #expect(a1 <= 3.5 + 1e-9)
        t += 1e-3
    }
    #expect(backWithinV && backWithinA)
    #expect(abs(s.positionsRadians[0] - 4) < 1e-9 && abs(s.positionsRadians[1]) < 1e-9)
}

@Test("Stop: joints stop independently, as fast as their limits allow")
func stopExample() throws {
    let l = try limits(2, v: 1, a: 2, j: 10)
    let start = JointState(
        positionsRadians: .zero, velocitiesRadiansPerSecond: [1, 0.1, 0, 0, 0, 0, 0, 0])
    let trajectory = try Trajectory.stop(from: start, limits: l)
    // From v = 1 at rest acceleration: T = v/a + a/j = 0.7 s (amax reached since v·j = 10 > a² = 4).
    #expect(abs(trajectory.durationSeconds - 0.7) < 1e-9)
    // Joint 1 (0.1 rad/s, amax not reached): T = 2 sqrt(v/j) = 0.2 s, then it holds.
    var s = JointState()
    trajectory.sample(atSeconds: 0.2 + 1e-9, into: &s)
    #expect(abs(s.velocitiesRadiansPerSecond[1]) < 1e-9)
    #expect(abs(s.velocitiesRadiansPerSecond[0]) > 0.1)
    // Distance of joint 0: v·T/2 for a symmetric velocity change.
    trajectory.sample(atSeconds: 5, into: &s)
    #expect(abs(s.positionsRadians[0] - 0.35) < 1e-9)
}

@Test("Invalid inputs are rejected with errors that name the field")
func invalidInputs() throws {
    #expect(throws: MotionError.invalidJointCount(0)) { try limits(0) }
    #expect(throws: MotionError.invalidJointCount(7)) { try limits(7) }
    #expect(
        throws: MotionError.invalidLimit(joint: 0, field: "maxVelocitiesRadiansPerSecond", value: 0)
    ) { try limits(1, v: 0) }
    #expect(
        throws: MotionError.invalidLimit(joint: 0, field: "maxAccelerationsRadiansPerSecondSquared", value: -1)
    ) { try limits(1, a: -1) }
    #expect(throws: MotionError.self) { try limits(1, j: .nan) }
    #expect(throws: MotionError.self) { try limits(1, j: .infinity) }
    let l = try limits(2)
    var bad = JointState()
    bad.velocitiesRadiansPerSecond[1] = .nan
    #expect(throws: MotionError.nonFiniteInput(field: "state.velocitiesRadiansPerSecond", joint: 1)) {
        try Trajectory.pointToPoint(from: bad, to: .zero, limits: l)
    }
    #expect(throws: MotionError.nonFiniteInput(field: "state.velocitiesRadiansPerSecond", joint: 1)) {
        try Trajectory.stop(from: bad, limits: l)
    }
    #expect(throws: MotionError.nonFiniteInput(field: "targetPositionsRadians", joint: 0)) {
        try Trajectory.pointToPoint(from: JointState(), to: [.infinity, 0, 0, 0, 0, 0, 0, 0], limits: l)
    }
    // A NaN in an unused lane is ignored.
    _ = try Trajectory.pointToPoint(from: JointState(), to: [1, 1, .nan, 0, 0, 0, 0, 0], limits: l)
    #expect(throws: MotionError.noWaypoints) { try Trajectory.path(from: JointState(), through: [], limits: l) }
    let many = [SIMD8<Double>](repeating: .zero, count: motionMaxWaypointCount + 1)
    #expect(throws: MotionError.tooManyWaypoints(count: 17, maximum: 16)) {
        try Trajectory.path(from: JointState(), through: many, limits: l)
    }
    #expect(throws: MotionError.nonFiniteInput(field: "waypoints[1]", joint: 0)) {
        try Trajectory.path(from: JointState(), through: [.zero, [.nan, 0, 0, 0, 0, 0, 0, 0]], limits: l)
    }
    #expect(throws: MotionError.invalidBlendTolerance(-1)) {
        try Trajectory.path(from: JointState(), through: [.zero, .zero], limits: l, blendToleranceRadians: -1)
    }
    #expect("\(MotionError.tooManyWaypoints(count: 17, maximum: 16))".contains("17"))
}

@Test("Planning in place: a plan into storage that held a longer plan (more joints, more legs) is the same as a fresh one; a refused plan leaves the storage as it was")
func planningInPlace() throws {
    var rng = SplitMix64(seed: 11)
    let six = randomLimits(&rng, jointCount: 6)
    var storage = Trajectory()
    #expect(storage.jointCount == 0 && storage.durationSeconds == 0)
    var waypoints: [SIMD8<Double>] = []
    for _ in 0..<motionMaxWaypointCount {
        var point = SIMD8<Double>.zero
        for k in 0..<6 { point[k] = rng.uniform(-.pi, .pi) }
        waypoints.append(point)
    }
    let start = randomFeasibleState(&rng, limits: six)
    try storage.planPath(from: start, through: waypoints, limits: six)
    #expect(storage.durationSeconds > 0)

    // Every kind of plan into the used storage, against the same plan made fresh, sampled alike.
    func expectSame(_ planned: Trajectory, _ fresh: Trajectory, _ what: String) {
        #expect(planned.jointCount == fresh.jointCount, "\(what)")
        #expect(planned.durationSeconds == fresh.durationSeconds, "\(what)")
        var a = JointState(), b = JointState()
        for i in 0...200 {
            let t = (fresh.durationSeconds + 0.1) * Double(i) / 200
            planned.sample(atSeconds: t, into: &a)
            fresh.sample(atSeconds: t, into: &b)
            if a != b {
                Issue.record("\(what): differs at t = \(t) s")
                return
            }
        }
    }
    let one = randomLimits(&rng, jointCount: 1)
    let moving = randomFeasibleState(&rng, limits: one)
    try storage.planPointToPoint(from: moving, to: [0.7, 0, 0, 0, 0, 0, 0, 0], limits: one)
    expectSame(storage, try Trajectory.pointToPoint(from: moving, to: [0.7, 0, 0, 0, 0, 0, 0, 0], limits: one), "1-joint move")
    try storage.planStop(from: start, limits: six)
    expectSame(storage, try Trajectory.stop(from: start, limits: six), "6-joint stop")
    try storage.planPath(from: moving, through: [[0.2, 0, 0, 0, 0, 0, 0, 0], [-0.4, 0, 0, 0, 0, 0, 0, 0]], limits: one)
    expectSame(
        storage, try Trajectory.path(from: moving, through: [[0.2, 0, 0, 0, 0, 0, 0, 0], [-0.4, 0, 0, 0, 0, 0, 0, 0]], limits: one),
        "1-joint path")

    // A refused plan changes nothing.
    let before = storage
    var bad = start
    bad.positionsRadians[0] = .nan
    #expect(throws: MotionError.nonFiniteInput(field: "state.positionsRadians", joint: 0)) {
        try storage.planPointToPoint(from: bad, to: .zero, limits: six)
    }
    #expect(throws: MotionError.noWaypoints) { try storage.planPath(from: start, through: [], limits: six) }
    expectSame(storage, before, "after refused plans")
}

@Test("Timing (printed, not asserted): planning µs per 6-joint plan and sampling ns per sample")
func timing() throws {
    var rng = SplitMix64(seed: 7)
    let l = randomLimits(&rng, jointCount: 6)
    var trajectories: [Trajectory] = []
    var states: [(JointState, SIMD8<Double>)] = []
    for _ in 0..<500 {
        var target = SIMD8<Double>.zero
        for k in 0..<6 { target[k] = rng.uniform(-.pi, .pi) }
        states.append((randomFeasibleState(&rng, limits: l), target))
    }
    let planStart = monotonicSeconds()
    for (state, target) in states {
        trajectories.append(try Trajectory.pointToPoint(from: state, to: target, limits: l))
    }
    let planMicroseconds = (monotonicSeconds() - planStart) / Double(states.count) * 1e6
    let trajectory = trajectories[0]
    var s = JointState()
    var checksum = 0.0
    let sampleCount = 100_000
    let sampleStart = monotonicSeconds()
    for i in 0..<sampleCount {
        trajectory.sample(atSeconds: trajectory.durationSeconds * Double(i) / Double(sampleCount), into: &s)
        checksum += s.positionsRadians[5]
    }
    let sampleNanoseconds = (monotonicSeconds() - sampleStart) / Double(sampleCount) * 1e9
    print(
        "timing (this build's configuration): \(Int(planMicroseconds)) µs per 6-joint point-to-point plan, "
            + "\(Int(sampleNanoseconds)) ns per 6-joint sample (checksum \(checksum))")
    #expect(checksum.isFinite)
}
