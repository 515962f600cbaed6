import Glibc
import LampCellTestSupport
import Motion
import Testing

/// A random smooth path in joint space: joint 0 moves monotonically (so the tool never has a reason to stop), the
/// others follow gentle sinusoids; `count` waypoints after the start point, evenly spaced in the curve parameter.
func randomGentlePath(_ rng: inout SplitMix64, limits: MotionLimits, count: Int) -> (
    start: JointState, waypoints: [SIMD8<Double>]
) {
    var c = SIMD8<Double>.zero, amplitude = SIMD8<Double>.zero, omega = SIMD8<Double>.zero, phase = SIMD8<Double>.zero
    for k in 0..<limits.jointCount {
        c[k] = rng.uniform(-1, 1)
        amplitude[k] = k == 0 ? rng.uniform(0.5, 2) * (rng.next() & 1 == 0 ? 1 : -1) : rng.uniform(0, 0.5)
        omega[k] = rng.uniform(0.5, 2)
        phase[k] = rng.uniform(0, 2 * .pi)
    }
    func point(_ s: Double) -> SIMD8<Double> {
        var p = SIMD8<Double>.zero
        for k in 0..<limits.jointCount {
            p[k] = k == 0 ? c[k] + amplitude[k] * s : c[k] + amplitude[k] * sin(omega[k] * s + phase[k])
        }
        return p
    }
    let waypoints = (1...count).map { point(Double($0) / Double(count)) }
    return (JointState.atRest(point(0)), waypoints)
}

/// Largest normalised speed max_j |v_j| / vmax_j.
func normalisedSpeed(_ s: JointState, _ limits: MotionLimits) -> Double {
    var speed = 0.0
    for k in 0..<limits.jointCount {
        speed = max(speed, abs(s.velocitiesRadiansPerSecond[k]) / limits.maxVelocitiesRadiansPerSecond[k])
    }
    return speed
}

