import ArgumentParser
import CRealtime
import CellCampaign
import CellConfig
import CellCore
import CellSimulator
import Foundation

/// `lampsim`: the simulated headlamp cell, served over Modbus TCP on loopback, with fault injection on stdin.
@main
struct LampSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lampsim",
        abstract: "The simulated LampCell headlamp cell (RA-610 arms, TS-200 station) over Modbus TCP.",
        version: LampCellVersion.current,
        subcommands: [Serve.self, Shift.self, CampaignCommand.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve every device of the cell on loopback; read fault-injection commands from stdin.",
        discussion: """
            Prints one line per device: `<name> <host>:<port>`, then `ready`, then the response delays in force \
            (`response delays: …`). Type `help` for commands.
            """)

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

    @Option(help: ArgumentHelp(DeviceResponseDelay.help, valueName: DeviceResponseDelay.valueName))
    var responseDelay: [String] = []

    func validate() throws {
        guard (0...1).contains(defectRate) else {
            throw ValidationError("--defect-rate \(defectRate): must be between 0 and 1")
        }
        guard (0...65_000).contains(basePort) else { throw ValidationError("--base-port \(basePort): out of range") }
        let delays = try responseDelays()
        // Device names need the cell; checked here so the usage shown is this command's. A cell that does not load
        // is run()'s error (exit 78).
        if !delays.isEmpty, let definition = try? CellDefinition.load(from: cell) {
            do {
                _ = try DeviceResponseDelay.resolve(delays, deviceNames: definition.devices.map(\.name))
            } catch {
                throw ValidationError(error.description)
            }
        }
    }

    /// The `--response-delay` values; a refused one is a usage error (exit 64).
    func responseDelays() throws -> [DeviceResponseDelay] {
        do {
            return try DeviceResponseDelay.parse(responseDelay)
        } catch {
            throw ValidationError(error.description)
        }
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
        let delays = try responseDelays()
        do {
            try server.setResponseDelays(delays)  // before start: the first reply is already late
        } catch {
            throw ValidationError(error.description)  // a device the cell does not have: a usage error too
        }
        let bound = try server.start()
        for name in server.deviceNames { print("\(name) \(host):\(bound[name] ?? 0)") }
        print("ready (seed \(seed), defect rate \(defectRate)); type help for fault injection")
        print(server.responseDelaySummary)
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

/// Options shared by `shift` and `campaign`: the cell, the recipe, the faults.
struct VirtualOptions: ParsableArguments {
    @Option(help: "The cell definition (TOML).")
    var cell = "Hardware/cell.toml"

    @Option(help: "The recipe the operator orders (TOML).")
    var recipe = "Hardware/recipes/left.toml"

    @Option(help: "Simulated hours per seed.")
    var hours = 1.0

    @Option(help: "Share of housings with a hidden defect, 0…1.")
    var defectRate = 0.02

    @Flag(help: "Inject no faults (a clean shift).")
    var noFaults = false

    @Flag(help: "Step every device model at 4 kHz (the reference the exact models are tested against; slower).")
    var stepped = false

    func validate() throws {
        guard hours > 0, hours <= 1000 else { throw ValidationError("--hours \(hours): must be in (0, 1000]") }
        guard (0...1).contains(defectRate) else {
            throw ValidationError("--defect-rate \(defectRate): must be between 0 and 1")
        }
    }

    func configuration(seed: UInt64) throws -> ShiftConfiguration {
        var configuration = try ShiftConfiguration.load(
            cellPath: cell, recipePaths: [recipe], seed: seed, durationNanoseconds: UInt64(hours * 3.6e12))
        configuration.defectRate = defectRate
        if noFaults { configuration.faults = .none }
        configuration.steppedModels = stepped
        return configuration
    }

    /// The `lampsim shift` command line that replays `seed` with these options.
    func replayCommand(seed: UInt64) -> String {
        var words = ["lampsim", "shift", "--seed", "\(seed)", "--hours", "\(hours)"]
        if cell != "Hardware/cell.toml" { words += ["--cell", cell] }
        if recipe != "Hardware/recipes/left.toml" { words += ["--recipe", recipe] }
        if defectRate != 0.02 { words += ["--defect-rate", "\(defectRate)"] }
        if noFaults { words.append("--no-faults") }
        if stepped { words.append("--stepped") }
        return words.joined(separator: " ")
    }
}

/// Prints `error` for a configuration that cannot be loaded and exits 78 (EX_CONFIG), like `serve`.
private func configurationFailure(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("lampsim: \(error)\n".utf8))
    return ExitCode(78)
}

