// Loading and validating `Hardware/recipes/*.toml` against a cell definition (format: Hardware/README.md).

import CellCore

/// Validation limits and vocabulary of recipes.
enum RecipeConfigLimits {
    /// Step kinds allowed in an arm's lane.
    static let armStepKinds = ["move", "path", "tool", "wait_for", "signal", "unload"]
    /// Step kinds allowed in the station's lane.
    static let stationStepKinds = ["station", "wait_for", "signal"]
    /// The deadlock check runs the lanes' synchronisation abstractly until every lane has finished this many
    /// cycles (enough to see the second lamp overlap the first and the third reuse the first's events).
    static let deadlockCheckCycles = 3
    /// Step kinds that may carry the optional `speed` key (fraction of the arm's velocity limits).
    static let speedStepKinds = ["move", "path"]
    /// The optional modifier key of `move` and `path` steps.
    static let speedKey = "speed"
    /// Tolerance when checking that a value is a whole number of register units.
    static let registerResolutionTolerance = 1e-6

    /// Each process window's key in `[windows]` and its unit, as it must be written.
    static let windowUnits: [(key: String, unit: String)] = [
        ("screw_torque", "N·m"), ("press_force", "N"), ("glue_volume", "ml"), ("leak_rate", "cm³/min"),
        ("luminous_intensity", "cd"), ("cutoff_angle", "°"),
    ]
}

extension Recipe {
    /// Loads and validates the recipe at `path` for `cell`.
    ///
    /// Checks every field's presence, type and range and rejects unknown keys; every teach point a step names
    /// must exist for that arm, every tool action must suit the arm's tool, tool parameters must fit the RA-610
    /// `tool_param` ranges and lie inside their process windows, windows need min < max and their documented
    /// unit, there is exactly one `unload` step (with an outfeed `ok` and a reject `ng` point), every event is
    /// signalled by exactly one step and waited for by some lane, and the lanes do not deadlock; then compiles it
    /// for the cell (`CompiledRecipe.compile`: paths planned, at most `MeasurementKind.maximumScrews` screws) so
    /// that what loads also runs. Throws the first problem found, naming this file. Any thread; reads the file
    /// synchronously (start-up, not the control thread).
    public static func load(from path: String, cell: CellDefinition) throws(ConfigError) -> Recipe {
        let root = try loadConfigTable(path: path)
        let recipe = try parse(root, cell: cell)
        // What the controller compiles must compile (path planning, at most `MeasurementKind.maximumScrews` screw
        // steps, …): its errors then name this file. (Found by the configuration fuzzer: a recipe with a fifth
        // screw step loaded, and the daemon later failed naming only the recipe id.)
        do throws(ConfigError) {
            _ = try CompiledRecipe.compile(recipe, cell: CompiledCell.compile(cell))
        } catch {
            throw ConfigError(
                filePath: path, fieldPath: error.fieldPath, kind: error.kind, message: error.message)
        }
        return recipe
    }

    static func parse(_ root: ConfigTable, cell: CellDefinition) throws(ConfigError) -> Recipe {
        try root.rejectUnknownKeys(allowed: [
            "id", "variant", "ideal_cycle_time_seconds", "tool_parameters", "windows", "steps",
        ])
        let id = try ConfigName.check(root.string("id"), what: "recipe id", at: root.path.key("id"), in: root)
        let variantWord = try root.string("variant")
        guard let variant = Variant.allCases.first(where: { $0.name == variantWord }) else {
            throw root.error(
                root.path.key("variant"), .invalidValue,
                "unknown variant \"\(configExcerpt(variantWord))\" (expected one of: \"LEFT\", \"RIGHT\")")
        }
        let cycleTime = try root.number("ideal_cycle_time_seconds")
        guard cycleTime > 0, cycleTime <= maximumIdealCycleTimeSeconds else {
            throw root.error(
                root.path.key("ideal_cycle_time_seconds"), .outOfRange,
                "\(formatNumber(cycleTime)) s is outside the range: above 0, at most "
                    + "\(formatNumber(maximumIdealCycleTimeSeconds)) s")
        }
        let windows = try parseWindows(root.table("windows"))
        let toolParameters = try parseToolParameters(root.table("tool_parameters"), windows: windows)
        let lanes = try RecipeLaneParser(steps: root.table("steps"), cell: cell).parse()
        return Recipe(
            id: id, variant: variant, idealCycleTimeSeconds: cycleTime, toolParameters: toolParameters,
            armLanes: lanes.armLanes, stationSteps: lanes.stationSteps, events: lanes.events,
            processWindows: windows)
    }

