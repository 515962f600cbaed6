import CellControl
import CellCore
import CellRuntime
import CellService

/// What the API server needs from a running cell, and nothing more: who the cell is, its latest published
/// snapshot, its control loop's timing, and a way to hand the control thread a request and wait for the answer.
/// `CellDaemon` is the cell the plant runs (below); API tests that need no real control loop use a fake
/// (`Tests/ControlAPITests/FakeCell.swift`). Thread: any but the control thread.
public protocol ControlledCell: AnyObject, Sendable {
    /// The cell definition's id (`HL-CELL-01`).
    var cellID: String { get }
    /// The arms' names, in cell-definition order.
    var armNames: [String] { get }
    /// The recipes the cell can run, in order: their ids and their variants.
    var recipeIDs: [String] { get }
    var recipeVariants: [Variant] { get }
    /// The control period, ns.
    var periodNanoseconds: UInt64 { get }
    /// How long `request` waits for the control thread before it gives up.
    var requestTimeoutNanoseconds: UInt64 { get }
    /// The latest snapshot the control thread published.
    func snapshot() -> CellSnapshot
    /// Hands `request` to the control thread and waits for its reply; nil when none came within
    /// `requestTimeoutNanoseconds`. Blocks: call it on a blocking-job thread only.
    func request(_ request: ControllerRequest) -> ControllerReply?
    /// The control loop's timing histograms. Walks them under their lock: call it at most every few hundred ms.
    func timingFigures() -> [ControlPhase: PhaseFigures]
    /// The control loop's counters.
    var loopCounters: LoopCounters { get }
}

/// A control loop's counters, as status and metrics show them.
public struct LoopCounters: Sendable, Equatable {
    /// Missed deadlines since start.
    public var overruns: UInt64
    /// Periods run since start.
    public var periodsRun: UInt64
    /// Timing samples the loop dropped because a reader held the histograms.
    public var droppedSamples: UInt64
    /// The control thread's minor page faults since it started.
    public var minorPageFaults: UInt64
    /// The control thread's major page faults since it started.
    public var majorPageFaults: UInt64

    public init(
        overruns: UInt64, periodsRun: UInt64, droppedSamples: UInt64, minorPageFaults: UInt64 = 0,
        majorPageFaults: UInt64 = 0
    ) {
        self.overruns = overruns
        self.periodsRun = periodsRun
        self.droppedSamples = droppedSamples
        self.minorPageFaults = minorPageFaults
        self.majorPageFaults = majorPageFaults
    }
}

extension CellDaemon: ControlledCell {
    public var cellID: String { cell.cellID }
    public var armNames: [String] { cell.arms.map(\.name) }
    public var recipeIDs: [String] { recipes.map(\.id) }
    public var recipeVariants: [Variant] { recipes.map(\.variant) }
    public var periodNanoseconds: UInt64 { configuration.periodNanoseconds }
    public var requestTimeoutNanoseconds: UInt64 { Self.replyTimeoutNanoseconds }
    public func timingFigures() -> [ControlPhase: PhaseFigures] { loop.thread.statistics.figures() }
    public var loopCounters: LoopCounters {
        LoopCounters(
            overruns: loop.thread.overruns, periodsRun: loop.thread.periodsRun,
            droppedSamples: loop.thread.statistics.dropped, minorPageFaults: loop.thread.minorPageFaults,
            majorPageFaults: loop.thread.majorPageFaults)
    }
}
