import CRealtime
import CellCore
import CellRuntime
import Foundation
import Ledger
import Logging
import Synchronization

/// The ledger drain's decisions, apart from their I/O: when to hold the cell, how long to wait before retrying a
/// failed append, when to let the cell go on, which head is a checkpoint, and what to record for a lamp that was in
/// the cell when the controller stopped. `LedgerSink` (the daemon's drain thread, real sleeps) and the virtual cell
/// (virtual time) both follow them. A value; thread: its owner.
public struct LedgerDrainPolicy: Sendable {
    /// Pause after the first failed attempt; it doubles up to `maximumRetryDelayNanoseconds`.
    public static let firstRetryDelayNanoseconds: UInt64 = 50_000_000
    /// Longest pause between two attempts of a failing append (also the pause after a failure that is not
    /// retryable: a conflicting duplicate or a corrupt file needs a person; the drain keeps holding and retrying
    /// slowly).
    public static let maximumRetryDelayNanoseconds: UInt64 = 2_000_000_000

    /// True from a failed append until the next committed one: the cell is held meanwhile.
    public private(set) var isFailing = false
    private var nextDelayNanoseconds = Self.firstRetryDelayNanoseconds

    public init() {}

    /// An append failed. Returns whether the cell must be held now (the first failure of a run of failures) and how
    /// long to wait before the next attempt of the same entry.
    public mutating func appendFailed(retryable: Bool) -> (holdCell: Bool, retryAfterNanoseconds: UInt64) {
        let holdCell = !isFailing
        isFailing = true
        let delay = retryable ? nextDelayNanoseconds : Self.maximumRetryDelayNanoseconds
        nextDelayNanoseconds = min(delay * 2, Self.maximumRetryDelayNanoseconds)
        return (holdCell, delay)
    }

    /// An append committed. Returns whether the cell may go on (it was held by a failure of this drain).
    public mutating func appendCommitted() -> Bool {
        defer {
            isFailing = false
            nextDelayNanoseconds = Self.firstRetryDelayNanoseconds
        }
        return isFailing
    }

    /// Whether the head at `position` is published as a checkpoint line.
    public static func isCheckpoint(position: Int64) -> Bool { position % Checkpoint.publishIntervalLamps == 0 }

    /// At a start: the entry to record for `lamp`, which was in the cell when the previous process stopped, or nil
    /// when the ledger already holds it (it finished and was recorded before the stop). `orderID` and `devices` are
    /// those of when the lamp entered (nil/empty: unknown).
    public static func entryForLampLeftInCell(
        _ lamp: LampRecord, orderID: String?, devices: [DeviceIdentity], ledger: Ledger, context: LedgerContext,
        recordedAtWallNanoseconds: UInt64
    ) throws(LedgerError) -> LedgerEntry? {
        var context = context
        if let orderID { context.orderIDs[lamp.orderSequence] = orderID }
        if !devices.isEmpty { context.devices = devices }
        guard try ledger.entry(serial: lamp.serial.text(cellID: context.cellID)) == nil else { return nil }
        return LedgerEntry.scrappedAtRestart(lamp, recordedAtWallNanoseconds: recordedAtWallNanoseconds, context: context)
    }
}

/// Writes every finished lamp to the ledger, durably, off the control thread; remembers the lamp in the cell so
/// that a crash cannot lose it.
///
/// - A lamp counts as recorded only after its transaction committed. On a retryable failure (disk full, I/O, busy)
///   the sink clears `CellController.ledgerWritable` — the cell holds — and retries the same entry (appends are
///   idempotent) with a capped backoff until it commits, then sets it again — the cell unholds. Nothing is lost
///   or duplicated; lamps finished meanwhile wait in the controller's bounded queue.
/// - When a lamp enters the cell its record is written to `<state>/lamp-in-cell` (temporary file, fsync, rename),
///   before the housing is gripped: the grip waits for it.
///   At the next start, a lamp still named there and absent from the ledger is recorded as scrapped with reason
///   "controller restart".
/// - Every `Checkpoint.publishIntervalLamps` lamps the head (count + hash) is logged as a checkpoint line.
///
/// Thread: `accept`/`lampStarted` on the drain thread only; `head` from any thread.
public final class LedgerSink: LampSink, @unchecked Sendable {
    public let writer: LedgerWriter
    private let logger: Logger
    private let inCellPath: String
    /// False once `stopRetrying` was called.
    private let retrying = Atomic<Bool>(true)
    private let contextLock = NSLock()
    private var context: LedgerContext
    private let writable: @Sendable (Bool) -> Void
    private let publishedHead = Mutex<Checkpoint?>(nil)
    private let failureCount = Atomic<UInt64>(0)

