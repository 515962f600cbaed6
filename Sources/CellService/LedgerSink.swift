import CRealtime
import CellCore
import Foundation
import Ledger
import Logging
import Synchronization

/// Writes every finished lamp to the ledger, durably, off the control thread; remembers the lamp in the cell so
/// that a crash cannot lose it.
///
/// - A lamp counts as recorded only after its transaction committed. On a retryable failure (disk full, I/O, busy)
///   the sink clears `CellController.ledgerWritable` — the cell holds — and retries the same entry (appends are
///   idempotent) with a capped backoff until it commits, then sets it again — the cell unholds. Nothing is lost
///   or duplicated; lamps finished meanwhile wait in the controller's bounded queue.
/// - When a lamp enters the cell its record is written to `<state>/lamp-in-cell` (temporary file, fsync, rename).
///   At the next start, a lamp still named there and absent from the ledger is recorded as scrapped with reason
///   "controller restart".
/// - Every `Checkpoint.publishIntervalLamps` lamps the head (count + hash) is logged as a checkpoint line.
///
/// Thread: `accept`/`lampStarted` on the drain thread only; `head` from any thread.
public final class LedgerSink: LampSink, @unchecked Sendable {
    /// Longest pause between two attempts of a failing append.
    public static let maximumRetryDelayNanoseconds: UInt64 = 2_000_000_000

    public let writer: LedgerWriter
    private let logger: Logger
    private let inCellPath: String
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
        if let data = FileManager.default.contents(atPath: inCellPath), let lamp = Self.decode(data) {
            let serial = lamp.serial.text(cellID: currentContext.cellID)
            if try writer.ledger.entry(serial: serial) == nil {
                let entry = LedgerEntry.scrappedAtRestart(
                    lamp, recordedAtWallNanoseconds: lampcell_realtime_ns(), context: currentContext)
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

    public func lampStarted(_ lamp: LampRecord) {
        Self.writeDurably(Self.encode(lamp), to: inCellPath, logger: logger)
    }

    public func accept(_ lamp: LampRecord) {
        let entry = LedgerEntry(lamp, context: currentContext)
        var delay: UInt64 = 50_000_000
        var announced = false
        while true {
            do throws(LedgerError) {
                let stored = try writer.append(entry)
                if announced {
                    logger.notice("the ledger writes again", metadata: ["LAMP_SERIAL": "\(entry.serial)"])
                    writable(true)
                }
                try? FileManager.default.removeItem(atPath: inCellPath)
                let head = Checkpoint(count: stored.position, headHash: stored.hash, headSerial: stored.serial)
                publishedHead.withLock { $0 = head }
                if stored.position % Checkpoint.publishIntervalLamps == 0 {
                    logger.notice("\(head)")
                }
                return
            } catch {
                failureCount.add(1, ordering: .relaxed)
                if !announced {
                    logger.error(
                        "the ledger cannot write lamp \(entry.serial): \(error); the cell holds until it can",
                        metadata: ["LAMP_SERIAL": "\(entry.serial)"])
                    writable(false)
                    announced = true
                }
                if !error.isRetryable {
                    // A conflicting duplicate or a corrupt file needs a person; keep holding and retrying slowly.
                    delay = Self.maximumRetryDelayNanoseconds
                }
                Thread.sleep(forTimeInterval: Double(delay) / 1e9)
                delay = min(delay * 2, Self.maximumRetryDelayNanoseconds)
            }
        }
    }

    // MARK: - The lamp-in-cell file

    /// Fields of the lamp in the cell, one `key=value` per line (enough to record it as scrapped later).
    static func encode(_ lamp: LampRecord) -> Data {
        let lines = [
            "date_code=\(lamp.serial.dateCode)", "sequence=\(lamp.serial.sequence)", "variant=\(lamp.variant)",
            "recipe_index=\(lamp.recipeIndex)", "order_sequence=\(lamp.orderSequence)",
            "start_wall_ns=\(lamp.startWallNanoseconds)", "housing_lot=\(lamp.housingLot)",
            "led_module_lot=\(lamp.ledModuleLot)", "lens_lot=\(lamp.lensLot)",
        ]
        return Data((lines.joined(separator: "\n") + "\n").utf8)
    }

    static func decode(_ data: Data) -> LampRecord? {
        var fields: [String: UInt64] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2, let value = UInt64(parts[1]) { fields[String(parts[0])] = value }
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
        return lamp
    }

    /// Writes `data` to `path` atomically and durably (temporary file, fsync, rename, fsync of the directory).
    static func writeDurably(_ data: Data, to path: String, logger: Logger) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            logger.error("cannot write \(temporary): \(String(cString: strerror(errno)))")
            return
        }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            logger.error("cannot write \(path): \(String(cString: strerror(errno)))")
            return
        }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}
