import Foundation
import LampCellTestSupport
import Testing

@testable import CellConfig
@testable import CellCore

/// The repository's cell definition and recipes.
private let cellPath = Repository.cellDefinition
private let leftRecipePath = Repository.leftRecipe
private let rightRecipePath = Repository.rightRecipe

/// The simulator's nominal process figures (task brief / simulator contract); windows must accept nominal ± 4σ.
private enum SimulatorNominal {
    static let screwTorqueSigmaFraction = 0.015
    static let pressForceSigmaFraction = 0.02
    static let glueFlowMillilitersPerSecond = 0.20
    static let leakRateCubicCentimetersPerMinute = 0.50
    static let leakDefectRange = 3.0...8.0
    /// Less glue than this makes the simulated lamp leak (station branch, `CellWorldConfiguration`).
    static let minimumGlueMilliliters = 0.30
    /// Defective parts (station branch, `CellWorldConfiguration` defaults): achieved screw torque, press force
    /// deviation and light output as fractions of target/nominal, cut-off angle in degrees.
    static let screwDefectTorqueFractionMaximum = 0.85
    static let pressDefectDeviationFractionMinimum = 0.15
    static let intensityDefectFractionMaximum = 0.80
    static let cutoffDefectDegrees = -1.50 ... -1.20
    static let intensitySigmaFraction = 0.03
    static let intensityCandela: [Variant: Double] = [.left: 18_000, .right: 17_500]
    static let cutoffDegrees: [Variant: Double] = [.left: -0.57, .right: -0.52]
    static let cutoffSigmaDegrees = 0.08
    static let sigmas = 4.0
}

// MARK: - The real files

@Test func realCellDefinitionHasThreeArmsAndAStation() throws {
    let cell = try CellDefinition.load(from: cellPath)
    #expect(cell.cellID == "HL-CELL-01")
    #expect(cell.arms.map(\.name) == ["assembler", "lens", "loader"])
    #expect(cell.station.name == "station")
    #expect(cell.station.kind == .ts200)
    #expect(cell.devices.count == 4)
    #expect(Set(cell.devices.map(\.host)).count == 4, "distinct hosts on the real cell")
    #expect(cell.devices.allSatisfy { $0.port == 502 && $0.unitID == 1 })

    let expected: [String: (ArmToolKind, [String: TeachPointLocation])] = [
        "loader": (
            .gripper,
            [
                "home": .none, "infeed_pick": .infeed, "fixture": .fixture, "flip": .none,
                "outfeed_place": .outfeed, "reject_place": .reject,
            ]
        ),
        "assembler": (
            .vacuumScrewdriver,
            [
                "home": .none, "led_pick": .ledFeeder, "led_place": .fixture, "screw_1": .fixture,
                "screw_2": .fixture, "screw_3": .fixture, "screw_4": .fixture,
            ]
        ),
        "lens": (
            .dispenserPress,
            [
                "home": .none, "glue_1": .fixture, "glue_2": .fixture, "glue_3": .fixture, "glue_4": .fixture,
                "glue_5": .fixture, "glue_6": .fixture, "lens_pick": .lensFeeder, "lens_place": .fixture,
            ]
        ),
    ]
    let limits = JointLimits.ra610
    for arm in cell.arms {
        let (tool, points) = try #require(expected[arm.name])
        #expect(arm.endpoint.kind == .ra610)
        #expect(arm.tool == tool)
        #expect(Dictionary(uniqueKeysWithValues: arm.teachPoints.map { ($0.name, $0.location) }) == points)
        for point in arm.teachPoints {
            #expect(point.jointsRadians.count == 6)
            #expect(limits.contains(point.jointsRadians))
            for joint in 0..<6 {
                // Strictly inside the datasheet's limits.
                #expect(point.jointsRadians[joint] > limits.positionMinimumRadians[joint], "\(arm.name).\(point.name)")
                #expect(point.jointsRadians[joint] < limits.positionMaximumRadians[joint], "\(arm.name).\(point.name)")
            }
        }
        for (index, first) in arm.teachPoints.enumerated() {
            for second in arm.teachPoints[(index + 1)...] {
                #expect(
                    largestJointDifference(first, second) >= 0.05, "\(arm.name): \(first.name) vs \(second.name)")
            }
        }
        for joint in 0..<6 {
            let velocity = arm.motionLimits.maximumVelocityRadiansPerSecond[joint]
            let acceleration = arm.motionLimits.maximumAccelerationRadiansPerSecondSquared[joint]
            #expect(velocity > 0 && velocity < limits.maximumVelocityRadiansPerSecond[joint])
            #expect(acceleration > 0 && acceleration < limits.maximumAccelerationRadiansPerSecondSquared[joint])
            #expect(arm.motionLimits.maximumJerkRadiansPerSecondCubed[joint] > acceleration)
        }
    }

    // The glue bead: neighbouring points (a closed loop) are close.
    let lens = try #require(cell.arm(named: "lens"))
    let glue = try (1...6).map { try #require(lens.teachPoint(named: "glue_\($0)")) }
    for index in 0..<6 {
        #expect(largestJointDifference(glue[index], glue[(index + 1) % 6]) <= 0.08)
    }
}

