import CAllocationCounter
import CRealtime
import CellCore
import CellRuntime
import CellService
import CellSimulator
import Foundation
import Glibc
import Logging
import Synchronization

// Items 1 and 2: the daemon's control loop (CellDaemon, the same object lampcelld runs) against the simulated cell
// over Modbus TCP on loopback (3 arms + station, the simulator's threads SCHED_FIFO 10 below the loop, as under
// `lampcelld --simulate`), producing lamps; beside it, in the same window, cyclictest at the same period and
// priority. The loop's statistics are reset once the cell is in Execute with a lamp in the cell, so start-up is not
// in the figures. The period hooks count heap allocations per period (CAllocationCounter interposes malloc in
// lampbench only).

/// Allocation counts of the measured periods, written by the period hooks on the control thread (atomics: the
/// hooks do not allocate).
final class AllocationTally: @unchecked Sendable {
    let measuring = Atomic<Bool>(false)
    let periods = Atomic<UInt64>(0)
    let allocations = Atomic<UInt64>(0)
    let periodsWithAllocations = Atomic<UInt64>(0)
    let maximumInOnePeriod = Atomic<UInt64>(0)

    var hooks: PeriodHooks {
        PeriodHooks(
            begin: { lampcell_allocations_begin() },
            end: { [self] _ in
                let count = lampcell_allocations_end()
                guard measuring.load(ordering: .relaxed) else { return }
                periods.add(1, ordering: .relaxed)
                if count > 0 {
                    allocations.add(count, ordering: .relaxed)
                    periodsWithAllocations.add(1, ordering: .relaxed)
                    if count > maximumInOnePeriod.load(ordering: .relaxed) {
                        maximumInOnePeriod.store(count, ordering: .relaxed)
                    }
                }
            })
    }
}

/// cyclictest's histogram (1 µs buckets) and summary.
struct CyclictestResult {
    var buckets: [(microseconds: Int, count: UInt64)] = []
    var total: UInt64 = 0
    var overflows: UInt64 = 0
    var maximumMicroseconds: Double = 0
    var histogramLimitMicroseconds: Int

    /// Nearest-rank percentile in µs; samples beyond the histogram count as its limit (reported with ">").
    func percentile(_ percentile: Double) -> (value: Double, beyond: Bool) {
        let counted = buckets.reduce(0) { $0 + $1.count } + overflows
        guard counted > 0 else { return (0, false) }
        let rank = UInt64((percentile / 100 * Double(counted)).rounded(.up))
        var seen: UInt64 = 0
        for bucket in buckets {
            seen += bucket.count
            if seen >= rank { return (Double(bucket.microseconds), false) }
        }
        return (Double(histogramLimitMicroseconds), true)
    }

    func text(_ percentile: Double) -> String {
        let (value, beyond) = self.percentile(percentile)
        return (beyond ? ">" : "") + String(format: "%.0f", value)
    }

    /// Wake-ups at least `microseconds` late (those beyond the histogram included).
    func count(atLeastMicroseconds microseconds: Int) -> UInt64 {
        buckets.reduce(overflows) { $0 + ($1.microseconds >= microseconds ? $1.count : 0) }
    }

    /// Starts cyclictest (one thread, SCHED_FIFO `fifoPriority`, memory locked) at `periodMicroseconds` for
    /// `windowSeconds`, beside a loop under test; nil when cyclictest is not installed (`make bench-deps`).
    static func start(
        fifoPriority: Int32, periodMicroseconds: Int, windowSeconds: Double, errorLog: String
    ) -> ChildProcess? {
        guard let path = Subprocess.which("cyclictest") else { return nil }
        return try? ChildProcess(
            path,
            [
                "-q", "-m", "--laptop", "-t1", "-p\(fifoPriority)", "-i\(periodMicroseconds)",
                "-D\(Int(windowSeconds.rounded(.up)))", "-h\(ControlTimingBenchmark.cyclictestHistogramMicroseconds)",
            ], errorLog: errorLog)
    }