    private static func parseWindows(_ table: ConfigTable) throws(ConfigError) -> ProcessWindows {
        let keys = RecipeConfigLimits.windowUnits.map(\.key)
        try table.rejectUnknownKeys(allowed: keys)
        var windows: [ProcessWindow] = []
        for (key, expectedUnit) in RecipeConfigLimits.windowUnits {
            let window = try table.table(key)
            try window.rejectUnknownKeys(allowed: ["min", "max", "unit"])
            let minimum = try window.number("min")
            let maximum = try window.number("max")
            let unit = try window.string("unit")
            guard unit == expectedUnit else {
                throw window.error(
                    window.path.key("unit"), .invalidValue,
                    "unit \"\(configExcerpt(unit))\" is not this window's unit \"\(expectedUnit)\"")
            }
            guard minimum < maximum else {
                throw window.error(
                    window.path, .invalidValue,
                    "min \(formatNumber(minimum)) \(unit) is not below max \(formatNumber(maximum)) \(unit)")
            }
            windows.append(ProcessWindow(minimum: minimum, maximum: maximum, unit: unit))
        }
        return ProcessWindows(
            screwTorque: windows[0], pressForce: windows[1], glueVolume: windows[2], leakRate: windows[3],
            luminousIntensity: windows[4], cutoffAngle: windows[5])
    }

    private static func parseToolParameters(_ table: ConfigTable, windows: ProcessWindows) throws(ConfigError)
        -> ToolParameters
    {
        try table.rejectUnknownKeys(allowed: ["screw_target_torque", "press_target_force"])
        let torque = try table.number("screw_target_torque")
        try checkRegister(
            torque, unitsPerRegisterStep: 0.01, range: ToolParameters.screwTorqueRegisterRange, unit: "N·m",
            registerUnit: "0.01 N·m", what: "screw torque", window: windows.screwTorque,
            windowName: "windows.screw_torque", field: table.path.key("screw_target_torque"), in: table)
        let force = try table.number("press_target_force")
        try checkRegister(
            force, unitsPerRegisterStep: 1, range: ToolParameters.pressForceRegisterRange, unit: "N",
            registerUnit: "N", what: "press force", window: windows.pressForce, windowName: "windows.press_force",
            field: table.path.key("press_target_force"), in: table)
        return ToolParameters(screwTargetTorqueNewtonMeters: torque, pressTargetForceNewtons: force)
    }

    /// `value` must be a whole number of register steps, inside the register's range and inside its window.
    private static func checkRegister(
        _ value: Double, unitsPerRegisterStep: Double, range: ClosedRange<UInt16>, unit: String, registerUnit: String,
        what: String, window: ProcessWindow, windowName: String, field: FieldPath, in table: ConfigTable
    ) throws(ConfigError) {
        let steps = value / unitsPerRegisterStep
        let low = Double(range.lowerBound) * unitsPerRegisterStep
        let high = Double(range.upperBound) * unitsPerRegisterStep
        guard steps.rounded() >= Double(range.lowerBound), steps.rounded() <= Double(range.upperBound) else {
            throw table.error(
                field, .outOfRange,
                "\(formatNumber(value)) \(unit) is outside the RA-610 \(what) range \(formatNumber(low))..\(formatNumber(high)) "
                    + "\(unit) (tool_param \(range.lowerBound)..\(range.upperBound) × \(registerUnit))")
        }
        guard abs(steps - steps.rounded()) <= RecipeConfigLimits.registerResolutionTolerance else {
            throw table.error(
                field, .invalidValue,
                "\(formatNumber(value)) \(unit) is not a whole multiple of the tool_param resolution \(registerUnit)")
        }
        guard window.contains(value) else {
            throw table.error(
                field, .invalidValue,
                "\(formatNumber(value)) \(unit) is outside \(windowName) \(formatNumber(window.minimum))..\(formatNumber(window.maximum)) "
                    + "\(unit): every part would fail")
        }
    }
}

