import CRealtime
import CellCore
import CellRuntime
import CellService
import CellTestSupport
import Foundation
import Synchronization
import Testing

// Benchmark, not a test of behaviour: prints figures, asserts only that the runs happened (the cell produced, the
// probe ran). Off by default (it takes about 2 × (idle + production) seconds and wants a quiet machine); run it with
//   LAMPCELL_BENCHMARK=1 swift test --filter LoopTiming
// Optional: LAMPCELL_BENCHMARK_SECONDS (production seconds per scheduling policy, default 30),
// LAMPCELL_BENCHMARK_POLICIES ("other,fifo" by default; "other" or "fifo" for one).
// See docs/PERFORMANCE.md for the figures and how they were taken.

/// Percentile figures of a set of durations, ns.
struct TimingFigures {
    var count: Int
    var p50: UInt64
    var p99: UInt64
    var p999: UInt64
    var max: UInt64

    init(count: Int, p50: UInt64, p99: UInt64, p999: UInt64, max: UInt64) {
        self.count = count
        self.p50 = p50
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }

    init(_ figures: PhaseFigures) {
        self.init(
            count: Int(figures.count), p50: figures.p50Nanoseconds, p99: figures.p99Nanoseconds,
            p999: figures.p999Nanoseconds, max: figures.maxNanoseconds)
    }

    /// Nearest-rank percentiles of `values` (sorted in place).
    init(sorting values: inout [UInt64]) {
        values.sort()
        func rank(_ percentile: Double) -> UInt64 {
            guard !values.isEmpty else { return 0 }
            let index = Int((percentile / 100 * Double(values.count)).rounded(.up)) - 1
            return values[Swift.max(0, Swift.min(values.count - 1, index))]
        }
        self.init(count: values.count, p50: rank(50), p99: rank(99), p999: rank(99.9), max: values.last ?? 0)
    }

    func row(_ name: String) -> String {
        func us(_ ns: UInt64) -> String { String(format: "%9.1f", Double(ns) / 1000) }
        return name.padding(toLength: 24, withPad: " ", startingAt: 0)
            + String(format: "%9d", count) + us(p50) + us(p99) + us(p999) + us(max)
    }

    static let header =
        "phase (µs)".padding(toLength: 24, withPad: " ", startingAt: 0) + "    count      p50      p99    p99.9      max"
}

/// The machine's own wake-up jitter: a plain thread sleeping to absolute deadlines (`clock_nanosleep`,
/// CLOCK_MONOTONIC, TIMER_ABSTIME) with 1 ns timer slack, doing nothing else. Run beside the control loop, its late
/// wake-ups are the machine's (hypervisor, other load), not the loop's.
///
/// `start` and `stop` from one test thread; the samples are written by the probe's thread into storage allocated
/// at init and read after `stop`.
final class JitterProbe: @unchecked Sendable {
    let periodNanoseconds: UInt64
    let fifoPriority: Int32?
    private let capacity: Int
    private let latencies: UnsafeMutableBufferPointer<UInt64>
    private let wakeTimes: UnsafeMutableBufferPointer<UInt64>
    private var count = 0
    private var missedDeadlines: UInt64 = 0
    private var granted: RealtimeReport?
    private let stopRequested = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = DispatchSemaphore(value: 0)

    init(periodNanoseconds: UInt64, fifoPriority: Int32?, maximumSeconds: Double) {
        self.periodNanoseconds = periodNanoseconds
        self.fifoPriority = fifoPriority
        capacity = Int(maximumSeconds * 1e9 / Double(periodNanoseconds)) + 1
        latencies = .allocate(capacity: capacity)
        latencies.initialize(repeating: 0)
        wakeTimes = .allocate(capacity: capacity)
        wakeTimes.initialize(repeating: 0)
    }

    deinit {
        latencies.deallocate()
        wakeTimes.deallocate()
    }

