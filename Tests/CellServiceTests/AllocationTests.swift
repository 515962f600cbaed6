import CAllocationCounter
import CRealtime
import CellControl
import CellCore
import CellService
import CellTestSupport
import Foundation
import PackML
import Synchronization
import Testing

// The rule of the control thread: nothing in a control period allocates. These tests count every malloc/calloc/
// realloc/memalign/posix_memalign/aligned_alloc the control thread makes inside its period hooks (CAllocationCounter
// interposes the process's allocator) while the real controller produces lamps against the simulated cell over
// Modbus TCP on loopback.
//
// Diagnostics: `LAMPCELL_ALLOCATION_TRACE=startup:N` (or `steady:N`) prints a backtrace to stderr for each of the next
// N allocations counted in a control period, from the start of the run (or from the start of steady production).
// Symbolise the addresses with `swift demangle` / `llvm-symbolizer --obj=<test binary>`.

/// What the control thread did in one period, written by the period hooks into preallocated storage.
struct PeriodAllocationRecord {
    /// Allocations made between the period's begin and end hooks.
    var allocations: UInt32 = 0
    /// `PackMLState.rawValue` at the end of the period; `unknownState` before the recorder was attached.
    var state: UInt8 = PeriodAllocationRecord.unknownState
    /// A lamp was in the cell at the end of the period.
    var lampInCell = false
    /// `controller.lampsFinished` at the end of the period (saturating).
    var lampsFinished: UInt16 = 0
    /// The period ran (false for deadlines skipped after an overrun).
    var ran = false
    /// An arm started a trajectory in this period (its `isMoving` rose): a move, path or stop was planned or a
    /// pre-planned path taken up.
    var motionStarted = false

    static let unknownState: UInt8 = .max
}

/// Records, per control period, the allocations the control thread made and the state it left the cell in.
///
/// The hooks run on the control thread and allocate nothing: they write into storage allocated here, at init.
/// `attach` (any thread, once, before reading) hands over the controller whose state is recorded.
final class PeriodAllocationRecorder: @unchecked Sendable {
    /// Periods recorded (65 536: 4.3 minutes at 4 ms, 65 s at 1 ms); later ones are counted in `overflow`.
    static let capacity = 1 << 16

    let records: UnsafeMutableBufferPointer<PeriodAllocationRecord>
    /// Periods beyond `capacity`.
    let overflow = Atomic<UInt64>(0)
    /// Highest period index recorded + 1.
    let periodsSeen = Atomic<UInt64>(0)
    private nonisolated(unsafe) var controller: CellController?
    private let attached = Atomic<Bool>(false)
    /// Each arm's `isMoving` at the end of the previous period (control thread only).
    private let wasMoving: UnsafeMutableBufferPointer<Bool>

    init() {
        records = .allocate(capacity: Self.capacity)
        records.initialize(repeating: PeriodAllocationRecord())
        wasMoving = .allocate(capacity: maximumArmCount)
        wasMoving.initialize(repeating: false)
    }

    deinit {
        records.deallocate()
        wasMoving.deallocate()
    }

    /// The hooks to give the control loop.
    var hooks: PeriodHooks {
        PeriodHooks(
            begin: { lampcell_allocations_begin() },
            end: { [self] index in record(periodIndex: index) })
    }

    /// Starts recording the controller's state. Any thread, once.
    func attach(_ controller: CellController) {
        self.controller = controller
        attached.store(true, ordering: .releasing)
    }

    /// Thread: the control thread (end hook). Does not allocate.
    private func record(periodIndex: UInt64) {
        let allocations = lampcell_allocations_end()
        guard periodIndex < UInt64(Self.capacity) else {
            overflow.add(1, ordering: .relaxed)
            return
        }
        var entry = PeriodAllocationRecord()
        entry.allocations = UInt32(clamping: allocations)
        entry.ran = true
        if attached.load(ordering: .acquiring), let controller {
            entry.state = controller.unit.state.rawValue
            entry.lampInCell = controller.lamp != nil
            entry.lampsFinished = UInt16(clamping: controller.lampsFinished)
            for index in 0..<min(controller.arms.count, maximumArmCount) {
                let moving = controller.arms[index].isMoving
                if moving && !wasMoving[index] { entry.motionStarted = true }
                wasMoving[index] = moving
            }
        }
        records[Int(periodIndex)] = entry
        periodsSeen.store(periodIndex + 1, ordering: .releasing)
    }

    /// Periods in `range` that allocated, as (index, record). Any thread, after the periods ran.
    func allocating(in range: Range<Int>) -> [(index: Int, record: PeriodAllocationRecord)] {
        range.compactMap { records[$0].ran && records[$0].allocations > 0 ? ($0, records[$0]) : nil }
    }
}