/// Parses `[steps]`: one lane per arm of the cell and one for the station, then checks the events.
private struct RecipeLaneParser {
    let steps: ConfigTable
    let cell: CellDefinition

    /// A `wait_for` or `signal` step, by name, before events get their indices.
    struct EventUse {
        var name: String
        var isSignal: Bool
        var lane: Int
        var field: FieldPath
    }

    enum PendingArmStep {
        case move(TeachPoint, Double), path([TeachPoint], Double), tool(ToolAction)
        case unload(ok: TeachPoint, ng: TeachPoint)
        case waitFor(String), signal(String)
    }

    enum PendingStationStep {
        case action(StationAction), waitFor(String), signal(String)
    }

    struct Result {
        var armLanes: [ArmLane]
        var stationSteps: [StationStep]
        var events: [String]
    }

    func parse() throws(ConfigError) -> Result {
        let stationName = cell.station.name
        let laneNames = cell.arms.map(\.name) + [stationName]
        for key in steps.sortedKeys where !laneNames.contains(key) {
            throw steps.error(
                steps.path.key(key), .unknownReference,
                "no arm or station named '\(configExcerpt(key))' in the cell (lanes: \(laneNames.joined(separator: ", ")))")
        }

        // Lane order for events and the deadlock check: arms (cell order), then the station.
        var uses: [EventUse] = []
        var pendingArms: [[PendingArmStep]] = []
        var unloadFields: [FieldPath] = []
        for (laneIndex, arm) in cell.arms.enumerated() {
            let field = steps.path.key(arm.name)
            let elements = try steps.array(arm.name, expected: "an array of steps")
            var lane: [PendingArmStep] = []
            for (index, element) in elements.enumerated() {
                let stepField = field.index(index)
                let (kind, argument, stepTable) = try stepKindAndArgument(
                    element, at: stepField, allowed: RecipeConfigLimits.armStepKinds, laneIsStation: false)
                let argumentField = stepField.key(kind)
                let speed = try speedFraction(of: stepTable, kind: kind)
                switch kind {
                case "move":
                    lane.append(.move(try teachPoint(argument, of: arm, at: argumentField, in: stepTable), speed))
                case "path":
                    guard case .array(let names) = argument else {
                        throw stepTable.error(
                            argumentField, .wrongType,
                            "expected an array of teach point names, found \(argument.typeDescription)")
                    }
                    guard !names.isEmpty else {
                        throw stepTable.error(argumentField, .invalidValue, "a path needs at least one teach point")
                    }
                    var points: [TeachPoint] = []
                    for (pointIndex, name) in names.enumerated() {
                        points.append(try teachPoint(name, of: arm, at: argumentField.index(pointIndex), in: stepTable))
                    }
                    lane.append(.path(points, speed))
                case "tool":
                    let action: ToolAction = try ConfigTable.word(
                        argument, at: argumentField, in: stepTable, what: "tool action")
                    guard arm.tool.supportedActions.contains(action) else {
                        let can = arm.tool.supportedActions.map(\.rawValue).joined(separator: ", ")
                        throw stepTable.error(
                            argumentField, .invalidValue,
                            "the \(arm.name) arm's \(arm.tool.rawValue) cannot '\(action.rawValue)' (it can: \(can))")
                    }
                    lane.append(.tool(action))
                case "unload":
                    let targets = try ConfigTable.table(argument, at: argumentField, in: stepTable)
                    try targets.rejectUnknownKeys(allowed: ["ok", "ng"])
                    let ok = try teachPoint(
                        targets.value("ok", expected: "a teach point name"), of: arm, at: argumentField.key("ok"),
                        in: targets)
                    let ng = try teachPoint(
                        targets.value("ng", expected: "a teach point name"), of: arm, at: argumentField.key("ng"),
                        in: targets)
                    guard ok.location == .outfeed else {
                        throw targets.error(
                            argumentField.key("ok"), .invalidValue,
                            "teach point '\(ok.name)' is at \"\(ok.location.rawValue)\", but a good lamp goes to \"outfeed\"")
                    }
                    guard ng.location == .reject else {
                        throw targets.error(
                            argumentField.key("ng"), .invalidValue,
                            "teach point '\(ng.name)' is at \"\(ng.location.rawValue)\", but a bad lamp goes to \"reject\"")
                    }
                    unloadFields.append(stepField)
                    lane.append(.unload(ok: ok, ng: ng))
                case "wait_for", "signal":
                    let name = try eventName(argument, at: argumentField, in: stepTable)
                    uses.append(EventUse(name: name, isSignal: kind == "signal", lane: laneIndex, field: argumentField))
                    lane.append(kind == "signal" ? .signal(name) : .waitFor(name))
                default:
                    // stepKindAndArgument admits only the allowed kinds.
                    throw stepTable.error(stepField, .unknownKey, "unknown step kind '\(configExcerpt(kind))'")
                }
            }
            pendingArms.append(lane)
        }

        let stationLaneIndex = cell.arms.count
        var pendingStation: [PendingStationStep] = []
        let stationField = steps.path.key(stationName)
        for (index, element) in try steps.array(stationName, expected: "an array of steps").enumerated() {
            let stepField = stationField.index(index)
            let (kind, argument, stepTable) = try stepKindAndArgument(
                element, at: stepField, allowed: RecipeConfigLimits.stationStepKinds, laneIsStation: true)
            let argumentField = stepField.key(kind)
            switch kind {
            case "station":
                pendingStation.append(
                    .action(try ConfigTable.word(argument, at: argumentField, in: stepTable, what: "station action")))
            case "wait_for", "signal":
                let name = try eventName(argument, at: argumentField, in: stepTable)
                uses.append(
                    EventUse(name: name, isSignal: kind == "signal", lane: stationLaneIndex, field: argumentField))
                pendingStation.append(kind == "signal" ? .signal(name) : .waitFor(name))
            default:
                throw stepTable.error(stepField, .unknownKey, "unknown step kind '\(configExcerpt(kind))'")
            }
        }

        if unloadFields.isEmpty {
            throw steps.error(
                steps.path, .missingField,
                "no 'unload' step: one arm's lane must unload the lamp (OK to the outfeed, NG to the reject chute)")
        }
        if unloadFields.count > 1 {
            throw steps.error(
                unloadFields[1], .duplicateName, "a second 'unload' step (\(unloadFields[0]) is one already)")
        }

        let events = try checkEvents(uses)
        let eventIndex = Dictionary(uniqueKeysWithValues: events.enumerated().map { ($1, $0) })
        func event(_ name: String) -> RecipeEvent { RecipeEvent(index: eventIndex[name] ?? 0, name: name) }

        try checkDeadlock(
            lanes: pendingArms.map { lane in
                lane.map { step -> SyncOperation in
                    switch step {
                    case .waitFor(let name): .waitFor(eventIndex[name] ?? 0)
                    case .signal(let name): .signal(eventIndex[name] ?? 0)
                    default: .other
                    }
                }
            }
                + [
                    pendingStation.map { step -> SyncOperation in
                        switch step {
                        case .waitFor(let name): .waitFor(eventIndex[name] ?? 0)
                        case .signal(let name): .signal(eventIndex[name] ?? 0)
                        case .action: .other
                        }
                    }
                ],
            laneNames: laneNames, events: events)

        var armLanes: [ArmLane] = []
        for (arm, pending) in zip(cell.arms, pendingArms) {
            let steps: [ArmStep] = pending.map { step in
                switch step {
                case .move(let point, let speed): .move(point, speedFraction: speed)
                case .path(let points, let speed): .path(points, speedFraction: speed)
                case .tool(let action): .tool(action)
                case .unload(let ok, let ng): .unload(ok: ok, ng: ng)
                case .waitFor(let name): .waitFor(event(name))
                case .signal(let name): .signal(event(name))
                }
            }
            armLanes.append(ArmLane(armName: arm.name, steps: steps))
        }
        let stationSteps: [StationStep] = pendingStation.map { step in
            switch step {
            case .action(let action): .action(action)
            case .waitFor(let name): .waitFor(event(name))
            case .signal(let name): .signal(event(name))
            }
        }
        return Result(armLanes: armLanes, stationSteps: stationSteps, events: events)
    }

