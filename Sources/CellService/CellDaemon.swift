import CRealtime
import CellConfig
import CellControl
import CellCore
import CellRuntime
import Foundation
import Ledger
import Logging
import Modbus
import PackML

/// Hands the ledger's writable state to the controller (set once the controller exists).
final class WritableFlag: @unchecked Sendable {
    var controller: CellController?
    func set(_ writable: Bool) { controller?.ledgerWritable.store(writable, ordering: .relaxed) }
}

/// Why the daemon could not be built; the message names the file or device.
public struct DaemonStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The whole controller of one cell, wired: drivers, controller, control thread, lamp drain, serials, and a
/// request broker so that several threads (API clients, the daemon's own start/stop logic) can command the cell.
///
/// Thread: create, start and shut down from one thread; `request`, `snapshot` and `waitFor` from any thread.
public final class CellDaemon: @unchecked Sendable {
    public let configuration: DaemonConfiguration
    public let cell: CompiledCell
    public let recipes: [CompiledRecipe]
    public let loop: ControlLoop
    public let drain: LampDrain
    public let serials: SerialAllocator
    /// The ledger writer (a lamp sink on the drain thread).
    public let ledger: LedgerSink
    public let logger: Logger
    private let brokerLock = NSLock()
    private var repliesByTicket: [UInt64: ControllerReply] = [:]

    /// How long `request` waits for the control thread's reply.
    public static let replyTimeoutNanoseconds: UInt64 = 2_000_000_000

    /// - Parameters:
    ///   - endpoints: where each device is reached (the cell definition's addresses, or the simulator's).
    ///   - sinks: receive every finished lamp after the log line (the ledger).
    public init(
        configuration: DaemonConfiguration, definition: CellDefinition, recipes loaded: [Recipe],
        endpoints: [String: DeviceConnection], sinks: [any LampSink] = [], logger: Logger,
        periodHooks: PeriodHooks? = nil
    ) throws {
        self.configuration = configuration
        self.logger = logger
        cell = try CompiledCell.compile(definition)
        var compiled: [CompiledRecipe] = []
        for recipe in loaded { compiled.append(try CompiledRecipe.compile(recipe, cell: cell)) }
        recipes = compiled
        try FileManager.default.createDirectory(
            atPath: configuration.stateDirectory, withIntermediateDirectories: true)

        // The ledger first: its highest serial is a floor for the serial allocator, and a lamp left in the cell by
        // a crash is recorded before anything else happens.
        var ledgerRecipes: [LedgerRecipe] = []
        for (index, recipe) in compiled.enumerated() {
            let path = index < configuration.recipePaths.count ? configuration.recipePaths[index] : ""
            let bytes = FileManager.default.contents(atPath: path) ?? Data()
            ledgerRecipes.append(LedgerRecipe(recipe, contentSHA256: LedgerRecipe.sha256Hex(of: bytes)))
        }
        let context = LedgerContext(
            cellID: cell.cellID, recipes: ledgerRecipes, orderIDs: [:], devices: [],
            softwareVersion: "lampcelld \(LampCellVersion.current)")
        let writableFlag = WritableFlag()
        ledger = try LedgerSink(
            path: configuration.ledgerPath, stateDirectory: configuration.stateDirectory, context: context,
            logger: logger, writable: { writableFlag.set($0) })
        let verification = try ledger.recoverAtStart()
        if verification.isValid {
            logger.info("\(verification)")
        } else {
            logger.critical("\(verification)")
        }
        serials = try SerialAllocator(
            path: configuration.stateDirectory + "/serial", floor: try ledger.writer.ledger.highestSerialSequence())
        var settings = ControllerSettings()
        settings.periodNanoseconds = configuration.periodNanoseconds
        settings.armWatchdogMilliseconds = configuration.armWatchdogMilliseconds
        // The controller gives up on a device a little before the arms' own watchdog would trip.
        settings.deviceLostAfterNanoseconds = UInt64(configuration.armWatchdogMilliseconds) * 600_000
        let allocator = serials
        let controller = CellController(
            cell: cell, recipes: compiled, settings: settings, nowNanoseconds: lampcell_monotonic_ns(),
            serials: { allocator.take() })
        var loopSettings = ControlLoopSettings()
        loopSettings.fifoPriority = configuration.fifoPriority
        loopSettings.lockMemory = configuration.lockMemory
        loopSettings.responseTimeoutNanoseconds = configuration.responseTimeoutNanoseconds
        loopSettings.connectTimeoutNanoseconds = configuration.responseTimeoutNanoseconds
        loopSettings.stationConnections = configuration.stationConnections
        loopSettings.periodHooks = periodHooks
        var arms: [DeviceConnection] = []
        for arm in cell.arms {
            guard let endpoint = endpoints[arm.name] else { throw DaemonStartError("no endpoint for arm \(arm.name)") }
            arms.append(endpoint)
        }
        guard let station = endpoints[definition.station.name] else {
            throw DaemonStartError("no endpoint for station \(definition.station.name)")
        }
        loop = try ControlLoop(controller: controller, arms: arms, station: station, settings: loopSettings)
        writableFlag.controller = controller
        let log = LampLogSink(logger: logger, cellID: cell.cellID)
        let ledgerSink = ledger
        let deviceNames = cell.arms.map(\.name) + [definition.station.name]
        let controlLoop = loop
        drain = LampDrain(
            queue: controller.lamps, sinks: [ledgerSink, log] + sinks,
            recordedInCell: { controller.lampInCellRecorded.store($0, ordering: .releasing) }
        ) {
            if allocator.needsRefill {
                do { try allocator.refill() } catch { logger.error("\(error)") }
            }
            ledgerSink.updateDevices(Self.deviceIdentities(controlLoop.snapshot(), names: deviceNames))
        }
    }

