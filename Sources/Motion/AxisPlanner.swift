// Single-axis jerk-limited profiles (internal building blocks of `Trajectory`).
//
// Method. Every position profile is built from the same exact segment model (piecewise-constant jerk):
//
//   [pre-brake] [head: velocity change to vc] [cruise at vc for Tc] [tail: velocity change vc -> 0] [dwell]
//
// - pre-brake (only if |a0| > amax): jerk toward a = 0 at full jerk until |a| = amax.
// - a *velocity change* brings (v, a) to (vTarget, 0) in minimum time: jerk ±j up to a peak acceleration (clipped at
//   amax, with a constant-acceleration middle segment), then jerk ∓j down to 0. At most 3 segments.
// - cruise: constant velocity vc, |vc| <= vcMax (the joint's vmax, or vmax/2 for path legs).
// - tail: the velocity change from (vc, 0) to rest.
// - dwell: zero velocity, only used to pad a profile to a longer synchronised duration when the cruise-velocity
//   search finds no exact solution (rare; see `AxisMotionPlan.usedDwellFallback`).
//
// Minimum time: the displacement without cruise, D(vc), is continuous in vc. If the target is beyond D(±vcMax) the
// profile cruises at ±vcMax; otherwise a root of D(vc) = distance is found in each of the (at most three) monotone-ish
// brackets [-vcMax, min(0, vNat)], [min(0, vNat), max(0, vNat)], [max(0, vNat), vcMax] (vNat = velocity reached by
// ramping the acceleration straight to 0) and the shortest candidate is used. This is not always Ruckig-optimal but
// it is close, and by construction never exceeds the limits (see below).
// Fixed duration (synchronisation): a root of D(vc) + vc·(T − T_head(vc) − T_tail(vc)) = distance for vc between 0
// and the minimum-time cruise velocity, accepted if its cruise time is >= 0.
//
// Limits guarantee: a velocity change from (v0, a0) with |a0| <= amax never has |a| > amax or |j| > jmax; its
// velocity stays between min(v0, vTarget, vNat) and max(v0, vTarget, vNat). Hence with |v0| <= vmax and
// |vNat| <= vmax (a "feasible" initial state) the whole profile stays within ±vmax. If |vNat| > vmax the overshoot is
// physically unavoidable; the profile then peaks at exactly vNat (the minimum possible) and is within limits from the
// moment its state is feasible again (|v| <= vmax, |a| <= amax, |v + a|a|/(2 jmax)| <= vmax). The same holds for
// |v0| > vmax and, for acceleration, |a0| > amax (within amax from the moment |a| is back within amax).

/// Position, velocity and acceleration of one axis (radians, rad/s, rad/s²).
struct AxisState: Sendable, Equatable {
    var p: Double
    var v: Double
    var a: Double
}

/// Advances `state` by `duration` seconds at constant `jerk` (exact for piecewise-constant jerk).
@inline(__always)
func advance(_ state: inout AxisState, jerk: Double, duration t: Double) {
    state.p += t * (state.v + t * (state.a * 0.5 + t * jerk * (1.0 / 6.0)))
    state.v += t * (state.a + t * jerk * 0.5)
    state.a += t * jerk
}

/// Limits that one axis profile is planned with. Path legs use different head/tail limits (see Trajectory.swift).
struct AxisSpec: Sendable {
    /// Maximum |cruise velocity|, rad/s.
    var maxCruiseVelocity: Double
    /// Maximum |acceleration| and |jerk| for the pre-brake and the head velocity change.
    var headAcceleration: Double
    var headJerk: Double
    /// Maximum |acceleration| and |jerk| for the tail velocity change (cruise velocity to rest).
    var tailAcceleration: Double
    var tailJerk: Double

    /// The same limits everywhere.
    init(velocity: Double, acceleration: Double, jerk: Double) {
        maxCruiseVelocity = velocity
        headAcceleration = acceleration
        headJerk = jerk
        tailAcceleration = acceleration
        tailJerk = jerk
    }