@Test(arguments: [(leftRecipePath, Variant.left), (rightRecipePath, Variant.right)])
func realRecipeIsValidAndReferencesTheCellsPoints(path: String, variant: Variant) throws {
    let cell = try CellDefinition.load(from: cellPath)
    let recipe = try Recipe.load(from: path, cell: cell)
    #expect(recipe.variant == variant)
    #expect(recipe.variant.rawValue == (variant == .left ? 1 : 2))
    #expect(recipe.idealCycleTimeSeconds > 0)
    #expect(recipe.armLanes.map(\.armName) == cell.arms.map(\.name))
    #expect(!recipe.stationSteps.isEmpty)
    #expect(recipe.toolParameters.screwTorqueRegister == 120, "1.20 N·m in 0.01 N·m")
    #expect(recipe.toolParameters.pressForceRegister == (variant == .left ? 450 : 480))

    var signals: [RecipeEvent] = []
    var waits: [RecipeEvent] = []
    var unloads = 0
    for lane in recipe.armLanes {
        let arm = try #require(cell.arm(named: lane.armName))
        #expect(!lane.steps.isEmpty)
        for step in lane.steps {
            switch step {
            case .move(let point, let speed):
                #expect(arm.teachPoint(named: point.name) == point)
                #expect(speed > 0 && speed <= 1)
            case .path(let points, let speed):
                for point in points { #expect(arm.teachPoint(named: point.name) == point) }
                #expect(speed > 0 && speed <= 1)
            case .tool(let action):
                #expect(arm.tool.supportedActions.contains(action))
            case .unload(let ok, let ng):
                unloads += 1
                #expect(arm.teachPoint(named: ok.name) == ok && ok.location == .outfeed)
                #expect(arm.teachPoint(named: ng.name) == ng && ng.location == .reject)
            case .waitFor(let event): waits.append(event)
            case .signal(let event): signals.append(event)
            }
        }
    }
    for step in recipe.stationSteps {
        switch step {
        case .waitFor(let event): waits.append(event)
        case .signal(let event): signals.append(event)
        case .action: break
        }
    }
    #expect(unloads == 1)
    #expect(Set(signals) == Set(waits), "every event is signalled and waited for")
    #expect(signals.count == Set(signals).count, "each event has one signal step")
    for event in signals { #expect(recipe.events[event.index] == event.name) }

    // The lens arm glues only after the assembler is done, as the brief asks.
    let lensSteps = try #require(recipe.lane(forArm: "lens")).steps
    guard case .waitFor(let first) = lensSteps.first else {
        Issue.record("the lens lane starts with a wait")
        return
    }
    #expect(first.name == "led_done")

    // The assembler picks the next LED module without waiting for the lens arm: from its `led_done` signal,
    // around the end of the lane, to its next grip, there is no wait.
    let assemblerSteps = try #require(recipe.lane(forArm: "assembler")).steps
    let signalIndex = try #require(assemblerSteps.firstIndex { step in
        if case .signal(let event) = step { return event.name == "led_done" }
        return false
    })
    var index = (signalIndex + 1) % assemblerSteps.count
    while assemblerSteps[index] != .tool(.grip) {
        if case .waitFor(let event) = assemblerSteps[index] {
            Issue.record("the assembler waits for '\(event.name)' before picking the next LED module")
        }
        index = (index + 1) % assemblerSteps.count
    }
}

