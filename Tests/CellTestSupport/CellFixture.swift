import CRealtime
import CellConfig
import CellCore
import CellService
import CellSimulator
import Foundation
import LampCellTestSupport
import Logging

/// A whole cell for end-to-end tests: the simulated devices served over Modbus TCP on loopback (the real driver
/// path) and the real controller stack (`CellDaemon`) driving them, with its state in a fresh temporary directory.
/// The one definition: the daemon, API and SIGKILL tests all start their cell here. Thread: the test's.
public final class CellFixture: @unchecked Sendable {
    public let server: SimulatedCellServer
    public let daemon: CellDaemon
    public let stateDirectory: String
    public let definition: CellDefinition

    /// - Parameters:
    ///   - periodMicroseconds: the control period.
    ///   - hooks: period hooks (allocation counting).
    ///   - fifoPriority: SCHED_FIFO priority of the control thread (needs root or CAP_SYS_NICE; refused otherwise,
    ///     see `daemon.loop.thread.realtimeReport`); nil for SCHED_OTHER, the default of the tests.
    ///   - configure: last changes to the daemon's configuration (the API socket, the command group…).
    public init(
        seed: UInt64 = 1, defectRate: Double = 0, periodMicroseconds: Int = 4000, stateDirectory: String? = nil,
        hooks: PeriodHooks? = nil, sinks: [any LampSink] = [], fifoPriority: Int32? = 80,
        configure: (inout DaemonConfiguration) -> Void = { _ in }
    ) throws {
        var configuration = try DaemonConfiguration.load(from: Repository.developmentConfiguration)
        let directory =
            stateDirectory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("lampcell-e2e-\(UUID().uuidString)").path
        self.stateDirectory = directory
        configuration.stateDirectory = directory
        configuration.ledgerPath = directory + "/ledger.sqlite"
        configuration.periodNanoseconds = UInt64(periodMicroseconds) * 1000
        configuration.responseTimeoutNanoseconds = min(2_000_000, configuration.periodNanoseconds / 2)
        // Real-time scheduling when permitted (root, as in CI): the controller above the simulated devices, both
        // above the rest of the box, so a loaded 2-core machine does not starve the loop (refused silently otherwise).
        configuration.fifoPriority = fifoPriority
        configuration.lockMemory = false
        configure(&configuration)
        definition = try CellDefinition.load(from: configuration.cellPath)
        var recipes: [Recipe] = []
        for path in configuration.recipePaths { recipes.append(try Recipe.load(from: path, cell: definition)) }
        let simulated = SimulatedCell(
            configuration: try SimulatedCellConfiguration(
                cell: definition, options: SimulationOptions(seed: seed, defectRate: defectRate)))
        server = SimulatedCellServer(cell: simulated, fifoPriority: fifoPriority.map { max(1, $0 - 10) })
        let ports = try server.start()
        var endpoints: [String: DeviceConnection] = [:]
        for (name, port) in ports {
            endpoints[name] = DeviceConnection(name: name, host: "127.0.0.1", port: port, unitID: 1)
        }
        var logger = Logger(label: "e2e")
        logger.logLevel = .warning
        daemon = try CellDaemon(
            configuration: configuration, definition: definition, recipes: recipes, endpoints: endpoints,
            sinks: sinks, logger: logger, periodHooks: hooks)
        daemon.start()
    }

    /// Runs `body` on the simulated cell's models (stepped to now, under the cell's lock).
    public func models<T>(_ body: (CellModels) throws -> T) rethrows -> T { try server.cell.withModels(body) }

    /// Brings the cell to Execute on an order of `lamps` lamps; fails the caller with the reason when it cannot.
    public func produce(lamps: UInt32, variant: Variant = .left, timeoutSeconds: Double = 60) -> String? {
        daemon.autoStart(
            variant: variant, lamps: lamps, orderID: "TEST-\(UUID().uuidString.prefix(8))",
            timeoutNanoseconds: UInt64(timeoutSeconds * 1e9))
    }

    /// Waits until `condition` holds for the cell's snapshot.
    @discardableResult
    public func waitFor(seconds: Double, _ condition: (CellSnapshot) -> Bool) -> Bool {
        daemon.waitFor(timeoutNanoseconds: UInt64(seconds * 1e9), condition)
    }

    /// Waits until `count` lamps have left the cell and been handed to the sinks.
    @discardableResult
    public func waitForLamps(_ count: UInt64, seconds: Double) -> Bool {
        let deadline = lampcell_monotonic_ns() + UInt64(seconds * 1e9)
        while lampcell_monotonic_ns() < deadline {
            if daemon.drain.lampsDrained >= count { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return daemon.drain.lampsDrained >= count
    }

    /// Waits until the simulated world holds `condition` (polled every 10 ms).
    @discardableResult
    public func waitForWorld(seconds: Double, _ condition: (CellModels) -> Bool) -> Bool {
        let deadline = lampcell_monotonic_ns() + UInt64(seconds * 1e9)
        while lampcell_monotonic_ns() < deadline {
            if models(condition) { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return models(condition)
    }

    /// Every fault the simulated arms latched so far: (arm name, code).
    public func armFaults() -> [(arm: String, code: UInt16)] {
        models { models in
            models.arms.enumerated().flatMap { index, arm in
                arm.faultHistory.map { (models.armNames[index], $0.code) }
            }
        }
    }

    /// Stops the controller (controlled stop) and the simulated devices; removes the state directory.
    public func shutdown(keepState: Bool = false) {
        daemon.shutdown(timeoutNanoseconds: 10_000_000_000)
        server.stop()
        if !keepState { try? FileManager.default.removeItem(atPath: stateDirectory) }
    }
}

/// Collects every lamp the drain hands over (tests read them from any thread).
public final class CollectingSink: LampSink, @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [LampRecord] = []

    public init() {}

    public func accept(_ lamp: LampRecord) {
        lock.lock()
        collected.append(lamp)
        lock.unlock()
    }

    public var lamps: [LampRecord] {
        lock.lock()
        defer { lock.unlock() }
        return collected
    }
}