/// Keeps what a sanity test allocated alive, so the allocation cannot be optimised away.
final class AllocationSink: @unchecked Sendable {
    nonisolated(unsafe) static var kept: [AnyObject] = []
    nonisolated(unsafe) static var keptArrays: [[Int]] = []

    @inline(never)
    static func keep(_ object: AnyObject) { kept.append(object) }

    @inline(never)
    static func keep(_ array: [Int]) { keptArrays.append(array) }

    nonisolated(unsafe) static var consumed: UInt64 = 0

    @inline(never)
    static func consume(_ value: UInt64) { consumed ^= value }
}

/// A class instance to allocate.
final class AllocatedObject {
    var value: Int
    init(value: Int) { self.value = value }
}

/// Which allocations to trace, from `LAMPCELL_ALLOCATION_TRACE`: `startup:N` or `steady:N`.
struct AllocationTraceRequest {
    var fromStartup: Bool
    var count: Int64

    static var fromEnvironment: AllocationTraceRequest? {
        guard let text = ProcessInfo.processInfo.environment["LAMPCELL_ALLOCATION_TRACE"] else { return nil }
        let parts = text.split(separator: ":")
        guard parts.count == 2, let count = Int64(parts[1]), parts[0] == "startup" || parts[0] == "steady" else {
            return nil
        }
        return AllocationTraceRequest(fromStartup: parts[0] == "startup", count: count)
    }
}

@Suite("Allocations in the control period", .serialized)
struct AllocationTests {
    @Test("the counter sees Swift array and class allocations on the counting thread, and none for arithmetic")
    func counterWorks() {
        // Warm up once: the first call of each path may touch lazily initialised runtime state.
        AllocationSink.keep([Int](repeating: 0, count: 1))
        AllocationSink.keep(AllocatedObject(value: 0))

        lampcell_allocations_begin()
        AllocationSink.keep([Int](repeating: 7, count: 1000))
        let arrayAllocations = lampcell_allocations_end()
        #expect(arrayAllocations > 0, "a 1000-element Swift array was not counted (swift_slowAlloc not interposed?)")

        lampcell_allocations_begin()
        AllocationSink.keep(AllocatedObject(value: 42))
        let objectAllocations = lampcell_allocations_end()
        #expect(objectAllocations > 0, "a Swift class instance was not counted")

        let raw = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        lampcell_allocations_begin()
        let aligned = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        let alignedAllocations = lampcell_allocations_end()
        aligned.deallocate()
        raw.deallocate()
        #expect(alignedAllocations > 0, "an over-aligned allocation (aligned_alloc/posix_memalign) was not counted")

        var accumulator: UInt64 = 1
        lampcell_allocations_begin()
        for index in 0..<100_000 { accumulator = accumulator &* 6_364_136_223_846_793_005 &+ UInt64(index) }
        let arithmeticAllocations = lampcell_allocations_end()
        #expect(arithmeticAllocations == 0, "pure arithmetic was counted as \(arithmeticAllocations) allocations")
        AllocationSink.consume(accumulator)
    }

    @Test("steady production (a full lamp cycle and more) makes no allocation in any control period")
    func steadyProductionAllocatesNothing() throws {
        let recorder = PeriodAllocationRecorder()
        // Swift Testing's will-throw hook allocates a backtrace for every error thrown on any thread, the control
        // thread included (a timed-out Modbus request throws); a production process has no such hook.
        #expect(lampcell_swift_throw_hooks_suspend() >= 0, "the Swift runtime has no will-throw hooks to suspend")
        defer { lampcell_swift_throw_hooks_restore() }
        let trace = AllocationTraceRequest.fromEnvironment
        if let trace, trace.fromStartup { lampcell_allocations_trace(trace.count) }
        defer { lampcell_allocations_trace(0) }

        let cell = try CellFixture(seed: 11, defectRate: 0, hooks: recorder.hooks)
        defer { cell.shutdown() }
        recorder.attach(cell.daemon.loop.controller)
        let executeState = PackMLState.execute.rawValue

        #expect(cell.produce(lamps: 2) == nil)
        // Steady production starts once the cell is in Execute with the first lamp under way.
        let underWay = cell.waitFor(seconds: 20) { $0.unit.state == .execute && $0.lampInCell != nil }
        try #require(underWay, "the first lamp never got under way: \(cell.daemon.snapshot().unit.state)")
        if let trace, !trace.fromStartup { lampcell_allocations_trace(trace.count) }
        let finished = cell.waitFor(seconds: 75) { $0.lampsFinished >= 2 && $0.unit.state == .complete }
        let outcome = cell.daemon.snapshot()
        // Timing of the run, to tell a loaded machine (timed-out exchanges, overruns) from a controller fault.
        let figures = cell.daemon.loop.thread.statistics.figures()
        print(
            "[allocations] loop: \(cell.daemon.loop.thread.periodsRun) periods, \(cell.daemon.loop.thread.overruns) "
                + "overruns; max read \((figures[.read]?.maxNanoseconds ?? 0) / 1000) µs, max busy "
                + "\((figures[.busy]?.maxNanoseconds ?? 0) / 1000) µs, max wake latency "
                + "\((figures[.wakeLatency]?.maxNanoseconds ?? 0) / 1000) µs")
        let fault = outcome.lastFault.map { "\($0.code) \($0.message) (device \($0.deviceIndex.map(String.init) ?? "-"))" }
        try #require(
            finished,
            "the order of 2 lamps did not complete: \(outcome.unit.state), last fault \(fault ?? "none"), arm faults \(cell.armFaults())")
        // A few periods in Complete, so that entering and staying in it are covered too.
        let completeIndex = cell.daemon.snapshot().periodIndex
        cell.waitFor(seconds: 2) { $0.periodIndex >= completeIndex + 50 }
        lampcell_allocations_trace(0)