    /// Waits for a cyclictest from `start` to end its duration (at most 30 s more), and parses its histogram.
    static func finish(_ cyclictest: ChildProcess) -> CyclictestResult {
        let deadline = nowSeconds() + 30
        while cyclictest.process.isRunning && nowSeconds() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        cyclictest.stop(graceSeconds: 5)
        return parse(
            cyclictest.output.joined(separator: "\n"), limit: ControlTimingBenchmark.cyclictestHistogramMicroseconds)
    }

    /// Parses `cyclictest -q -h N` output (one thread).
    static func parse(_ output: String, limit: Int) -> CyclictestResult {
        var result = CyclictestResult(histogramLimitMicroseconds: limit)
        for line in output.split(separator: "\n") {
            if line.hasPrefix("#") {
                let parts = line.dropFirst().split(separator: ":", maxSplits: 1).map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                guard parts.count == 2 else { continue }
                let value = parts[1].split(separator: " ").first.map(String.init) ?? ""
                switch parts[0] {
                case "Total": result.total = UInt64(value) ?? 0
                case "Histogram Overflows": result.overflows = UInt64(value) ?? 0
                case "Max Latencies": result.maximumMicroseconds = Double(value) ?? 0
                default: break
                }
                continue
            }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let us = Int(fields[0]), let count = UInt64(fields[1]), count > 0 {
                result.buckets.append((us, count))
            }
        }
        return result
    }
}

enum ControlTimingBenchmark {
    static let fifoPriority: Int32 = 80
    static let cyclictestHistogramMicroseconds = 20_000

