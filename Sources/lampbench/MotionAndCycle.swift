import CRealtime
import CellConfig
import CellControl
import CellCore
import CellSimulator
import Foundation
import Motion
import SeededRandom

// Item 4: plan time of a 6-joint point-to-point move over random cases (a small harness, not package-benchmark: see
// docs/BENCHMARKS.md). Item 5's lower bound: the recipe's lanes run as a timed event graph with every step at its
// shortest possible duration.

/// Where each plan's result goes before the clock is read again (see `MotionBenchmark.run`). Benchmark thread only.
nonisolated(unsafe) var motionBenchmarkSink = 0.0

enum MotionBenchmark {
    /// The RA-610's joint position ranges (datasheet), rad.
    static let positionRanges: [ClosedRange<Double>] = [
        -2.967...2.967, -1.571...2.618, -2.967...1.309, -3.316...3.316, -2.094...2.094, -6.283...6.283,
    ]

    /// One point-to-point plan into `trajectory` (storage the caller owns, as the controller's arms do), timed alone
    /// (monotonic clock around the call): its time and its planned duration (-1 when refused). Also item 11's timing.
    static func timedPlan(
        into trajectory: inout Trajectory, from start: JointState, to target: SIMD8<Double>, limits: MotionLimits
    ) -> (nanoseconds: UInt64, durationSeconds: Double) {
        let begin = lampcell_monotonic_ns()
        do {
            try trajectory.planPointToPoint(from: start, to: target, limits: limits)
            // Stored to memory the clock call may read, so that the plan cannot be moved past it.
            motionBenchmarkSink = trajectory.durationSeconds
        } catch {
            motionBenchmarkSink = -1
        }
        return (lampcell_monotonic_ns() - begin, motionBenchmarkSink)
    }

    static func run(repository: String, cases: Int, table: ResultTable) {
        do {
            let definition = try CellDefinition.load(from: repository + "/Hardware/cell.toml")
            let cell = try CompiledCell.compile(definition)
            let limits = cell.arms[0].limits
            var random = SplitMix64(seed: 42)
            // The cases first, so that generating them is not timed.
            var starts: [JointState] = []
            var targets: [SIMD8<Double>] = []
            starts.reserveCapacity(cases)
            targets.reserveCapacity(cases)
            for index in 0..<cases {
                var state = JointState()
                var target = SIMD8<Double>.zero
                for joint in 0..<6 {
                    state.positionsRadians[joint] = Double.random(in: positionRanges[joint], using: &random)
                    target[joint] = Double.random(in: positionRanges[joint], using: &random)
                    // Half the cases start moving (any velocity and acceleration within half the limits), half at rest.
                    if index % 2 == 1 {
                        let v = limits.maxVelocitiesRadiansPerSecond[joint] / 2
                        let a = limits.maxAccelerationsRadiansPerSecondSquared[joint] / 2
                        state.velocitiesRadiansPerSecond[joint] = Double.random(in: -v...v, using: &random)
                        state.accelerationsRadiansPerSecondSquared[joint] = Double.random(in: -a...a, using: &random)
                    }
                }
                starts.append(state)
                targets.append(target)
            }
            var samples = [UInt64](repeating: 0, count: cases)
            var durations = 0.0
            var failures = 0
            var trajectory = Trajectory()
            for index in 0..<cases {
                let plan = timedPlan(into: &trajectory, from: starts[index], to: targets[index], limits: limits)
                samples[index] = plan.nanoseconds
                if plan.durationSeconds >= 0 { durations += plan.durationSeconds } else { failures += 1 }
            }
            let d = Distribution(samples)
            table.add(
                ResultRow(
                    item: "4",
                    what: "motion plan, 6 joints point-to-point, \(cases) random cases (half from rest), mean/p99/max µs",
                    figure: "\(micro(d.mean)) / \(micro(d.percentile(99))) / \(micro(d.max))",
                    reference: String(format: "mean planned move %.2f s", durations / Double(max(1, cases - failures)))
                        + (failures > 0 ? ", \(failures) refused" : ""),
                    ratio: String(format: "p99 = %.1f %% of a 1 ms period", d.percentile(99) / 10_000)))
        } catch {
            table.note("motion: \(error)")
        }
    }
}

/// The shortest cycle a recipe allows: every lane's steps at their shortest durations — moves time-optimal from
/// rest to rest within the cell's motion limits at the recipe's speed, the glue path as planned at start-up, tools
/// and station actions at their datasheet minimums — and lanes meeting at events exactly as the controller does
/// (the n-th `wait_for E` of a lane passes once E was signalled n times). No control period, no servo settling, no
/// Modbus latency: those are what the efficiency measures.
struct CycleLowerBound {
    /// Lamp cycle as the controller counts it: from the loader's grip at the infeed to its release at the outfeed.
    var lampCycleSeconds: Double
    /// Interval between consecutive lamps leaving the cell in steady state (takt).
    var taktSeconds: Double

    /// Shortest tool durations (RA-610 datasheet: "typical" GRIP/RELEASE 150 ms, SCREW 900–1400 ms, PRESS 600–900
    /// ms, DISPENSE 50 ms; the simulator draws from the same ranges).
    static func toolSeconds(_ command: ArmToolCommand) -> Double {
        switch command {
        case .none: 0
        case .grip, .release: RA610Limits.gripReleaseMilliseconds / 1000
        case .screw: RA610Limits.screwMillisecondsRange.lowerBound / 1000
        case .press: RA610Limits.pressMillisecondsRange.lowerBound / 1000
        case .dispenseOn, .dispenseOff: RA610Limits.dispenseValveMilliseconds / 1000
        }
    }

