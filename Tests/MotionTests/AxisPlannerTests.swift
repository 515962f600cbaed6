import LampCellTestSupport
import Testing

@testable import Motion

// The single-axis planner's internal property that its minimum-time search rests on.

@Test("D(vc), the displacement of head + tail without cruise, never decreases with vc outside [min(0, vNat), max(0, vNat)], and D(min(0, vNat)) <= D(max(0, vNat)): the minimum-time search takes the first of its ordered ranges that holds the distance")
func displacementGrowsWithCruiseVelocity() {
    var rng = SplitMix64(seed: 0x4D6F_6E6F)
    /// Grid points per case over [-vMax, vMax], and cases.
    let gridCount = 400
    let caseCount = 3000
    var worstDrop = 0.0
    for index in 0..<caseCount {
        let limits = randomLimits(&rng, jointCount: 1)
        let v = limits.maxVelocitiesRadiansPerSecond[0]
        let a = limits.maxAccelerationsRadiansPerSecondSquared[0]
        let j = limits.maxJerksRadiansPerSecondCubed[0]
        // Every third case has a path's first-leg limits: full head, half cruise and tail.
        let spec =
            index % 3 == 0
            ? AxisSpec(maxCruiseVelocity: v / 2, headAcceleration: a, headJerk: j, tailAcceleration: a / 2, tailJerk: j / 2)
            : AxisSpec(velocity: v, acceleration: a, jerk: j)
        // Any state the search sees after a pre-brake: |a0| within the head's limit, |v0| up to 1.5 × vmax.
        let state = AxisState(p: 0, v: rng.uniform(-1.5 * v, 1.5 * v), a: rng.uniform(-1, 1) * spec.headAcceleration)
        let vMax = spec.maxCruiseVelocity
        let vNat = state.v + state.a * abs(state.a) / (2 * spec.headJerk)
        let m = min(max(min(0, vNat), -vMax), vMax)
        let mm = min(max(max(0, vNat), -vMax), vMax)
        // The grid, with the bracket ends m and mm in it, and without the inside of [m, mm] (where D may dip: a
        // head that brakes to vc and a tail that brakes again; the braking lobe covers that range).
        var grid = (0...gridCount).map { -vMax + 2 * vMax * Double($0) / Double(gridCount) }.filter { $0 <= m || $0 >= mm }
        grid.append(contentsOf: [m, mm])
        grid.sort()
        var previous = -Double.infinity
        for vc in grid {
            let displacement = evaluate(state, cruiseVelocity: vc, spec).displacement
            let scale = max(1, abs(displacement))
            if displacement < previous - 1e-12 * scale {
                Issue.record("case \(index): D(\(vc)) = \(displacement) < \(previous) from v0 \(state.v) a0 \(state.a), \(spec)")
                return
            }
            worstDrop = max(worstDrop, previous - displacement)
            previous = displacement
        }
    }
    print("D(vc) ordered over \(caseCount) cases × up to \(gridCount + 3) points; largest rounding drop \(worstDrop)")
}