    func start() {
        let thread = Thread { [self] in
            granted = RealtimeSetup.apply(fifoPriority: fifoPriority, lockMemory: false)
            started.signal()
            var deadline = lampcell_monotonic_ns() + periodNanoseconds
            while !stopRequested.load(ordering: .relaxed) && count < capacity {
                _ = lampcell_sleep_until_ns(deadline)
                let wake = lampcell_monotonic_ns()
                latencies[count] = wake &- deadline
                wakeTimes[count] = wake
                count += 1
                deadline += periodNanoseconds
                let now = lampcell_monotonic_ns()
                if now > deadline {
                    let missed = (now - deadline) / periodNanoseconds + 1
                    missedDeadlines += missed
                    deadline += missed * periodNanoseconds
                }
            }
            finished.signal()
        }
        thread.name = "jitter-probe"
        thread.start()
        started.wait()
    }

    /// Stops the probe and returns its samples.
    func stop() -> (figures: TimingFigures, missed: UInt64, report: RealtimeReport?, late: [(wake: UInt64, latency: UInt64)]) {
        stopRequested.store(true, ordering: .relaxed)
        finished.wait()
        var values = Array(latencies[0..<count])
        var late: [(UInt64, UInt64)] = []
        for index in 0..<count where latencies[index] > JitterCorrelation.lateNanoseconds {
            late.append((wakeTimes[index], latencies[index]))
        }
        return (TimingFigures(sorting: &values), missedDeadlines, granted, late)
    }
}

/// Per-period start and end times of the control loop, written by its period hooks (preallocated; the hooks do
/// not allocate), to place the loop's late wake-ups and long periods in time beside the probe's.
final class PeriodTimeRecorder: @unchecked Sendable {
    let capacity: Int
    let begins: UnsafeMutableBufferPointer<UInt64>
    let ends: UnsafeMutableBufferPointer<UInt64>
    private nonisolated(unsafe) var currentBegin: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
        begins = .allocate(capacity: capacity)
        begins.initialize(repeating: 0)
        ends = .allocate(capacity: capacity)
        ends.initialize(repeating: 0)
    }

    deinit {
        begins.deallocate()
        ends.deallocate()
    }

    var hooks: PeriodHooks {
        PeriodHooks(
            begin: { [self] in currentBegin = lampcell_monotonic_ns() },
            end: { [self] index in
                guard index < UInt64(capacity) else { return }
                begins[Int(index)] = currentBegin
                ends[Int(index)] = lampcell_monotonic_ns()
            })
    }

    /// Estimated wake latency of each recorded period in `range`: its begin time minus its deadline, the deadline
    /// being `first + index × period` with `first` fitted as the earliest begin (so the estimate is low by the loop's
    /// smallest latency, a few µs). Returns (begin time, latency estimate, busy) of the periods that ran.
    func periods(in range: Range<Int>, periodNanoseconds: UInt64) -> [(begin: UInt64, latency: UInt64, busy: UInt64)] {
        let valid = range.filter { $0 < capacity && begins[$0] != 0 }
        guard let origin = valid.map({ begins[$0] &- UInt64($0) * periodNanoseconds }).min() else { return [] }
        return valid.map { index in
            let deadline = origin + UInt64(index) * periodNanoseconds
            return (begins[index], begins[index] - deadline, ends[index] &- begins[index])
        }
    }
}

/// How late wake-ups of the loop and of the probe are matched.
enum JitterCorrelation {
    /// A wake-up this late counts as a spike.
    static let lateNanoseconds: UInt64 = 200_000
    /// A loop spike and a probe spike this close in time count as the same event of the machine.
    static let windowNanoseconds: UInt64 = 3_000_000

    /// How many of `loopEvents` (times) have a probe spike within the window.
    static func coincident(_ loopEvents: [UInt64], probe: [(wake: UInt64, latency: UInt64)]) -> Int {
        let probeTimes = probe.map(\.wake).sorted()
        return loopEvents.filter { time in
            var low = 0
            var high = probeTimes.count
            while low < high {
                let middle = (low + high) / 2
                if probeTimes[middle] < time &- windowNanoseconds { low = middle + 1 } else { high = middle }
            }
            return low < probeTimes.count && probeTimes[low] <= time + windowNanoseconds
        }.count
    }
}

/// Whether the benchmark runs: `LAMPCELL_BENCHMARK` is set.
enum LoopTimingBenchmarkSwitch {
    static var enabled: Bool { ProcessInfo.processInfo.environment["LAMPCELL_BENCHMARK"] != nil }
}

