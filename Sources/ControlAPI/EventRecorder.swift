import CRealtime
import ControlAPIClient
import Foundation
import Ledger
import Logging

/// Turns successive status documents into the alarm and event history's changes: alarms that appeared or went,
/// a stop that began or ended, a state change. Pure (no clock, no I/O): the recorder feeds it documents and
/// their wall times. Thread: one owner.
///
/// What counts (docs/HMI.md):
/// - an **alarm** per condition present in the document: a device's link disconnected or failing
///   `linkAlarmConsecutiveFailures` exchanges in a row (one late reply in a VM stall is no alarm), a device's fault code, an arm's
///   e-stop or protective stop bit, the station's safety chain open, a material wait, the plant link's warning;
/// - a **stop** from the moment a stop reason appears (abort, stop or hold) until the cell is in Execute again;
/// - a **state** change.
struct AlarmTracker {
    /// An alarm condition as the document shows it.
    struct Condition: Equatable {
        var code: String
        var source: String
        var message: String
        var detail: String
    }

    /// What changed between two documents.
    enum Change: Equatable {
        case alarmBegan(Condition)
        case alarmEnded(code: String)
        case stopBegan(Condition)
        case stopEnded
        case stateChanged(to: String, from: String)
    }

    /// Failed exchanges in a row before a link that is still connected counts as an alarm: 100 ms at the 4 ms period.
    static let linkAlarmConsecutiveFailures = 25

    private var activeAlarms: [String: Condition] = [:]
    private var activeStop: StatusDocument.StopReasonText?
    private var lastStopReason: StatusDocument.StopReasonText?
    private var lastState: String?

    /// The pseudo-state of the time the daemon did not run: the first document changes from it, and the recorder
    /// records it at stop, so that a report never counts an outage as the last state before it.
    static let offlineState = "Offline"

    /// The changes `document` brings, in a stable order (ended before began).
    mutating func changes(_ document: StatusDocument) -> [Change] {
        var changes: [Change] = []
        let packml = document.packml
        if lastState != packml.state {
            changes.append(.stateChanged(to: packml.state, from: lastState ?? Self.offlineState))
        }
        lastState = packml.state

        // Stops: a new stop reason begins one (ending the one before); Execute ends it.
        var reasonIdentity = packml.stopReason
        reasonIdentity?.remedy = nil
        if let reason = reasonIdentity, reason != lastStopReason, packml.state != "Execute" {
            if activeStop != nil { changes.append(.stopEnded) }
            activeStop = reason
            changes.append(
                .stopBegan(
                    Condition(
                        code: reason.kind, source: reason.device ?? "cell", message: reason.message,
                        detail: packml.stopReason?.remedy ?? "")))
        } else if packml.state == "Execute", activeStop != nil {
            activeStop = nil
            changes.append(.stopEnded)
        }
        lastStopReason = reasonIdentity

        var present: [String: Condition] = [:]
        for condition in Self.conditions(document) { present[condition.code] = condition }
        for code in activeAlarms.keys.sorted() where present[code] == nil {
            changes.append(.alarmEnded(code: code))
        }
        for code in present.keys.sorted() where activeAlarms[code] == nil {
            changes.append(.alarmBegan(present[code]!))
        }
        activeAlarms = present
        return changes
    }

    /// Every alarm condition `document` shows.
    static func conditions(_ document: StatusDocument) -> [Condition] {
        var conditions: [Condition] = []
        for device in document.devices {
            if device.link == "disconnected"
                || (device.link != "ok" && device.consecutiveFailures >= Self.linkAlarmConsecutiveFailures)
            {
                conditions.append(
                    Condition(
                        code: "\(device.name).link", source: device.name,
                        message: "\(device.name) link \(device.link)",
                        detail: "check \(device.name)'s power and network cable"))
            }
            if device.faultCodeValue != 0 {
                conditions.append(
                    Condition(
                        code: "\(device.name).fault.\(device.faultCode)", source: device.name,
                        message: "\(device.name) fault \(device.faultCode) \(device.faultName)",
                        detail: "remove the cause at \(device.name), then Clear"))
            }
            if device.status.contains("ESTOP") {
                conditions.append(
                    Condition(
                        code: "\(device.name).estop", source: device.name, message: "\(device.name): e-stop",
                        detail: "release the e-stop button, then Clear"))
            }
            if device.status.contains("PROTECTIVE_STOP") {
                conditions.append(
                    Condition(
                        code: "\(device.name).protective_stop", source: device.name,
                        message: "\(device.name): protective stop", detail: "close the guard, then Clear"))
            }
            if device.kind == "station", device.connected, !(device.signals ?? []).contains("SAFETY_OK") {
                conditions.append(
                    Condition(
                        code: "\(device.name).safety_chain", source: device.name,
                        message: "safety chain open (e-stop or guard door)",
                        detail: "release the e-stop, close the guard door, then Clear"))
            }
        }
        if let wait = document.packml.materialWait {
            conditions.append(
                Condition(code: "cell.material", source: "cell", message: wait, detail: "bring the material to the cell"))
        }
        if let warning = document.plant?.warning {
            conditions.append(
                Condition(
                    code: "plant.warning", source: "plant", message: warning,
                    detail: "call maintenance: the plant database does not take the ledger"))
        }
        return conditions
    }
}

