import Histogram
import Synchronization

/// The phases of a control period that are timed.
public enum ControlPhase: Int, CaseIterable, Sendable {
    /// How late the thread woke after its absolute deadline.
    case wakeLatency
    /// The exchange with every device at once (`CellExchange`): the arms' setpoints of the previous step out, the
    /// inputs in.
    case read
    /// Stepping the cell (PackML, motion, recipe).
    case step
    /// After the step: dispatching the station's writes (sent, not awaited) and publishing the snapshot.
    case write
    /// Wake-up to end of the period's work.
    case busy

    public var name: String {
        switch self {
        case .wakeLatency: "wake_latency"
        case .read: "read"
        case .step: "step"
        case .write: "write"
        case .busy: "busy"
        }
    }
}

/// Percentile figures of one phase, in nanoseconds.
public struct PhaseFigures: Sendable, Equatable, Codable {
    public var count: UInt64
    public var meanNanoseconds: Double
    public var p50Nanoseconds: UInt64
    public var p99Nanoseconds: UInt64
    public var p999Nanoseconds: UInt64
    public var maxNanoseconds: UInt64
}

/// Per-period timing histograms (HdrHistogram, 3 significant digits, 1 ns … 10 s).
///
/// The control thread records without ever waiting: it try-locks, and when a reader holds the lock it parks the
/// sample in a small fixed buffer that it drains at the next successful try. Readers (status API, benchmarks) lock
/// and compute figures in place, without copying the histograms (a copy would make the control thread's next
/// record reallocate them).
public final class PeriodStatistics: @unchecked Sendable {
    /// Highest value tracked: 10 s.
    public static let highestTrackableNanoseconds: UInt64 = 10_000_000_000
    /// Samples parked while a reader holds the lock; beyond this they are dropped and counted.
    public static let pendingCapacity = 256

    private let histograms: Mutex<[Histogram<UInt64>]>
    private let pending: UnsafeMutablePointer<(phase: Int, nanoseconds: UInt64)>
    private var pendingCount = 0  // control thread only
    private let droppedSamples = Atomic<UInt64>(0)

    public init() {
        // One histogram built per phase: copies of one value would share their counts' storage, and the first
        // record into each would then copy it (allocate) on the control thread.
        histograms = Mutex(
            ControlPhase.allCases.map { _ in
                Histogram<UInt64>(
                    lowestDiscernibleValue: 1, highestTrackableValue: Self.highestTrackableNanoseconds,
                    numberOfSignificantValueDigits: .three)
            })
        pending = .allocate(capacity: Self.pendingCapacity)
    }

    deinit { pending.deallocate() }

    /// Records one sample. Thread: the control thread only. Never waits, never allocates.
    public func record(_ phase: ControlPhase, nanoseconds: UInt64) {
        let recorded: Bool? = histograms.withLockIfAvailable { histograms in
            if pendingCount > 0 {
                for index in 0..<pendingCount {
                    histograms[pending[index].phase].record(min(pending[index].nanoseconds, Self.highestTrackableNanoseconds))
                }
                pendingCount = 0
            }
            histograms[phase.rawValue].record(min(nanoseconds, Self.highestTrackableNanoseconds))
            return true
        }
        if recorded == nil {
            if pendingCount < Self.pendingCapacity {
                pending[pendingCount] = (phase.rawValue, nanoseconds)
                pendingCount += 1
            } else {
                droppedSamples.add(1, ordering: .relaxed)
            }
        }
    }

    /// Samples dropped because a reader held the lock for too long. Any thread.
    public var dropped: UInt64 { droppedSamples.load(ordering: .relaxed) }

    /// Figures of every phase. Thread: any but the control thread.
    public func figures() -> [ControlPhase: PhaseFigures] {
        histograms.withLock { histograms in
            var result: [ControlPhase: PhaseFigures] = [:]
            for phase in ControlPhase.allCases {
                let h = histograms[phase.rawValue]
                result[phase] = PhaseFigures(
                    count: h.totalCount, meanNanoseconds: h.totalCount == 0 ? 0 : h.mean,
                    p50Nanoseconds: h.valueAtPercentile(50), p99Nanoseconds: h.valueAtPercentile(99),
                    p999Nanoseconds: h.valueAtPercentile(99.9), maxNanoseconds: h.totalCount == 0 ? 0 : h.max)
            }
            return result
        }
    }

    /// Clears every histogram. Thread: any but the control thread.
    public func reset() {
        histograms.withLock { histograms in
            for index in histograms.indices { histograms[index].reset() }
        }
    }
}