    /// Opens (or creates) the ledger at `path`.
    /// - Parameters:
    ///   - stateDirectory: where the lamp-in-cell file lives.
    ///   - writable: called with false when writing fails and with true when it works again (drives the hold).
    public init(
        path: String, stateDirectory: String, context: LedgerContext, logger: Logger,
        writable: @escaping @Sendable (Bool) -> Void
    ) throws(LedgerError) {
        writer = try LedgerWriter(path: path)
        self.context = context
        self.logger = logger
        self.writable = writable
        inCellPath = stateDirectory + "/lamp-in-cell"
        publishedHead.withLock { $0 = try? writer.ledger.head() }
    }

    /// The ledger's head after the last commit (count + hash), for status. Any thread.
    public var head: Checkpoint? { publishedHead.withLock { $0 } }

    /// Failed append attempts since start. Any thread.
    public var failedAttempts: UInt64 { failureCount.load(ordering: .relaxed) }

    /// Records the id of an accepted production order (lamps carry only its sequence number). Any thread.
    public func registerOrder(sequence: UInt32, id: String) {
        contextLock.lock()
        context.orderIDs[sequence] = id
        contextLock.unlock()
    }

    /// Records the identity read from each device (serial number, firmware) for the entries. Any thread.
    public func updateDevices(_ devices: [DeviceIdentity]) {
        contextLock.lock()
        context.devices = devices
        contextLock.unlock()
    }

    private var currentContext: LedgerContext {
        contextLock.lock()
        defer { contextLock.unlock() }
        return context
    }

    // MARK: - Start-up

    /// At start: checks the chain and resolves a lamp that was in the cell when the previous process died.
    /// Returns the verification for the caller to log. Thread: start-up.
    @discardableResult
    public func recoverAtStart() throws(LedgerError) -> LedgerVerification {
        let verification = try writer.ledger.verify()
        if let data = FileManager.default.contents(atPath: inCellPath), let inCell = Self.decode(data) {
            // The order and the devices as they were when the lamp entered (this process knows neither yet).
            if let entry = try LedgerDrainPolicy.entryForLampLeftInCell(
                inCell.lamp, orderID: inCell.orderID, devices: inCell.devices, ledger: writer.ledger,
                context: currentContext, recordedAtWallNanoseconds: lampcell_realtime_ns())
            {
                let serial = entry.serial
                _ = try writer.append(entry)
                logger.warning(
                    "lamp \(serial) was in the cell when the controller stopped: recorded as scrapped (controller restart)",
                    metadata: ["LAMP_SERIAL": "\(serial)"])
            }
            try? FileManager.default.removeItem(atPath: inCellPath)
        }
        publishedHead.withLock { $0 = try? writer.ledger.head() }
        return verification
    }

    // MARK: - LampSink

    /// Writes the lamp-in-cell file (temporary file, fsync, rename); true once it is durable.
    public func lampStarted(_ lamp: LampRecord) -> Bool {
        // After `stopRetrying` the file may name a lamp whose append was given up: it must not be overwritten.
        guard retrying.load(ordering: .relaxed) else { return false }
        do throws(DurableFileError) {
            try DurableFile.write(Self.encode(lamp, context: currentContext), to: inCellPath)
            return true
        } catch {
            logger.error("\(error)")
            return false
        }
    }

    /// Shutdown on a ledger that cannot write: a failing append is not retried any more (the lamp stays named in the
    /// lamp-in-cell file, which the next start records as scrapped, controller restart); what committed is kept.
    /// Any thread.
    public func stopRetrying() {
        retrying.store(false, ordering: .relaxed)
    }

    /// Slice of a retry's wait after which `stopRetrying` is noticed.
    static let retryWaitSliceNanoseconds: UInt64 = 50_000_000

    public func accept(_ lamp: LampRecord) {
        let entry = LedgerEntry(lamp, context: currentContext)
        var policy = LedgerDrainPolicy()
        while true {
            do throws(LedgerError) {
                let stored = try writer.append(entry)
                if policy.appendCommitted() {
                    logger.notice("the ledger writes again", metadata: ["LAMP_SERIAL": "\(entry.serial)"])
                    writable(true)
                }
                try? FileManager.default.removeItem(atPath: inCellPath)
                let head = Checkpoint(count: stored.position, headHash: stored.hash, headSerial: stored.serial)
                publishedHead.withLock { $0 = head }
                if LedgerDrainPolicy.isCheckpoint(position: stored.position) {
                    logger.notice("\(head)")
                }
                return
            } catch {
                failureCount.add(1, ordering: .relaxed)
                let decision = policy.appendFailed(retryable: error.isRetryable)
                if decision.holdCell {
                    logger.error(
                        "the ledger cannot write lamp \(entry.serial): \(error); the cell holds until it can",
                        metadata: ["LAMP_SERIAL": "\(entry.serial)"])
                    writable(false)
                }
                var waitedNanoseconds: UInt64 = 0
                while retrying.load(ordering: .relaxed) && waitedNanoseconds < decision.retryAfterNanoseconds {
                    let slice = min(Self.retryWaitSliceNanoseconds, decision.retryAfterNanoseconds - waitedNanoseconds)
                    Thread.sleep(forTimeInterval: Double(slice) / 1e9)
                    waitedNanoseconds += slice
                }
                if !retrying.load(ordering: .relaxed) {
                    logger.critical(
                        "stopping with lamp \(entry.serial) not in the ledger (\(error)): the lamp-in-cell file keeps it, and the next start records it as scrapped",
                        metadata: ["LAMP_SERIAL": "\(entry.serial)"])
                    return
                }
            }
        }
    }

