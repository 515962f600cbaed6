import CRealtime
import CellConfig
import CellCore
import CellSimulator
import ControlAPI
import ControlAPIClient
import Foundation
import Ledger
import Logging
import Reports

/// What the daemon hands the API beyond status and commands: the alarm and event history beside the ledger, the
/// cell's description, the shift report, and the operator panel when `[panel]` is configured. Main thread, at start.
enum PanelLink {
    /// A history that cannot be opened (a damaged file, a full disk) is an error in the log: the API and the panel
    /// run on without `/v1/alarms` and the report's availability.
    static func extras(
        configuration: DaemonConfiguration, definition: CellDefinition, recipes: [Recipe], logger: Logger
    ) -> APIExtras {
        let events: EventHistory?
        do {
            events = try EventHistory(path: configuration.eventsPath)
        } catch {
            logger.error("events: \(error): no alarm and event history this run")
            events = nil
        }
        let description = CellDescription(
            cellID: definition.cellID,
            arms: definition.arms.map { arm in
                CellDescription.Arm(
                    name: arm.name,
                    jointLimitsRadians: zip(arm.jointLimits.positionMinimumRadians, arm.jointLimits.positionMaximumRadians)
                        .map { [$0, $1] })
            },
            station: definition.station.name,
            recipes: recipes.map { recipe in
                CellDescription.Recipe(
                    id: recipe.id, variant: recipe.variant.name, idealCycleSeconds: recipe.idealCycleTimeSeconds,
                    windows: MeasurementKind.allCases.map { kind in
                        let window = recipe.processWindows.window(of: kind)
                        return CellDescription.Window(
                            name: kind.name, minimum: window.minimum, maximum: window.maximum, unit: window.unit)
                    })
            })
        let ideal = Dictionary(recipes.map { ($0.id, $0.idealCycleTimeSeconds) }, uniquingKeysWith: { first, _ in first })
        let ledgerPath = configuration.ledgerPath
        let cellID = definition.cellID
        let reports: ShiftReportSource = { from, to in
            let ledger = try Ledger.openReadOnly(path: ledgerPath)
            return try ShiftReport.make(
                cellID: cellID, ledger: ledger, events: events, fromWallNanoseconds: Int64(from),
                toWallNanoseconds: Int64(to), idealCycleSeconds: ideal, nowWallNanoseconds: Int64(lampcell_realtime_ns())
            ).html()
        }
        let panel = configuration.panel.map {
            PanelServerConfiguration(
                address: $0.address, port: $0.port, operatorsFile: $0.operatorsFile,
                sessionIdleSeconds: $0.sessionIdleMinutes * 60)
        }
        if let file = panel?.operatorsFile {
            // A bad operators file is named at start; the panel still shows the cell, and reads the file again at
            // each login once it is fixed.
            do {
                let accounts = try OperatorAccounts.load(path: file)
                logger.info("panel: \(accounts.names.count) operators in \(file)")
            } catch {
                logger.error("panel: \(error)")
            }
        }
        return APIExtras(panel: panel, events: events, cellDescription: description, reports: reports)
    }
}

/// `lampcelld --simulate --fault-console`: the simulator's fault-injection commands (`FaultConsole`, the same as
/// `lampsim serve`'s) read from standard input on a thread of its own; replies go to standard output.
enum FaultConsoleThread {
    static func start(server: SimulatedCellServer, logger: Logger) {
        let console = FaultConsole(server: server)
        let thread = Thread {
            while let line = readLine() {
                let reply = console.execute(line)
                if reply == FaultConsole.quit { break }
                logger.notice("fault console: \(line)")
                if !reply.isEmpty { print(reply) }
                fflush(nil)
            }
        }
        thread.name = "lampcell-fault-console"
        thread.start()
        logger.info("fault console: reading commands on standard input (help lists them)")
    }
}