    /// A step is a table with exactly one key, its kind; the key's value is the argument.
    private func stepKindAndArgument(
        _ element: ConfigValue, at field: FieldPath, allowed: [String], laneIsStation: Bool
    ) throws(ConfigError) -> (String, ConfigValue, ConfigTable) {
        let example = laneIsStation ? "{ station = \"clamp\" }" : "{ move = \"home\" }"
        guard case .table(let entries) = element else {
            throw steps.error(
                field, .wrongType, "expected a step table like \(example), found \(element.typeDescription)")
        }
        let table = ConfigTable(entries: entries, path: field, filePath: steps.filePath)
        let speedKey = RecipeConfigLimits.speedKey
        let keys = table.sortedKeys.filter { laneIsStation || $0 != speedKey }
        for key in keys where !allowed.contains(key) {
            var message = "unknown step kind '\(configExcerpt(key))' (expected one of: \(allowed.joined(separator: ", ")))"
            if key == "station" {
                message += "; station actions belong in steps.\(cell.station.name)"
            } else if RecipeConfigLimits.armStepKinds.contains(key) {
                message += "; the station lane has no arm steps"
            }
            throw table.error(field.key(key), .unknownKey, message)
        }
        guard keys.count == 1, let kind = keys.first, let argument = entries[kind] else {
            throw table.error(
                field, .invalidValue,
                keys.isEmpty
                    ? "a step without a kind (expected one of: \(allowed.joined(separator: ", ")))"
                    : "a step has exactly one kind, found \(keys.count): \(keys.joined(separator: ", "))")
        }
        if entries[speedKey] != nil, !laneIsStation, !RecipeConfigLimits.speedStepKinds.contains(kind) {
            throw table.error(
                field.key(speedKey), .unknownKey,
                "unknown key '\(speedKey)' for a '\(kind)' step (only move and path take a speed)")
        }
        return (kind, argument, table)
    }