@Suite("Loop timing benchmark", .serialized, .enabled(if: LoopTimingBenchmarkSwitch.enabled))
struct LoopTimingBenchmark {
    static var productionSeconds: Double {
        ProcessInfo.processInfo.environment["LAMPCELL_BENCHMARK_SECONDS"].flatMap(Double.init) ?? 30
    }
    static var policies: [Int32?] {
        let text = ProcessInfo.processInfo.environment["LAMPCELL_BENCHMARK_POLICIES"] ?? "other,fifo"
        return text.split(separator: ",").compactMap { $0 == "fifo" ? Int32?.some(fifoPriority) : ($0 == "other" ? Int32?.none : nil) }
    }
    static let fifoPriority: Int32 = 80
    static let periodNanoseconds: UInt64 = 1_000_000

    static func policyName(_ fifo: Int32?, granted: RealtimeReport?) -> String {
        guard let fifo else { return "SCHED_OTHER" }
        if let granted, granted.fifoPriority == fifo { return "SCHED_FIFO \(fifo)" }
        return "SCHED_FIFO \(fifo) REFUSED (errno \(granted?.fifoErrno ?? -1)): SCHED_OTHER"
    }

    static func print(_ table: [String]) { Swift.print(table.joined(separator: "\n")) }

    @Test("benchmark: 1 ms control loop against the simulated cell, idle loop, and the machine's wake-up jitter")
    func benchmarkLoopTiming() throws {
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let seconds = Self.productionSeconds
        let idleSeconds = max(5, seconds / 3)
        Swift.print(
            "[benchmark] \(build) build, \(ProcessInfo.processInfo.activeProcessorCount) CPUs, period 1 ms, "
                + "production \(seconds) s and idle loop \(idleSeconds) s per policy, "
                + "\(Date().formatted(.iso8601))")
        for fifo in Self.policies {
            try idleLoop(fifo: fifo, seconds: idleSeconds)
            try production(fifo: fifo, seconds: seconds)
        }
    }

    /// The periodic thread with an empty body: what the loop costs without any device work.
    func idleLoop(fifo: Int32?, seconds: Double) throws {
        let probe = JitterProbe(periodNanoseconds: Self.periodNanoseconds, fifoPriority: fifo, maximumSeconds: seconds + 5)
        let thread = PeriodicThread(
            name: "bench-idle", periodNanoseconds: Self.periodNanoseconds, fifoPriority: fifo, lockMemory: false
        ) { _ in }
        probe.start()
        thread.start()
        Thread.sleep(forTimeInterval: seconds)
        thread.requestStop()
        thread.join()
        let machine = probe.stop()
        let figures = thread.statistics.figures()
        #expect(thread.periodsRun > 0)
        Self.print([
            "",
            "[benchmark] idle loop (empty body), \(Self.policyName(fifo, granted: thread.realtimeReport)), "
                + String(format: "%.0f s", seconds),
            "periods run \(thread.periodsRun), overruns \(thread.overruns)",
            TimingFigures.header,
            TimingFigures(figures[.wakeLatency]!).row("loop wake latency"),
            TimingFigures(figures[.busy]!).row("loop busy"),
            machine.figures.row("machine wake latency"),
            "machine probe (\(Self.policyName(fifo, granted: machine.report))): missed deadlines \(machine.missed), "
                + "wake-ups > \(JitterCorrelation.lateNanoseconds / 1000) µs late: \(machine.late.count)",
        ])
    }

