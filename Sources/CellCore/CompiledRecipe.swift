import Motion

// A recipe compiled for the control thread: names resolved to indices, poses to fixed vectors, so that running it
// needs no strings, no dictionaries and no allocation.

/// One step of a lane, in the form the executor runs.
public enum CompiledStep: Sendable, Equatable {
    /// Move to teach point `point` of the lane's arm at `speed` (fraction of the arm's velocity limits).
    case move(point: Int, speed: Double = 1)
    /// Move through `count` teach points starting at `first` in the lane's `pathPoints`, at `speed`; `planned`
    /// indexes the lane's `plannedPaths` (−1: none, plan online).
    case path(first: Int, count: Int, speed: Double = 1, planned: Int = -1)
    /// Run a tool action; `param` is the RA-610 `tool_param`.
    case tool(ArmToolCommand, param: UInt16)
    /// Run a station action (station lane only).
    case station(StationAction)
    /// Wait for the next signal of event `event`.
    case waitFor(event: Int)
    /// Signal event `event`.
    case signal(event: Int)
    /// Move to `ok` when the lamp is OK, `ng` when it is NG.
    case unload(ok: Int, ng: Int)

    /// True for steps that end a move at a teach point.
    var isMotion: Bool {
        switch self {
        case .move, .path, .unload: true
        default: false
        }
    }
}

/// A teach point as the control thread uses it.
public struct CompiledPoint: Sendable, Equatable {
    public var positionsRadians: JointVector
    public var location: TeachPointLocation
}

/// An arm's part of the cell definition, compiled.
public struct CompiledArm: Sendable {
    public var name: String
    public var points: [CompiledPoint]
    public var pointNames: [String]
    /// Index of `home` in `points`.
    public var homePoint: Int
    /// Index of the reject place (`location == .reject`), if the arm has one (used to purge lamps at Reset).
    public var rejectPoint: Int?
    /// Index of the fixture point (`location == .fixture`), if any.
    public var fixturePoint: Int?
    public var limits: MotionLimits

    /// Index of the teach point called `name`.
    public func pointIndex(_ name: String) -> Int? { pointNames.firstIndex(of: name) }
}

/// One lane of a compiled recipe: an arm's steps or the station's.
public struct CompiledLane: Sendable {
    /// Index of the arm in `CompiledCell.arms`, or nil for the station lane.
    public var arm: Int?
    public var steps: [CompiledStep]
    /// Teach point indices referenced by `.path` steps.
    public var pathPoints: [Int]
    /// True for recipe lanes (they start over for the next lamp); false for one-shot lanes (Reset's purge).
    public var wraps = true
    /// Paths planned at start-up from rest at the teach point the lane's previous move ends at (planning a path
    /// takes milliseconds: too long for a control period). Used when the arm is exactly there at rest.
    public var plannedPaths: [PlannedPath] = []

    /// Thread: any (built at start-up, and by the controller for Reset's one-shot lanes).
    public init(arm: Int?, steps: [CompiledStep], pathPoints: [Int], wraps: Bool = true, plannedPaths: [PlannedPath] = []) {
        self.arm = arm
        self.steps = steps
        self.pathPoints = pathPoints
        self.wraps = wraps
        self.plannedPaths = plannedPaths
    }
}

/// A path trajectory planned ahead, and where it starts.
public struct PlannedPath: Sendable {
    public var start: JointVector
    public var trajectory: Trajectory
}

/// Process windows as two vectors indexed by `MeasurementKind.rawValue`.
public struct CompiledWindows: Sendable, Equatable {
    public var minimum: SIMD16<Double>
    public var maximum: SIMD16<Double>
    /// Bit per measurement kind the recipe requires.
    public var requiredMask: UInt16

    public func contains(_ kind: MeasurementKind, _ value: Double) -> Bool {
        value >= minimum[kind.rawValue] && value <= maximum[kind.rawValue]
    }
}

/// A recipe ready for the control thread.
public struct CompiledRecipe: Sendable {
    public var id: String
    public var variant: Variant
    public var idealCycleTimeSeconds: Double
    public var lanes: [CompiledLane]
    public var eventCount: Int
    public var eventNames: [String]
    public var windows: CompiledWindows
    /// Screws per lamp (number of `screw` tool steps).
    public var screwCount: Int
    /// The recipe as loaded (for the ledger: windows with units, tool parameters).
    public var source: Recipe
}

