import ArgumentParser
import CRealtime
import CellConfig
import CellCore
import CellService
import CellSimulator
import ControlAPI
import Foundation
import Logging
import SystemdSupport

#if canImport(Glibc)
import Glibc
#endif

/// `lampcelld`: the LampCell cell controller daemon.
@main
struct LampCellDaemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lampcelld",
        abstract: "LampCell: the cell controller of a robotic headlamp-assembly cell.",
        discussion: """
            Reads one configuration file (TOML) naming the cell definition, recipes, state directory and socket, and the
            control loop's period and priority. With --simulate it serves the simulated cell on loopback ports in this
            process and drives it over real Modbus TCP. SIGTERM/SIGINT: controlled stop of the arms, then exit 0.
            Exit 78 (EX_CONFIG) when the configuration is invalid; nothing is started then.
            """,
        version: LampCellVersion.current)

    /// Exit status for an invalid configuration (sysexits.h EX_CONFIG).
    static let configurationErrorExitCode: Int32 = 78
    /// How long shutdown waits for the arms to stop.
    static let shutdownTimeoutNanoseconds: UInt64 = 10_000_000_000

    @Option(name: .shortAndLong, help: "The configuration file.")
    var config = "/etc/lampcelld/lampcelld.toml"

    @Flag(help: "Serve the simulated cell in-process on loopback ports and drive it over Modbus TCP.")
    var simulate = false

    @Option(help: "Simulation seed.")
    var seed: UInt64 = 1

    @Option(help: "Simulation: share of housings with a hidden defect, 0…1.")
    var defectRate = 0.02

    @Option(
        help: ArgumentHelp(
            "With --simulate. " + DeviceResponseDelay.help, valueName: DeviceResponseDelay.valueName))
    var responseDelay: [String] = []

    @Flag(
        help:
            "With --simulate: read fault-injection commands on standard input (lampsim serve's: estop press, guard open, fault loader 0x0401, …).")
    var faultConsole = false

    @Flag(help: "Clear/Reset and Start production on an order by itself once the devices answer.")
    var autoStart = false

    @Option(help: "With --auto-start: the lamp variant (LEFT or RIGHT).")
    var variant = "LEFT"

    @Option(help: "With --auto-start: lamps in the order; the daemon stops and exits once this many lamps left the cell.")
    var lamps: UInt32?

    @Option(help: "Override the configuration's state directory (serials; the ledger too, unless configured outside it).")
    var stateDirectory: String?

    @Option(help: "Override the control period, µs.")
    var periodMicroseconds: Int?

    // systemd integration (SystemdIntegration.swift): test hook for the watchdog tests.
    /// Hidden test hook: each SIGUSR1 makes one control period busy-wait this long (a stalled control thread).
    @Option(help: .hidden)
    var testStallMilliseconds: UInt64?

    func validate() throws {
        if !responseDelay.isEmpty && !simulate {
            throw ValidationError("\(DeviceResponseDelay.optionName) slows the simulated devices: it needs --simulate")
        }
        if faultConsole && !simulate {
            throw ValidationError("--fault-console injects faults into the simulated cell: it needs --simulate")
        }
        _ = try responseDelays()
    }

    /// The `--response-delay` values; a refused one is a usage error (exit 64, like ArgumentParser's own).
    func responseDelays() throws -> [DeviceResponseDelay] {
        do {
            return try DeviceResponseDelay.parse(responseDelay)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() throws {
        LoggingSystem.bootstrap(SystemdLogging.handlerFactory(identifier: "lampcelld"))  // journald under systemd
        var logger = Logger(label: "lampcelld")
        logger.logLevel = .info

        // Configuration: one clear line and exit 78 on any problem, before anything starts.
        var configuration: DaemonConfiguration
        let definition: CellDefinition
        var recipes: [Recipe] = []
        let plant: PlantLink?
        guard let chosenVariant = Variant.allCases.first(where: { $0.name == variant.uppercased() }) else {
            fail("--variant \(variant): expected LEFT or RIGHT")
        }
        do {
            configuration = try DaemonConfiguration.load(from: config)
            if let stateDirectory {
                guard !stateDirectory.isEmpty else { fail("--state-directory: expected a directory, got an empty path") }
                // A relative path is taken from the current directory, as a shell user means it.
                let absolute = stateDirectory.hasPrefix("/")
                    ? stateDirectory : FileManager.default.currentDirectoryPath + "/" + stateDirectory
                configuration.moveStateDirectory(to: absolute)
            }
            if let periodMicroseconds {
                guard DaemonConfiguration.periodMicrosecondsRange.contains(periodMicroseconds) else {
                    fail("--period-microseconds \(periodMicroseconds): outside 500..20000")
                }
                configuration.periodNanoseconds = UInt64(periodMicroseconds) * 1000
                configuration.responseTimeoutNanoseconds = min(
                    configuration.responseTimeoutNanoseconds, configuration.periodNanoseconds / 2)
            }
            definition = try CellDefinition.load(from: configuration.cellPath)
            for path in configuration.recipePaths { recipes.append(try Recipe.load(from: path, cell: definition)) }
            plant = try PlantLink.make(configuration: configuration, cellID: definition.cellID, logger: logger)
        } catch {
            fail("\(error)")
        }

        // Devices: the cell's own addresses, or the in-process simulator's loopback ports.
        var endpoints: [String: DeviceConnection] = [:]
        for device in definition.devices {
            endpoints[device.name] = DeviceConnection(
                name: device.name, host: device.host, port: device.port, unitID: device.unitID)
        }
        var simulator: SimulatedCellServer?
        if simulate {
            let simulated = SimulatedCell(
                configuration: try SimulatedCellConfiguration(
                    cell: definition, options: SimulationOptions(seed: seed, defectRate: defectRate)))
            // The simulated devices run just below the control thread when it is real-time.
            let server = SimulatedCellServer(
                cell: simulated, fifoPriority: configuration.fifoPriority.map { max(1, $0 - 10) })
            let delays = try responseDelays()
            do {
                try server.setResponseDelays(delays)  // before start: the first reply is already late
            } catch {
                throw ValidationError(error.description)  // a device the cell does not have: a usage error too
            }
            logger.info("simulated cell: \(server.responseDelaySummary)")
            let ports = try server.start()
            for (name, port) in ports {
                endpoints[name] = DeviceConnection(name: name, host: "127.0.0.1", port: port, unitID: 1)
                logger.info("simulated \(name) on 127.0.0.1:\(port)")
            }
            simulator = server
        }

        // Signals are taken by sigwait on this thread; block them before any thread starts.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        if testStallMilliseconds != nil { sigaddset(&signals, SIGUSR1) }  // systemd: watchdog test hook
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let daemon: CellDaemon
        do {
            daemon = try CellDaemon(
                configuration: configuration, definition: definition, recipes: recipes, endpoints: endpoints,
                logger: logger)
        } catch {
            fail("\(error)")
        }
        daemon.start()
        // Replication of the ledger to the plant database, on its own thread (reads the ledger file only).
        if let plant {
            plant.replicator.start()
            logger.info("plant: replicating the ledger to \(plant.replicator.status().server)")
        }
        // Status and control API on the Unix socket (ControlAPI, docs/API.md); without it the cell still runs.
        var api: APIServer?
        do {
            let lamps = try LedgerLamps(path: configuration.ledgerPath)
            // Socket activation (lampcelld.socket names the socket "api"); without it the daemon binds the path.
            let activated = try SocketActivation.listenFileDescriptors().first { $0.name == "api" }?.fileDescriptor
            if let activated { logger.info("API socket passed by the service manager (fd \(activated))") }
            api = try APIServer.start(
                for: daemon, stationName: definition.station.name, lamps: lamps, plant: plant,
                activatedFileDescriptor: activated,
                extras: PanelLink.extras(configuration: configuration, definition: definition, recipes: recipes, logger: logger),
                logger: logger)
        } catch {
            logger.error("\(error)")
        }
        logger.info(
            "lampcelld started: cell \(definition.cellID), period \(configuration.periodNanoseconds / 1000) µs, \(recipes.count) recipes")
        // systemd: READY=1 (the loop runs and connects the devices, and the API socket listens),
        // STATUS= that follows the cell, WATCHDOG=1 while the control loop's heartbeat advances.
        let systemd = SystemdIntegration(daemon: daemon, stationName: definition.station.name, logger: logger)

        if faultConsole, let simulator {
            FaultConsoleThread.start(server: simulator, logger: logger)
        }

        if autoStart {
            let orderID = "AUTO-\(lampcell_realtime_ns() / 1_000_000_000)"
            let quantity = lamps ?? 1_000_000
            let operatorLogger = logger
            let thread = Thread {
                if let problem = daemon.autoStart(
                    variant: chosenVariant, lamps: quantity, orderID: orderID, timeoutNanoseconds: 60_000_000_000)
                {
                    operatorLogger.error("auto start: \(problem)")
                } else {
                    operatorLogger.info("auto start: producing \(quantity) \(chosenVariant.name) lamps, order \(orderID)")
                }
            }
            thread.start()
        }

        // Main thread: wait for SIGTERM/SIGINT, or for the requested number of lamps, then stop in order.
        var lastState = daemon.snapshot().unit.state
        var timeout = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        while true {
            let signal = sigtimedwait(&signals, nil, &timeout)
            if signal == SIGUSR1, let testStallMilliseconds {  // systemd: watchdog test hook
                logger.warning("test hook: stalling the control loop for \(testStallMilliseconds) ms")
                daemon.loop.injectStall(nanoseconds: testStallMilliseconds * 1_000_000)
                continue
            }
            if signal == SIGTERM || signal == SIGINT {
                logger.info("signal \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): controlled stop")
                break
            }
            let snapshot = daemon.snapshot()
            if snapshot.unit.state != lastState {
                var metadata: Logger.Metadata = ["PACKML_STATE": "\(snapshot.unit.state)"]
                if let fault = snapshot.lastFault, snapshot.unit.state == .aborting || snapshot.unit.state == .aborted {
                    metadata["STOP_REASON"] = "\(fault.message)"
                    if let device = fault.deviceIndex.map(Int.init) {
                        let names = daemon.cell.arms.map(\.name) + [definition.station.name]
                        metadata["DEVICE"] = "\(device < names.count ? names[device] : "?")"
                        let link = device < snapshot.armCount ? snapshot.armInputs[device].link : snapshot.stationInputs.link
                        metadata["LINK"] = "\(link.state) detail \(link.detail) failures \(link.consecutiveFailures)"
                        if device < snapshot.armCount {
                            metadata["FAULT_CODE"] = "0x\(String(snapshot.armInputs[device].faultCode, radix: 16))"
                        }
                    }
                }
                logger.info("PackML state \(snapshot.unit.state)", metadata: metadata)
                lastState = snapshot.unit.state
            }
            if let lamps, daemon.drain.lampsDrained >= UInt64(lamps) {
                logger.info("\(lamps) lamps left the cell: stopping")
                break
            }
        }
        systemd.stopping()  // systemd: STOPPING=1
        api?.stop()
        daemon.shutdown(timeoutNanoseconds: Self.shutdownTimeoutNanoseconds)
        if let plant, !plant.replicator.stop(timeoutMilliseconds: PlantLink.stopTimeoutMilliseconds) {
            logger.warning("plant: a batch was still in flight at exit; the next start reads the server's head")
        }
        simulator?.stop()
        systemd.finish(lampsThisRun: daemon.drain.lampsDrained)
        let final = daemon.snapshot()
        let servosOff = (0..<final.armCount).allSatisfy { !final.armInputs[$0].status.contains(.enabled) }
        logger.info(
            "lampcelld stopped in state \(final.unit.state), arms \(servosOff ? "at rest with servos off" : "STILL ENABLED"): \(daemon.drain.lampsDrained) lamps this run")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("lampcelld: \(message)\n".utf8))
        Foundation.exit(Self.configurationErrorExitCode)
    }
}
