import ArgumentParser
import CellCore
import CellSimulator
import Foundation

/// `lampsim`: the simulated headlamp cell, served over Modbus TCP on loopback, with fault injection on stdin.
@main
struct LampSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lampsim",
        abstract: "The simulated LampCell headlamp cell (RA-610 arms, TS-200 station) over Modbus TCP.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve every device of the cell on loopback; read fault-injection commands from stdin.",
        discussion: "Prints one line per device: `<name> <host>:<port>`, then `ready`. Type `help` for commands.")

    @Option(help: "The cell definition (TOML).")
    var cell = "Hardware/cell.toml"

    @Option(help: "Seed of every random choice of the run.")
    var seed: UInt64 = 1

    @Option(help: "Share of housings with a hidden defect, 0…1.")
    var defectRate = 0.02

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "First port: devices get consecutive ports from here, in definition order; 0 picks free ports.")
    var basePort = 0

    func validate() throws {
        guard (0...1).contains(defectRate) else {
            throw ValidationError("--defect-rate \(defectRate): must be between 0 and 1")
        }
        guard (0...65_000).contains(basePort) else { throw ValidationError("--base-port \(basePort): out of range") }
    }

    func run() throws {
        let definition: CellDefinition
        do {
            definition = try CellDefinition.load(from: cell)
        } catch {
            FileHandle.standardError.write(Data("lampsim: \(error)\n".utf8))
            throw ExitCode(78)
        }
        let configuration = try SimulatedCellConfiguration(
            cell: definition, options: SimulationOptions(seed: seed, defectRate: defectRate))
        let simulated = SimulatedCell(configuration: configuration)
        var ports: [String: Int] = [:]
        if basePort > 0 {
            for (index, name) in simulated.deviceNames.enumerated() { ports[name] = basePort + index }
        }
        let server = SimulatedCellServer(cell: simulated, host: host, ports: ports)
        let bound = try server.start()
        for name in server.deviceNames { print("\(name) \(host):\(bound[name] ?? 0)") }
        print("ready (seed \(seed), defect rate \(defectRate)); type help for fault injection")
        fflush(nil)
        let console = FaultConsole(server: server)
        while let line = readLine() {
            let reply = console.execute(line)
            if reply == FaultConsole.quit { break }
            if !reply.isEmpty { print(reply) }
            fflush(nil)
        }
        server.stop()
    }
}
