// Overall Equipment Effectiveness: Availability × Performance × Quality, from time accumulated per state
// while a production order is active. Pure arithmetic; the accumulator is safe on the control thread.

/// An OEE evaluation. A component is nil when its denominator is zero (nothing to measure yet, or the
/// ideal cycle time is not configured); `oee` is nil when any component is nil. Any thread may use it.
public struct OEEResult: Sendable, Equatable {
    /// Run time / planned production time, in 0…1.
    public var availability: Double?
    /// min(1, ideal cycle time × total count / run time).
    public var performance: Double?
    /// Ideal cycle time × total count / run time without the cap (> 1 means the ideal cycle time is set
    /// slower than the cell really runs).
    public var performanceUncapped: Double?
    /// Good count / total count, in 0…1.
    public var quality: Double?
    /// availability × performance × quality.
    public var oee: Double?

    /// Creates a result from its components.
    public init(
        availability: Double?, performance: Double?, performanceUncapped: Double?, quality: Double?, oee: Double?
    ) {
        self.availability = availability
        self.performance = performance
        self.performanceUncapped = performanceUncapped
        self.quality = quality
        self.oee = oee
    }
}

/// Accumulates planned production time and run time, and computes OEE.
///
/// Definitions (LampCell):
/// - Planned production time: time in Production mode, while a production order is active, in any state
///   except Undefined, Stopped, Idle, Aborted and Complete. So Starting, Execute, Completing, the Hold and
///   Suspend families, Stopping, Aborting, Clearing and Resetting all count: they are losses against
///   availability. Stopped/Idle/Aborted/Complete are treated as "not planned to run" (the operator's choice).
/// - Run time: time in Execute under the same conditions.
/// - Performance = ideal cycle time × total count / run time, capped at 1.0 (the uncapped ratio is kept in
///   `OEEResult.performanceUncapped`), so OEE never exceeds 1.
/// - Quality = good count / total count (total = `ProductionCounters.oeeTotalCount`).
/// - Zero denominators (no planned time, no run time, no ideal cycle time, no lamps) give nil, not 0:
///   "not measurable yet" is different from "0 %".
///
/// Owned by the control thread (accumulation does not allocate); evaluation is pure arithmetic.
public struct OEECalculator: Sendable, Equatable {
    /// Ideal (design) cycle time of one lamp, in nanoseconds (PackTags `MachDesignSpeed` as a period).
    public var idealCycleNanoseconds: UInt64
    /// Planned production time accumulated since the last `resetTimes()`.
    public private(set) var plannedNanoseconds: UInt64 = 0
    /// Run time (Execute) accumulated since the last `resetTimes()`.
    public private(set) var runNanoseconds: UInt64 = 0

    /// Creates an accumulator at zero for a cell whose ideal cycle time is `idealCycleNanoseconds`.
    public init(idealCycleNanoseconds: UInt64) {
        self.idealCycleNanoseconds = idealCycleNanoseconds
    }

    /// True for the states whose time counts as planned production time (see the type doc). Pure.
    public static func isPlanned(_ state: PackMLState) -> Bool {
        switch state {
        case .undefined, .stopped, .idle, .aborted, .complete: return false
        default: return true
        }
    }

    /// Attributes `elapsedNanoseconds` spent in `state`/`mode` with or without an active order.
    /// Control thread; no allocation.
    public mutating func accumulate(
        elapsedNanoseconds: UInt64, state: PackMLState, mode: UnitMode, orderActive: Bool
    ) {
        guard orderActive, mode == .production, Self.isPlanned(state) else { return }
        plannedNanoseconds += elapsedNanoseconds
        if state == .execute { runNanoseconds += elapsedNanoseconds }
    }

    /// Zeroes planned and run time (on production order assignment). Control thread; no allocation.
    public mutating func resetTimes() {
        plannedNanoseconds = 0
        runNanoseconds = 0
    }

    /// OEE from the accumulated times and the given counts. Pure; no allocation.
    public func evaluate(totalCount: UInt64, goodCount: UInt64) -> OEEResult {
        Self.compute(
            plannedNanoseconds: plannedNanoseconds, runNanoseconds: runNanoseconds,
            idealCycleNanoseconds: idealCycleNanoseconds, totalCount: totalCount, goodCount: goodCount)
    }

    /// OEE from explicit inputs (see the type doc for definitions and nil rules). Pure; no allocation.
    public static func compute(
        plannedNanoseconds: UInt64, runNanoseconds: UInt64, idealCycleNanoseconds: UInt64,
        totalCount: UInt64, goodCount: UInt64
    ) -> OEEResult {
        let availability: Double? =
            plannedNanoseconds == 0 ? nil : Double(runNanoseconds) / Double(plannedNanoseconds)
        let performanceUncapped: Double? =
            runNanoseconds == 0 || idealCycleNanoseconds == 0
            ? nil : Double(idealCycleNanoseconds) * Double(totalCount) / Double(runNanoseconds)
        let performance = performanceUncapped.map { min(1.0, $0) }
        let quality: Double? = totalCount == 0 ? nil : Double(min(goodCount, totalCount)) / Double(totalCount)
        var oee: Double? = nil
        if let availability, let performance, let quality { oee = availability * performance * quality }
        return OEEResult(
            availability: availability, performance: performance, performanceUncapped: performanceUncapped,
            quality: quality, oee: oee)
    }
}