    /// The identity each device reported (RA-610: serial number and firmware from input registers 100..103).
    static func deviceIdentities(_ snapshot: CellSnapshot, names: [String]) -> [DeviceIdentity] {
        var devices: [DeviceIdentity] = []
        for index in 0..<snapshot.armCount where index < names.count {
            let link = snapshot.armInputs[index].link
            devices.append(.ra610(name: names[index], serialNumber: link.serialNumber, firmwareRegister: link.firmware))
        }
        if let station = names.last {
            devices.append(DeviceIdentity(name: station, serialNumber: "", firmware: ""))
        }
        return devices
    }

    /// Starts the lamp drain and the control thread; logs what real-time set-up was refused.
    public func start() {
        drain.start()
        loop.start()
        if let report = loop.thread.realtimeReport {
            for warning in report.warnings { logger.warning("\(warning)") }
        }
    }

    /// The latest published state. Any thread.
    public func snapshot() -> CellSnapshot { loop.snapshot() }

    /// Sends a request to the controller and waits for its reply (nil on timeout or a full queue). Any thread.
    public func request(_ request: ControllerRequest) -> ControllerReply? {
        brokerLock.lock()
        let ticket = loop.submit(request)
        brokerLock.unlock()
        guard let ticket else { return nil }
        let deadline = lampcell_monotonic_ns() + Self.replyTimeoutNanoseconds
        while lampcell_monotonic_ns() < deadline {
            brokerLock.lock()
            while let reply = loop.controller.replies.pop() { repliesByTicket[reply.ticket] = reply }
            let mine = repliesByTicket.removeValue(forKey: ticket)
            brokerLock.unlock()
            if let mine {
                if case .order(let order, _) = request, mine.refusal == nil, mine.message == nil {
                    ledger.registerOrder(sequence: mine.orderSequence, id: order.id)
                }
                return mine
            }
            Thread.sleep(forTimeInterval: 0.001)
        }
        return nil
    }

    /// Waits until `condition` holds for a published snapshot, or the timeout passes. Any thread.
    @discardableResult
    public func waitFor(timeoutNanoseconds: UInt64, _ condition: (CellSnapshot) -> Bool) -> Bool {
        let deadline = lampcell_monotonic_ns() + timeoutNanoseconds
        while lampcell_monotonic_ns() < deadline {
            if condition(snapshot()) { return true }
            Thread.sleep(forTimeInterval: 0.002)
        }
        return condition(snapshot())
    }

    /// Brings the cell to Execute on an order of `lamps` lamps of `variant`: Clear if Aborted, Reset if Stopped or
    /// Complete, then Start. Returns nil on success or the reason it could not. Any thread but the control thread.
    public func autoStart(variant: Variant, lamps: UInt32, orderID: String, timeoutNanoseconds: UInt64) -> String? {
        guard let recipeIndex = recipes.firstIndex(where: { $0.variant == variant }) else {
            return "no recipe for variant \(variant.name)"
        }
        let deadline = lampcell_monotonic_ns() + timeoutNanoseconds
        var orderPlaced = false
        while lampcell_monotonic_ns() < deadline {
            let state = snapshot().unit.state
            switch state {
            case .execute:
                return nil
            case .aborted:
                _ = request(.command(.clear))
            case .stopped, .complete, .idle:
                if !orderPlaced {
                    let order: ProductionOrder
                    do {
                        order = try ProductionOrder(id: orderID, variantCode: variant.rawValue, quantity: lamps)
                    } catch {
                        return "\(error)"
                    }
                    if let reply = request(.order(order, recipeIndex: recipeIndex)),
                        reply.refusal == nil, reply.message == nil
                    {
                        orderPlaced = true
                    }
                }
                _ = request(.command(state == .idle ? .start : .reset))
            default:
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return "the cell did not reach Execute; it is \(snapshot().unit.state)"
    }

    /// Controlled shutdown: Stop (the arms decelerate on jerk-limited stop trajectories and their servos go off),
    /// wait for a resting state, stop the control thread, drain the lamps. Any thread but the control thread.
    public func shutdown(timeoutNanoseconds: UInt64) {
        let state = snapshot().unit.state
        if state != .stopped && state != .aborted && state != .stopping && state != .aborting {
            _ = request(.command(.stop))
        }
        // Stopped (or Aborted) and every arm reporting its servos off: the command that switches them off is
        // written in the period after the one that reached Stopped.
        waitFor(timeoutNanoseconds: timeoutNanoseconds) { snapshot in
            (snapshot.unit.state == .stopped || snapshot.unit.state == .aborted)
                && (0..<snapshot.armCount).allSatisfy {
                    !snapshot.armInputs[$0].status.contains(.enabled) || snapshot.armInputs[$0].link.state != .ok
                }
        }
        loop.stop()
        // The drain commits what is queued; on a ledger that cannot write it would retry for ever, and systemd would
        // kill the daemon at TimeoutStopSec. After the grace, failing appends are given up: what committed stays,
        // and the lamp not committed stays named in the lamp-in-cell file for the next start.
        if !drain.stop(withinNanoseconds: Self.drainGraceNanoseconds) {
            ledger.stopRetrying()
            drain.stop()
        }
    }

    /// How long a shutdown lets the drain retry a failing ledger append. With the 10 s lampcelld gives the arms to
    /// stop, a shutdown stays well inside the unit's TimeoutStopSec (30 s).
    public static let drainGraceNanoseconds: UInt64 = 5_000_000_000
}
