import CellConfig
import CellCore
import CellService
import CellSimulator
import Foundation
import Logging

/// The simulated cell served on loopback, and the daemon's development configuration pointed at it: what items 1, 2
/// and 9 run `CellDaemon` against. Thread: the bench's main thread.
struct BenchCell {
    /// `Systemd/lampcelld-dev.toml` with its state under the bench's scratch folder, the period and the priority set.
    var configuration: DaemonConfiguration
    let definition: CellDefinition
    let recipes: [Recipe]
    /// The simulated devices' Modbus servers (SCHED_FIFO 10 below the loop, as under `lampcelld --simulate`); the
    /// caller stops them.
    let server: SimulatedCellServer
    /// Port of each device.
    let ports: [String: Int]

    /// Loads the configuration and the cell, starts the servers. `name` names the state folder under `scratch`
    /// (emptied first).
    init(
        repository: String, scratch: String, name: String, periodMicroseconds: Int, fifoPriority: Int32, seed: UInt64
    ) throws {
        configuration = try DaemonConfiguration.load(from: repository + "/Systemd/lampcelld-dev.toml")
        let state = scratch + "/" + name
        try? FileManager.default.removeItem(atPath: state)
        configuration.stateDirectory = state
        configuration.ledgerPath = state + "/ledger.sqlite"
        configuration.periodNanoseconds = UInt64(periodMicroseconds) * 1000
        configuration.fifoPriority = fifoPriority
        definition = try CellDefinition.load(from: configuration.cellPath)
        var recipes: [Recipe] = []
        for path in configuration.recipePaths { recipes.append(try Recipe.load(from: path, cell: definition)) }
        self.recipes = recipes
        let simulated = SimulatedCell(
            configuration: try SimulatedCellConfiguration(
                cell: definition, options: SimulationOptions(seed: seed, defectRate: 0.02)))
        server = SimulatedCellServer(cell: simulated, fifoPriority: fifoPriority - 10)
        ports = try server.start()
    }

    /// Where the daemon reaches each device.
    var endpoints: [String: DeviceConnection] {
        var endpoints: [String: DeviceConnection] = [:]
        for (name, port) in ports {
            endpoints[name] = DeviceConnection(name: name, host: "127.0.0.1", port: port, unitID: 1)
        }
        return endpoints
    }

    /// The daemon on this cell, not started; it logs errors only.
    func daemon(periodHooks: PeriodHooks? = nil) throws -> CellDaemon {
        var logger = Logger(label: "lampbench")
        logger.logLevel = .error
        return try CellDaemon(
            configuration: configuration, definition: definition, recipes: recipes, endpoints: endpoints,
            logger: logger, periodHooks: periodHooks)
    }
}