/// The cell's arms, compiled.
public struct CompiledCell: Sendable {
    public var cellID: String
    public var arms: [CompiledArm]
    /// Index of the arm that loads and unloads lamps (the one with an infeed teach point).
    public var loaderArm: Int

    /// Compiles the arms of `cell`. Thread: start-up.
    public static func compile(_ cell: CellDefinition) throws(ConfigError) -> CompiledCell {
        var arms: [CompiledArm] = []
        var loader: Int?
        for (index, arm) in cell.arms.enumerated() {
            var points: [CompiledPoint] = []
            for point in arm.teachPoints {
                var vector = JointVector()
                for (joint, value) in point.jointsRadians.enumerated() where joint < armJointCount {
                    vector[joint] = value
                }
                points.append(CompiledPoint(positionsRadians: vector, location: point.location))
            }
            let names = arm.teachPoints.map(\.name)
            guard let home = names.firstIndex(of: "home") else {
                throw ConfigError(
                    filePath: "cell definition", fieldPath: "arms.\(arm.name).teach_points.home", kind: .missingField,
                    message: "every arm needs a teach point called home")
            }
            if arm.teachPoints.contains(where: { $0.location == .infeed }) { loader = index }
            var maxV = JointVector(), maxA = JointVector(), maxJ = JointVector()
            for joint in 0..<armJointCount {
                maxV[joint] = arm.motionLimits.maximumVelocityRadiansPerSecond[joint]
                maxA[joint] = arm.motionLimits.maximumAccelerationRadiansPerSecondSquared[joint]
                maxJ[joint] = arm.motionLimits.maximumJerkRadiansPerSecondCubed[joint]
            }
            let limits: MotionLimits
            do {
                limits = try MotionLimits(
                    jointCount: armJointCount, maxVelocitiesRadiansPerSecond: maxV,
                    maxAccelerationsRadiansPerSecondSquared: maxA, maxJerksRadiansPerSecondCubed: maxJ)
            } catch {
                throw ConfigError(
                    filePath: "cell definition", fieldPath: "arms.\(arm.name).motion_limits", kind: .outOfRange,
                    message: "\(error)")
            }
            arms.append(
                CompiledArm(
                    name: arm.name, points: points, pointNames: names, homePoint: home,
                    rejectPoint: arm.teachPoints.firstIndex { $0.location == .reject },
                    fixturePoint: arm.teachPoints.firstIndex { $0.location == .fixture }, limits: limits))
        }
        guard let loaderArm = loader else {
            throw ConfigError(
                filePath: "cell definition", fieldPath: "arms", kind: .missingField,
                message: "no arm has a teach point at the infeed: nobody loads housings")
        }
        return CompiledCell(cellID: cell.cellID, arms: arms, loaderArm: loaderArm)
    }
}