    // MARK: - The lamp-in-cell file

    /// What the lamp-in-cell file tells of the lamp in the cell.
    struct LampInCell {
        var lamp: LampRecord
        /// The production order's id when the lamp entered; nil in files written without it.
        var orderID: String?
        /// The devices as they were when the lamp entered; empty in files written without them.
        var devices: [DeviceIdentity]
    }

    /// Fields of the lamp in the cell, one `key=value` per line (enough to record it as scrapped later, with its
    /// order and the devices that worked on it). Texts are escaped (`escape`); a device is
    /// `device=<name>\t<serial number>\t<firmware>`.
    static func encode(_ lamp: LampRecord, context: LedgerContext) -> Data {
        var lines = [
            "date_code=\(lamp.serial.dateCode)", "sequence=\(lamp.serial.sequence)", "variant=\(lamp.variant)",
            "recipe_index=\(lamp.recipeIndex)", "order_sequence=\(lamp.orderSequence)",
            "start_wall_ns=\(lamp.startWallNanoseconds)", "housing_lot=\(lamp.housingLot)",
            "led_module_lot=\(lamp.ledModuleLot)", "lens_lot=\(lamp.lensLot)",
        ]
        if let orderID = context.orderIDs[lamp.orderSequence] { lines.append("order_id=\(escape(orderID))") }
        for device in context.devices {
            lines.append("device=\(escape(device.name))\t\(escape(device.serialNumber))\t\(escape(device.firmware))")
        }
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }

    static func decode(_ data: Data) -> LampInCell? {
        var fields: [String: UInt64] = [:]
        var orderID: String?
        var devices: [DeviceIdentity] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "order_id":
                orderID = unescape(parts[1])
            case "device":
                let device = parts[1].split(separator: "\t", omittingEmptySubsequences: false).map(unescape)
                if device.count == 3 {
                    devices.append(DeviceIdentity(name: device[0], serialNumber: device[1], firmware: device[2]))
                }
            default:
                if let value = UInt64(parts[1]) { fields[String(parts[0])] = value }
            }
        }
        guard let dateCode = fields["date_code"], let sequence = fields["sequence"],
            let start = fields["start_wall_ns"]
        else { return nil }
        var lamp = LampRecord(
            serial: LampSerial(dateCode: UInt32(truncatingIfNeeded: dateCode), sequence: sequence),
            variant: UInt16(truncatingIfNeeded: fields["variant"] ?? 0), startWallNanoseconds: start,
            startMonotonicNanoseconds: 0)
        lamp.recipeIndex = UInt8(truncatingIfNeeded: fields["recipe_index"] ?? 0)
        lamp.orderSequence = UInt32(truncatingIfNeeded: fields["order_sequence"] ?? 0)
        lamp.housingLot = UInt32(truncatingIfNeeded: fields["housing_lot"] ?? 0)
        lamp.ledModuleLot = UInt32(truncatingIfNeeded: fields["led_module_lot"] ?? 0)
        lamp.lensLot = UInt32(truncatingIfNeeded: fields["lens_lot"] ?? 0)
        return LampInCell(lamp: lamp, orderID: orderID, devices: devices)
    }

    /// Backslash, LF, CR and TAB as `\\`, `\n`, `\r`, `\t` (one line, tab-separable). By Unicode scalar: a CR LF
    /// pair is one `Character` in Swift.
    static func escape(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// The inverse of `escape`.
    static func unescape(_ text: Substring) -> String {
        var out = String.UnicodeScalarView()
        var escaped = false
        for scalar in text.unicodeScalars {
            if escaped {
                switch scalar {
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "t": out.append("\t")
                default: out.append(scalar)
                }
                escaped = false
            } else if scalar == "\\" {
                escaped = true
            } else {
                out.append(scalar)
            }
        }
        return String(out)
    }

}