    init(
        maxCruiseVelocity: Double, headAcceleration: Double, headJerk: Double, tailAcceleration: Double,
        tailJerk: Double
    ) {
        self.maxCruiseVelocity = maxCruiseVelocity
        self.headAcceleration = headAcceleration
        self.headJerk = headJerk
        self.tailAcceleration = tailAcceleration
        self.tailJerk = tailJerk
    }
}

/// A minimum-time velocity change: jerk `jerk` for `t1`, 0 for `t2`, `-jerk` for `t3`.
struct VelocityChange: Sendable {
    var jerk: Double = 0
    var t1: Double = 0
    var t2: Double = 0
    var t3: Double = 0

    var duration: Double { t1 + t2 + t3 }

    /// Advances `state` through the three segments.
    @inline(__always)
    func apply(to state: inout AxisState) {
        advance(&state, jerk: jerk, duration: t1)
        advance(&state, jerk: 0, duration: t2)
        advance(&state, jerk: -jerk, duration: t3)
    }
}

/// The minimum-time jerk-limited change from (v0, a0) to (vTarget, 0). Requires |a0| <= amax, amax > 0, jmax > 0.
func velocityChange(
    fromVelocity v0: Double, acceleration a0: Double, toVelocity vTarget: Double, maxAcceleration amax: Double,
    maxJerk jmax: Double
) -> VelocityChange {
    // Velocity reached by ramping the acceleration straight to zero.
    let vNat = v0 + a0 * abs(a0) / (2 * jmax)
    let s: Double = vTarget >= vNat ? 1 : -1
    // Mirror so that the change goes "up".
    let a0m = s * a0
    let dv = s * (vTarget - v0)
    let peakSquared = jmax * dv + 0.5 * a0m * a0m
    var peak = peakSquared > 0 ? peakSquared.squareRoot() : 0
    var change = VelocityChange()
    change.jerk = s * jmax
    if peak <= amax {
        peak = max(peak, a0m, 0)
        change.t1 = max(0, (peak - a0m) / jmax)
        change.t3 = peak / jmax
    } else {
        change.t1 = max(0, (amax - a0m) / jmax)
        change.t3 = amax / jmax
        change.t2 = max(0, (dv - (2 * amax * amax - a0m * a0m) / (2 * jmax)) / amax)
    }
    return change
}

/// A fully determined single-axis profile (durations and jerks), before it is stored as segments.
struct AxisMotionPlan: Sendable {
    var preBrakeJerk: Double = 0
    var preBrakeDuration: Double = 0
    var head = VelocityChange()
    var cruiseVelocity: Double = 0
    var cruiseDuration: Double = 0
    var tail = VelocityChange()
    var dwellDuration: Double = 0
    /// True when a fixed-duration plan could not be found by the cruise search and the minimum-time profile was
    /// padded with a dwell at rest at the end instead (the joint arrives early and waits).
    var usedDwellFallback = false

    var duration: Double {
        preBrakeDuration + head.duration + cruiseDuration + tail.duration + dwellDuration
    }
    /// End of the head (pre-brake + head velocity change), seconds from the start.
    var headEnd: Double { preBrakeDuration + head.duration }
}

/// One candidate cruise velocity evaluated with the exact segment model, relative to the post-pre-brake state.
private struct Candidate {
    var head: VelocityChange
    var tail: VelocityChange
    /// Displacement of head + tail without cruise.
    var displacement: Double
    /// Duration of head + tail.
    var duration: Double
}

private func evaluate(_ state: AxisState, cruiseVelocity vc: Double, _ spec: AxisSpec) -> Candidate {
    let head = velocityChange(
        fromVelocity: state.v, acceleration: state.a, toVelocity: vc, maxAcceleration: spec.headAcceleration,
        maxJerk: spec.headJerk)
    var s = AxisState(p: 0, v: state.v, a: state.a)
    head.apply(to: &s)
    let tail = velocityChange(
        fromVelocity: vc, acceleration: 0, toVelocity: 0, maxAcceleration: spec.tailAcceleration,
        maxJerk: spec.tailJerk)
    var t = AxisState(p: s.p, v: vc, a: 0)
    tail.apply(to: &t)
    return Candidate(head: head, tail: tail, displacement: t.p, duration: head.duration + tail.duration)
}