extension CompiledRecipe {
    /// Compiles `recipe` for `cell`. Thread: start-up or a service thread (allocates).
    public static func compile(_ recipe: Recipe, cell: CompiledCell) throws(ConfigError) -> CompiledRecipe {
        var lanes: [CompiledLane] = []
        var screws = 0
        for lane in recipe.armLanes {
            guard let armIndex = cell.arms.firstIndex(where: { $0.name == lane.armName }) else {
                throw ConfigError(
                    filePath: recipe.id, fieldPath: "steps.\(lane.armName)", kind: .unknownReference,
                    message: "the cell has no arm called \(lane.armName)")
            }
            let arm = cell.arms[armIndex]
            func index(_ point: TeachPoint) throws(ConfigError) -> Int {
                guard let found = arm.pointIndex(point.name) else {
                    throw ConfigError(
                        filePath: recipe.id, fieldPath: "steps.\(lane.armName)", kind: .unknownReference,
                        message: "arm \(arm.name) has no teach point \(point.name)")
                }
                return found
            }
            var steps: [CompiledStep] = []
            var pathPoints: [Int] = []
            var plannedPaths: [PlannedPath] = []
            var lastPoint: Int?
            for step in lane.steps {
                switch step {
                case .move(let point, let speed):
                    let target = try index(point)
                    steps.append(.move(point: target, speed: speed))
                    lastPoint = target
                case .path(let points, let speed):
                    let first = pathPoints.count
                    for point in points { pathPoints.append(try index(point)) }
                    var planned = -1
                    if let start = lastPoint {
                        let from = arm.points[start].positionsRadians
                        let waypoints = pathPoints[first...].map { arm.points[$0].positionsRadians }
                        do {
                            let trajectory = try Trajectory.path(
                                from: JointState.atRest(from), through: waypoints,
                                limits: arm.limits.scaled(velocity: speed))
                            planned = plannedPaths.count
                            plannedPaths.append(PlannedPath(start: from, trajectory: trajectory))
                        } catch {
                            throw ConfigError(
                                filePath: recipe.id, fieldPath: "steps.\(lane.armName)", kind: .invalidValue,
                                message: "the path cannot be planned: \(error)")
                        }
                    }
                    steps.append(.path(first: first, count: points.count, speed: speed, planned: planned))
                    lastPoint = pathPoints.last
                case .tool(let action):
                    let command = ArmToolCommand(rawValue: action.commandRegisterValue) ?? .none
                    var param: UInt16 = 0
                    if action == .screw {
                        param = recipe.toolParameters.screwTorqueRegister
                        screws += 1
                    } else if action == .press {
                        param = recipe.toolParameters.pressForceRegister
                    }
                    steps.append(.tool(command, param: param))
                case .waitFor(let event): steps.append(.waitFor(event: event.index))
                case .signal(let event): steps.append(.signal(event: event.index))
                case .unload(let ok, let ng):
                    steps.append(.unload(ok: try index(ok), ng: try index(ng)))
                    lastPoint = nil
                }
            }
            lanes.append(
                CompiledLane(arm: armIndex, steps: steps, pathPoints: pathPoints, plannedPaths: plannedPaths))
        }
        var stationSteps: [CompiledStep] = []
        for step in recipe.stationSteps {
            switch step {
            case .action(let action): stationSteps.append(.station(action))
            case .waitFor(let event): stationSteps.append(.waitFor(event: event.index))
            case .signal(let event): stationSteps.append(.signal(event: event.index))
            }
        }
        lanes.append(CompiledLane(arm: nil, steps: stationSteps, pathPoints: []))
        guard screws <= MeasurementKind.maximumScrews else {
            throw ConfigError(
                filePath: recipe.id, fieldPath: "steps", kind: .outOfRange,
                message: "\(screws) screw steps; a lamp record holds at most \(MeasurementKind.maximumScrews)")
        }

        var minimum = SIMD16<Double>(repeating: -.infinity)
        var maximum = SIMD16<Double>(repeating: .infinity)
        var required: UInt16 = 0
        func set(_ kind: MeasurementKind, _ window: ProcessWindow) {
            minimum[kind.rawValue] = window.minimum
            maximum[kind.rawValue] = window.maximum
            required |= 1 << kind.rawValue
        }
        let w = recipe.processWindows
        for screw in 0..<screws { set(.screwTorque(screw), w.screwTorque) }
        let hasTool: (ArmToolCommand) -> Bool = { command in
            lanes.contains { $0.steps.contains { if case .tool(command, _) = $0 { true } else { false } } }
        }
        let hasStation: (StationAction) -> Bool = { action in
            lanes.contains { $0.steps.contains { $0 == .station(action) } }
        }
        if hasTool(.press) { set(.pressForce, w.pressForce) }
        if hasTool(.dispenseOff) { set(.glueVolume, w.glueVolume) }
        if hasStation(.leakTest) { set(.leakRate, w.leakRate) }
        if hasStation(.lightTest) {
            set(.luminousIntensity, w.luminousIntensity)
            set(.cutoffAngle, w.cutoffAngle)
        }
        return CompiledRecipe(
            id: recipe.id, variant: recipe.variant, idealCycleTimeSeconds: recipe.idealCycleTimeSeconds,
            lanes: lanes, eventCount: recipe.events.count, eventNames: recipe.events,
            windows: CompiledWindows(minimum: minimum, maximum: maximum, requiredMask: required),
            screwCount: screws, source: recipe)
    }
}