        let seen = Int(recorder.periodsSeen.load(ordering: .acquiring))
        #expect(recorder.overflow.load(ordering: .relaxed) == 0, "the recorder ran out of room")
        let records = recorder.records
        guard
            let steadyStart = (0..<seen).first(where: {
                records[$0].ran && records[$0].state == executeState && records[$0].lampInCell
            }),
            let secondLampDone = (steadyStart..<seen).first(where: { records[$0].ran && records[$0].lampsFinished >= 2 }),
            let firstLampDone = (steadyStart..<seen).first(where: { records[$0].ran && records[$0].lampsFinished >= 1 })
        else {
            Issue.record("the per-period records do not show the production (\(seen) periods recorded)")
            return
        }
        let periodSeconds = Double(cell.daemon.configuration.periodNanoseconds) / 1e9
        let steady = steadyStart..<seen

        // Report start-up: which periods allocated, in which state.
        let startup = recorder.allocating(in: 0..<steadyStart)
        var byState: [UInt8: (periods: Int, allocations: UInt64)] = [:]
        for (_, record) in startup {
            byState[record.state, default: (0, 0)].periods += 1
            byState[record.state, default: (0, 0)].allocations += UInt64(record.allocations)
        }
        let startupSummary = byState.sorted { $0.key < $1.key }.map { state, figures in
            let name = state == PeriodAllocationRecord.unknownState
                ? "before attach" : (PackMLState(rawValue: state).map { "\($0)" } ?? "state \(state)")
            return "\(name): \(figures.allocations) allocations in \(figures.periods) periods"
        }
        print(
            "[allocations] start-up (periods 0..<\(steadyStart)): "
                + (startupSummary.isEmpty ? "none" : startupSummary.joined(separator: "; ")))
        print(
            "[allocations] steady production: periods \(steadyStart)..<\(seen) "
                + String(format: "(%.1f s; lamp 1 done at period %d, lamp 2 at %d)",
                    Double(seen - steadyStart) * periodSeconds, firstLampDone, secondLampDone))

        // The window covers a full lamp cycle: lamp 2 started and finished inside it.
        #expect(secondLampDone > firstLampDone)
        let ranInSteady = steady.filter { records[$0].ran }.count
        #expect(ranInSteady > 1000, "only \(ranInSteady) periods ran in steady production")

        let offending = recorder.allocating(in: steady)
        func describe(_ periods: [(index: Int, record: PeriodAllocationRecord)]) -> String {
            periods.prefix(20).map { index, record in
                "period \(index): \(record.allocations) allocations (state "
                    + "\(PackMLState(rawValue: record.state).map { "\($0)" } ?? "?"), lamp in cell: \(record.lampInCell), "
                    + "lamps finished: \(record.lampsFinished), motion started: \(record.motionStarted))"
            }.joined(separator: "; ")
        }
        let atMotionStart = offending.filter { $0.record.motionStarted }
        let elsewhere = offending.filter { !$0.record.motionStarted }
        print(
            "[allocations] steady production: \(offending.count) of \(ranInSteady) periods allocated "
                + "(\(atMotionStart.map { UInt64($0.record.allocations) }.reduce(0, +)) allocations in "
                + "\(atMotionStart.count) periods that started a motion, "
                + "\(elsewhere.map { UInt64($0.record.allocations) }.reduce(0, +)) in \(elsewhere.count) others)")
        let allocatingPeriods = elsewhere.count
        #expect(
            allocatingPeriods == 0,
            "\(elsewhere.count) of \(ranInSteady) steady-production periods allocated; first: \(describe(elsewhere))")
        #expect(
            atMotionStart.isEmpty,
            "\(atMotionStart.count) periods that started a motion allocated; first: \(describe(atMotionStart))")
    }
}