/// Finds x in [lo, hi] with f(x) ≈ 0 given f(lo), f(hi) of opposite signs (or one of them zero): Illinois regula falsi
/// with a bisection step whenever progress is slow. Stops when |f| <= tolerance or the bracket cannot shrink.
private func solveBracketed(
    _ lo: Double, _ fLo: Double, _ hi: Double, _ fHi: Double, tolerance: Double, _ f: (Double) -> Double
) -> Double {
    if fLo == 0 { return lo }
    if fHi == 0 { return hi }
    var a = lo, b = hi, fb = fHi
    var ga = fLo, gb = fb  // Illinois-weighted values
    var lastSide = 0
    var best = abs(fLo) < abs(fb) ? a : b
    var bestAbs = min(abs(fLo), abs(fb))
    for iteration in 0..<200 {
        let width = abs(b - a)
        var c: Double
        if iteration % 4 == 3 || ga == gb {
            c = 0.5 * (a + b)
        } else {
            c = (ga * b - gb * a) / (ga - gb)
            if !(c > min(a, b) && c < max(a, b)) { c = 0.5 * (a + b) }
        }
        if c == a || c == b { break }
        let fc = f(c)
        if abs(fc) < bestAbs {
            best = c
            bestAbs = abs(fc)
        }
        if abs(fc) <= tolerance { return c }
        if (fc > 0) == (fb > 0) {
            b = c
            fb = fc
            gb = fc
            if lastSide == -1 { ga *= 0.5 }
            lastSide = -1
        } else {
            a = c
            ga = fc
            if lastSide == 1 { gb *= 0.5 }
            lastSide = 1
        }
        if abs(b - a) >= width { break }  // no progress: at floating-point resolution
    }
    return best
}

/// Residual tolerance (radians) for the cruise-velocity searches, relative to max(1, |distance|).
let axisPositionSolveTolerance = 1e-13

/// Duration slack (s) below which a cruise time is treated as zero rather than infeasible.
let axisDurationSlackSeconds = 1e-12

private func applyPreBrake(_ start: AxisState, _ spec: AxisSpec, into plan: inout AxisMotionPlan) -> AxisState {
    var s = AxisState(p: 0, v: start.v, a: start.a)
    if abs(s.a) > spec.headAcceleration {
        let sign: Double = s.a > 0 ? 1 : -1
        plan.preBrakeJerk = -sign * spec.headJerk
        plan.preBrakeDuration = (abs(s.a) - spec.headAcceleration) / spec.headJerk
        advance(&s, jerk: plan.preBrakeJerk, duration: plan.preBrakeDuration)
        s.a = sign * spec.headAcceleration
    }
    return s
}

/// Keeps candidate `c` (cruising at `vc` for `cruise` s) in `plan` when it is faster than `bestDuration`.
@inline(__always)
private func considerCandidate(
    _ c: Candidate, _ vc: Double, _ cruise: Double, _ bestDuration: inout Double, _ plan: inout AxisMotionPlan
) {
    let d = c.duration + cruise
    if d < bestDuration {
        bestDuration = d
        plan.head = c.head
        plan.tail = c.tail
        plan.cruiseVelocity = vc
        plan.cruiseDuration = cruise
    }
}