@Test func theTwoRecipesDifferWhereTheVariantsDiffer() throws {
    let cell = try CellDefinition.load(from: cellPath)
    let left = try Recipe.load(from: leftRecipePath, cell: cell)
    let right = try Recipe.load(from: rightRecipePath, cell: cell)
    #expect(left.id != right.id)
    #expect(left.processWindows.luminousIntensity != right.processWindows.luminousIntensity)
    #expect(left.processWindows.cutoffAngle != right.processWindows.cutoffAngle)
    #expect(left.armLanes == right.armLanes, "same cell, same motions")
}

@Test(arguments: [leftRecipePath, rightRecipePath])
func processWindowsAcceptNominalAndRejectDefects(path: String) throws {
    let cell = try CellDefinition.load(from: cellPath)
    let recipe = try Recipe.load(from: path, cell: cell)
    let windows = recipe.processWindows
    let k = SimulatorNominal.sigmas

    let torque = recipe.toolParameters.screwTargetTorqueNewtonMeters
    let torqueSigma = torque * SimulatorNominal.screwTorqueSigmaFraction
    #expect(windows.screwTorque.contains(torque - k * torqueSigma))
    #expect(windows.screwTorque.contains(torque + k * torqueSigma))
    #expect(!windows.screwTorque.contains(torque * SimulatorNominal.screwDefectTorqueFractionMaximum))

    let force = recipe.toolParameters.pressTargetForceNewtons
    let forceSigma = force * SimulatorNominal.pressForceSigmaFraction
    #expect(windows.pressForce.contains(force - k * forceSigma))
    #expect(windows.pressForce.contains(force + k * forceSigma))
    #expect(!windows.pressForce.contains(force * (1 - SimulatorNominal.pressDefectDeviationFractionMinimum)))
    #expect(!windows.pressForce.contains(force * (1 + SimulatorNominal.pressDefectDeviationFractionMinimum)))

    #expect(windows.leakRate.contains(SimulatorNominal.leakRateCubicCentimetersPerMinute))
    #expect(!windows.leakRate.contains(SimulatorNominal.leakDefectRange.lowerBound))
    #expect(!windows.leakRate.contains(SimulatorNominal.leakDefectRange.upperBound))

    let intensity = try #require(SimulatorNominal.intensityCandela[recipe.variant])
    let intensitySigma = intensity * SimulatorNominal.intensitySigmaFraction
    #expect(windows.luminousIntensity.contains(intensity - k * intensitySigma))
    #expect(windows.luminousIntensity.contains(intensity + k * intensitySigma))
    #expect(!windows.luminousIntensity.contains(intensity * SimulatorNominal.intensityDefectFractionMaximum))

    let cutoff = try #require(SimulatorNominal.cutoffDegrees[recipe.variant])
    #expect(windows.cutoffAngle.contains(cutoff - k * SimulatorNominal.cutoffSigmaDegrees))
    #expect(windows.cutoffAngle.contains(cutoff + k * SimulatorNominal.cutoffSigmaDegrees))
    #expect(!windows.cutoffAngle.contains(SimulatorNominal.cutoffDefectDegrees.lowerBound))
    #expect(!windows.cutoffAngle.contains(SimulatorNominal.cutoffDefectDegrees.upperBound))

    // Glue: 0.20 ml/s while moving along the bead path. Stopping at each point with jerk-limited moves at the
    // path's speed gives the nominal volume; blending through the points at that speed (the fastest a
    // controller could do it) gives less. Both must sit inside the window with room to spare, and the window
    // must not accept so little glue that the lamp would leak.
    let lens = try #require(cell.arm(named: "lens"))
    let lensSteps = try #require(recipe.lane(forArm: "lens")).steps
    var start: TeachPoint?
    var dispensing = false
    var stoppingSeconds = 0.0
    var cruisingSeconds = 0.0
    for step in lensSteps {
        switch step {
        case .move(let point, _): start = point
        case .tool(.dispenseOn): dispensing = true
        case .tool(.dispenseOff): dispensing = false
        case .path(let points, let speed):
            var from = try #require(start)
            for point in points where dispensing {
                stoppingSeconds += synchronisedMoveSeconds(
                    from: from, to: point, limits: lens.motionLimits, speedFraction: speed)
                cruisingSeconds += zip(from.jointsRadians, point.jointsRadians).enumerated().map { joint, pair in
                    abs(pair.1 - pair.0) / (lens.motionLimits.maximumVelocityRadiansPerSecond[joint] * speed)
                }.max() ?? 0
                from = point
            }
            start = from
        default: break
        }
    }
    let nominalVolume = stoppingSeconds * SimulatorNominal.glueFlowMillilitersPerSecond
    let blendedVolume = cruisingSeconds * SimulatorNominal.glueFlowMillilitersPerSecond
    #expect(nominalVolume > 0.5 && nominalVolume < 0.7, "nominal glue volume \(nominalVolume) ml")
    #expect(windows.glueVolume.contains(blendedVolume * 0.8), "blended path: \(blendedVolume) ml")
    #expect(windows.glueVolume.contains(nominalVolume * 1.5))
    #expect(windows.glueVolume.minimum >= SimulatorNominal.minimumGlueMilliliters)
}