    /// TS-200 action durations (datasheet; the simulator's constants).
    static func stationSeconds(_ action: StationAction) -> Double {
        switch action {
        case .clamp, .unclamp: Double(TS200Model.clampMotionNanoseconds) / 1e9
        case .infeedAdvance: Double(TS200Model.infeedIndexNanoseconds) / 1e9
        case .outfeedAdvance: Double(TS200Model.outfeedIndexNanoseconds) / 1e9
        case .leakTest: Double(TS200Model.leakTestNanoseconds) / 1e9
        case .lightTest: Double(TS200Model.lightTestNanoseconds) / 1e9
        }
    }

    /// Runs `lamps` cycles of every lane of `recipe` on `cell` and takes the figures from the last half.
    /// `trace` prints every step of the middle lamp (LAMPBENCH_TRACE_BOUND=1).
    static func compute(recipe: CompiledRecipe, cell: CompiledCell, lamps: Int = 12, trace: Bool = false) throws -> CycleLowerBound {
        struct LaneState {
            var time = 0.0
            var index = 0
            var cycles = 0
            var waits: [Int]
        }
        var lanes = recipe.lanes.map { _ in LaneState(waits: Array(repeating: 0, count: recipe.eventCount)) }
        var signals = Array(repeating: [Double](), count: recipe.eventCount)
        var armAt = cell.arms.map(\.homePoint)
        var lampStarts: [Double] = []
        var lampEnds: [Double] = []
        var progress = true
        while progress {
            progress = false
            for laneIndex in lanes.indices {
                let lane = recipe.lanes[laneIndex]
                guard !lane.steps.isEmpty else { continue }
                while lanes[laneIndex].cycles < lamps {
                    var state = lanes[laneIndex]
                    let step = lane.steps[state.index]
                    var blocked = false
                    switch step {
                    case .move(let point, let speed):
                        guard let arm = lane.arm else { break }
                        state.time += try moveSeconds(cell: cell, arm: arm, from: armAt[arm], to: point, speed: speed)
                        armAt[arm] = point
                    case .unload(let ok, _):
                        guard let arm = lane.arm else { break }
                        state.time += try moveSeconds(cell: cell, arm: arm, from: armAt[arm], to: ok, speed: 1)
                        armAt[arm] = ok
                    case .path(let first, let count, let speed, let planned):
                        guard let arm = lane.arm else { break }
                        if planned >= 0 {
                            state.time += lane.plannedPaths[planned].trajectory.durationSeconds
                        } else {
                            let waypoints = lane.pathPoints[first..<(first + count)].map { cell.arms[arm].points[$0].positionsRadians }
                            let trajectory = try Trajectory.path(
                                from: .atRest(cell.arms[arm].points[armAt[arm]].positionsRadians), through: waypoints,
                                limits: cell.arms[arm].limits.scaled(velocity: speed))
                            state.time += trajectory.durationSeconds
                        }
                        armAt[arm] = lane.pathPoints[first + count - 1]
                    case .tool(let command, _):
                        let location = lane.arm.map { cell.arms[$0].points[armAt[$0]].location }
                        if command == .grip, location == .infeed, lane.arm == cell.loaderArm { lampStarts.append(state.time) }
                        state.time += toolSeconds(command)
                        if command == .release, location == .outfeed, lane.arm == cell.loaderArm { lampEnds.append(state.time) }
                    case .station(let action):
                        state.time += stationSeconds(action)
                    case .waitFor(let event):
                        let needed = state.waits[event]
                        if needed < signals[event].count {
                            state.time = max(state.time, signals[event][needed])
                            state.waits[event] += 1
                        } else {
                            blocked = true  // the signal has not happened yet
                        }
                    case .signal(let event):
                        signals[event].append(state.time)
                    }
                    if blocked { break }
                    if trace, lanes[laneIndex].cycles == lamps / 2 {
                        print(String(format: "bound trace: lane %d step %2d %8.3f → %8.3f s  %@", laneIndex, state.index,
                            lanes[laneIndex].time, state.time, "\(step)"))
                    }
                    state.index += 1
                    if state.index == lane.steps.count {
                        state.index = 0
                        state.cycles += 1
                    }
                    lanes[laneIndex] = state
                    progress = true
                }
            }
        }
        let count = min(lampStarts.count, lampEnds.count)
        guard count >= 4 else { throw BenchError("recipe \(recipe.id): the lanes deadlock after \(count) lamps") }
        let half = count / 2
        let cycles = (half..<count).map { lampEnds[$0] - lampStarts[$0] }
        let takt = (lampEnds[count - 1] - lampEnds[half]) / Double(count - 1 - half)
        return CycleLowerBound(lampCycleSeconds: cycles.reduce(0, +) / Double(cycles.count), taktSeconds: takt)
    }

    /// Time-optimal rest-to-rest move (the planner's synchronised duration is the slowest joint's minimum time).
    static func moveSeconds(cell: CompiledCell, arm: Int, from: Int, to: Int, speed: Double) throws -> Double {
        guard from != to else { return 0 }
        let limits = cell.arms[arm].limits.scaled(velocity: speed)
        return try Trajectory.pointToPoint(
            from: .atRest(cell.arms[arm].points[from].positionsRadians), to: cell.arms[arm].points[to].positionsRadians,
            limits: limits
        ).durationSeconds
    }
}