/// The minimum-time (within the family described at the top of this file) profile from `start` to rest at `target`.
func planMinimumTime(from start: AxisState, to target: Double, _ spec: AxisSpec) -> AxisMotionPlan {
    var plan = AxisMotionPlan()
    let s = applyPreBrake(start, spec, into: &plan)
    let distance = (target - start.p) - s.p
    let tolerance = axisPositionSolveTolerance * max(1, abs(distance))
    let vMax = spec.maxCruiseVelocity
    let vNat = s.v + s.a * abs(s.a) / (2 * spec.headJerk)
    let m = min(max(min(0, vNat), -vMax), vMax)
    let mm = min(max(max(0, vNat), -vMax), vMax)
    let points = (-vMax, m, mm, vMax)
    let c0 = evaluate(s, cruiseVelocity: points.0, spec)
    let c1 = evaluate(s, cruiseVelocity: points.1, spec)
    let c2 = evaluate(s, cruiseVelocity: points.2, spec)
    let c3 = evaluate(s, cruiseVelocity: points.3, spec)

    // The candidates are compared through inout parameters rather than nested functions capturing `plan` and
    // `bestDuration`: at -Onone captured variables are boxed on the heap, and this runs on the control thread.
    var bestDuration = Double.infinity
    if distance >= c3.displacement {
        considerCandidate(c3, vMax, (distance - c3.displacement) / vMax, &bestDuration, &plan)
    }
    if distance <= c0.displacement {
        considerCandidate(c0, -vMax, (distance - c0.displacement) / -vMax, &bestDuration, &plan)
    }
    let brackets = ((points.0, c0, points.1, c1), (points.1, c1, points.2, c2), (points.2, c2, points.3, c3))
    for index in 0..<3 {
        let (lo, cLo, hi, cHi) = index == 0 ? brackets.0 : index == 1 ? brackets.1 : brackets.2
        guard hi > lo || lo == hi else { continue }
        let fLo = cLo.displacement - distance
        let fHi = cHi.displacement - distance
        guard (fLo <= 0 && fHi >= 0) || (fLo >= 0 && fHi <= 0) else { continue }
        let vc = solveBracketed(lo, fLo, hi, fHi, tolerance: tolerance) { v in
            evaluate(s, cruiseVelocity: v, spec).displacement - distance
        }
        considerCandidate(evaluate(s, cruiseVelocity: vc, spec), vc, 0, &bestDuration, &plan)
    }
    if bestDuration == .infinity {
        // Unreachable for finite inputs (D is continuous, so one of the cases above applies); stop as a safe answer.
        let c = evaluate(s, cruiseVelocity: 0, spec)
        considerCandidate(c, 0, 0, &bestDuration, &plan)
    }
    return plan
}

/// A profile from `start` to rest at `target` lasting exactly `duration` (>= the minimum-time plan's duration, which
/// is passed in as `minimum`): lower cruise velocity found by search; if none fits, `minimum` plus a dwell at rest.
func planWithDuration(
    from start: AxisState, to target: Double, _ spec: AxisSpec, duration: Double, minimum: AxisMotionPlan
) -> AxisMotionPlan {
    var fallback = minimum
    fallback.dwellDuration = max(0, duration - minimum.duration)
    if minimum.duration >= duration - axisDurationSlackSeconds { return fallback }
    // A joint that need not move at all simply holds: not a fallback.
    if minimum.duration == 0 { return fallback }
    fallback.usedDwellFallback = true

    var plan = AxisMotionPlan()
    let s = applyPreBrake(start, spec, into: &plan)
    let distance = (target - start.p) - s.p
    let available = duration - plan.preBrakeDuration
    let tolerance = axisPositionSolveTolerance * max(1, abs(distance))
    let vFast = minimum.cruiseVelocity
    guard vFast != 0 else { return fallback }
    func residual(_ v: Double) -> Double {
        let c = evaluate(s, cruiseVelocity: v, spec)
        return c.displacement + v * (available - c.duration) - distance
    }
    let f0 = residual(0)
    let fFast = residual(vFast)
    guard (f0 <= 0 && fFast >= 0) || (f0 >= 0 && fFast <= 0) else { return fallback }
    let vc = solveBracketed(0, f0, vFast, fFast, tolerance: tolerance, residual)
    let c = evaluate(s, cruiseVelocity: vc, spec)
    var cruise = available - c.duration
    guard cruise >= -axisDurationSlackSeconds else { return fallback }
    cruise = max(0, cruise)
    // Accept only if the displacement really matches (guards against a non-converged search).
    guard abs(c.displacement + vc * cruise - distance) <= 1e3 * tolerance else { return fallback }
    plan.head = c.head
    plan.tail = c.tail
    plan.cruiseVelocity = vc
    plan.cruiseDuration = cruise
    return plan
}