@Test func endpointsCanBeRedirectedToLoopback() throws {
    let cell = try CellDefinition.load(from: cellPath)
    var nextPort = 40_000
    let simulated = cell.replacingEndpoints { endpoint in
        var copy = endpoint
        copy.host = "127.0.0.1"
        copy.port = nextPort
        copy.name = "renamed"  // ignored: names and kinds are kept
        nextPort += 1
        return copy
    }
    #expect(simulated.devices.map(\.name) == cell.devices.map(\.name))
    #expect(simulated.devices.allSatisfy { $0.host == "127.0.0.1" })
    #expect(Set(simulated.devices.map(\.port)).count == 4)
    #expect(simulated.arms.map(\.teachPoints) == cell.arms.map(\.teachPoints))
}

// MARK: - Errors

/// One broken file: the real file's text with `original` (first occurrence) replaced by `replacement`.
struct BrokenFile: CustomTestStringConvertible, Sendable {
    enum Which: Sendable { case cell, leftRecipe }
    var name: String
    var which: Which
    var original: String
    var replacement: String
    var kind: ConfigError.Kind
    /// The expected description after `<file>: `.
    var expected: String

    var testDescription: String { name }
}

private let brokenFiles: [BrokenFile] = [
    BrokenFile(
        name: "missing field", which: .cell,
        original: "host = \"10.20.1.14\"\nport = 502\nunit_id = 1\n", replacement: "host = \"10.20.1.14\"\nport = 502\n",
        kind: .missingField,
        expected: "devices.station.unit_id: missing required field (expected an integer)"),
    BrokenFile(
        name: "wrong type", which: .cell, original: "port = 502", replacement: "port = \"502\"", kind: .wrongType,
        expected: "devices.loader.port: expected an integer, found a string"),
    BrokenFile(
        name: "teach point outside the joint limits", which: .cell,
        original: "home          = { joints = [ 0.000, -0.300,  0.600,",
        replacement: "home          = { joints = [ 0.000, -0.300,  1.900,", kind: .outOfRange,
        expected: "arms.loader.teach_points.home.joints[2]: 1.9 rad is outside J3's limits -2.967..1.309 rad"),
    BrokenFile(
        name: "unknown key", which: .cell, original: "max_jerk ", replacement: "max_jerks", kind: .unknownKey,
        expected:
            "arms.loader.max_jerks: unknown key 'max_jerks' (expected one of: max_acceleration, max_jerk, max_velocity, teach_points, tool)"
    ),
    BrokenFile(
        name: "unknown key in a teach point", which: .cell, original: "location = \"fixture\"",
        replacement: "locaton = \"fixture\"", kind: .unknownKey,
        expected: "arms.loader.teach_points.fixture.locaton: unknown key 'locaton' (expected one of: joints, location)"),
    BrokenFile(
        name: "velocity above the datasheet", which: .cell, original: "max_velocity     = [ 1.88,",
        replacement: "max_velocity     = [ 3.50,", kind: .outOfRange,
        expected:
            "arms.loader.max_velocity[0]: 3.5 rad/s is outside J1's range: above 0, at most 3.14 rad/s (datasheet maximum)"
    ),
    BrokenFile(
        name: "unknown tool kind", which: .cell, original: "tool = \"GRIPPER\"", replacement: "tool = \"HAMMER\"",
        kind: .invalidValue,
        expected:
            "arms.loader.tool: unknown tool kind \"HAMMER\" (expected one of: \"GRIPPER\", \"VACUUM_SCREWDRIVER\", \"DISPENSER_PRESS\")"
    ),
    BrokenFile(
        name: "two teach points with the same pose", which: .cell,
        original: "flip          = { joints = [ 0.600,  0.150,  0.200,  1.200,  0.800,  3.142]",
        replacement: "flip          = { joints = [ 0.000, -0.300,  0.600,  0.000,  0.900,  0.020]", kind: .duplicateName,
        expected:
            "arms.loader.teach_points.home.joints: the same pose as teach point 'flip' (no joint differs by 0.05 rad or more)"
    ),
    BrokenFile(
        name: "arm without a device", which: .cell, original: "[arms.lens]\n", replacement: "[arms.lense]\n",
        kind: .unknownReference,
        expected: "arms.lense: arm 'lense' has no RA-610 device (there is no devices.lense)"),
    BrokenFile(
        name: "syntax error", which: .cell, original: "cell_id = \"HL-CELL-01\"", replacement: "cell_id = \"HL-CELL-01",
        kind: .syntax, expected: "line 7, column 22: TOML syntax error: "),
    BrokenFile(
        name: "duplicate key", which: .cell, original: "unit_id = 1\n\n[devices.assembler]",
        replacement: "unit_id = 1\nport = 503\n\n[devices.assembler]", kind: .syntax,
        expected: "line 18, column 8: TOML syntax error: "),
    BrokenFile(
        name: "unknown teach point in a recipe", which: .leftRecipe, original: "{ move = \"infeed_pick\" }",
        replacement: "{ move = \"infeed_pik\" }", kind: .unknownReference,
        expected:
            "steps.loader[1].move: unknown teach point 'infeed_pik' of arm 'loader' (it has: fixture, flip, home, infeed_pick, outfeed_place, reject_place)"
    ),
    BrokenFile(
        name: "bad window", which: .leftRecipe, original: "{ min = 1.12,", replacement: "{ min = 1.30,",
        kind: .invalidValue, expected: "windows.screw_torque: min 1.3 N·m is not below max 1.28 N·m"),
    BrokenFile(
        name: "window with the wrong unit", which: .leftRecipe, original: "unit = \"cm³/min\"",
        replacement: "unit = \"ml/min\"", kind: .invalidValue,
        expected: "windows.leak_rate.unit: unit \"ml/min\" is not this window's unit \"cm³/min\""),
    BrokenFile(
        name: "tool the arm does not have", which: .leftRecipe, original: "{ tool = \"grip\" },\n  { move = \"flip\" }",
        replacement: "{ tool = \"screw\" },\n  { move = \"flip\" }", kind: .invalidValue,
        expected: "steps.loader[2].tool: the loader arm's GRIPPER cannot 'screw' (it can: grip, release)"),
    BrokenFile(
        name: "screw torque outside the register range", which: .leftRecipe, original: "screw_target_torque = 1.20",
        replacement: "screw_target_torque = 6.0", kind: .outOfRange,
        expected:
            "tool_parameters.screw_target_torque: 6 N·m is outside the RA-610 screw torque range 0.5..5 N·m (tool_param 50..500 × 0.01 N·m)"
    ),
    BrokenFile(
        name: "event nobody signals", which: .leftRecipe, original: "{ wait_for = \"led_done\" }",
        replacement: "{ wait_for = \"leds_done\" }", kind: .unknownReference,
        expected: "steps.lens[0].wait_for: no step signals event 'leds_done', so this wait never ends"),
    BrokenFile(
        name: "event signalled twice", which: .leftRecipe, original: "{ signal = \"lamp_unloaded\" }",
        replacement: "{ signal = \"housing_placed\" }", kind: .duplicateName,
        expected:
            "steps.loader[14].signal: event 'housing_placed' is already signalled at steps.loader[6].signal (each event has exactly one signal step)"
    ),
    BrokenFile(
        name: "deadlock", which: .leftRecipe,
        original: "{ signal = \"led_done\" },\n  { move = \"home\" },",
        replacement: "{ move = \"home\" },\n  { wait_for = \"lens_pressed\" },\n  { signal = \"led_done\" },",
        kind: .invalidValue,
        expected:
            "steps.assembler[14]: the lanes deadlock in cycle 1: this step waits for 'lens_pressed', which is never signalled in time (also stuck: steps.lens[0] waiting for 'led_done'; steps.loader[8] waiting for 'lamp_released'; steps.station[5] waiting for 'lens_pressed')"
    ),
    BrokenFile(
        name: "station action in an arm lane", which: .leftRecipe, original: "{ move = \"led_place\" }",
        replacement: "{ station = \"clamp\" }", kind: .unknownKey,
        expected:
            "steps.assembler[3].station: unknown step kind 'station' (expected one of: move, path, tool, wait_for, signal, unload); station actions belong in steps.station"
    ),
    BrokenFile(
        name: "unload to the wrong place", which: .leftRecipe, original: "ok = \"outfeed_place\"",
        replacement: "ok = \"reject_place\"", kind: .invalidValue,
        expected:
            "steps.loader[12].unload.ok: teach point 'reject_place' is at \"reject\", but a good lamp goes to \"outfeed\""
    ),
    BrokenFile(
        name: "speed above 1", which: .leftRecipe, original: "speed = 0.08", replacement: "speed = 1.5",
        kind: .outOfRange,
        expected: "steps.lens[3].speed: 1.5 is outside the range of a speed fraction: above 0, at most 1"),
    BrokenFile(
        name: "speed on a tool step", which: .leftRecipe, original: "{ tool = \"dispense_on\" }",
        replacement: "{ tool = \"dispense_on\", speed = 0.5 }", kind: .unknownKey,
        expected: "steps.lens[2].speed: unknown key 'speed' for a 'tool' step (only move and path take a speed)"),
    BrokenFile(
        name: "two kinds in one step", which: .leftRecipe, original: "{ move = \"lens_pick\" }",
        replacement: "{ move = \"lens_pick\", tool = \"grip\" }", kind: .invalidValue,
        expected: "steps.lens[5]: a step has exactly one kind, found 2: move, tool"),
    BrokenFile(
        name: "unknown variant", which: .leftRecipe, original: "variant = \"LEFT\"", replacement: "variant = \"left\"",
        kind: .invalidValue, expected: "variant: unknown variant \"left\" (expected one of: \"LEFT\", \"RIGHT\")"),
]

