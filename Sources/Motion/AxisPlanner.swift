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
// - the braking lobe (`considerBrakingLobe`) uses the same slots differently: its head is a ramp of the braking
//   toward a = 0 that stops short of it, it has no cruise, and its tail is the minimum-time stop from there.
// - dwell: zero velocity, only used to pad a profile to a longer synchronised duration when the cruise-velocity
//   search finds no exact solution (rare; see `AxisMotionPlan.usedDwellFallback`).
//
// Minimum time: the displacement without cruise, D(vc), is continuous in vc. If the target is beyond D(±vcMax) the
// profile cruises at ±vcMax; otherwise a root of D(vc) = distance is found in the one of the three brackets
// [-vcMax, min(0, vNat)], [min(0, vNat), max(0, vNat)], [max(0, vNat), vcMax] (vNat = velocity reached by ramping the
// acceleration straight to 0) whose ends hold the distance (the ends' displacements are ordered). One more candidate
// completes the family: a joint braking toward a target it would pass by braking hardest, but not by ramping its
// braking off at once, stops in a single acceleration lobe (`considerBrakingLobe`; the family's head must end at
// a = 0 and would brake in two). With it, minimum-time plans equal Ruckig's durations (make bench item 11: 100,000
// problems each at 1, 3 and 6 joints, ratio 1.0000), and by construction never exceed the limits (see below).
// Fixed duration (synchronisation): a root of D(vc) + vc·(T − T_head(vc) − T_tail(vc)) = distance for vc between 0
// and the minimum-time family's cruise velocity, accepted if its cruise time is >= 0. (A duration between a braking
// lobe's and the family's fastest has no such root: the lobe then waits at rest at the end, see dwell.)
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
    /// The cruise velocity; for a braking lobe (no cruise), the family's fastest cruise velocity, kept for
    /// `planWithDuration`'s search.
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
    /// End of the head (pre-brake + head velocity change, or a braking lobe's ramp), seconds from the start.
    var headEnd: Double { preBrakeDuration + head.duration }
}

/// One candidate cruise velocity evaluated with the exact segment model, relative to the post-pre-brake state.
struct Candidate {
    var head: VelocityChange
    var tail: VelocityChange
    /// Displacement of head + tail without cruise.
    var displacement: Double
    /// Duration of head + tail.
    var duration: Double
}

/// The head from `state` to (vc, 0) and the tail from there to rest, without cruise: D(vc) and its duration.
/// Internal for `displacementGrowsWithCruiseVelocity`. Any thread; allocation-free.
func evaluate(_ state: AxisState, cruiseVelocity vc: Double, _ spec: AxisSpec) -> Candidate {
    let head = velocityChange(
        fromVelocity: state.v, acceleration: state.a, toVelocity: vc, maxAcceleration: spec.headAcceleration,
        maxJerk: spec.headJerk)
    var s = AxisState(p: 0, v: state.v, a: state.a)
    head.apply(to: &s)
    let tail = velocityChange(
        fromVelocity: vc, acceleration: 0, toVelocity: 0, maxAcceleration: spec.tailAcceleration,
        maxJerk: spec.tailJerk)
    // From rest acceleration to rest acceleration the tail is symmetric (t1 = t3): its mean velocity is vc / 2.
    return Candidate(
        head: head, tail: tail, displacement: s.p + 0.5 * vc * tail.duration, duration: head.duration + tail.duration)
}