@Test("Path: limits respected, passes within tolerance of each waypoint without stopping, ends at rest")
func pathProperty() throws {
    let tolerance = 0.02
    let dt = 0.5e-3
    var worstFloor = Double.infinity
    for i in 0..<150 {
        let seed = propertySeedBase &+ 0x2_0000_0000 &+ UInt64(i)
        var rng = SplitMix64(seed: seed)
        let n = rng.int(1...motionMaxJointCount)
        let limits = randomLimits(&rng, jointCount: n)
        let count = rng.int(3...motionMaxWaypointCount)
        let (start, waypoints) = randomGentlePath(&rng, limits: limits, count: count)
        let trajectory = try Trajectory.path(
            from: start, through: waypoints, limits: limits, blendToleranceRadians: tolerance)
        let duration = trajectory.durationSeconds
        let context = "path seed 0x\(String(seed, radix: 16))"

        // Independent integration: limits, agreement with sample(), end at rest at the last waypoint.
        var sampleTimes = (0..<8).map { _ in rng.uniform(0, duration) }
        sampleTimes.sort()
        var samples: [JointState] = []
        for t in sampleTimes {
            var s = JointState()
            trajectory.sample(atSeconds: t, into: &s)
            samples.append(s)
        }
        for k in 0..<n {
            let bounds = JointBounds(
                vmax: limits.maxVelocitiesRadiansPerSecond[k], amax: limits.maxAccelerationsRadiansPerSecondSquared[k],
                jmax: limits.maxJerksRadiansPerSecondCubed[k], v0: 0, a0: 0)
            let report = integrateAndCheck(
                trajectory, joint: k, initial: (start.positionsRadians[k], 0, 0), bounds: bounds,
                sampleTimes: sampleTimes, samples: samples)
            #expect(report.failure == nil, "\(context): \(report.failure ?? "")")
            #expect(abs(report.endState.p - waypoints[count - 1][k]) <= targetPositionTolerance, "\(context)")
            #expect(abs(report.endState.v) <= restTolerance && abs(report.endState.a) <= restTolerance, "\(context)")
        }

        // Closest approach to every intermediate waypoint, and when it happens.
        var closest = [Double](repeating: .infinity, count: count - 1)
        var closestTime = [Double](repeating: 0, count: count - 1)
        var states: [JointState] = []
        var state = JointState()
        let steps = Int(duration / dt) + 1
        for step in 0...steps {
            let t = Double(step) * dt
            trajectory.sample(atSeconds: t, into: &state)
            states.append(state)
            for w in 0..<(count - 1) {
                var distance = 0.0
                for k in 0..<n { distance = max(distance, abs(state.positionsRadians[k] - waypoints[w][k])) }
                if distance < closest[w] {
                    closest[w] = distance
                    closestTime[w] = t
                }
            }
        }
        var fastest = 0.0
        for k in 0..<n { fastest = max(fastest, limits.maxVelocitiesRadiansPerSecond[k]) }
        let slack = fastest * dt / 2 + 1e-12
        for w in 0..<(count - 1) {
            #expect(closest[w] <= tolerance + slack, "\(context): waypoint \(w) missed by \(closest[w]) rad")
        }
        // Never stops in between: joint 0 moves monotonically along the curve (the others follow it), so between the
        // closest approaches to the first and the last intermediate waypoint its speed must stay above a good
        // fraction of its mean speed. (Measured: >= 0.4 for these seeds; it would be ~0 if the path stopped.)
        for w in 0..<(count - 1) { #expect(closestTime[w] > 0 && closestTime[w] < duration, "\(context)") }
        let meanSpeed = abs(waypoints[count - 1][0] - start.positionsRadians[0]) / duration
        var floor = Double.infinity
        let from = Int(closestTime[0] / dt), to = Int(closestTime[count - 2] / dt)
        if from <= to {
            for step in from...to { floor = min(floor, abs(states[step].velocitiesRadiansPerSecond[0]) / meanSpeed) }
        }
        #expect(floor >= 0.25, "\(context): joint 0 slows to \(floor) × its mean speed between the waypoints")
        worstFloor = min(worstFloor, floor)
    }
    print("path: lowest joint-0 speed between the first and last intermediate waypoints: \(worstFloor) × mean")
}

@Test("Path from a moving state and with zero blend tolerance")
func pathEdgeCases() throws {
    let limits = try MotionLimits(
        jointCount: 2, maxVelocityRadiansPerSecond: 2, maxAccelerationRadiansPerSecondSquared: 10,
        maxJerkRadiansPerSecondCubed: 100)
    let waypoints: [SIMD8<Double>] = [[0.5, 0.2, 0, 0, 0, 0, 0, 0], [1.0, 0.5, 0, 0, 0, 0, 0, 0], [1.5, 0.6, 0, 0, 0, 0, 0, 0]]
    // Moving at the full vmax with some acceleration (feasible: 1.9 + 5²/200 < 2).
    let moving = JointState(
        positionsRadians: .zero, velocitiesRadiansPerSecond: [1.9, -1.0, 0, 0, 0, 0, 0, 0],
        accelerationsRadiansPerSecondSquared: [-5, 4, 0, 0, 0, 0, 0, 0])
    for (start, tolerance) in [(moving, 0.02), (JointState(), 0.0)] {
        let trajectory = try Trajectory.path(
            from: start, through: waypoints, limits: limits, blendToleranceRadians: tolerance)
        for k in 0..<2 {
            let bounds = JointBounds(
                vmax: 2, amax: 10, jmax: 100, v0: start.velocitiesRadiansPerSecond[k],
                a0: start.accelerationsRadiansPerSecondSquared[k])
            #expect(bounds.isFeasible)
            let report = integrateAndCheck(
                trajectory, joint: k,
                initial: (0, start.velocitiesRadiansPerSecond[k], start.accelerationsRadiansPerSecondSquared[k]),
                bounds: bounds, sampleTimes: [], samples: [])
            #expect(report.failure == nil, "\(report.failure ?? "")")
            #expect(abs(report.endState.p - waypoints[2][k]) <= targetPositionTolerance)
        }
        var closest = Double.infinity
        var minSpeed = Double.infinity
        var s = JointState()
        var t = 0.0
        while t <= trajectory.durationSeconds {
            trajectory.sample(atSeconds: t, into: &s)
            let d = max(abs(s.positionsRadians[0] - waypoints[1][0]), abs(s.positionsRadians[1] - waypoints[1][1]))
            closest = min(closest, d)
            if t > 0.1, t < trajectory.durationSeconds - 0.1 { minSpeed = min(minSpeed, normalisedSpeed(s, limits)) }
            t += 1e-4
        }
        #expect(closest <= tolerance + 2 * 1e-4)
        if tolerance == 0 {
            // No blending: the path stops exactly at each waypoint.
            #expect(minSpeed < 1e-3)
        } else {
            #expect(minSpeed > 0.1)
        }
    }
}

/// A random state whose every joint is feasible (no unavoidable overshoot), so that the strict limits apply.
func randomFeasibleState(_ rng: inout SplitMix64, limits: MotionLimits) -> JointState {
    var state = randomState(&rng, limits: limits)
    for k in 0..<limits.jointCount {
        let bounds = JointBounds(
            vmax: limits.maxVelocitiesRadiansPerSecond[k], amax: limits.maxAccelerationsRadiansPerSecondSquared[k],
            jmax: limits.maxJerksRadiansPerSecondCubed[k], v0: state.velocitiesRadiansPerSecond[k],
            a0: state.accelerationsRadiansPerSecondSquared[k])
        if !bounds.isFeasible { state.accelerationsRadiansPerSecondSquared[k] = 0 }
    }
    return state
}

@Test("Setpoint step per period: sampled every 1 ms and 4 ms, no joint moves more than vmax × period")
func setpointStepPerPeriod() throws {
    for i in 0..<120 {
        let seed = propertySeedBase &+ 0x3_0000_0000 &+ UInt64(i)
        var rng = SplitMix64(seed: seed)
        let n = rng.int(1...motionMaxJointCount)
        let limits = randomLimits(&rng, jointCount: n)
        let start = randomFeasibleState(&rng, limits: limits)
        let trajectory: Trajectory
        switch i % 3 {
        case 0:
            var target = SIMD8<Double>.zero
            for k in 0..<n { target[k] = rng.uniform(-.pi, .pi) }
            trajectory = try Trajectory.pointToPoint(from: start, to: target, limits: limits)
        case 1:
            trajectory = try Trajectory.stop(from: start, limits: limits)
        default:
            let path = randomGentlePath(&rng, limits: limits, count: rng.int(2...8))
            trajectory = try Trajectory.path(from: start, through: path.waypoints, limits: limits)
        }
        for periodSeconds in [1e-3, 4e-3] {
            var previous = JointState()
            var current = JointState()
            trajectory.sample(atSeconds: 0, into: &previous)
            var step = 1
            var worst = 0.0
            while Double(step - 1) * periodSeconds <= trajectory.durationSeconds {
                trajectory.sample(atSeconds: Double(step) * periodSeconds, into: &current)
                for k in 0..<n {
                    let jump = abs(current.positionsRadians[k] - previous.positionsRadians[k])
                    let allowed = limits.maxVelocitiesRadiansPerSecond[k] * periodSeconds
                    worst = max(worst, jump / allowed)
                    if jump > allowed * (1 + limitRelativeTolerance) + limitAbsoluteTolerance {
                        Issue.record("seed 0x\(String(seed, radix: 16)) joint \(k) steps \(jump) > \(allowed)")
                    }
                }
                previous = current
                step += 1
            }
            #expect(worst <= 1 + limitRelativeTolerance)
        }
    }
}
