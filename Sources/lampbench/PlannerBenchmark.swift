import CRealtime
import Foundation
import Motion

// Item 11: LampCell's motion planner against Ruckig (issue 17, goal 2), on the same problems in the same run.
//
// The problems are Ruckig's benchmark style as issue 17 gives them (`Benchmarks/ruckig/ruckig_bench.cpp` draws them
// with std::mt19937(42) and keeps those whose start state Ruckig finds within the limits). That program times
// `Ruckig::calculate` on each and writes the problems, Ruckig's durations and times to a file; this item reads
// them, plans each with `Trajectory.planPointToPoint` into one trajectory it owns (timed alone, the limits made
// beforehand) and compares. Ruckig's sources are the PyPI sdist (checked by SHA-256), built with `c++ -O3`.

enum PlannerBenchmark {
    /// The Ruckig release the goal names.
    static let ruckigVersion = "0.17.3"
    /// Its source distribution on PyPI, and the SHA-256 PyPI publishes for it.
    static let ruckigURL =
        "https://files.pythonhosted.org/packages/ba/6f/df330ab4a80622872d4d43139cc0118781d0927a688f0cfb4c12cd731f46/ruckig-0.17.3.tar.gz"
    static let ruckigSHA256 = "5b06c4487b39e31524a5a81563a47741c1f698fd71ab79569558933c0b65f2b9"
    /// Joint counts the goal compares at.
    static let jointCounts = [1, 3, 6]
    /// Problems per joint count at scale 1.
    static let problemCount = 100_000
    /// A plan longer than Ruckig's by more than this factor is not time-optimal (1 joint) or not as fast (more).
    static let durationTolerance = 1.001

    static func run(repository: String, scratch: String, scale: Double, table: ResultTable) {
        do {
            let driver = try buildDriver(repository: repository, scratch: scratch)
            let count = max(1000, Int(Double(problemCount) * scale))
            for joints in jointCounts {
                try compare(joints: joints, count: count, driver: driver, scratch: scratch, table: table)
            }
        } catch {
            table.note("planner vs Ruckig: \(error)")
        }
    }

    /// Ruckig's sources, fetched once into `scratch` and checked; returns their directory.
    static func fetchRuckig(scratch: String) throws -> String {
        let directory = scratch + "/ruckig-\(ruckigVersion)"
        if FileManager.default.fileExists(atPath: directory + "/include/ruckig/ruckig.hpp") { return directory }
        let archive = scratch + "/ruckig-\(ruckigVersion).tar.gz"
        let curl = Subprocess.capture(
            Subprocess.which("curl") ?? "/usr/bin/curl", ["-fsSL", "--max-time", "120", "-o", archive, ruckigURL],
            mergeError: true)
        guard curl.status == 0 else { throw BenchError("fetching \(ruckigURL): \(curl.output.prefix(300))") }
        let sum = Subprocess.capture("/usr/bin/sha256sum", [archive])
        guard sum.output.hasPrefix(ruckigSHA256) else {
            throw BenchError("\(archive): SHA-256 \(sum.output.prefix(64)), expected \(ruckigSHA256)")
        }
        let untar = Subprocess.capture("/usr/bin/tar", ["-xzf", archive, "-C", scratch], mergeError: true)
        guard untar.status == 0 else { throw BenchError("tar -xzf \(archive): \(untar.output.prefix(300))") }
        return directory
    }

    /// Builds `Benchmarks/ruckig/ruckig_bench.cpp` against Ruckig's sources; returns the program's path.
    static func buildDriver(repository: String, scratch: String) throws -> String {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let sources = try fetchRuckig(scratch: scratch)
        let binary = scratch + "/ruckig_bench"
        let library = try FileManager.default.contentsOfDirectory(atPath: sources + "/src/ruckig")
            .filter { $0.hasSuffix(".cpp") && $0 != "cloud_client.cpp" }.sorted().map { sources + "/src/ruckig/" + $0 }
        let compiler = Subprocess.which("c++") ?? "/usr/bin/c++"
        let arguments =
            ["-O3", "-std=c++17", "-DNDEBUG", "-I", sources + "/include", "-o", binary,
             repository + "/Benchmarks/ruckig/ruckig_bench.cpp"] + library
        let result = Subprocess.capture(compiler, arguments, mergeError: true)
        guard result.status == 0 else { throw BenchError("c++ \(arguments.joined(separator: " ")): \(result.output.prefix(600))") }
        return binary
    }

