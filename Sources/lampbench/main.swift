import CellConfig
import CellCore
import Foundation
import Glibc

// lampbench: every benchmark of docs/BENCHMARKS.md in one run, one table. `make bench` builds it (release) with
// lampcelld and lampsim and runs it from the repository's root.
//
//   lampbench [--only LIST] [--scale X] [--output FILE]
//     --only   comma-separated items: 1..11 or control,work,modbus,motion,cycle,shift,ledger,footprint,slow,plant,
//              planner
//              (default: all; also LAMPBENCH_ONLY). control and work share one run per period.
//     --scale  multiplies every window and count (default 1; also LAMPBENCH_SCALE; 0.1 for a quick smoke run)
//     --output where the Markdown table goes (default .build/bench/latest.md)

let usage = "usage: lampbench [--only 1,2,…|control,work,modbus,motion,cycle,shift,ledger,footprint,slow,plant,planner] [--scale X] [--output FILE]"
let names = [
    "control": 1, "work": 2, "modbus": 3, "motion": 4, "cycle": 5, "shift": 6, "ledger": 7, "footprint": 8, "slow": 9,
    "plant": 10, "planner": 11,
]
var onlyText = ProcessInfo.processInfo.environment["LAMPBENCH_ONLY"] ?? ""
var scale = Double(ProcessInfo.processInfo.environment["LAMPBENCH_SCALE"] ?? "") ?? 1
let repository = FileManager.default.currentDirectoryPath
var output = repository + "/.build/bench/latest.md"
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--only": onlyText = arguments.popFirst() ?? ""
    case "--scale":
        guard let value = arguments.popFirst().flatMap({ Double($0) }), value > 0 else {
            print("lampbench: --scale needs a positive number\n\(usage)")
            exit(64)
        }
        scale = value
    case "--output": output = arguments.popFirst() ?? output
    case "-h", "--help":
        print(usage)
        exit(0)
    default:
        print("lampbench: unknown argument \(argument)\n\(usage)")
        exit(64)
    }
}
var selected = Set(1...11)
if !onlyText.trimmingCharacters(in: .whitespaces).isEmpty {
    selected = []
    for word in onlyText.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) {
        if let number = Int(word), (1...11).contains(number) {
            selected.insert(number)
        } else if let number = names[word] {
            selected.insert(number)
        } else {
            print("lampbench: unknown item \(word)\n\(usage)")
            exit(64)
        }
    }
}
guard FileManager.default.fileExists(atPath: repository + "/Hardware/cell.toml") else {
    print("lampbench: run it from the repository's root (no Hardware/cell.toml in \(repository))")
    exit(66)
}
// lampcelld and lampsim are expected beside lampbench (the same `swift build -c release` bin directory).
let binDirectory = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
    .deletingLastPathComponent().path
let scratch = repository + "/.build/bench"
try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)

#if DEBUG
let build = "debug"
#else
let build = "release"
#endif
let loadAtStart = Machine.loadAverage()
let startedAt = Date()
let wallStart = nowSeconds()
let commit = Subprocess.capture("/usr/bin/git", ["-C", repository, "rev-parse", "--short", "HEAD"]).output
    .trimmingCharacters(in: .whitespacesAndNewlines)
print("lampbench: items \(selected.sorted().map(String.init).joined(separator: ",")), scale \(scale), \(build) build, load \(loadAtStart)")
fflush(nil)

let table = ResultTable()
let controlWindow1ms = 120 * scale
let controlWindow4ms = 400 * scale  // 100,000 periods
let daemonWindow = 180 * scale