/// Finds x in [lo, hi] with f(x) ≈ 0 given f(lo), f(hi) of opposite signs (or one of them zero): Illinois regula falsi
/// with a bisection step whenever the bracket shrinks slowly. Stops when |f| <= tolerance or the bracket cannot shrink.
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
    // Bisect in the fourth step of every four in which the bracket has not halved (Illinois alone converges, but can
    // crawl from one side while its weights recover).
    var checkpointWidth = abs(b - a)
    for iteration in 0..<200 {
        let width = abs(b - a)
        var bisect = ga == gb
        if iteration % 4 == 3 {
            bisect = bisect || width > 0.5 * checkpointWidth
            checkpointWidth = width
        }
        var c: Double
        if bisect {
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

/// The candidate with no cruise whose cruise velocity in [lo, hi] reaches `distance` (lower and upper are the
/// candidates at lo and hi, D(lo) <= distance <= D(hi)), kept in `plan` when it is faster.
private func solveInBracket(
    _ s: AxisState, _ spec: AxisSpec, _ distance: Double, tolerance: Double, _ lo: Double, _ lower: Candidate,
    _ hi: Double, _ upper: Candidate, _ bestDuration: inout Double, _ plan: inout AxisMotionPlan
) {
    let fLo = lower.displacement - distance
    let fHi = upper.displacement - distance
    guard (fLo <= 0 && fHi >= 0) || (fLo >= 0 && fHi <= 0) else { return }
    let vc = solveBracketed(lo, fLo, hi, fHi, tolerance: tolerance) { v in
        evaluate(s, cruiseVelocity: v, spec).displacement - distance
    }
    considerCandidate(evaluate(s, cruiseVelocity: vc, spec), vc, 0, &bestDuration, &plan)
}

/// The braking-lobe profile, when it is faster than `plan`: for a joint that is decelerating (`s.a` against the
/// velocity it would keep if its acceleration went straight to 0, `vNat`) toward a target it would pass by braking
/// hardest but not by ramping the braking off at once. It brakes less first (jerk toward a = 0 for a fraction `u` of
/// the way), then stops in minimum time from there: one acceleration lobe, the velocity monotone. The family's
/// profiles must bring the acceleration to 0 at the head's end, and so brake in two lobes; for these targets the lobe is
/// faster (up to 26 % on issue 17's problems). The displacement grows with `u` from the hardest stop's (u = 0) to the
/// one that ramps the braking off at once (u = 1); the `u` that reaches `distance` is found by search.
/// `plan.cruiseVelocity` is left as it is: `planWithDuration` searches the family from it. `vNat` is the caller's.
private func considerBrakingLobe(
    _ s: AxisState, vNat: Double, _ distance: Double, _ spec: AxisSpec, tolerance: Double,
    _ bestDuration: inout Double, _ plan: inout AxisMotionPlan
) {
    // The lobe uses one set of limits throughout (a path's first leg may have other head limits: not for it).
    guard s.a != 0, spec.headJerk == spec.tailJerk, spec.headAcceleration == spec.tailAcceleration else { return }
    let jerk = spec.headJerk
    guard (vNat > 0 && s.a < 0) || (vNat < 0 && s.a > 0) else { return }
    // Only from a feasible state: easing off the braking above vmax would stay above it longer than the family does.
    guard abs(s.v) <= spec.maxCruiseVelocity, abs(vNat) <= spec.maxCruiseVelocity else { return }
    let rampJerk: Double = s.a < 0 ? jerk : -jerk
    // A named struct, not a tuple: at -Onone a tuple type's metadata is made at run time on first use (under the
    // runtime's lock), and this runs on the control thread.
    struct Lobe {
        var ramp: Double
        var stop: VelocityChange
        var displacement: Double
    }
    func lobe(_ u: Double) -> Lobe {
        let ramp = abs(s.a) * u / jerk
        var state = AxisState(p: 0, v: s.v, a: s.a)
        advance(&state, jerk: rampJerk, duration: ramp)
        state.a = s.a * (1 - u)
        let stop = velocityChange(
            fromVelocity: state.v, acceleration: state.a, toVelocity: 0, maxAcceleration: spec.tailAcceleration,
            maxJerk: jerk)
        stop.apply(to: &state)
        return Lobe(ramp: ramp, stop: stop, displacement: state.p)
    }
    let f0 = lobe(0).displacement - distance
    let f1 = lobe(1).displacement - distance
    guard (f0 <= 0 && f1 >= 0) || (f0 >= 0 && f1 <= 0) else { return }
    let u = solveBracketed(0, f0, 1, f1, tolerance: tolerance) { lobe($0).displacement - distance }
    let found = lobe(u)
    guard abs(found.displacement - distance) <= 1e3 * tolerance else { return }
    let duration = found.ramp + found.stop.duration
    guard duration < bestDuration else { return }
    bestDuration = duration
    plan.head = VelocityChange(jerk: rampJerk, t1: found.ramp, t2: 0, t3: 0)
    plan.cruiseDuration = 0
    plan.tail = found.stop
}

/// The minimum-time profile from `start` to rest at `target`: the fastest of the family described at the top of this
/// file and the braking lobe (`considerBrakingLobe`).
func planMinimumTime(from start: AxisState, to target: Double, _ spec: AxisSpec) -> AxisMotionPlan {
    var plan = AxisMotionPlan()
    let s = applyPreBrake(start, spec, into: &plan)
    let distance = (target - start.p) - s.p
    let tolerance = axisPositionSolveTolerance * max(1, abs(distance))
    let vMax = spec.maxCruiseVelocity
    let vNat = s.v + s.a * abs(s.a) / (2 * spec.headJerk)
    let m = min(max(min(0, vNat), -vMax), vMax)
    let mm = min(max(max(0, vNat), -vMax), vMax)

    // D(vc) does not decrease with vc outside [m, mm] (a higher cruise velocity never ends nearer), and D(m) <= D(mm)
    // (`displacementGrowsWithCruiseVelocity` tests both), so the ranges of distance below are ordered and exactly one
    // holds `distance`: cruise at +vMax, a root in [mm, vMax], in [m, mm] (where D may dip, and the braking lobe is
    // faster when it applies), in [-vMax, m], or cruise at -vMax. They are tried from the top down, and evaluated
    // only as far as needed.
    // The candidates are compared through inout parameters rather than nested functions capturing `plan` and
    // `bestDuration`: at -Onone captured variables are boxed on the heap, and this runs on the control thread.
    var bestDuration = Double.infinity
    let c3 = evaluate(s, cruiseVelocity: vMax, spec)
    if distance >= c3.displacement {
        considerCandidate(c3, vMax, (distance - c3.displacement) / vMax, &bestDuration, &plan)
        return plan
    }
    let c2 = evaluate(s, cruiseVelocity: mm, spec)
    if distance >= c2.displacement {
        solveInBracket(s, spec, distance, tolerance: tolerance, mm, c2, vMax, c3, &bestDuration, &plan)
        return plan
    }
    let c1 = m == mm ? c2 : evaluate(s, cruiseVelocity: m, spec)  // equal when vNat = 0
    if distance >= c1.displacement {
        solveInBracket(s, spec, distance, tolerance: tolerance, m, c1, mm, c2, &bestDuration, &plan)
        considerBrakingLobe(s, vNat: vNat, distance, spec, tolerance: tolerance, &bestDuration, &plan)
        return plan
    }
    let c0 = evaluate(s, cruiseVelocity: -vMax, spec)
    if distance <= c0.displacement {
        considerCandidate(c0, -vMax, (distance - c0.displacement) / -vMax, &bestDuration, &plan)
    } else {
        solveInBracket(s, spec, distance, tolerance: tolerance, -vMax, c0, m, c1, &bestDuration, &plan)
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
    /// End of the head (pre-brake + first velocity change, or a braking lobe's ramp), seconds.
    var headEnd: Double = 0
    /// True if this axis was padded with a dwell (see `AxisMotionPlan.usedDwellFallback`).
    var usedDwellFallback = false

    /// End of the last segment, seconds (0 without segments). Stored: reading `segmentEnds` through a computed
    /// property copies the whole inline array.
    private(set) var duration: Double = 0

    init() {}

    init(start: AxisState, plan: AxisMotionPlan) {
        self.start = start
        var end = start
        append(jerk: plan.preBrakeJerk, duration: plan.preBrakeDuration, &end)
        append(jerk: plan.head.jerk, duration: plan.head.t1, &end)
        append(jerk: 0, duration: plan.head.t2, &end)
        append(jerk: -plan.head.jerk, duration: plan.head.t3, &end)
        headEnd = duration
        append(jerk: 0, duration: plan.cruiseDuration, &end)
        append(jerk: plan.tail.jerk, duration: plan.tail.t1, &end)
        append(jerk: 0, duration: plan.tail.t2, &end)
        append(jerk: -plan.tail.jerk, duration: plan.tail.t3, &end)
        append(jerk: 0, duration: plan.dwellDuration, &end)
        usedDwellFallback = plan.usedDwellFallback
        endPosition = end.p
    }

    /// Appends a segment and advances `end` through it (exactly as `sample` integrates).
    @inline(__always)
    private mutating func append(jerk: Double, duration segment: Double, _ end: inout AxisState) {
        guard segment > 0, segmentCount < axisMaxSegmentCount else { return }
        let segmentEnd = duration + segment
        segmentEnds[segmentCount] = segmentEnd
        segmentJerks[segmentCount] = jerk
        segmentCount += 1
        // `sample` advances by (end - previous end), which need not equal `segment` in floating point.
        advance(&end, jerk: jerk, duration: segmentEnd - duration)
        duration = segmentEnd
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