/// The fastest jerk-limited stop from `start`: pre-brake if |a| > amax, then a velocity change to 0. Position is free.
func planStop(from start: AxisState, _ spec: AxisSpec) -> AxisMotionPlan {
    var plan = AxisMotionPlan()
    let s = applyPreBrake(start, spec, into: &plan)
    plan.head = velocityChange(
        fromVelocity: s.v, acceleration: s.a, toVelocity: 0, maxAcceleration: spec.headAcceleration,
        maxJerk: spec.headJerk)
    return plan
}

/// Most segments one axis profile can have: pre-brake 1 + head 3 + cruise 1 + tail 3 + dwell 1.
let axisMaxSegmentCount = 9

/// One axis's profile as stored in a `Trajectory`: start state and up to `axisMaxSegmentCount` constant-jerk
/// segments, in fixed-size storage (no heap). Sampling is O(segments) and allocation-free.
struct AxisProfile: Sendable {
    var start = AxisState(p: 0, v: 0, a: 0)
    var segmentCount = 0
    /// End time of each segment, seconds from the profile start (increasing).
    var segmentEnds = InlineArray<9, Double>(repeating: 0)
    /// Constant jerk of each segment, rad/s³.
    var segmentJerks = InlineArray<9, Double>(repeating: 0)
    /// Position at the end (integrated exactly from the segments, as `sample` does).
    var endPosition: Double = 0
    /// End of the head (pre-brake + first velocity change), seconds.
    var headEnd: Double = 0
    /// True if this axis was padded with a dwell (see `AxisMotionPlan.usedDwellFallback`).
    var usedDwellFallback = false

    var duration: Double { segmentCount > 0 ? segmentEnds[segmentCount - 1] : 0 }

    init() {}

    init(start: AxisState, plan: AxisMotionPlan) {
        self.start = start
        append(jerk: plan.preBrakeJerk, duration: plan.preBrakeDuration)
        append(jerk: plan.head.jerk, duration: plan.head.t1)
        append(jerk: 0, duration: plan.head.t2)
        append(jerk: -plan.head.jerk, duration: plan.head.t3)
        headEnd = duration
        append(jerk: 0, duration: plan.cruiseDuration)
        append(jerk: plan.tail.jerk, duration: plan.tail.t1)
        append(jerk: 0, duration: plan.tail.t2)
        append(jerk: -plan.tail.jerk, duration: plan.tail.t3)
        append(jerk: 0, duration: plan.dwellDuration)
        usedDwellFallback = plan.usedDwellFallback
        var s = start
        var previous = 0.0
        for i in 0..<segmentCount {
            advance(&s, jerk: segmentJerks[i], duration: segmentEnds[i] - previous)
            previous = segmentEnds[i]
        }
        endPosition = s.p
    }

    private mutating func append(jerk: Double, duration: Double) {
        guard duration > 0, segmentCount < axisMaxSegmentCount else { return }
        segmentEnds[segmentCount] = self.duration + duration
        segmentJerks[segmentCount] = jerk
        segmentCount += 1
    }

    /// State and jerk at `t` seconds from the profile start; t <= 0 gives the start state, t >= duration gives rest
    /// at `endPosition` with zero jerk. No allocation.
    @inline(__always)
    func sample(at t: Double) -> (state: AxisState, jerk: Double) {
        var s = start
        var previous = 0.0
        let ends = segmentEnds.span
        let jerks = segmentJerks.span
        for i in 0..<segmentCount {
            let end = ends[i]
            let jerk = jerks[i]
            if t < end {
                advance(&s, jerk: jerk, duration: max(0, t - previous))
                return (s, jerk)
            }
            advance(&s, jerk: jerk, duration: end - previous)
            previous = end
        }
        return (AxisState(p: endPosition, v: 0, a: 0), 0)
    }
}