@Test(arguments: brokenFiles)
func brokenFileYieldsOneClearError(_ broken: BrokenFile) throws {
    let directory = try TemporaryDirectory()
    let realPath = broken.which == .cell ? cellPath : leftRecipePath
    let text = try String(contentsOfFile: realPath, encoding: .utf8)
    let range = try #require(text.range(of: broken.original), "the mutation applies to the real file")
    let mutated = text.replacingCharacters(in: range, with: broken.replacement)
    let brokenPath = directory.path + (broken.which == .cell ? "/cell.toml" : "/left.toml")
    try mutated.write(toFile: brokenPath, atomically: true, encoding: .utf8)

    guard let error = loadError(broken.which, at: brokenPath) else {
        Issue.record("\(broken.name): the broken file was accepted")
        return
    }
    #expect(error.kind == broken.kind)
    #expect(error.filePath == brokenPath)
    #expect(!error.description.contains("\n"), "one line")
    if broken.kind == .syntax {
        // The parser's wording is its own; the position and the prefix are ours.
        #expect(error.description.hasPrefix("\(brokenPath): \(broken.expected)"), "\(error)")
        #expect(error.line != nil && error.column != nil)
        #expect(error.message.count > "TOML syntax error: ".count + 10, "the parser's reason is included")
    } else {
        #expect(error.description == "\(brokenPath): \(broken.expected)")
    }
}