    /// The real control loop at 1 ms producing lamps against the simulated cell on loopback.
    func production(fifo: Int32?, seconds: Double) throws {
        let recorder = PeriodTimeRecorder(capacity: Int((seconds + 120) * 1000))
        let cell = try CellFixture(seed: 5, periodMicroseconds: 1000, hooks: recorder.hooks, fifoPriority: fifo)
        defer { cell.shutdown() }
        let loop = cell.daemon.loop
        // The figures are taken whatever happens to production (an abort is itself a result: it is reported).
        let startProblem = cell.produce(lamps: 5, timeoutSeconds: 20)
        let underWay = startProblem == nil
            && cell.waitFor(seconds: 20) { $0.unit.state == .execute && $0.lampInCell != nil }

        let probe = JitterProbe(periodNanoseconds: Self.periodNanoseconds, fifoPriority: fifo, maximumSeconds: seconds + 5)
        probe.start()
        loop.thread.statistics.reset()
        let overrunsBefore = loop.thread.overruns
        let periodsBefore = loop.thread.periodsRun
        let firstIndex = Int(cell.daemon.snapshot().periodIndex) + 2
        let lampsBefore = cell.daemon.snapshot().lampsFinished
        Thread.sleep(forTimeInterval: seconds)
        let figures = loop.thread.statistics.figures()
        let overruns = loop.thread.overruns - overrunsBefore
        let periods = loop.thread.periodsRun - periodsBefore
        let lastIndex = Int(cell.daemon.snapshot().periodIndex)
        let machine = probe.stop()
        let snapshot = cell.daemon.snapshot()
        let lamps = snapshot.lampsFinished - lampsBefore

        // Where the loop's late wake-ups and long periods fall relative to the machine's.
        let timeline = recorder.periods(in: firstIndex..<lastIndex, periodNanoseconds: Self.periodNanoseconds)
        let lateWakes = timeline.filter { $0.latency > JitterCorrelation.lateNanoseconds }.map(\.begin)
        let longPeriods = timeline.filter { $0.latency + $0.busy > Self.periodNanoseconds }.map(\.begin)
        let slowest = timeline.sorted { $0.busy > $1.busy }.prefix(5)

        Self.print([
            "",
            "[benchmark] production at 1 ms, \(Self.policyName(fifo, granted: loop.thread.realtimeReport)), "
                + String(format: "%.0f s", seconds) + ", lamps finished in the window: \(lamps), state now \(snapshot.unit.state)",
            "periods run \(periods), overruns (missed deadlines) \(overruns), "
                + String(format: "%.3f %%", periods == 0 ? 0 : 100 * Double(overruns) / Double(periods + overruns))
                + ", statistics samples dropped \(loop.thread.statistics.dropped)",
            TimingFigures.header,
            TimingFigures(figures[.wakeLatency]!).row("loop wake latency"),
            TimingFigures(figures[.read]!).row("read (0x17s + station)"),
            TimingFigures(figures[.step]!).row("step"),
            TimingFigures(figures[.write]!).row("write + snapshot"),
            TimingFigures(figures[.busy]!).row("busy"),
            machine.figures.row("machine wake latency"),
            "machine probe (\(Self.policyName(fifo, granted: machine.report))): missed deadlines \(machine.missed), "
                + "wake-ups > \(JitterCorrelation.lateNanoseconds / 1000) µs late: \(machine.late.count)",
            "loop wake-ups > \(JitterCorrelation.lateNanoseconds / 1000) µs late: \(lateWakes.count), of which "
                + "\(JitterCorrelation.coincident(lateWakes, probe: machine.late)) within ±"
                + "\(JitterCorrelation.windowNanoseconds / 1_000_000) ms of a late probe wake-up",
            "loop periods ending past their deadline (latency + busy > 1 ms): \(longPeriods.count), of which "
                + "\(JitterCorrelation.coincident(longPeriods, probe: machine.late)) within ±"
                + "\(JitterCorrelation.windowNanoseconds / 1_000_000) ms of a late probe wake-up",
            "slowest periods (busy µs, wake latency µs): "
                + slowest.map { String(format: "%.0f/%.0f", Double($0.busy) / 1000, Double($0.latency) / 1000) }
                .joined(separator: ", "),
        ])
        let fault = snapshot.lastFault.map { "\($0.code) \($0.message) (device \($0.deviceIndex.map(String.init) ?? "-"))" }
        Self.print([
            "production: started \(startProblem ?? "ok"), lamp under way at the start of the window: \(underWay), "
                + "last fault: \(fault ?? "none"), arm faults: \(cell.armFaults().map { "\($0.arm) 0x\(String($0.code, radix: 16))" })"
        ])
        #expect(periods > 0)
    }
}