    /// The optional `speed` of a move or path step: 0 < speed ≤ 1, default 1.
    private func speedFraction(of step: ConfigTable, kind: String) throws(ConfigError) -> Double {
        let key = RecipeConfigLimits.speedKey
        guard RecipeConfigLimits.speedStepKinds.contains(kind), step.entries[key] != nil else { return 1 }
        let speed = try step.number(key)
        guard speed > 0, speed <= 1 else {
            throw step.error(
                step.path.key(key), .outOfRange,
                "\(formatNumber(speed)) is outside the range of a speed fraction: above 0, at most 1")
        }
        return speed
    }

    private func teachPoint(_ value: ConfigValue, of arm: ArmDefinition, at field: FieldPath, in table: ConfigTable)
        throws(ConfigError) -> TeachPoint
    {
        let name = try ConfigTable.string(value, at: field, in: table)
        guard let point = arm.teachPoint(named: name) else {
            throw table.error(
                field, .unknownReference,
                "unknown teach point '\(configExcerpt(name))' of arm '\(arm.name)' (it has: "
                    + "\(arm.teachPoints.map(\.name).joined(separator: ", ")))")
        }
        return point
    }

    private func eventName(_ value: ConfigValue, at field: FieldPath, in table: ConfigTable) throws(ConfigError)
        -> String
    {
        try ConfigName.check(ConfigTable.string(value, at: field, in: table), what: "event name", at: field, in: table)
    }

