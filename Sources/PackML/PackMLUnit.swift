// The PackML unit: state machine + production order + counters + OEE, kept consistent with each other.

/// The cell as a PackML unit: the state machine, the active production order, the production counters and
/// the OEE accumulator, updated together.
///
/// Rules added on top of `PackMLStateMachine`:
/// - Start in Production mode needs an active production order (`.noProductionOrder` otherwise). Maintenance
///   runs the recipe without an order, and its lamps count only in the accumulated totals: not toward the order,
///   its counts or OEE (`countsTowardOrder`). Manual refuses Start (`.notUsedInMode`): it is reserved for the
///   commissioning tools.
/// - The mode changes only in Stopped, Idle and Aborted, never while the cell moves (`PackMLStateMachine`).
/// - An order is assigned in Stopped, Idle or Complete when none is active; assigning it resets the resettable
///   counters and the OEE times ("production order start"). It stays active until the cell reaches Complete
///   or it is cancelled (Stopped, Idle, Aborted or Complete).
/// - When the order is fulfilled (N good lamps) and the cell is in Execute in Production, the unit triggers
///   Execute → Completing at once (and re-checks every `advance`, e.g. after a Stop/Start in between);
///   the sequencer then signals SC (Completing → Complete), which ends the order.
///
/// Per period the control thread calls `advance(toNanoseconds:)` first, then commands/triggers/counts.
/// A value type with fixed-size storage; no method allocates except `assignOrder` (the caller built the
/// order's id off the control thread; the unit only stores it). Owned by the control thread; others read copies.
public struct PackMLUnit: Sendable, Equatable {
    /// The state machine (state, mode, stop reason, times).
    public private(set) var machine: PackMLStateMachine
    /// Production counters.
    public private(set) var counters = ProductionCounters()
    /// The last assigned production order (active or finished/cancelled), if any.
    public private(set) var order: ProductionOrder?
    /// True from assignment until the cell reaches Complete or the order is cancelled.
    public private(set) var orderActive = false
    /// OEE accumulator for the current order.
    public private(set) var oee: OEECalculator

    /// Creates a unit in `state`/`mode` at `nowNanoseconds`, with no order and zeroed counters.
    public init(
        idealCycleNanoseconds: UInt64, state: PackMLState = .stopped, mode: UnitMode = .production,
        nowNanoseconds: UInt64
    ) {
        machine = PackMLStateMachine(state: state, mode: mode, nowNanoseconds: nowNanoseconds)
        oee = OEECalculator(idealCycleNanoseconds: idealCycleNanoseconds)
    }

    /// Current state (PackTags `StateCurrent`).
    public var state: PackMLState { machine.state }

    /// Where an order may be assigned: Stopped, Idle, Complete. Pure.
    public static func acceptsOrderAssignment(in state: PackMLState) -> Bool {
        state == .stopped || state == .idle || state == .complete
    }

    /// Where an order may be cancelled: Stopped, Idle, Aborted, Complete. Pure.
    public static func acceptsOrderCancellation(in state: PackMLState) -> Bool {
        state == .stopped || state == .idle || state == .aborted || state == .complete
    }

    /// Current OEE for the active (or last) order. Pure arithmetic; no allocation.
    public var oeeResult: OEEResult {
        oee.evaluate(totalCount: counters.oeeTotalCount, goodCount: counters.good)
    }

    // MARK: - Clock

    /// Moves the clock to `nowNanoseconds` (monotonic): time accounting and OEE accumulate the interval in the
    /// state current during it; then a fulfilled order in Execute moves to Completing.
    /// Control thread; no allocation.
    public mutating func advance(toNanoseconds nowNanoseconds: UInt64) {
        let stateBefore = machine.state
        let modeBefore = machine.mode
        let elapsed = machine.advance(toNanoseconds: nowNanoseconds)
        oee.accumulate(elapsedNanoseconds: elapsed, state: stateBefore, mode: modeBefore, orderActive: orderActive)
        completeIfFulfilled()
    }

    // MARK: - Commands and triggers (forwarded to the state machine; see there)

