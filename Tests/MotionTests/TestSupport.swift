import Glibc
import LampCellTestSupport
import Motion

/// Tolerances of the limit checks: a value passes if |x| <= bound · (1 + limitRelativeTolerance) +
/// limitAbsoluteTolerance. The absolute part covers rounding of quantities that should be exactly 0 or exactly at the
/// limit after a handful of floating-point operations on values of order 1..500.
let limitRelativeTolerance = 1e-9
let limitAbsoluteTolerance = 1e-12
/// Position reached within this of the target (rad), and velocity/acceleration this close to 0 at the end.
let targetPositionTolerance = 1e-6
let restTolerance = 1e-9
/// Integrated and sampled positions/velocities/accelerations must agree this closely.
let sampleAgreementTolerance = 1e-9

func within(_ x: Double, _ bound: Double) -> Bool {
    abs(x) <= bound * (1 + limitRelativeTolerance) + limitAbsoluteTolerance
}

/// Per-joint limits of one check, relaxed where the initial state makes an overshoot unavoidable (as documented on
/// `Trajectory`): the relaxed bound applies until the quantity is first back within the strict limit.
struct JointBounds {
    var vmax: Double
    var amax: Double
    var jmax: Double
    /// max(vmax, |v0|, |v0 + a0|a0|/(2 jmax)|) with a0 clipped to amax (the pre-brake), computed here independently.
    var relaxedV: Double
    var relaxedA: Double

    init(vmax: Double, amax: Double, jmax: Double, v0: Double, a0: Double) {
        self.vmax = vmax
        self.amax = amax
        self.jmax = jmax
        // Ramp |a| down to amax at full jerk, then to 0: velocity reached when the acceleration is 0.
        let a = abs(a0)
        let sign: Double = a0 >= 0 ? 1 : -1
        // (With |a0| > amax the pre-brake to amax and the ramp on to 0 at full jerk gain a0²/(2j) in total too.)
        let vNat = v0 + sign * a * a / (2 * jmax)
        relaxedV = max(vmax, abs(v0), abs(vNat))
        relaxedA = max(amax, a)
    }

    var isFeasible: Bool { relaxedV == vmax && relaxedA == amax }
}

/// An independent exact integrator of piecewise-constant jerk, with the checks of the property tests.
struct IntegrationReport {
    var failure: String?
    var endState: (p: Double, v: Double, a: Double) = (0, 0, 0)
    /// End time of the last piece with non-zero jerk.
    var lastJerkSeconds: Double = 0
    var totalSeconds: Double = 0
}

