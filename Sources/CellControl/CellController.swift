import CellCore
import CellRuntime
import Motion
import PackML
import Synchronization

/// A request to the controller from outside the control thread (API, CLI, daemon options).
public enum ControllerRequest: Sendable {
    case command(PackMLCommand)
    case mode(UnitMode)
    case order(ProductionOrder, recipeIndex: Int)
    case cancelOrder
}

/// The answer to a `ControllerRequest`, matched by ticket.
public struct ControllerReply: Sendable {
    public var ticket: UInt64
    public var refusal: PackMLRefusal?
    /// For an accepted order: its sequence number (stored in `LampRecord.orderSequence`).
    public var orderSequence: UInt32 = 0
    /// A refusal that is not PackML's (e.g. an order while producing), as a fixed message.
    public var message: StaticString?

    /// Thread: the control thread (or whatever answers in its place).
    public init(ticket: UInt64, refusal: PackMLRefusal? = nil, orderSequence: UInt32 = 0, message: StaticString? = nil) {
        self.ticket = ticket
        self.refusal = refusal
        self.orderSequence = orderSequence
        self.message = message
    }
}

/// Settings of the controller that are not in the cell definition or the recipe.
public struct ControllerSettings: Sendable {
    /// The control period, ns (also written to the arms' `stream_period_us`).
    public var periodNanoseconds: UInt64 = 4_000_000
    /// The arms' heartbeat timeout (`watchdog_ms`).
    public var armWatchdogMilliseconds: UInt16 = 100
    /// How long a lane may wait for material before the cell suspends (debounce of starved/blocked).
    public var materialWaitNanoseconds: UInt64 = 2_000_000_000
    /// How long an infeed index may take before the cell counts as starved of housings.
    public var infeedTimeoutNanoseconds: UInt64 = 4_000_000_000
    /// After an infeed index that brought no housing (starved upstream), the next index is asked for this much later.
    public var infeedRetryNanoseconds: UInt64 = 1_000_000_000
    /// Bound on a station action (clamp, tests, outfeed); beyond it the station counts as faulted.
    public var stationActionTimeoutNanoseconds: UInt64 = 10_000_000_000
    /// Bound on a tool request; beyond it the arm's tool counts as faulted.
    public var toolTimeoutNanoseconds: UInt64 = 5_000_000_000
    /// A housing grip that has waited this long for its lamp-in-cell record holds the cell (the state directory cannot
    /// be written); the grip goes out when the record is written, after Unhold.
    public var lampInCellRecordTimeoutNanoseconds: UInt64 = 2_000_000_000
    /// Bound on reaching IN_POSITION after a trajectory ends.
    public var settleTimeoutNanoseconds: UInt64 = 2_000_000_000
    /// A device counts as lost after failing for this long (consecutive failed exchanges × period); shorter than
    /// the arms' watchdog so the controller, not the arm, notices first (the daemon uses 60 % of it).
    public var deviceLostAfterNanoseconds: UInt64 = 60_000_000

    /// Failed exchanges in a row after which a device counts as lost (at least 2).
    public var deviceLostAfterFailures: UInt32 {
        UInt32(clamping: max(2, deviceLostAfterNanoseconds / max(1, periodNanoseconds)))
    }

    public init() {}
}

/// The cell controller: PackML, the recipe executor, the lamp in the cell and the verdict, the arms' streams.
///
/// `step` is called once per control period on the control thread, between reading and writing the devices. It
/// does not allocate, block or log: finished lamps go to `lamps` (a preallocated queue), state for others is read
/// through `snapshot()` by the owner after the step.
public final class CellController: @unchecked Sendable {
    public let cell: CompiledCell
    public let recipes: [CompiledRecipe]
    public let settings: ControllerSettings
    /// Lamps for the ledger writer: each lamp once when it enters the cell (`stage == .started`) and once when it
    /// leaves (OK, NG, scrapped). Producer: the control thread.
    public let lamps: BoundedQueue<LampRecord>
    /// Requests from other threads. Consumer: the control thread.
    public let requests: BoundedQueue<(ticket: UInt64, request: ControllerRequest)>
    /// Replies to requests. Producer: the control thread.
    public let replies: BoundedQueue<ControllerReply>

    /// PackML state machine, production order, counters and OEE.
    public internal(set) var unit: PackMLUnit
    /// Increments with each assigned order (stored in lamp records).
    public internal(set) var orderSequence: UInt32 = 0
    public internal(set) var activeRecipe: Int = 0
    public internal(set) var arms: [ArmAxis]
    /// The lamp in the cell, if any.
    public internal(set) var lamp: LampRecord?
    /// The last finished lamp.
    public internal(set) var lastLamp: LampRecord?
    /// Lamps that could not be handed to the ledger queue (it was full): the cell holds when this is non-zero.
    public internal(set) var lampsNotQueued: UInt64 = 0
    /// The cause of the last abort/hold/stop, for status.
    public internal(set) var lastFault: StopCause?
    /// Cycle time of the last finished lamp, s.
    public internal(set) var cycleTimeLastSeconds: Double = 0
    /// Lamps handed to `lamps` since start.
    public internal(set) var lampsFinished: UInt64 = 0
    /// False while the ledger cannot write (set by the ledger writer's thread): the cell holds, and unholds by
    /// itself once writing works again. No production without traceability.
    public let ledgerWritable = Atomic<Bool>(true)
    /// The sequence of the last lamp whose lamp-in-cell record is durable (stored by the lamp drain's thread once the
    /// record is on disk; 0: none yet). The loader's housing grip goes out only once the lamp it opens is recorded, so
    /// that a crash during the grip cannot leave a housing in the cell that no record names.
    public let lampInCellRecorded = Atomic<UInt64>(0)
    /// The lamp whose housing grip waits for its lamp-in-cell record, and since when in Execute (control thread).
    var gripAwaitingRecord: (sequence: UInt64, sinceNanoseconds: UInt64)?
    /// The material wait currently shown (starved/blocked detail), `.none` when none.
    public internal(set) var materialWaitShown = MaterialWait.none

