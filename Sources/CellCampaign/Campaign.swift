// Many virtual shifts: seeds S..S+N−1, J at a time on separate threads; stops at the first invariant breach.

import CRealtime
import CellCore
import Foundation
import Synchronization

/// The outcome of a campaign.
public struct CampaignSummary: Sendable {
    public var firstSeed: UInt64
    public var seedsRequested: Int
    /// Seeds that ran to the end and passed every invariant.
    public var seedsPassed = 0
    public var simulatedNanoseconds: UInt64 = 0
    public var wallNanoseconds: UInt64 = 0
    public var lampsOK = 0
    public var lampsNG = 0
    public var lampsScrapped = 0
    public var restarts = 0
    /// Faults injected in the seeds that passed (each one survived: every invariant held), by kind.
    public var survived = FaultCounts()
    public var seen = FaultCounts()
    public var longestResumeNanoseconds: UInt64 = 0
    public var longestFirstLampNanoseconds: UInt64 = 0
    /// The first breach (lowest seed among those that failed), if any.
    public var breach: InvariantBreach?
    /// A seed that could not run at all (configuration or ledger error), with the error.
    public var error: String?

    public var passed: Bool { breach == nil && error == nil && seedsPassed == seedsRequested }

    /// The summary as text.
    public func text() -> String {
        let hours = Double(simulatedNanoseconds) / 3.6e12
        let wall = Double(wallNanoseconds) / 1e9
        var lines = [
            "campaign: \(seedsPassed)/\(seedsRequested) seeds passed (seeds \(firstSeed)…\(firstSeed + UInt64(seedsRequested) - 1)), \(String(format: "%.1f", hours)) h simulated",
            "lamps: \(lampsOK) OK, \(lampsNG) NG, \(lampsScrapped) scrapped; controller restarts \(restarts)",
            "liveness margins: longest resume \(String(format: "%.1f", Double(longestResumeNanoseconds) / 1e9)) s (bound \(InvariantLimits.resumeBoundNanoseconds / 1_000_000_000) s), longest first lamp \(String(format: "%.1f", Double(longestFirstLampNanoseconds) / 1e9)) s",
            "faults injected and survived (seen by the controller):",
        ]
        for kind in FaultKind.allCases where survived[kind] > 0 {
            lines.append("  \(kind.rawValue): \(survived[kind]) (\(seen[kind]))")
        }
        lines.append("  total: \(survived.total)")
        lines.append(
            "wall time: \(String(format: "%.1f", wall)) s (\(String(format: "%.0f", wall > 0 ? Double(simulatedNanoseconds) / 1e9 / wall : 0))× real time overall)"
        )
        if let breach { lines.append(breach.description) }
        if let error { lines.append("error: \(error)") }
        return lines.joined(separator: "\n")
    }
}

/// Runs seeds in parallel, each on its own thread (each run single-threaded and deterministic).
public enum Campaign {
    /// Runs `seeds` seeds from `firstSeed` with `jobs` threads. `configure` makes the configuration of one seed.
    /// `replay` makes the replay command of a failing seed. `progress` is called (under a lock, from the worker
    /// threads) after each seed. Thread: any; blocks until done.
    public static func run(
        firstSeed: UInt64, seeds: Int, jobs: Int,
        configure: @escaping @Sendable (UInt64) throws -> ShiftConfiguration,
        replay: @escaping @Sendable (UInt64) -> String,
        progress: (@Sendable (ShiftReport) -> Void)? = nil
    ) -> CampaignSummary {
        let state = Mutex(CampaignSummary(firstSeed: firstSeed, seedsRequested: seeds))
        let next = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let start = lampcell_monotonic_ns()
        let group = DispatchGroup()
        let workerCount = max(1, min(jobs, seeds))
        for _ in 0..<workerCount {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while !stop.load(ordering: .relaxed) {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < seeds else { return }
                    let seed = firstSeed + UInt64(index)
                    do {
                        let configuration = try configure(seed)
                        let shift = try VirtualShift(configuration: configuration)
                        let began = lampcell_monotonic_ns()
                        var report = try shift.run()
                        report.wallNanoseconds = lampcell_monotonic_ns() - began
                        state.withLock { summary in
                            summary.seedsPassed += 1
                            summary.simulatedNanoseconds += report.simulatedNanoseconds
                            summary.lampsOK += report.lampsOK
                            summary.lampsNG += report.lampsNG
                            summary.lampsScrapped += report.lampsScrapped
                            summary.restarts += report.restarts
                            summary.survived.add(report.injected)
                            summary.seen.add(report.seen)
                            summary.longestResumeNanoseconds = max(
                                summary.longestResumeNanoseconds, report.longestResumeNanoseconds)
                            summary.longestFirstLampNanoseconds = max(
                                summary.longestFirstLampNanoseconds, report.longestFirstLampNanoseconds)
                            progress?(report)
                        }
                    } catch var breach as InvariantBreach {
                        breach.replayCommand = replay(seed)
                        state.withLock { summary in
                            if summary.breach == nil || summary.breach!.seed > breach.seed { summary.breach = breach }
                        }
                        stop.store(true, ordering: .relaxed)
                    } catch {
                        state.withLock { summary in
                            if summary.error == nil { summary.error = "seed \(seed): \(error)" }
                        }
                        stop.store(true, ordering: .relaxed)
                    }
                }
            }
            thread.name = "lampsim-campaign"
            thread.stackSize = 8 << 20
            thread.start()
        }
        group.wait()
        return state.withLock { summary in
            summary.wallNanoseconds = lampcell_monotonic_ns() - start
            return summary
        }
    }
}