struct Shift: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one shift in virtual time (the real controller against the device models) and print its report.",
        discussion: """
            The same controller, cycle and ledger code as lampcelld, driven against the in-process device models on \
            a virtual clock, single-threaded and deterministic: a seed reproduces a run exactly. Faults chosen by the \
            seed; invariants checked every period. Exit status 1 on an invariant breach.
            """)

    @OptionGroup var options: VirtualOptions

    @Option(help: "Seed of every random choice of the run.")
    var seed: UInt64 = 1

    @Option(help: "Keep the ledger in this file (default: a temporary file, removed).")
    var ledger: String?

    func run() throws {
        var configuration: ShiftConfiguration
        do {
            configuration = try options.configuration(seed: seed)
        } catch {
            throw configurationFailure(error)
        }
        configuration.ledgerPath = ledger
        let shift = try VirtualShift(configuration: configuration)
        let start = lampcell_monotonic_ns()
        do {
            var report = try shift.run()
            report.wallNanoseconds = lampcell_monotonic_ns() - start
            print(report.text())
        } catch var breach as InvariantBreach {
            breach.replayCommand = options.replayCommand(seed: seed)
            print(breach.description)
            throw ExitCode(1)
        }
    }
}

struct CampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign",
        abstract: "Run many seeded virtual shifts with faults; stop at the first invariant breach.",
        discussion: "Seeds S…S+N−1, J at a time on separate threads. Exit status 1 on a breach (prints the replay command).")

    @OptionGroup var options: VirtualOptions

    @Option(help: "Number of seeds.")
    var seeds = 10

    @Option(help: "First seed.")
    var firstSeed: UInt64 = 1

    @Option(help: "Seeds run in parallel (threads).")
    var jobs = 2

    @Flag(help: "Print one line per seed as it finishes, with the run's progress, an ETA and where to resume.")
    var verbose = false

    func validate() throws {
        guard seeds >= 1 else { throw ValidationError("--seeds \(seeds): at least 1") }
        guard (1...256).contains(jobs) else { throw ValidationError("--jobs \(jobs): 1…256") }
    }

    func run() throws {
        do {
            _ = try options.configuration(seed: firstSeed)
        } catch {
            throw configurationFailure(error)
        }
        let options = self.options
        let verbose = self.verbose
        let tracker = CampaignProgress(firstSeed: firstSeed, seeds: seeds, startNanoseconds: lampcell_monotonic_ns())
        let summary = Campaign.run(
            firstSeed: firstSeed, seeds: seeds, jobs: jobs,
            configure: { try options.configuration(seed: $0) },
            replay: { options.replayCommand(seed: $0) },
            progress: { report in
                let status = tracker.finished(seed: report.seed, nowNanoseconds: lampcell_monotonic_ns())
                if verbose {
                    print(
                        "seed \(report.seed): \(report.lampsOK) OK \(report.lampsNG) NG \(report.lampsScrapped) scrapped, \(report.injected.total) faults, \(String(format: "%.1f", Double(report.wallNanoseconds) / 1e9)) s; \(status)"
                    )
                    fflush(nil)
                }
            })
        print(summary.text())
        if !summary.passed { throw ExitCode(1) }
    }
}

/// A campaign's progress for its per-seed lines: seeds done of the total, an ETA from the mean rate so far, and the
/// seed to resume from (`--first-seed`): the lowest seed not finished, since seeds run in parallel finish out of
/// order. Thread: `Campaign.run` calls `progress` under its lock, one call at a time.
final class CampaignProgress: @unchecked Sendable {
    private let firstSeed: UInt64
    private let seeds: Int
    private let startNanoseconds: UInt64
    private var done: Set<UInt64> = []
    private var resumeSeed: UInt64

    init(firstSeed: UInt64, seeds: Int, startNanoseconds: UInt64) {
        self.firstSeed = firstSeed
        self.seeds = seeds
        self.startNanoseconds = startNanoseconds
        resumeSeed = firstSeed
    }

    /// Records `seed` as finished; returns "k/N done, ETA …, resume with --first-seed S --seeds M".
    func finished(seed: UInt64, nowNanoseconds: UInt64) -> String {
        done.insert(seed)
        while done.contains(resumeSeed) { resumeSeed += 1 }
        let elapsedSeconds = Double(nowNanoseconds - startNanoseconds) / 1e9
        let remaining = seeds - done.count
        let etaSeconds = Int((elapsedSeconds / Double(done.count) * Double(remaining)).rounded())
        let eta = String(format: "%d:%02d:%02d", etaSeconds / 3600, etaSeconds / 60 % 60, etaSeconds % 60)
        let left = Int(firstSeed + UInt64(seeds) - resumeSeed)
        return "\(done.count)/\(seeds) done, ETA \(eta)"
            + (left > 0 ? ", resume with --first-seed \(resumeSeed) --seeds \(left)" : "")
    }
}