@Test func missingFileIsReportedWithItsPath() throws {
    let directory = try TemporaryDirectory()
    let path = directory.path + "/no-such.toml"
    #expect(throws: ConfigError.self) { try CellDefinition.load(from: path) }
    do {
        _ = try CellDefinition.load(from: path)
    } catch {
        #expect(error.kind == .fileUnreadable)
        #expect(error.description == "\(path): cannot open the file: No such file or directory")
    }
}

@Test func recipeForAnotherCellIsRejected() throws {
    // A cell whose lens arm is called differently: the recipe's lens lane refers to an arm that is not there.
    let directory = try TemporaryDirectory()
    let text = try String(contentsOfFile: cellPath, encoding: .utf8)
        .replacingOccurrences(of: "[devices.lens]", with: "[devices.optic]")
        .replacingOccurrences(of: "[arms.lens", with: "[arms.optic")
    let path = directory.path + "/cell.toml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    let cell = try CellDefinition.load(from: path)
    #expect(cell.arm(named: "optic") != nil)
    do {
        _ = try Recipe.load(from: leftRecipePath, cell: cell)
        Issue.record("accepted")
    } catch {
        #expect(error.kind == .unknownReference)
        #expect(error.fieldPath == "steps.lens")
    }
}

// MARK: - Helpers

