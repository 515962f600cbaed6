import Testing

@testable import PackML

private let second: UInt64 = 1_000_000_000
private let minute: UInt64 = 60 * second

@Suite("PackML time accounting")
struct PackMLTimeAccountingTests {
    @Test("state and mode times over a scripted sequence with injected times")
    func scriptedSequence() {
        let t0: UInt64 = 7 * second
        var t = t0
        var m = PackMLStateMachine(state: .stopped, mode: .production, nowNanoseconds: t0)
        func at(_ seconds: UInt64) {
            t += seconds * second
            m.advance(toNanoseconds: t)
        }
        at(10)  // Stopped 10, Production
        _ = m.command(.reset)
        at(2)  // Resetting 2
        _ = m.stateComplete()
        at(5)  // Idle 5
        #expect(m.changeMode(to: .maintenance) == .success(.maintenance))
        #expect(m.times.modeCurrentNanoseconds == 0)
        at(3)  // Idle 3, Maintenance
        _ = m.command(.start)
        at(1)  // Starting 1
        _ = m.stateComplete()
        at(20)  // Execute 20
        #expect(m.times.stateCurrentNanoseconds == 20 * second)
        _ = m.command(.stop)
        at(1)  // Stopping 1
        _ = m.stateComplete()
        at(4)  // Stopped 4
        #expect(m.changeMode(to: .production) == .success(.production))
        at(6)  // Stopped 6, Production

        // A clock reading from the past is ignored.
        #expect(m.advance(toNanoseconds: t - 3 * second) == 0)
        #expect(m.advance(toNanoseconds: t) == 0)

        let times = m.times
        let expectedStates: [PackMLState: UInt64] = [
            .stopped: 20, .resetting: 2, .idle: 8, .starting: 1, .execute: 20, .stopping: 1,
        ]
        var sum: UInt64 = 0
        for state in PackMLState.allCases {
            #expect(times.stateCumulativeNanoseconds(state) == (expectedStates[state] ?? 0) * second, "\(state)")
            sum += times.stateCumulativeNanoseconds(state)
        }
        #expect(sum == 52 * second)
        #expect(times.sinceResetNanoseconds == 52 * second)
        #expect(times.nowNanoseconds == t0 + 52 * second)
        #expect(times.modeCumulativeNanoseconds(.production) == 23 * second)
        #expect(times.modeCumulativeNanoseconds(.maintenance) == 29 * second)
        #expect(times.modeCumulativeNanoseconds(.manual) == 0)
        #expect(times.stateCurrentNanoseconds == 10 * second, "Stopped since the SC of Stopping")
        #expect(times.modeCurrentNanoseconds == 6 * second)

        m.resetCumulativeTimes()
        at(2)
        #expect(m.times.sinceResetNanoseconds == 2 * second)
        #expect(m.times.stateCumulativeNanoseconds(.stopped) == 2 * second)
        #expect(m.times.stateCumulativeNanoseconds(.execute) == 0)
        #expect(m.times.stateCurrentNanoseconds == 12 * second, "current state time survives the reset")
    }
}

@Suite("Production counters")
struct PackMLCounterTests {
    @Test("resettable counts reset on order assignment; accumulated counts never")
    func countersResetOnOrder() throws {
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, nowNanoseconds: 0)
        try #require(unit.assignOrder(try ProductionOrder(id: "PO-1", variantCode: 3, quantity: 10)).isSuccess)
        unit.recordProcessedLamp(defective: false)
        unit.recordProcessedLamp(defective: true)
        unit.recordScrapped(2)
        unit.recordConsumed(.housing, count: 4)
        unit.recordConsumed(.ledModule, count: 3)
        unit.recordConsumed(.lens)
        #expect(unit.counters.processed.count == 2)
        #expect(unit.counters.defective.count == 1)
        #expect(unit.counters.good == 1)
        #expect(unit.counters.scrapped.count == 2)
        #expect(unit.counters.oeeTotalCount == 4)
        #expect(unit.counters.consumed(.housing).count == 4)
        #expect(unit.counters.consumed(.ledModule).count == 3)
        #expect(unit.counters.consumed(.lens).count == 1)

        #expect(unit.assignOrder(try ProductionOrder(id: "PO-2", variantCode: 3, quantity: 5)).isFailure,
            "PO-1 is still active")
        #expect(unit.cancelOrder().isSuccess)
        #expect(unit.assignOrder(try ProductionOrder(id: "PO-2", variantCode: 3, quantity: 5)).isSuccess)
        let c = unit.counters
        #expect(c.processed.count == 0 && c.defective.count == 0 && c.scrapped.count == 0 && c.good == 0)
        #expect(c.consumed(.housing).count == 0 && c.consumed(.lens).count == 0)
        #expect(c.processed.accumulated == 2 && c.defective.accumulated == 1 && c.scrapped.accumulated == 2)
        #expect(c.goodAccumulated == 1)
        #expect(c.consumed(.housing).accumulated == 4)
        #expect(c.consumed(.ledModule).accumulated == 3)
        #expect(c.consumed(.lens).accumulated == 1)
    }

    @Test("order validation names the field")
    func orderValidation() {
        #expect(throws: ProductionOrderError.emptyID) { try ProductionOrder(id: "", variantCode: 1, quantity: 1) }
        #expect(throws: ProductionOrderError.zeroQuantity) {
            try ProductionOrder(id: "PO", variantCode: 1, quantity: 0)
        }
        let long = String(repeating: "x", count: ProductionOrder.maximumIDLength + 1)
        #expect(throws: ProductionOrderError.idTooLong(lengthBytes: 65)) {
            try ProductionOrder(id: long, variantCode: 1, quantity: 1)
        }
        #expect(ProductionOrderError.zeroQuantity.description.contains("'quantity'"))
    }
}