if selected.contains(4) { MotionBenchmark.run(repository: repository, cases: max(1000, Int(100_000 * scale)), table: table) }
if selected.contains(11) { PlannerBenchmark.run(repository: repository, scratch: scratch, scale: scale, table: table) }
if selected.contains(7) { LedgerBenchmark.run(scratch: scratch, scale: scale, table: table) }
if selected.contains(3) {
    ModbusBenchmark.run(binDirectory: binDirectory, repository: repository, scratch: scratch, scale: scale, table: table)
}
if selected.contains(1) || selected.contains(2) {
    for (period, window) in [(1000, controlWindow1ms), (4000, controlWindow4ms)] {
        ControlTimingBenchmark.run(
            periodMicroseconds: period, windowSeconds: window, repository: repository, scratch: scratch, table: table,
            includeTiming: selected.contains(1), includeWork: selected.contains(2))
    }
}
if selected.contains(5) || selected.contains(8) {
    let result = DaemonBenchmark.run(
        binDirectory: binDirectory, repository: repository, scratch: scratch, windowSeconds: daemonWindow, table: table,
        includeFootprint: selected.contains(8))
    if selected.contains(5) {
        do {
            let definition = try CellDefinition.load(from: repository + "/Hardware/cell.toml")
            let cell = try CompiledCell.compile(definition)
            let recipe = try CompiledRecipe.compile(
                try Recipe.load(from: repository + "/Hardware/recipes/left.toml", cell: definition), cell: cell)
            let bound = try CycleLowerBound.compute(
                recipe: recipe, cell: cell, trace: ProcessInfo.processInfo.environment["LAMPBENCH_TRACE_BOUND"] != nil)
            let reference = String(
                format: "lower bound %.2f s (takt %.2f s; recipe's ideal_cycle_time %.1f s)", bound.lampCycleSeconds,
                bound.taktSeconds, recipe.idealCycleTimeSeconds)
            if let mean = result?.cycleMeanSeconds, let result {
                table.add(
                    ResultRow(
                        item: "5", what: "cycle efficiency, LEFT, simulated cell at 4 ms: measured mean lamp cycle",
                        figure: String(format: "%.2f s over %d lamps", mean, result.cycleSamples), reference: reference,
                        ratio: String(format: "bound/measured = %.1f %%", 100 * bound.lampCycleSeconds / mean)))
            } else {
                table.add(
                    ResultRow(
                        item: "5", what: "cycle efficiency, LEFT, simulated cell at 4 ms: measured mean lamp cycle",
                        figure: "no lamp finished in the window (state \(result?.state ?? "no run"))", reference: reference))
            }
        } catch {
            table.note("cycle lower bound: \(error)")
        }
    }
}
if selected.contains(9) {
    SlowDevicesBenchmark.run(
        windowSeconds: controlWindow4ms, scale: scale, repository: repository, scratch: scratch, table: table)
}
if selected.contains(6) { ShiftBenchmark.run(binDirectory: binDirectory, repository: repository, table: table) }
if selected.contains(10) { PlantBenchmark.run(scale: scale, scratch: scratch, table: table) }

let machineLine: String = "\(build) build, commit \(commit), \(Machine.processorCount) CPUs (\(Machine.cpuModel)), "
    + "kernel \(Machine.kernel), virtualisation \(Machine.virtualisation)"
let loadStart: String = String(format: "%.2f", loadAtStart)
let loadEnd: String = String(format: "%.2f", Machine.loadAverage())
let duration: String = String(format: "%.0f", nowSeconds() - wallStart)
let loadLine: String = "load average (1 min) \(loadStart) at start, \(loadEnd) at end; scale \(scale); \(duration) s"
let header: [String] = [
    "## lampbench \(ISO8601DateFormatter().string(from: startedAt))",
    "",
    machineLine + "; " + loadLine + ". Times in µs unless said; the load column is the 1-minute load average when the row was taken.",
]
let markdown = table.markdown(header: header)
print("")
print(markdown)
try? FileManager.default.createDirectory(
    atPath: URL(fileURLWithPath: output).deletingLastPathComponent().path, withIntermediateDirectories: true)
try? (markdown + "\n").write(toFile: output, atomically: true, encoding: .utf8)
print("\n(written to \(output))")