/// The error loading the file at `path` as `which` gives, or nil when it loads.
private func loadError(_ which: BrokenFile.Which, at path: String) -> ConfigError? {
    do {
        switch which {
        case .cell:
            _ = try CellDefinition.load(from: path)
        case .leftRecipe:
            let cell = try CellDefinition.load(from: cellPath)
            _ = try Recipe.load(from: path, cell: cell)
        }
        return nil
    } catch {
        return error
    }
}

private func largestJointDifference(_ first: TeachPoint, _ second: TeachPoint) -> Double {
    zip(first.jointsRadians, second.jointsRadians).map { abs($0 - $1) }.max() ?? 0
}

/// Duration of a time-synchronised rest-to-rest move: the slowest joint's jerk-limited minimum time.
private func synchronisedMoveSeconds(
    from: TeachPoint, to: TeachPoint, limits: ArmMotionLimits, speedFraction: Double
) -> Double {
    var longest = 0.0
    for joint in 0..<6 {
        longest = max(
            longest,
            jerkLimitedSeconds(
                distance: abs(to.jointsRadians[joint] - from.jointsRadians[joint]),
                velocity: limits.maximumVelocityRadiansPerSecond[joint] * speedFraction,
                acceleration: limits.maximumAccelerationRadiansPerSecondSquared[joint],
                jerk: limits.maximumJerkRadiansPerSecondCubed[joint]))
    }
    return longest
}

/// Minimum time of a rest-to-rest move over `distance` with a symmetric 7-phase jerk-limited profile.
private func jerkLimitedSeconds(distance: Double, velocity: Double, acceleration: Double, jerk: Double) -> Double {
    guard distance > 0 else { return 0 }
    // Accelerating from rest to `peak`: jerk phases `tj` each, constant-acceleration phase `ta`.
    func phases(_ peak: Double) -> (jerkSeconds: Double, accelerationSeconds: Double) {
        if peak * jerk >= acceleration * acceleration {
            return (acceleration / jerk, peak / acceleration - acceleration / jerk)
        }
        return ((peak / jerk).squareRoot(), 0)
    }
    func rampDistance(_ peak: Double) -> Double {  // speeding up and slowing down again
        let (tj, ta) = phases(peak)
        return peak * (2 * tj + ta)
    }
    if rampDistance(velocity) <= distance {
        let (tj, ta) = phases(velocity)
        return 2 * (2 * tj + ta) + (distance - rampDistance(velocity)) / velocity
    }
    var low = 0.0
    var high = velocity
    for _ in 0..<100 {
        let middle = (low + high) / 2
        if rampDistance(middle) < distance { low = middle } else { high = middle }
    }
    let (tj, ta) = phases(low)
    return 2 * (2 * tj + ta)
}

