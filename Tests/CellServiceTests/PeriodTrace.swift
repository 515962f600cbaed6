import CellCore
import CellService
import CellTestSupport
import PackML
import Synchronization

/// One period as the controller left it: enough to check per-period rules after a run.
struct TracedPeriod: Sendable {
    var periodIndex: UInt64
    var state: PackMLState
    var safetyOK: Bool
    var armCommands: InlineArray<4, ArmCommand>
    var armStatus: InlineArray<4, ArmStatus>
    var armCount: Int
}

/// Records every period's snapshot from the control thread's period hook into preallocated storage.
final class PeriodTrace: @unchecked Sendable {
    static let capacity = 400_000
    private let storage: UnsafeMutablePointer<TracedPeriod>
    private let count = Atomic<Int>(0)
    private let loopBox = Mutex<ControlLoop?>(nil)

    init() {
        storage = .allocate(capacity: Self.capacity)
    }

    deinit { storage.deallocate() }

    /// Hooks for `CellFixture`; `attach` must be called once the daemon exists.
    var hooks: PeriodHooks {
        PeriodHooks(begin: {}) { [self] _ in
            guard let loop = loopBox.withLock({ $0 }) else { return }
            let snapshot = loop.snapshot()
            let index = count.load(ordering: .relaxed)
            guard index < Self.capacity else { return }
            var armStatus = InlineArray<4, ArmStatus>(repeating: ArmStatus())
            for arm in 0..<snapshot.armCount { armStatus[arm] = snapshot.armInputs[arm].status }
            (storage + index).initialize(
                to: TracedPeriod(
                    periodIndex: snapshot.periodIndex, state: snapshot.unit.state,
                    safetyOK: snapshot.stationInputs.signals.contains(.safetyOK), armCommands: snapshot.armCommands,
                    armStatus: armStatus, armCount: snapshot.armCount))
            count.store(index + 1, ordering: .releasing)
        }
    }

    func attach(_ loop: ControlLoop) { loopBox.withLock { $0 = loop } }

    /// The periods recorded so far.
    var periods: [TracedPeriod] {
        let n = count.load(ordering: .acquiring)
        return Array(UnsafeBufferPointer(start: storage, count: n))
    }
}
