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

/// 1-joint problems of issue 17's distribution (mt19937(42), see `make bench` item 11) that start while braking
/// toward a target they would pass by braking hardest: (p0, v0, a0, target, vmax, amax, jmax, Ruckig 0.17.3's
/// duration). Before the braking lobe, 74 such plans of 100,000 were 0.9–26 % longer than Ruckig's.
private let brakingTowardTargetCases: [(Double, Double, Double, Double, Double, Double, Double, Double)] = [
    (0.17567476033821539, -0.956255058940979, 1.349170477574671, 0.04820311996456761, 1.6696466210418075, 8.99786625617795, 63.95618129072948, 0.25652121585679294),
    (0.059360705082818654, 0.8276992863247044, -0.5179918953822131, 0.1356266923503573, 1.609327634977449, 9.576287661630783, 107.36485319713222, 0.1800147781561185),
    (-0.2407575027449944, 0.7403778918451211, -0.37280166825297933, -0.1655379612002048, 3.0507218702275436, 6.848200697980593, 77.94961723478337, 0.19963397486946005),
    (0.7191760049208291, 0.6840690969074912, -0.9714107144468171, 0.7687959374307383, 3.0909324196130132, 13.726532452998812, 109.63466432218034, 0.15139967983345304),
    (0.3494659120707557, 0.38434049122851555, -1.0985814564502632, 0.3773179621661944, 1.3583698970186344, 11.222751587870174, 51.98123468656053, 0.15795686202895937),
]

@Test("Time-optimal at 1 joint: plans that start while braking toward their target take Ruckig's (optimal) duration, within limits, and end at rest on it")
func brakingTowardTargetIsTimeOptimal() throws {
    for (p0, v0, a0, target, vmax, amax, jmax, ruckigSeconds) in brakingTowardTargetCases {
        let l = try limits(1, v: vmax, a: amax, j: jmax)
        let start = JointState(
            positionsRadians: [p0, 0, 0, 0, 0, 0, 0, 0], velocitiesRadiansPerSecond: [v0, 0, 0, 0, 0, 0, 0, 0],
            accelerationsRadiansPerSecondSquared: [a0, 0, 0, 0, 0, 0, 0, 0])
        let trajectory = try Trajectory.pointToPoint(from: start, to: [target, 0, 0, 0, 0, 0, 0, 0], limits: l)
        #expect(
            abs(trajectory.durationSeconds - ruckigSeconds) <= 1e-9 * ruckigSeconds,
            "from p \(p0) v \(v0) a \(a0) to \(target): \(trajectory.durationSeconds) s, Ruckig \(ruckigSeconds) s")
        let report = integrateAndCheck(
            trajectory, joint: 0, initial: (p0, v0, a0),
            bounds: JointBounds(vmax: vmax, amax: amax, jmax: jmax, v0: v0, a0: a0), sampleTimes: [], samples: [])
        #expect(report.failure == nil, "\(report.failure ?? "")")
        #expect(abs(report.endState.p - target) < 1e-9 && abs(report.endState.v) < 1e-9 && abs(report.endState.a) < 1e-9)
    }
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

@Test("At and after its duration every joint is exactly at rest (velocity, acceleration and jerk exactly 0), where the motion just before it ends: the arms' ArmAxis.follow compares with 0")
func exactlyAtRestAtTheEnd() throws {
    var rng = SplitMix64(seed: 23)
    for index in 0..<3000 {
        let n = rng.int(1...motionMaxJointCount)
        let limits = randomLimits(&rng, jointCount: n)
        let start = randomState(&rng, limits: limits)
        var target = SIMD8<Double>.zero
        for k in 0..<n { target[k] = rng.uniform(-.pi, .pi) }
        let trajectory: Trajectory
        switch index % 3 {
        case 0: trajectory = try Trajectory.pointToPoint(from: start, to: target, limits: limits)
        case 1: trajectory = try Trajectory.stop(from: start, limits: limits)
        default: trajectory = try Trajectory.path(from: .atRest(start.positionsRadians), through: [target * 0.5, target], limits: limits)
        }
        // Just before the end: the motion the rest state must continue (no jump in position or velocity).
        var before = JointState()
        trajectory.sample(atSeconds: max(0, trajectory.durationSeconds - 1e-7), into: &before)
        var state = JointState()
        for t in [trajectory.durationSeconds, trajectory.durationSeconds + 1e-9, trajectory.durationSeconds + 1] {
            trajectory.sample(atSeconds: t, into: &state)
            #expect(
                state.velocitiesRadiansPerSecond == .zero && state.accelerationsRadiansPerSecondSquared == .zero
                    && state.jerksRadiansPerSecondCubed == .zero,
                "case \(index) at t = \(t): v \(state.velocitiesRadiansPerSecond), a \(state.accelerationsRadiansPerSecondSquared)")
            for k in 0..<n {
                #expect(abs(state.positionsRadians[k] - before.positionsRadians[k]) < 1e-9, "case \(index) joint \(k) jumps at the end")
                #expect(abs(before.velocitiesRadiansPerSecond[k]) < 1e-4, "case \(index) joint \(k) still moving just before the end")
            }
        }
        if index % 3 != 1 {
            for k in 0..<n { #expect(abs(state.positionsRadians[k] - target[k]) < 1e-9, "case \(index) joint \(k)") }
        }
    }
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