/// A fresh directory under the system's temporary directory, removed when the value is released.
private final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("lampcell-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

// MARK: - Overrides

/// `lampcelld --state-directory`: the state moves as if the file said so; the ledger moves with it only when it
/// lies inside the configured state directory.
@Test func movingTheStateDirectoryMovesOnlyALedgerInsideIt() throws {
    var configuration = try DaemonConfiguration.load(from: Repository.developmentConfiguration)
    let oldState = configuration.stateDirectory
    #expect(configuration.ledgerPath == oldState + "/ledger.sqlite")
    configuration.moveStateDirectory(to: "/tmp/elsewhere")
    #expect(configuration.stateDirectory == "/tmp/elsewhere")
    #expect(configuration.ledgerPath == "/tmp/elsewhere/ledger.sqlite")

    // A ledger configured outside the state directory (e.g. on another disk) stays.
    configuration.ledgerPath = "/srv/ledger/cell-7.sqlite"
    configuration.moveStateDirectory(to: "/tmp/third/")
    #expect(configuration.stateDirectory == "/tmp/third")
    #expect(configuration.ledgerPath == "/srv/ledger/cell-7.sqlite")

    // Paths are compared in their standard form; a state directory of "/" does not capture every ledger.
    configuration.ledgerPath = "/tmp//third/./sub/ledger.sqlite"
    configuration.moveStateDirectory(to: "/var/lib/cell")
    #expect(configuration.ledgerPath == "/var/lib/cell/sub/ledger.sqlite")
    configuration.stateDirectory = "/"
    configuration.ledgerPath = "/srv/ledger.sqlite"
    configuration.moveStateDirectory(to: "/data")
    #expect(configuration.ledgerPath == "/srv/ledger.sqlite")
}

// MARK: - [plant]

/// `[plant]`: absent means off; present, every key is read with its defaults, paths resolved against the file, and a
/// bad value names its field.
@Test func plantSectionIsOptionalAndItsBadValuesNameTheirField() throws {
    let directory = try TemporaryDirectory()
    let base = try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8)
        .replacingOccurrences(of: "\"../", with: "\"\(Repository.root)/")
    func load(_ plant: String) throws(ConfigError) -> DaemonConfiguration {
        let path = directory.path + "/lampcelld.toml"
        try? (base + "\n[plant]\n" + plant).write(toFile: path, atomically: true, encoding: .utf8)
        return try DaemonConfiguration.load(from: path)
    }
    #expect(try DaemonConfiguration.load(from: Repository.developmentConfiguration).plant == nil)
    let plant = try load("server = \"db1,db2\"\ndatabase = \"plant\"\nrole = \"cell_01\"\ntls = true\nca_file = \"ca.pem\"\n").plant
    #expect(
        plant
            == PlantConfiguration(
                server: "db1,db2", database: "plant", role: "cell_01", tls: true, caFile: directory.path + "/ca.pem"))
    let cases: [(String, String)] = [
        ("database = \"plant\"\nrole = \"r\"\ntls = false\n", "plant.server"),
        ("server = \"db\"\ndatabase = \"plant\"\nrole = \"r\"\ntls = \"yes\"\n", "plant.tls"),
        ("server = \"db\"\ndatabase = \"plant\"\nrole = \"r\"\ntls = false\nport = 0\n", "plant.port"),
        ("server = \"db\"\ndatabase = \"plant\"\nrole = \"r\"\ntls = false\nca_file = \"ca.pem\"\n", "plant.ca_file"),
        ("server = \"db\"\ndatabase = \"plant\"\nrole = \"r\"\ntls = false\nbatch_entries = 0\n", "plant.batch_entries"),
        ("server = \"db\"\ndatabase = \"\"\nrole = \"r\"\ntls = false\n", "plant.database"),
        ("server = \"db\"\ndatabase = \"plant\"\nrole = \"r\"\ntls = false\nhosts = 2\n", "plant.hosts"),
    ]
    for (text, field) in cases {
        #expect(throws: ConfigError.self, "\(field)") { try load(text) }
        do {
            _ = try load(text)
        } catch {
            #expect(error.fieldPath == field, "\(error)")
        }
    }
}

/// `[panel]`: a bad value names its field, and a long one is shown cut (the config fuzzer found `address` echoed whole).
@Test func panelSectionsBadValuesNameTheirFieldInOneShortLine() throws {
    let directory = try TemporaryDirectory()
    let base = try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8)
        .replacingOccurrences(of: "\"../", with: "\"\(Repository.root)/")
    let path = directory.path + "/lampcelld.toml"
    func load(replacing line: String, with replacement: String) throws(ConfigError) -> DaemonConfiguration {
        precondition(base.contains(line), "the development configuration has no line \(line)")
        try? base.replacingOccurrences(of: line, with: replacement).write(toFile: path, atomically: true, encoding: .utf8)
        return try DaemonConfiguration.load(from: path)
    }
    #expect(try load(replacing: "address = \"127.0.0.1\"", with: "address = \"::1\"").panel?.address == "::1")
    let long = String(repeating: "x", count: 5000)
    let cases: [(String, String, String)] = [
        ("address = \"127.0.0.1\"", "address = \"\(long)\"", "panel.address"),
        ("address = \"127.0.0.1\"", "address = \"panel.example\"", "panel.address"),
        ("port = 8610", "port = 70000", "panel.port"),
    ]
    for (line, replacement, field) in cases {
        do {
            _ = try load(replacing: line, with: replacement)
            Issue.record("\(field): \(replacement.prefix(40)) loaded")
        } catch {
            #expect(error.fieldPath == field, "\(error)")
            #expect(error.description.count < 300 + path.count, "\(error.description.count) characters")
        }
    }
}
