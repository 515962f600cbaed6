import Testing

@testable import PackML

private let second: UInt64 = 1_000_000_000
private let minute: UInt64 = 60 * second
private let tolerance = 1e-12

private func close(_ value: Double?, _ expected: Double) -> Bool {
    guard let value else { return false }
    return abs(value - expected) < tolerance
}

@Suite("OEE")
struct OEETests {
    @Test("hand-computed: 60 min planned, 50 min run, 280 lamps at 10 s ideal, 270 good")
    func handComputed() {
        let result = OEECalculator.compute(
            plannedNanoseconds: 60 * minute, runNanoseconds: 50 * minute, idealCycleNanoseconds: 10 * second,
            totalCount: 280, goodCount: 270)
        // A = 50/60 = 5/6; P = 280 × 10 s / 3000 s = 14/15; Q = 270/280 = 27/28; OEE = 1890/2520 = 3/4.
        #expect(close(result.availability, 5.0 / 6.0))
        #expect(close(result.performance, 14.0 / 15.0))
        #expect(close(result.performanceUncapped, 14.0 / 15.0))
        #expect(close(result.quality, 27.0 / 28.0))
        #expect(close(result.oee, 0.75))
    }

    @Test("zero denominators give nil, not 0")
    func zeroDenominators() {
        let nothing = OEECalculator.compute(
            plannedNanoseconds: 0, runNanoseconds: 0, idealCycleNanoseconds: 10 * second, totalCount: 0,
            goodCount: 0)
        #expect(nothing == OEEResult(availability: nil, performance: nil, performanceUncapped: nil, quality: nil, oee: nil))

        let noRun = OEECalculator.compute(
            plannedNanoseconds: minute, runNanoseconds: 0, idealCycleNanoseconds: 10 * second, totalCount: 0,
            goodCount: 0)
        #expect(noRun.availability == 0)
        #expect(noRun.performance == nil && noRun.quality == nil && noRun.oee == nil)

        let noIdeal = OEECalculator.compute(
            plannedNanoseconds: minute, runNanoseconds: minute, idealCycleNanoseconds: 0, totalCount: 5,
            goodCount: 5)
        #expect(noIdeal.availability == 1 && noIdeal.quality == 1)
        #expect(noIdeal.performance == nil && noIdeal.oee == nil)
    }

    @Test("performance is capped at 1.0; the uncapped ratio is kept")
    func performanceCap() {
        // 10 lamps at an ideal 10 s in 50 s of run time: the ideal is slower than reality.
        let result = OEECalculator.compute(
            plannedNanoseconds: 100 * second, runNanoseconds: 50 * second, idealCycleNanoseconds: 10 * second,
            totalCount: 10, goodCount: 10)
        #expect(result.performance == 1.0)
        #expect(close(result.performanceUncapped, 2.0))
        #expect(close(result.oee, 0.5))
    }

    @Test("planned states are the ones not Undefined/Stopped/Idle/Aborted/Complete")
    func plannedStates() {
        let notPlanned: Set<PackMLState> = [.undefined, .stopped, .idle, .aborted, .complete]
        for state in PackMLState.allCases {
            #expect(OEECalculator.isPlanned(state) == !notPlanned.contains(state), "\(state)")
        }
        var calculator = OEECalculator(idealCycleNanoseconds: second)
        calculator.accumulate(elapsedNanoseconds: 5, state: .execute, mode: .production, orderActive: false)
        calculator.accumulate(elapsedNanoseconds: 7, state: .execute, mode: .maintenance, orderActive: true)
        calculator.accumulate(elapsedNanoseconds: 11, state: .idle, mode: .production, orderActive: true)
        #expect(calculator.plannedNanoseconds == 0 && calculator.runNanoseconds == 0)
        calculator.accumulate(elapsedNanoseconds: 13, state: .held, mode: .production, orderActive: true)
        calculator.accumulate(elapsedNanoseconds: 17, state: .execute, mode: .production, orderActive: true)
        #expect(calculator.plannedNanoseconds == 30 && calculator.runNanoseconds == 17)
    }

    @Test("the unit accumulates an order's planned and run time from its states (scripted, injected times)")
    func unitScenario() throws {
        var t: UInt64 = 3 * second
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, nowNanoseconds: t)
        func after(_ duration: UInt64) {
            t += duration
            unit.advance(toNanoseconds: t)
        }
        try #require(unit.assignOrder(try ProductionOrder(id: "PO-OEE", variantCode: 2, quantity: 270)).isSuccess)
        after(10 * minute)  // Idle: not planned
        _ = unit.command(.start)
        after(4 * minute)  // Starting: planned
        _ = unit.stateComplete()
        after(30 * minute)  // Execute: run
        for index in 0..<150 { unit.recordProcessedLamp(defective: index < 10) }
        #expect(unit.applyInterlock(starved: true, blocked: false) == .suspending)
        after(1 * minute)  // Suspending
        _ = unit.stateComplete()
        after(3 * minute)  // Suspended
        #expect(unit.applyInterlock(starved: false, blocked: false) == .unsuspending)
        after(1 * minute)  // Unsuspending
        _ = unit.stateComplete()
        after(20 * minute)  // Execute: run
        for _ in 0..<129 { unit.recordProcessedLamp(defective: false) }
        #expect(unit.state == .execute)
        unit.recordProcessedLamp(defective: false)  // the 270th good lamp
        #expect(unit.state == .completing)
        after(1 * minute)  // Completing: planned
        #expect(unit.stateComplete() == .success(.complete))
        after(5 * minute)  // Complete: not planned (and the order is over)

        #expect(unit.oee.plannedNanoseconds == 60 * minute)
        #expect(unit.oee.runNanoseconds == 50 * minute)
        #expect(unit.counters.oeeTotalCount == 280)
        #expect(unit.counters.good == 270)
        let result = unit.oeeResult
        #expect(close(result.availability, 5.0 / 6.0))
        #expect(close(result.performance, 14.0 / 15.0))
        #expect(close(result.quality, 27.0 / 28.0))
        #expect(close(result.oee, 0.75))
        #expect(unit.machine.times.stateCumulativeNanoseconds(.execute) == 50 * minute)
        #expect(unit.machine.times.stateCumulativeNanoseconds(.idle) == 10 * minute)
        #expect(unit.machine.times.sinceResetNanoseconds == 75 * minute)
    }
}