    /// One joint count: Ruckig's run, then ours on its problems; one row.
    static func compare(joints: Int, count: Int, driver: String, scratch: String, table: ResultTable) throws {
        let file = scratch + "/ruckig-problems-\(joints).bin"
        let ruckig = Subprocess.capture(driver, ["\(joints)", "\(count)", file], mergeError: true)
        guard ruckig.status == 0 else { throw BenchError("\(driver) \(joints): \(ruckig.output.prefix(300))") }
        let values = try Data(contentsOf: URL(fileURLWithPath: file)).withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        let stride = 7 * joints + 2
        guard values.count == count * stride else { throw BenchError("\(file): \(values.count) values, expected \(count * stride)") }

        // Inputs first, so that making them is not timed.
        var starts: [JointState] = []
        var targets: [SIMD8<Double>] = []
        var limits: [MotionLimits] = []
        var ruckigDurations: [Double] = []
        var ruckigMicroseconds: [Double] = []
        for problem in 0..<count {
            let base = problem * stride
            func field(_ index: Int) -> SIMD8<Double> {
                var lanes = SIMD8<Double>.zero
                for joint in 0..<joints { lanes[joint] = values[base + index * joints + joint] }
                return lanes
            }
            starts.append(
                JointState(positionsRadians: field(0), velocitiesRadiansPerSecond: field(1), accelerationsRadiansPerSecondSquared: field(2)))
            targets.append(field(3))
            limits.append(
                try MotionLimits(
                    jointCount: joints, maxVelocitiesRadiansPerSecond: field(4),
                    maxAccelerationsRadiansPerSecondSquared: field(5), maxJerksRadiansPerSecondCubed: field(6)))
            ruckigDurations.append(values[base + 7 * joints])
            ruckigMicroseconds.append(values[base + 7 * joints + 1])
        }

        var samples = [UInt64](repeating: 0, count: count)
        var durations = [Double](repeating: 0, count: count)
        var trajectory = Trajectory()
        for problem in 0..<count {
            let plan = MotionBenchmark.timedPlan(
                into: &trajectory, from: starts[problem], to: targets[problem], limits: limits[problem])
            samples[problem] = plan.nanoseconds
            durations[problem] = plan.durationSeconds
        }
        let ours = Distribution(samples)
        let theirs = Distribution(ruckigMicroseconds.map { $0 * 1000 })
        let ratios = zip(durations, ruckigDurations).map { $0 / $1 }
        let longer = ratios.filter { $0 > durationTolerance }.count
        let refused = durations.filter { $0 < 0 }.count
        let meanDuration = durations.reduce(0, +) / Double(count)
        table.add(
            ResultRow(
                item: "11",
                what: "motion plan vs Ruckig \(ruckigVersion), \(joints) joint\(joints == 1 ? "" : "s"), \(count) problems "
                    + "(issue 17's distribution), mean/p50/p99 µs; mean planned duration",
                figure: "\(micro(ours.mean)) / \(micro(ours.percentile(50))) / \(micro(ours.percentile(99))); "
                    + String(format: "%.4f s", meanDuration),
                reference: "Ruckig, same problems, same run: \(micro(theirs.mean)) / \(micro(theirs.percentile(50))) / "
                    + "\(micro(theirs.percentile(99)))"
                    + String(format: "; %.4f s", ruckigDurations.reduce(0, +) / Double(count))
                    + " (Ruckig: \(ruckig.output.trimmingCharacters(in: .whitespacesAndNewlines)))",
                ratio: String(
                    format: "mean time ours/Ruckig = %.2f; duration ours/Ruckig min %.4f max %.4f, ", ours.mean / theirs.mean,
                    ratios.min() ?? .nan, ratios.max() ?? .nan)
                    + "\(longer) plans > \(durationTolerance)×" + (refused > 0 ? ", \(refused) refused" : "")))
    }
}