    /// Runs the production loop at `periodMicroseconds` for `windowSeconds` beside cyclictest; adds rows for items 1
    /// and 2. Returns the mean cycle time of the lamps finished in the window (for item 5), if any.
    static func run(
        periodMicroseconds: Int, windowSeconds: Double, repository: String, scratch: String, table: ResultTable,
        includeTiming: Bool, includeWork: Bool
    ) {
        let label = periodMicroseconds >= 1000 ? "\(periodMicroseconds / 1000) ms" : "\(periodMicroseconds) µs"
        do {
            var cell = try BenchCell(
                repository: repository, scratch: scratch, name: "control-\(periodMicroseconds)",
                periodMicroseconds: periodMicroseconds, fifoPriority: fifoPriority, seed: 7)
            defer { cell.server.stop() }
            cell.configuration.responseTimeoutNanoseconds = min(
                cell.configuration.responseTimeoutNanoseconds, cell.configuration.periodNanoseconds / 2)
            let tally = AllocationTally()
            let daemon = try cell.daemon(periodHooks: tally.hooks)
            daemon.start()
            defer { daemon.shutdown(timeoutNanoseconds: 20_000_000_000) }

            if let problem = daemon.autoStart(
                variant: .left, lamps: 100_000, orderID: "BENCH-\(periodMicroseconds)", timeoutNanoseconds: 60_000_000_000)
            {
                table.note("control loop at \(label): could not start production: \(problem)")
                return
            }
            let underWay = daemon.waitFor(timeoutNanoseconds: 30_000_000_000) {
                $0.unit.state == .execute && $0.lampInCell != nil
            }

            // cyclictest beside the loop, same period and priority, for the same window.
            let cyclictest = CyclictestResult.start(
                fifoPriority: fifoPriority, periodMicroseconds: periodMicroseconds, windowSeconds: windowSeconds,
                errorLog: scratch + "/cyclictest-\(periodMicroseconds).err")
            let loop = daemon.loop
            loop.thread.statistics.reset()
            let overrunsBefore = loop.thread.overruns
            let periodsBefore = loop.thread.periodsRun
            let lampsBefore = daemon.snapshot().lampsFinished
            tally.measuring.store(true, ordering: .relaxed)
            let start = nowSeconds()
            Thread.sleep(forTimeInterval: windowSeconds)
            tally.measuring.store(false, ordering: .relaxed)
            let elapsed = nowSeconds() - start
            let figures = loop.thread.statistics.figures()
            let overruns = loop.thread.overruns - overrunsBefore
            let periods = loop.thread.periodsRun - periodsBefore
            let snapshot = daemon.snapshot()
            let lamps = snapshot.lampsFinished - lampsBefore
            let dropped = loop.thread.statistics.dropped
            // Let cyclictest finish its duration (it started a moment after the window).
            let reference = cyclictest.map(CyclictestResult.finish)

            let policy = loop.thread.realtimeReport?.fifoPriority == fifoPriority
                ? "SCHED_FIFO \(fifoPriority)" : "SCHED_OTHER (FIFO refused)"
            let wake = figures[.wakeLatency]
            let perHundredThousand = Double(overruns) * 100_000 / Double(max(1, periods + overruns))
            let stateNote =
                "\(String(format: "%.0f", elapsed)) s window, \(periods) periods, \(lamps) lamps, state at end \(snapshot.unit.state)"
                + (underWay ? "" : ", no lamp was under way at the start")
                + (snapshot.lastFault.map { ", last fault: \($0.message)" } ?? "")
                + (dropped > 0 ? ", \(dropped) timing samples dropped" : "")
            if includeTiming, let wake {
                func us(_ ns: UInt64) -> String { micro(Double(ns)) }
                var referenceText = "cyclictest not available (make bench-deps)"
                var ratio = ""
                if let reference, reference.total > 0 {
                    referenceText =
                        "cyclictest -p\(fifoPriority) -i\(periodMicroseconds): \(reference.text(50)) / \(reference.text(99)) / "
                        + "\(reference.text(99.9)) / \(String(format: "%.0f", reference.maximumMicroseconds)) µs (\(reference.total) loops)"
                    let cyclic999 = reference.percentile(99.9).value
                    ratio = cyclic999 > 0
                        ? String(format: "p99.9 loop/cyclictest = %.2f", Double(wake.p999Nanoseconds) / 1000 / cyclic999)
                        : "cyclictest p99.9 = 0"
                } else if cyclictest != nil {
                    referenceText = "cyclictest gave no histogram (see .build/bench/cyclictest-\(periodMicroseconds).err)"
                }
                table.add(
                    ResultRow(
                        item: "1", what: "control wake-up latency at \(label), \(policy), p50/p99/p99.9/max µs",
                        figure: "\(us(wake.p50Nanoseconds)) / \(us(wake.p99Nanoseconds)) / \(us(wake.p999Nanoseconds)) / \(us(wake.maxNanoseconds))",
                        reference: referenceText, ratio: ratio))
                table.add(
                    ResultRow(
                        item: "1", what: "control overruns at \(label) per 100,000 periods",
                        figure: String(format: "%.0f", perHundredThousand) + " (\(overruns) missed deadlines)",
                        reference: stateNote))
            }
            if includeWork {
                for (phase, name) in [(ControlPhase.read, "read (all devices at once: 3× 0x17 + station writes and reads)"), (.step, "step"),
                    (.write, "snapshot publish")] {
                    guard let f = figures[phase] else { continue }
                    table.add(
                        ResultRow(
                            item: "2", what: "\(name) at \(label), p50/p99/max µs",
                            figure: "\(micro(Double(f.p50Nanoseconds))) / \(micro(Double(f.p99Nanoseconds))) / \(micro(Double(f.maxNanoseconds)))",
                            reference: "period \(periodMicroseconds) µs",
                            ratio: String(format: "p99 = %.1f %% of the period", Double(f.p99Nanoseconds) / Double(periodMicroseconds * 10))))
                }
                let counted = tally.periods.load(ordering: .relaxed)
                let allocations = tally.allocations.load(ordering: .relaxed)
                table.add(
                    ResultRow(
                        item: "2", what: "heap allocations per period at \(label) (release build)",
                        figure: allocations == 0
                            ? "0 in \(counted) periods"
                            : String(format: "%.4f", Double(allocations) / Double(max(1, counted)))
                                + " (\(allocations) in \(tally.periodsWithAllocations.load(ordering: .relaxed)) of \(counted) periods, max \(tally.maximumInOnePeriod.load(ordering: .relaxed)))",
                        reference: "must be 0"))
            }
        } catch {
            table.note("control loop at \(label): \(error)")
        }
    }
}
