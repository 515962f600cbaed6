// PackTags-style production counters (ProdProcessedCount, ProdDefectiveCount, ProdConsumedCount) plus the
// LampCell scrap count. Fixed-size value types: safe to update on the control thread.

/// One PackTags counter: a resettable `count` (PackTags `Count`) and a never-reset `accumulated`
/// (PackTags `AccCount`). Control thread mutates; other threads read copies. No allocation.
public struct PackMLCount: Sendable, Equatable {
    /// Count since the last `resetCount()` (LampCell: since the current production order was assigned).
    public private(set) var count: UInt64 = 0
    /// Count since the counter was created; never reset.
    public private(set) var accumulated: UInt64 = 0

    /// Creates a counter at zero.
    public init() {}

    /// Adds `amount` to the accumulated count, and to the resettable one when `counted` (false for what a unit makes
    /// outside Production: it stays out of the order's counts). Control thread; no allocation.
    public mutating func add(_ amount: UInt64 = 1, counted: Bool = true) {
        if counted { count += amount }
        accumulated += amount
    }

    /// Zeroes the resettable count; `accumulated` is kept. Control thread; no allocation.
    public mutating func resetCount() { count = 0 }
}

/// Material a lamp consumes, one slot each in `ProductionCounters` (PackTags `ProdConsumedCount[]`).
public enum ConsumedMaterial: Int, CaseIterable, Sendable {
    /// Lamp housing (one per lamp).
    case housing = 0
    /// LED module (one per lamp).
    case ledModule = 1
    /// Lens (one per lamp).
    case lens = 2

    /// Number of material slots.
    public static let count = 3
}

/// The cell's production counters.
///
/// Definitions (LampCell):
/// - `processed` (ProdProcessedCount): lamps that finished the cycle and left the cell, good or defective.
/// - `defective` (ProdDefectiveCount): processed lamps that failed inspection/test (subset of processed).
/// - `scrapped`: lamps abandoned mid-cycle and resolved as scrap after an abort or stop (not processed).
/// - `good` = processed − defective.
/// - `consumed(_:)` (ProdConsumedCount[]): housings, LED modules and lenses actually picked into a lamp.
/// - `oeeTotalCount` = processed + scrapped (every lamp started whose fate is known): OEE's "total count".
///
/// The resettable counts are reset when a production order is assigned (its start); `accumulated` never.
/// Control thread mutates; other threads read copies. No method allocates.
public struct ProductionCounters: Sendable, Equatable {
    /// Lamps that finished the cycle, good or defective.
    public private(set) var processed = PackMLCount()
    /// Finished lamps that failed inspection/test.
    public private(set) var defective = PackMLCount()
    /// Lamps abandoned mid-cycle after an abort/stop and resolved as scrap.
    public private(set) var scrapped = PackMLCount()
    private var consumedStorage = InlineArray<3, PackMLCount>(repeating: PackMLCount())

    /// Creates counters at zero.
    public init() {}

    /// Consumption of one material (PackTags `ProdConsumedCount[material]`).
    public func consumed(_ material: ConsumedMaterial) -> PackMLCount { consumedStorage[material.rawValue] }

    /// Good lamps since the last reset: processed − defective.
    public var good: UInt64 { processed.count - defective.count }
    /// Good lamps ever: accumulated processed − accumulated defective.
    public var goodAccumulated: UInt64 { processed.accumulated - defective.accumulated }
    /// OEE's total count since the last reset: processed + scrapped.
    public var oeeTotalCount: UInt64 { processed.count + scrapped.count }

    /// Records one finished lamp, `defective` if it failed inspection/test; `counted` false keeps it out of the
    /// resettable (order) counts, in the accumulated ones only. Control thread; no allocation.
    public mutating func recordProcessedLamp(defective isDefective: Bool, counted: Bool = true) {
        processed.add(counted: counted)
        if isDefective { defective.add(counted: counted) }
    }

    /// Records `count` lamps resolved as scrap after an abort/stop. Control thread; no allocation.
    public mutating func recordScrapped(_ count: UInt64 = 1, counted: Bool = true) {
        scrapped.add(count, counted: counted)
    }

    /// Records `count` units of `material` picked into a lamp. Control thread; no allocation.
    public mutating func recordConsumed(_ material: ConsumedMaterial, count: UInt64 = 1, counted: Bool = true) {
        consumedStorage[material.rawValue].add(count, counted: counted)
    }

    /// Zeroes every resettable count (on production order assignment); accumulated counts are kept.
    /// Control thread; no allocation.
    public mutating func resetCounts() {
        processed.resetCount()
        defective.resetCount()
        scrapped.resetCount()
        for index in 0..<ConsumedMaterial.count { consumedStorage[index].resetCount() }
    }

    /// Equal when every counter is equal.
    public static func == (lhs: ProductionCounters, rhs: ProductionCounters) -> Bool {
        guard lhs.processed == rhs.processed, lhs.defective == rhs.defective, lhs.scrapped == rhs.scrapped
        else { return false }
        for index in 0..<ConsumedMaterial.count where lhs.consumedStorage[index] != rhs.consumedStorage[index] {
            return false
        }
        return true
    }
}
