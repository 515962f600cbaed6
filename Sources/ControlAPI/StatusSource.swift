import CRealtime
import CellCore
import CellRuntime
import CellService
import ControlAPIClient
import Foundation

/// The status document shared by every client: rebuilt from the daemon's latest snapshot at most every
/// `statusMaximumAgeMilliseconds`, so a tight loop of status requests or many watchers cost one build per
/// interval, not one per client. Also keeps the cycle times of the last lamps it saw leave the cell and the
/// ledger head (refreshed off the event loop). Any thread but the control thread.
final class StatusSource: @unchecked Sendable {
    /// One built document with its JSON and change signature.
    struct Published: Sendable {
        var document: StatusDocument
        var json: [UInt8]
        var signature: Int
        var builtNanoseconds: UInt64
    }

    private let cell: any ControlledCell
    private let plant: (any PlantReporting)?
    private let builder: StatusBuilder
    private let maximumAgeNanoseconds: UInt64
    private let cycleTimeWindow: Int
    private let startNanoseconds = lampcell_monotonic_ns()
    private let encoder = JSONEncoder()
    private let lock = NSLock()
    private var latest: Published?
    private var cycleTimes: [CycleTimeSample] = []
    private var lastLampSequence: UInt64?
    private var ledgerHead: LedgerHead?
    private var timing: (figures: [ControlPhase: PhaseFigures], builtNanoseconds: UInt64)?
    private let timingMaximumAgeNanoseconds: UInt64

    init(cell: any ControlledCell, configuration: APIServerConfiguration, plant: (any PlantReporting)? = nil) {
        self.cell = cell
        self.plant = plant
        builder = StatusBuilder(
            cellID: cell.cellID, armNames: cell.armNames, stationName: configuration.stationName,
            recipeIDs: cell.recipeIDs, version: configuration.version, periodNanoseconds: cell.periodNanoseconds)
        maximumAgeNanoseconds = UInt64(max(0, configuration.statusMaximumAgeMilliseconds)) * 1_000_000
        cycleTimeWindow = max(1, configuration.cycleTimeWindow)
        timingMaximumAgeNanoseconds = UInt64(max(0, configuration.timingMaximumAgeMilliseconds)) * 1_000_000
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    /// The latest document, rebuilt when older than the maximum age.
    func current() -> Published {
        lock.lock()
        defer { lock.unlock() }
        let now = lampcell_monotonic_ns()
        if let latest, now &- latest.builtNanoseconds < maximumAgeNanoseconds { return latest }
        let built = build(now: now)
        latest = built
        return built
    }

    /// Looks at the snapshot only to note a lamp that left the cell (for cycle-time statistics).
    func sampleLamps() {
        let snapshot = cell.snapshot()
        lock.lock()
        note(snapshot.lastLamp)
        lock.unlock()
    }

    /// Sets the ledger head shown from now on.
    func setLedgerHead(_ head: LedgerHead?) {
        lock.lock()
        ledgerHead = head
        latest = nil
        lock.unlock()
    }

    private func note(_ lamp: LampRecord?) {
        guard let lamp, lamp.serial.sequence != lastLampSequence else { return }
        lastLampSequence = lamp.serial.sequence
        cycleTimes.append(
            CycleTimeSample(
                serial: lamp.serial.text(cellID: builder.cellID), seconds: lamp.cycleTimeSeconds, verdict: lamp.verdict.name))
        if cycleTimes.count > cycleTimeWindow { cycleTimes.removeFirst(cycleTimes.count - cycleTimeWindow) }
    }

    /// The last lamps that left the cell (at most `cycleTimeWindow`), oldest first: the panel's trend.
    func recentCycleTimes() -> [CycleTimeSample] {
        lock.lock()
        defer { lock.unlock() }
        note(cell.snapshot().lastLamp)
        return cycleTimes
    }

    private func build(now: UInt64) -> Published {
        let snapshot = cell.snapshot()
        note(snapshot.lastLamp)
        // The percentiles walk every histogram under its lock: computed at most once per timing interval.
        if timing == nil || now &- (timing?.builtNanoseconds ?? 0) >= timingMaximumAgeNanoseconds {
            timing = (cell.timingFigures(), now)
        }
        var document = builder.build(
            snapshot: snapshot, figures: timing?.figures ?? [:], loopCounters: cell.loopCounters,
            uptimeSeconds: Double(now - startNanoseconds) / 1e9, cycleTime: cycleTimeStatistics(), ledger: ledgerHead)
        document.plant = plant?.plantReplication()
        let json = (try? encoder.encode(document)).map { Array($0) } ?? Array("{}".utf8)
        return Published(
            document: document, json: json, signature: builder.changeSignature(document), builtNanoseconds: now)
    }

    private func cycleTimeStatistics() -> StatusDocument.CycleTime {
        guard !cycleTimes.isEmpty else {
            return StatusDocument.CycleTime(lastSeconds: nil, meanSeconds: nil, p50Seconds: nil, p95Seconds: nil, samples: 0)
        }
        let seconds = cycleTimes.map(\.seconds)
        let sorted = seconds.sorted()
        func percentile(_ p: Double) -> Double {
            // Nearest rank.
            let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
            return sorted[min(sorted.count - 1, max(0, rank - 1))]
        }
        return StatusDocument.CycleTime(
            lastSeconds: seconds.last, meanSeconds: seconds.reduce(0, +) / Double(seconds.count),
            p50Seconds: percentile(50), p95Seconds: percentile(95), samples: cycleTimes.count)
    }
}