@Suite("PackML unit: production orders")
struct PackMLUnitOrderTests {
    @Test("an order of N lamps: Start needs it, the N-th good lamp → Completing, SC → Complete")
    func orderOfNLamps() throws {
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .stopped, nowNanoseconds: 0)
        #expect(unit.command(.reset) == .success(.resetting))
        #expect(unit.stateComplete() == .success(.idle))
        let noOrder = unit.command(.start)
        #expect(noOrder.refusal?.reason == .noProductionOrder)
        #expect(unit.state == .idle)

        try #require(unit.assignOrder(try ProductionOrder(id: "PO-42", variantCode: 7, quantity: 3)).isSuccess)
        #expect(unit.command(.start) == .success(.starting))
        #expect(unit.stateComplete() == .success(.execute))
        unit.recordProcessedLamp(defective: false)
        unit.recordProcessedLamp(defective: true)
        unit.recordProcessedLamp(defective: false)
        #expect(unit.state == .execute)
        #expect(unit.order?.produced == 2)
        #expect(unit.order?.remaining == 1)
        #expect(unit.assignOrder(try ProductionOrder(id: "PO-43", variantCode: 7, quantity: 3)).isFailure)
        unit.recordProcessedLamp(defective: false)
        #expect(unit.state == .completing, "the third good lamp completes the order")
        #expect(unit.order?.isFulfilled == true)
        #expect(unit.orderActive, "active until Complete")
        #expect(unit.stateComplete() == .success(.complete))
        #expect(!unit.orderActive)
        #expect(unit.counters.processed.count == 4)
        #expect(unit.counters.good == 3)

        // The next order: assignable in Complete, then Reset/Start as usual.
        try #require(unit.assignOrder(try ProductionOrder(id: "PO-43", variantCode: 7, quantity: 1)).isSuccess)
        #expect(unit.counters.processed.count == 0)
        #expect(unit.command(.reset) == .success(.resetting))
    }

    @Test("an order fulfilled while Holding completes once the cell is back in Execute")
    func fulfilledWhileHolding() throws {
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, nowNanoseconds: 0)
        try #require(unit.assignOrder(try ProductionOrder(id: "PO-1", variantCode: 1, quantity: 1)).isSuccess)
        _ = unit.command(.start)
        _ = unit.stateComplete()
        #expect(unit.hold(reason: StopCause(code: .ledgerUnavailable, message: "ledger full")) == .success(.holding))
        unit.recordProcessedLamp(defective: false)  // the lamp in the cell finishes during the hold
        #expect(unit.state == .holding)
        _ = unit.stateComplete()
        _ = unit.command(.unhold)
        #expect(unit.stateComplete() == .success(.execute))
        #expect(unit.state == .completing)
    }

    @Test("no order needed outside Production; order assignment refused while running")
    func maintenanceWithoutOrder() throws {
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, mode: .maintenance, nowNanoseconds: 0)
        #expect(unit.command(.start) == .success(.starting))
        let refused = unit.assignOrder(try ProductionOrder(id: "PO-9", variantCode: 1, quantity: 1))
        #expect(
            refused.refusal?.description
                == "Assigning a production order is accepted only in Stopped, Idle or Complete; the cell is Starting")
        #expect(unit.cancelOrder().refusal?.reason == .noActiveOrder)
    }

    @Test("lamps made in Maintenance count only in the totals: not toward the order, its counts or OEE")
    func maintenanceLampsStayOutOfTheOrder() throws {
        var unit = PackMLUnit(idealCycleNanoseconds: 10 * second, nowNanoseconds: 0)
        try #require(unit.assignOrder(try ProductionOrder(id: "PO-1", variantCode: 1, quantity: 5)).isSuccess)
        unit.recordProcessedLamp(defective: false)
        #expect(unit.countsTowardOrder)
        #expect(unit.changeMode(to: .maintenance) == .success(.maintenance))
        #expect(!unit.countsTowardOrder)
        unit.recordConsumed(.housing)
        unit.recordProcessedLamp(defective: false)
        unit.recordProcessedLamp(defective: true)
        unit.recordScrapped()
        let c = unit.counters
        #expect(c.processed.count == 1 && c.defective.count == 0 && c.scrapped.count == 0 && c.good == 1)
        #expect(c.consumed(.housing).count == 0)
        #expect(c.oeeTotalCount == 1, "OEE's count is the order's")
        #expect(c.processed.accumulated == 3 && c.defective.accumulated == 1 && c.scrapped.accumulated == 1)
        #expect(c.consumed(.housing).accumulated == 1)
        #expect(unit.order?.produced == 1, "the order counts its Production lamp only")
    }

    @Test("Manual refuses Start, naming why; Maintenance starts without an order; Production needs one")
    func startPerMode() throws {
        var manual = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, mode: .manual, nowNanoseconds: 0)
        let refused = manual.command(.start)
        #expect(refused.refusal?.reason == .notUsedInMode)
        #expect(refused.refusal?.description.contains("commissioning tools") == true, "\(refused)")
        #expect(manual.state == .idle)
        var maintenance = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, mode: .maintenance, nowNanoseconds: 0)
        #expect(maintenance.command(.start) == .success(.starting))
        var production = PackMLUnit(idealCycleNanoseconds: 10 * second, state: .idle, nowNanoseconds: 0)
        #expect(production.command(.start).refusal?.reason == .noProductionOrder)
    }
}

extension Result {
    var isSuccess: Bool { if case .success = self { return true } else { return false } }
    var isFailure: Bool { !isSuccess }
}
