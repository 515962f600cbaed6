import CellCore
import CellRuntime
import Foundation
import Logging
import Synchronization

/// Receives each finished lamp, in order, on the drain thread (the ledger writer, the log line).
public protocol LampSink: AnyObject, Sendable {
    /// Handles one lamp that left the cell. Thread: the drain thread only. May block (disk); the control thread is
    /// not affected.
    func accept(_ lamp: LampRecord)
    /// A lamp is entering the cell: its housing grip waits until every sink returns true (its record of the lamp
    /// in the cell is durable). False: not recorded; the drain tries again. Thread: the drain thread only.
    func lampStarted(_ lamp: LampRecord) -> Bool
}

extension LampSink {
    /// A sink that keeps no record of the lamp in the cell has nothing to wait for.
    public func lampStarted(_ lamp: LampRecord) -> Bool { true }
}

/// Drains the controller's lamp queue on its own thread and hands every lamp to the sinks.
///
/// The control thread never waits for it: if it falls behind, the bounded queue fills and the controller holds the
/// cell (no production without traceability).
public final class LampDrain: @unchecked Sendable {
    /// How often the drain looks at the queue when it was empty.
    public static let pollIntervalNanoseconds: UInt64 = 5_000_000

    private let queue: BoundedQueue<LampRecord>
    private let sinks: [any LampSink]
    private let stopRequested = Atomic<Bool>(false)
    private let drained = Atomic<UInt64>(0)
    private let done = NSCondition()
    private var finished = false

    private let housekeeping: @Sendable () -> Void
    private let recordedInCell: @Sendable (UInt64) -> Void

    /// - Parameters:
    ///   - recordedInCell: called on the drain thread with a lamp's sequence once every sink recorded it in the cell
    ///     (the daemon stores it in `CellController.lampInCellRecorded`, which lets the housing grip go).
    ///   - housekeeping: called on the drain thread whenever the queue is empty (e.g. refilling the serial block,
    ///     which does disk I/O that the control thread must not do).
    public init(
        queue: BoundedQueue<LampRecord>, sinks: [any LampSink], recordedInCell: @escaping @Sendable (UInt64) -> Void,
        housekeeping: @escaping @Sendable () -> Void = {}
    ) {
        self.queue = queue
        self.sinks = sinks
        self.recordedInCell = recordedInCell
        self.housekeeping = housekeeping
    }

    /// Finished lamps handed to the sinks so far. Any thread.
    public var lampsDrained: UInt64 { drained.load(ordering: .relaxed) }

    /// Starts the drain thread. Any thread, once.
    public func start() {
        let thread = Thread { [self] in
            // A lamp whose in-cell record failed (the state directory cannot be written): tried again every poll
            // interval until it is written or a stop is requested. Nothing else of that lamp is queued meanwhile:
            // its housing is not picked before the record is written.
            var unrecorded: LampRecord?
            while true {
                if let lamp = unrecorded {
                    if record(lamp) {
                        unrecorded = nil
                    } else if stopRequested.load(ordering: .relaxed) {
                        break
                    } else {
                        Thread.sleep(forTimeInterval: Double(Self.pollIntervalNanoseconds) / 1e9)
                        continue
                    }
                }
                if let lamp = queue.pop() {
                    if lamp.stage == .started {
                        if !record(lamp) { unrecorded = lamp }
                    } else {
                        for sink in sinks { sink.accept(lamp) }
                        drained.add(1, ordering: .relaxed)
                    }
                    continue
                }
                if stopRequested.load(ordering: .relaxed) { break }
                housekeeping()
                Thread.sleep(forTimeInterval: Double(Self.pollIntervalNanoseconds) / 1e9)
            }
            done.lock()
            finished = true
            done.broadcast()
            done.unlock()
        }
        thread.name = "lampcell-lamps"
        thread.start()
    }

    /// Hands a lamp entering the cell to every sink; true (and the controller told) when all of them recorded it.
    private func record(_ lamp: LampRecord) -> Bool {
        var recorded = true
        for sink in sinks where !sink.lampStarted(lamp) { recorded = false }
        if recorded { recordedInCell(lamp.serial.sequence) }
        return recorded
    }

    /// Drains what is queued, then stops the thread. Any thread; call after the control loop stopped.
    public func stop() {
        _ = stop(until: nil)
    }

    /// As `stop()`, but waits at most `timeoutNanoseconds`; returns whether the thread finished (false: a sink is
    /// still at work, e.g. retrying a ledger append on a full disk). Any thread.
    public func stop(withinNanoseconds timeoutNanoseconds: UInt64) -> Bool {
        stop(until: Date(timeIntervalSinceNow: Double(timeoutNanoseconds) / 1e9))
    }

    /// Requests the stop and waits for the thread to end, until `deadline` (nil: for ever; `NSCondition.wait(until:)`
    /// traps on Linux for `Date.distantFuture`).
    private func stop(until deadline: Date?) -> Bool {
        stopRequested.store(true, ordering: .relaxed)
        done.lock()
        defer { done.unlock() }
        while !finished {
            if let deadline {
                if !done.wait(until: deadline) { return finished }
            } else {
                done.wait()
            }
        }
        return true
    }
}

/// Logs one line per finished lamp: serial, variant, verdict (with NG reasons or scrap reason), cycle time.
public final class LampLogSink: LampSink {
    private let logger: Logger
    private let cellID: String

    public init(logger: Logger, cellID: String) {
        self.logger = logger
        self.cellID = cellID
    }

    public func accept(_ lamp: LampRecord) {
        logger.info(
            "\(LampLogSink.line(lamp, cellID: cellID))",
            metadata: ["LAMP_SERIAL": "\(lamp.serial.text(cellID: cellID))", "VERDICT": "\(lamp.verdict.name)"])
    }

    /// `lamp <serial> <variant> <verdict> [reasons] cycle <s> s`.
    public static func line(_ lamp: LampRecord, cellID: String) -> String {
        let variant = Variant(rawValue: lamp.variant)?.name ?? "variant \(lamp.variant)"
        var text = "lamp \(lamp.serial.text(cellID: cellID)) \(variant) \(lamp.verdict.name)"
        switch lamp.verdict {
        case .ng: text += " (\(reasons(lamp)))"
        case .scrapped: text += " (\(lamp.scrapReason.text))"
        case .ok: break
        }
        text += " cycle \(String(format: "%.1f", lamp.cycleTimeSeconds)) s"
        return text
    }

    /// The NG reasons: each measurement outside its window (or missing), with its value.
    public static func reasons(_ lamp: LampRecord) -> String {
        MeasurementKind.allCases.filter { lamp.outOfWindowMask & (1 << $0.rawValue) != 0 }.map { kind in
            if let value = lamp.measurements[kind] {
                "\(kind.name) \(String(format: "%g", value)) \(kind.unit) out of window"
            } else {
                "\(kind.name) missing"
            }
        }.joined(separator: ", ")
    }
}