    var lanes: [LaneState]
    var eventSignals: [UInt32]
    let serials: () -> UInt64?
    let periodSeconds: Double
    var nowNanoseconds: UInt64 = 0
    var wallNanoseconds: UInt64 = 0
    var resetPhase = ResetPhase.purge
    var clearingTicks = 0
    /// Component lots held by each arm (LED module or lens) until released into the lamp.
    var heldLot: [UInt32]
    var heldKind: [TeachPointLocation]
    /// Teach point index each arm was last sent to, nil when unknown (after a resync).
    var armAt: [Int?]
    /// Screws driven into the lamp in the cell.
    var screwsDriven = 0
    /// Reset lanes (purge and home), preallocated; refilled on entering Resetting.
    var resetSteps: [[CompiledStep]]
    var resetLanes: [LaneState]
    /// Waypoints of the path being planned (capacity `motionMaxWaypointCount`, reused).
    var pathBuffer: [JointVector]

    /// - Parameters:
    ///   - serials: hands out lamp sequence numbers on the control thread (nil when exhausted: the cell holds).
    ///   - queueCapacity: capacity of the lamp, request and reply queues.
    public init(
        cell: CompiledCell, recipes: [CompiledRecipe], settings: ControllerSettings, nowNanoseconds: UInt64,
        queueCapacity: Int = 256, serials: @escaping () -> UInt64?
    ) {
        precondition(!recipes.isEmpty, "the controller needs at least one recipe")
        self.cell = cell
        self.recipes = recipes
        self.settings = settings
        self.serials = serials
        lamps = BoundedQueue(capacity: queueCapacity)
        requests = BoundedQueue(capacity: queueCapacity)
        replies = BoundedQueue(capacity: queueCapacity)
        unit = PackMLUnit(
            idealCycleNanoseconds: UInt64(recipes[0].idealCycleTimeSeconds * 1e9), nowNanoseconds: nowNanoseconds)
        arms = cell.arms.indices.map { ArmAxis(index: $0) }
        let maximumLanes = recipes.map(\.lanes.count).max() ?? 0
        lanes = Array(repeating: LaneState(), count: maximumLanes)
        eventSignals = Array(repeating: 0, count: recipes.map(\.eventCount).max() ?? 0)
        periodSeconds = Double(settings.periodNanoseconds) / 1e9
        heldLot = Array(repeating: 0, count: cell.arms.count)
        heldKind = Array(repeating: .none, count: cell.arms.count)
        armAt = Array(repeating: nil, count: cell.arms.count)
        resetSteps = cell.arms.map { _ in
            var steps: [CompiledStep] = []
            steps.reserveCapacity(ResetPlan.maximumSteps)
            return steps
        }
        resetLanes = Array(repeating: LaneState(), count: cell.arms.count)
        pathBuffer = []
        pathBuffer.reserveCapacity(motionMaxWaypointCount)
        self.nowNanoseconds = nowNanoseconds
    }
}

/// Internal per-lane execution state (fixed size).
struct LaneState: Sendable {
    var cursor = 0
    var active = false
    var startedNanoseconds: UInt64 = 0
    /// Phase inside a multi-phase step (tests: start coil, wait count, release coil).
    var phase: UInt8 = 0
    /// A value captured at step start (test count before the start edge).
    var captured: UInt16 = 0
    /// Waits on each event this lane has passed, indexed like the recipe's events (fixed: 32 events).
    var waited = SIMD32<UInt32>()
    /// The material this lane is waiting for before it can start its next step, if any.
    var materialWait = MaterialWait.none
    var materialWaitSinceNanoseconds: UInt64 = 0
    /// Trajectory finished, waiting for IN_POSITION since.
    var settleSinceNanoseconds: UInt64 = 0
    /// A one-shot lane has run its last step.
    var finished = false
    /// When the lane last asked the station for a conveyor index.
    var indexRequestedNanoseconds: UInt64 = 0
}

/// What a lane may wait for that the cell does not control: the reason to suspend.
public enum MaterialWait: UInt8, Sendable {
    case none, housing, ledModule, lens, outfeed, rejectBin

    var suspendCause: SuspendCause {
        switch self {
        case .none, .housing, .ledModule, .lens: .starved
        case .outfeed, .rejectBin: .blocked
        }
    }

    /// Name for status and logs.
    public var name: StaticString {
        switch self {
        case .none: "none"
        case .housing: "no housing at the infeed"
        case .ledModule: "no LED module at its pick point"
        case .lens: "no lens at its pick point"
        case .outfeed: "outfeed not clear"
        case .rejectBin: "reject bin full"
        }
    }
}

/// Phases of Resetting: open the clamp, take any part out to the reject place, then home every arm.
enum ResetPhase: UInt8, Sendable {
    case unclamp, purge, home, done
}

enum ResetPlan {
    /// Steps one arm may need to purge and home.
    static let maximumSteps = 8
}