/// Records the alarm and event history from the status documents: a thread of its own that builds (or shares)
/// the document every `intervalMilliseconds`, feeds `AlarmTracker`, and writes the changes (one durable
/// transaction each, off the event loop and the control thread). Alarms and stops it finds still active from an
/// earlier run are ended at start. Start and stop from the API server's owner thread.
final class EventRecorder: @unchecked Sendable {
    /// How often the document is looked at: alarm and stop times are this exact.
    static let intervalMilliseconds: UInt32 = 100

    private let history: EventHistory
    private let status: StatusSource
    private let logger: Logger
    private let nice: Int32
    private let stopping = NSCondition()
    private var stopRequested = false
    private var finished = false

    init(history: EventHistory, status: StatusSource, nice: Int32, logger: Logger) {
        self.history = history
        self.status = status
        self.nice = nice
        self.logger = logger
    }

    func start() {
        do {
            let ended = try history.endActive(atWallNanoseconds: Int64(lampcell_realtime_ns()))
            if ended > 0 { logger.info("events: ended \(ended) alarms and stops left active by the previous run") }
        } catch {
            logger.error("events: \(error)")
        }
        let thread = Thread { [self] in run() }
        thread.name = "lampcell-events"
        thread.stackSize = 512 * 1024
        thread.start()
    }

    /// Stops the thread and waits for it (it ends its open alarms: the daemon is no longer watching them).
    func stop() {
        stopping.lock()
        stopRequested = true
        stopping.broadcast()
        while !finished { stopping.wait() }
        stopping.unlock()
    }

    private func run() {
        APIServer.lowerPriority(nice)
        var tracker = AlarmTracker()
        var openAlarms: [String: Int64] = [:]
        var openStop: Int64?
        while true {
            stopping.lock()
            if !stopRequested {
                _ = stopping.wait(until: Date(timeIntervalSinceNow: Double(Self.intervalMilliseconds) / 1000))
            }
            let stop = stopRequested
            stopping.unlock()
            if stop { break }
            let document = status.current().document
            let now = Int64(lampcell_realtime_ns())
            for change in tracker.changes(document) {
                do {
                    switch change {
                    case .alarmBegan(let condition):
                        openAlarms[condition.code] = try history.record(event(.alarm, condition, at: now))
                    case .alarmEnded(let code):
                        if let id = openAlarms.removeValue(forKey: code) { try history.end(id: id, atWallNanoseconds: now) }
                    case .stopBegan(let condition):
                        openStop = try history.record(event(.stop, condition, at: now))
                    case .stopEnded:
                        if let id = openStop { try history.end(id: id, atWallNanoseconds: now) }
                        openStop = nil
                    case .stateChanged(let state, let from):
                        try history.record(
                            CellEvent(
                                kind: .state, code: state, source: "cell", message: "\(from) → \(state)",
                                startedWallNanoseconds: now, endedWallNanoseconds: now))
                    }
                } catch {
                    logger.error("events: \(error)")
                }
            }
        }
        do {
            let now = Int64(lampcell_realtime_ns())
            try history.endActive(atWallNanoseconds: now)
            try history.record(
                CellEvent(
                    kind: .state, code: AlarmTracker.offlineState, source: "cell", message: "the daemon stops",
                    startedWallNanoseconds: now, endedWallNanoseconds: now))
        } catch {
            logger.error("events: \(error)")
        }
        stopping.lock()
        finished = true
        stopping.broadcast()
        stopping.unlock()
    }

    private func event(_ kind: EventKind, _ condition: AlarmTracker.Condition, at now: Int64) -> CellEvent {
        CellEvent(
            kind: kind, code: condition.code, source: condition.source, message: condition.message,
            detail: condition.detail, startedWallNanoseconds: now, endedWallNanoseconds: nil)
    }
}