    /// A PackML control command (see `PackMLStateMachine.command`); Start in Production needs an active order.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func command(
        _ command: PackMLCommand, causeGone: Bool = false, presentCause: StopCause? = nil
    ) -> Result<PackMLState, PackMLRefusal> {
        if command == .start && machine.mode == .production && !orderActive
            && PackMLStateMachine.target(of: .start, from: machine.state) != nil
        {
            return .failure(
                PackMLRefusal(
                    reason: .noProductionOrder, request: .command(.start), state: machine.state,
                    mode: machine.mode, stopReason: machine.stopReason))
        }
        // Manual is reserved for the commissioning tools (jogging, teach points): the recipe never runs in it.
        if command == .start && machine.mode == .manual {
            return .failure(
                PackMLRefusal(
                    reason: .notUsedInMode, request: .command(.start), state: machine.state, mode: machine.mode,
                    stopReason: machine.stopReason))
        }
        return machine.command(command, causeGone: causeGone, presentCause: presentCause)
    }

    /// State complete (SC) of the current acting state; reaching Complete ends the active order.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func stateComplete() -> Result<PackMLState, PackMLRefusal> {
        let result = machine.stateComplete()
        if case .success(.complete) = result { orderActive = false }
        if case .success(.execute) = result { completeIfFulfilled() }
        return result
    }

    /// Internal abort (see `PackMLStateMachine.abort`). Control thread; no allocation.
    @discardableResult
    public mutating func abort(reason: StopCause) -> Result<PackMLState, PackMLRefusal> { machine.abort(reason: reason) }

    /// Internal hold (see `PackMLStateMachine.hold`). Control thread; no allocation.
    @discardableResult
    public mutating func hold(reason: StopCause) -> Result<PackMLState, PackMLRefusal> { machine.hold(reason: reason) }

    /// Internal suspend (see `PackMLStateMachine.suspend`). Control thread; no allocation.
    @discardableResult
    public mutating func suspend(reason: SuspendCause) -> Result<PackMLState, PackMLRefusal> {
        machine.suspend(reason: reason)
    }

    /// Internal unsuspend (see `PackMLStateMachine.unsuspend`). Control thread; no allocation.
    @discardableResult
    public mutating func unsuspend() -> Result<PackMLState, PackMLRefusal> { machine.unsuspend() }

    /// Level-triggered starved/blocked handling (see `PackMLStateMachine.applyInterlock`).
    /// Control thread; no allocation.
    @discardableResult
    public mutating func applyInterlock(starved: Bool, blocked: Bool) -> PackMLState? {
        machine.applyInterlock(starved: starved, blocked: blocked)
    }

    /// Unit mode change (see `PackMLStateMachine.changeMode`). An active order stays assigned; OEE time is
    /// accumulated only while in Production. Control thread; no allocation.
    @discardableResult
    public mutating func changeMode(to mode: UnitMode) -> Result<UnitMode, PackMLRefusal> {
        machine.changeMode(to: mode)
    }

    // MARK: - Orders and counts

    /// Makes `newOrder` the active order; resets the resettable counters and the OEE times. Accepted in
    /// Stopped, Idle and Complete when no order is active. Control thread (stores the caller-built order).
    @discardableResult
    public mutating func assignOrder(_ newOrder: ProductionOrder) -> Result<Void, PackMLRefusal> {
        guard !orderActive else { return .failure(refusal(.orderAlreadyActive, .assignOrder)) }
        guard Self.acceptsOrderAssignment(in: machine.state) else {
            return .failure(refusal(.notAcceptedInState, .assignOrder))
        }
        order = newOrder
        orderActive = true
        counters.resetCounts()
        oee.resetTimes()
        return .success(())
    }

    /// Ends the active order without completing it (kept in `order` for inspection). Accepted in Stopped, Idle,
    /// Aborted and Complete. Control thread; no allocation.
    @discardableResult
    public mutating func cancelOrder() -> Result<Void, PackMLRefusal> {
        guard orderActive else { return .failure(refusal(.noActiveOrder, .cancelOrder)) }
        guard Self.acceptsOrderCancellation(in: machine.state) else {
            return .failure(refusal(.notAcceptedInState, .cancelOrder))
        }
        orderActive = false
        return .success(())
    }

    /// True when what the cell makes now counts toward the order, its counts and OEE: in Production only. A
    /// lamp made in Maintenance (a trial run without an order) counts only in the accumulated totals.
    public var countsTowardOrder: Bool { machine.mode == .production }

    /// Records one finished lamp; in Production a good one counts toward the active order, and the N-th good
    /// lamp in Execute triggers Execute → Completing. Control thread; no allocation.
    public mutating func recordProcessedLamp(defective: Bool) {
        counters.recordProcessedLamp(defective: defective, counted: countsTowardOrder)
        if !defective && orderActive && countsTowardOrder { order?.recordGoodLamp() }
        completeIfFulfilled()
    }

    /// Sets the ideal cycle time OEE's performance is measured against (when an order's recipe is chosen).
    /// Control thread; no allocation.
    public mutating func setIdealCycle(nanoseconds: UInt64) { oee.idealCycleNanoseconds = nanoseconds }

    /// Records `count` lamps resolved as scrap after an abort/stop. Control thread; no allocation.
    public mutating func recordScrapped(_ count: UInt64 = 1) {
        counters.recordScrapped(count, counted: countsTowardOrder)
    }

    /// Records `count` units of `material` picked into a lamp. Control thread; no allocation.
    public mutating func recordConsumed(_ material: ConsumedMaterial, count: UInt64 = 1) {
        counters.recordConsumed(material, count: count, counted: countsTowardOrder)
    }

    // MARK: - Private

    private mutating func completeIfFulfilled() {
        guard orderActive, machine.state == .execute, machine.mode == .production, order?.isFulfilled == true
        else { return }
        machine.complete()
    }

    private func refusal(_ reason: PackMLRefusal.Reason, _ request: PackMLRequest) -> PackMLRefusal {
        PackMLRefusal(
            reason: reason, request: request, state: machine.state, mode: machine.mode,
            stopReason: machine.stopReason)
    }
}