/// Integrates joint `joint` of `trajectory` from `initial` (p0, v0, a0) exactly, piece by piece, checking limits at
/// piece boundaries and at interior velocity extrema, and comparing with `samples` (trajectory.sample at `sampleTimes`).
func integrateAndCheck(
    _ trajectory: Trajectory, joint: Int, initial: (p: Double, v: Double, a: Double), bounds: JointBounds,
    sampleTimes: [Double], samples: [JointState]
) -> IntegrationReport {
    var report = IntegrationReport()
    let pieces = trajectory.jerkPieces(joint: joint)
    var p = initial.p, v = initial.v, a = initial.a
    var t = 0.0
    // The strict velocity bound applies from the first piece boundary at which the state is feasible: |v| and |a|
    // within limits and ramping a to 0 at full jerk does not overshoot vmax (as documented on `Trajectory`).
    func feasible(_ v: Double, _ a: Double) -> Bool {
        within(v, bounds.vmax) && within(a, bounds.amax) && within(v + a * abs(a) / (2 * bounds.jmax), bounds.vmax)
    }
    var vIn = feasible(v, a)
    var aIn = within(a, bounds.amax)
    var nextSample = 0
    func fail(_ message: String) -> IntegrationReport {
        var r = report
        r.failure = "joint \(joint) t=\(t): " + message
        return r
    }
    func check(_ v: Double, _ a: Double) -> String? {
        if !within(v, vIn ? bounds.vmax : bounds.relaxedV) {
            return "|v| = \(abs(v)) > \(vIn ? bounds.vmax : bounds.relaxedV)"
        }
        if !within(a, aIn ? bounds.amax : bounds.relaxedA) {
            return "|a| = \(abs(a)) > \(aIn ? bounds.amax : bounds.relaxedA)"
        }
        return nil
    }
    for piece in pieces {
        if abs(piece.startSeconds - t) > 1e-12 { return fail("pieces not contiguous at \(piece.startSeconds)") }
        let j = piece.jerkRadiansPerSecondCubed
        let d = piece.durationSeconds
        if !within(j, bounds.jmax) { return fail("|j| = \(abs(j)) > \(bounds.jmax)") }
        if let message = check(v, a) { return fail(message) }
        // Interior velocity extremum where a + j·τ = 0.
        if j != 0 {
            let tau = -a / j
            if tau > 0, tau < d {
                let vExt = v + a * tau + 0.5 * j * tau * tau
                if let message = check(vExt, 0) { return fail(message + " (interior)") }
            }
        }
        // Compare with sample() at the sample times in this piece.
        while nextSample < sampleTimes.count, sampleTimes[nextSample] < piece.startSeconds + d {
            let tau = max(0, sampleTimes[nextSample] - piece.startSeconds)
            let ps = p + v * tau + a * tau * tau / 2 + j * tau * tau * tau / 6
            let vs = v + a * tau + j * tau * tau / 2
            let asmp = a + j * tau
            let s = samples[nextSample]
            let scale = max(1, abs(ps))
            if abs(s.positionsRadians[joint] - ps) > sampleAgreementTolerance * scale
                || abs(s.velocitiesRadiansPerSecond[joint] - vs) > sampleAgreementTolerance * max(1, abs(vs))
                || abs(s.accelerationsRadiansPerSecondSquared[joint] - asmp) > sampleAgreementTolerance * max(1, abs(asmp))
            {
                return fail(
                    "sample(\(sampleTimes[nextSample])) = (\(s.positionsRadians[joint]), "
                        + "\(s.velocitiesRadiansPerSecond[joint]), \(s.accelerationsRadiansPerSecondSquared[joint])) "
                        + "but integrated (\(ps), \(vs), \(asmp))")
            }
            nextSample += 1
        }
        p += d * (v + d * (a / 2 + d * j / 6))
        v += d * (a + d * j / 2)
        a += d * j
        t = piece.startSeconds + d
        if j != 0 { report.lastJerkSeconds = t }
        if !vIn, feasible(v, a) { vIn = true }
        if !aIn, within(a, bounds.amax) { aIn = true }
    }
    if let message = check(v, a) { return fail(message + " (end)") }
    report.endState = (p, v, a)
    report.totalSeconds = t
    // Samples at or after the end: at rest at the end position.
    while nextSample < sampleTimes.count {
        let s = samples[nextSample]
        if abs(s.positionsRadians[joint] - p) > sampleAgreementTolerance * max(1, abs(p)) {
            return fail("sample(\(sampleTimes[nextSample])) after end = \(s.positionsRadians[joint]) but integrated \(p)")
        }
        nextSample += 1
    }
    return report
}

/// Monotonic clock, seconds.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Random limits in the ranges of the task: vmax 0.1..6, amax 0.5..30, jmax 5..500.
func randomLimits(_ rng: inout SplitMix64, jointCount: Int) -> MotionLimits {
    var v = SIMD8<Double>.zero, a = SIMD8<Double>.zero, j = SIMD8<Double>.zero
    for k in 0..<jointCount {
        v[k] = rng.uniform(0.1, 6)
        a[k] = rng.uniform(0.5, 30)
        j[k] = rng.uniform(5, 500)
    }
    // The ranges above are valid by construction; a failure here is a bug in the test itself.
    return try! MotionLimits(
        jointCount: jointCount, maxVelocitiesRadiansPerSecond: v, maxAccelerationsRadiansPerSecondSquared: a,
        maxJerksRadiansPerSecondCubed: j)
}

/// A random initial state: positions in ±π, velocities within ±vmax, accelerations within ±amax. With probability
/// 1/2 per joint the acceleration is restricted so that the state is feasible (no unavoidable velocity overshoot).
func randomState(_ rng: inout SplitMix64, limits: MotionLimits) -> JointState {
    var state = JointState()
    for k in 0..<limits.jointCount {
        let vmax = limits.maxVelocitiesRadiansPerSecond[k]
        let amax = limits.maxAccelerationsRadiansPerSecondSquared[k]
        let jmax = limits.maxJerksRadiansPerSecondCubed[k]
        state.positionsRadians[k] = rng.uniform(-.pi, .pi)
        let kind = rng.int(0...9)
        var v = rng.uniform(-vmax, vmax)
        if kind == 0 { v = 0 }
        if kind == 1 { v = vmax * (rng.next() & 1 == 0 ? 1 : -1) }
        var a = rng.uniform(-amax, amax)
        if kind == 0 || kind == 2 { a = 0 }
        if kind >= 5 {
            // Feasible: |v + a|a|/(2j)| <= vmax, i.e. a² <= 2 j (vmax ∓ v) in the direction of a.
            let room = a >= 0 ? vmax - v : vmax + v
            let aLimit = min(amax, (2 * jmax * max(0, room)).squareRoot())
            a = rng.uniform(-1, 1) * aLimit
            if (a >= 0 ? vmax - v : vmax + v) < a * a / (2 * jmax) { a = 0 }
        }
        state.velocitiesRadiansPerSecond[k] = v
        state.accelerationsRadiansPerSecondSquared[k] = a
    }
    return state
}