    /// Each event: signalled by exactly one step, waited for by at least one lane, at most once per lane.
    /// Returns the event names, sorted.
    private func checkEvents(_ uses: [EventUse]) throws(ConfigError) -> [String] {
        var signalField: [String: FieldPath] = [:]
        for use in uses where use.isSignal {
            if let first = signalField[use.name] {
                throw steps.error(
                    use.field, .duplicateName,
                    "event '\(use.name)' is already signalled at \(first) (each event has exactly one signal step)")
            }
            signalField[use.name] = use.field
        }
        var waits: [String: [EventUse]] = [:]
        for use in uses where !use.isSignal {
            guard signalField[use.name] != nil else {
                throw steps.error(
                    use.field, .unknownReference, "no step signals event '\(use.name)', so this wait never ends")
            }
            if let earlier = waits[use.name]?.first(where: { $0.lane == use.lane }) {
                throw steps.error(
                    use.field, .duplicateName,
                    "this lane already waits for '\(use.name)' at \(earlier.field) (at most one wait per lane and event)")
            }
            waits[use.name, default: []].append(use)
        }
        for use in uses where use.isSignal && waits[use.name] == nil {
            throw steps.error(use.field, .invalidValue, "event '\(use.name)' is signalled but no lane waits for it")
        }
        return signalField.keys.sorted()
    }

    enum SyncOperation {
        case waitFor(Int), signal(Int), other
    }

    /// Runs the lanes' waits and signals (everything else completes at once) until each lane has finished
    /// `deadlockCheckCycles` cycles; if every unfinished lane is stuck at a wait, the recipe deadlocks.
    private func checkDeadlock(lanes: [[SyncOperation]], laneNames: [String], events: [String])
        throws(ConfigError)
    {
        let targetCycles = RecipeConfigLimits.deadlockCheckCycles
        let cycleCap = targetCycles + 1
        var signalled = [Int](repeating: 0, count: events.count)
        var passed = [[Int]](repeating: [Int](repeating: 0, count: events.count), count: lanes.count)
        var cursor = [Int](repeating: 0, count: lanes.count)
        var cycle = [Int](repeating: 0, count: lanes.count)
        for (lane, operations) in lanes.enumerated() where operations.isEmpty { cycle[lane] = cycleCap }

        var progressed = true
        while progressed {
            progressed = false
            for lane in lanes.indices {
                while cycle[lane] < cycleCap {
                    if cursor[lane] == lanes[lane].count {
                        cursor[lane] = 0
                        cycle[lane] += 1
                        continue
                    }
                    let operation = lanes[lane][cursor[lane]]
                    if case .waitFor(let event) = operation {
                        if signalled[event] > passed[lane][event] {
                            passed[lane][event] += 1
                        } else {
                            break  // blocked: try the other lanes
                        }
                    } else if case .signal(let event) = operation {
                        signalled[event] += 1
                    }
                    cursor[lane] += 1
                    progressed = true
                }
            }
        }
        let stuck = lanes.indices.filter { cycle[$0] < targetCycles }
        guard let first = stuck.first else { return }
        func describe(_ lane: Int) -> String {
            guard case .waitFor(let event) = lanes[lane][cursor[lane]] else { return "steps.\(laneNames[lane])" }
            return "steps.\(laneNames[lane])[\(cursor[lane])] waiting for '\(events[event])'"
        }
        var message = "the lanes deadlock in cycle \(cycle[first] + 1): this step waits for "
        if case .waitFor(let event) = lanes[first][cursor[first]] { message += "'\(events[event])'" }
        message += ", which is never signalled in time"
        let others = stuck.dropFirst().map(describe)
        if !others.isEmpty { message += " (also stuck: \(others.joined(separator: "; ")))" }
        throw steps.error(steps.path.key(laneNames[first]).index(cursor[first]), .invalidValue, message)
    }
}
