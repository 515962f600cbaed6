// A recipe (`Hardware/recipes/*.toml`) as typed values: variant, tool parameters, process windows and the
// step lanes the controller's recipe executor runs.
//
// Plain values, loaded once and copied; any thread may read them.

/// The lamp variant; its raw value is the TS-200 `variant` register (holding register 0).
public enum Variant: UInt16, Sendable, Equatable, CaseIterable {
    case left = 1
    case right = 2

    /// The word used in recipe files: `LEFT` or `RIGHT`.
    public var name: String {
        switch self {
        case .left: "LEFT"
        case .right: "RIGHT"
        }
    }
}

/// Something an arm's tool does; the raw value is the recipe file's word.
public enum ToolAction: String, Sendable, Equatable, CaseIterable {
    case grip
    case release
    /// Drive a screw to the recipe's `screwTargetTorqueNewtonMeters`.
    case screw
    /// Press to the recipe's `pressTargetForceNewtons`.
    case press
    case dispenseOn = "dispense_on"
    case dispenseOff = "dispense_off"

    /// The RA-610 `tool_command` register value (holding register 2): 1 GRIP … 6 DISPENSE_OFF.
    public var commandRegisterValue: UInt16 {
        switch self {
        case .grip: 1
        case .release: 2
        case .screw: 3
        case .press: 4
        case .dispenseOn: 5
        case .dispenseOff: 6
        }
    }
}

/// Something the TS-200 does; the raw value is the recipe file's word. The executor drives the coil and waits
/// for the action to finish as the TS-200 datasheet describes (clamp state, conveyor coil written back to 0,
/// test count changed).
public enum StationAction: String, Sendable, Equatable, CaseIterable {
    /// Close the fixture clamp (coil 0 = 1), done when `FIXTURE_CLAMPED`.
    case clamp
    /// Open the fixture clamp (coil 0 = 0), done when not `FIXTURE_CLAMPED`.
    case unclamp
    /// Index the infeed (coil 1), done when the station writes it back to 0.
    case infeedAdvance = "infeed_advance"
    /// Index the outfeed (coil 4), done when the station writes it back to 0.
    case outfeedAdvance = "outfeed_advance"
    /// Leak test (coil 2 edge), done when `leak_test_count` changes; result judged against `leak_rate`.
    case leakTest = "leak_test"
    /// Photometric test (coil 3 edge), done when `light_test_count` changes; judged against `luminous_intensity`
    /// and `cutoff_angle`.
    case lightTest = "light_test"
}

/// A synchronisation event between lanes. `index` numbers the recipe's events 0..<events.count (sorted by name),
/// so an executor can keep its counters in a fixed array.
public struct RecipeEvent: Sendable, Equatable, Hashable {
    /// Position in `Recipe.events`.
    public var index: Int
    /// The event's name in the file.
    public var name: String

    /// Creates an event reference.
    public init(index: Int, name: String) {
        self.index = index
        self.name = name
    }
}

/// One step of an arm's lane.
///
/// Event semantics (all lanes): each event is signalled by exactly one step. A lane's n-th `waitFor(E)` (counted
/// over all cycles) passes once E has been signalled at least n times; this lets a lane run ahead into the next
/// lamp without losing or double-counting signals.
public enum ArmStep: Sendable, Equatable {
    /// Move to a teach point (one jerk-limited, time-synchronised move, ending at rest), with every joint's
    /// velocity limit scaled by `speedFraction` (0 < fraction ≤ 1; 1 unless the file says otherwise).
    case move(TeachPoint, speedFraction: Double)
    /// Move through the teach points in order, stopping at each one, velocity limits scaled by `speedFraction`.
    /// The tool state is unchanged throughout, so a glue bead is `tool dispense_on`, `path`, `tool dispense_off`;
    /// its volume (0.20 ml/s while moving) follows from the path's duration, hence the slow `speedFraction`.
    case path([TeachPoint], speedFraction: Double)
    /// Run a tool action at rest; `screw`/`press` take the recipe's tool parameter.
    case tool(ToolAction)
    /// Wait until the event has been signalled once more than this lane has already waited for it.
    case waitFor(RecipeEvent)
    /// Signal the event.
    case signal(RecipeEvent)
    /// Move to `ok` (outfeed) when the lamp's verdict is OK, to `ng` (reject chute) when it is NG.
    case unload(ok: TeachPoint, ng: TeachPoint)
}

/// One step of the station lane.
public enum StationStep: Sendable, Equatable {
    /// Run a station action and wait until it is done.
    case action(StationAction)
    /// As `ArmStep.waitFor`.
    case waitFor(RecipeEvent)
    /// As `ArmStep.signal`.
    case signal(RecipeEvent)
}

/// The ordered steps of one arm for one lamp.
public struct ArmLane: Sendable, Equatable {
    /// The arm's name (an arm of the cell the recipe was loaded for).
    public var armName: String
    /// The steps, in order; the lane starts over for the next lamp after the last.
    public var steps: [ArmStep]

    /// Creates a lane.
    public init(armName: String, steps: [ArmStep]) {
        self.armName = armName
        self.steps = steps
    }
}

/// The recipe's tool parameters, in engineering units, with their RA-610 `tool_param` register values.
public struct ToolParameters: Sendable, Equatable {
    /// Valid `tool_param` for SCREW, in 0.01 N·m (RA-610 datasheet).
    public static let screwTorqueRegisterRange: ClosedRange<UInt16> = 50...500
    /// Valid `tool_param` for PRESS, in N (RA-610 datasheet).
    public static let pressForceRegisterRange: ClosedRange<UInt16> = 50...1500

    /// Screw target torque, N·m (0.50...5.00, a multiple of 0.01).
    public var screwTargetTorqueNewtonMeters: Double
    /// Press target force, N (50...1500, whole newtons).
    public var pressTargetForceNewtons: Double

    /// Creates tool parameters (the loader checks the ranges; this initializer does not).
    public init(screwTargetTorqueNewtonMeters: Double, pressTargetForceNewtons: Double) {
        self.screwTargetTorqueNewtonMeters = screwTargetTorqueNewtonMeters
        self.pressTargetForceNewtons = pressTargetForceNewtons
    }

    /// `tool_param` for SCREW (0.01 N·m units).
    public var screwTorqueRegister: UInt16 {
        UInt16(clamping: Int((screwTargetTorqueNewtonMeters * 100).rounded()))
    }

    /// `tool_param` for PRESS (N).
    public var pressForceRegister: UInt16 {
        UInt16(clamping: Int(pressTargetForceNewtons.rounded()))
    }
}

/// An inclusive acceptance window for one measurement.
public struct ProcessWindow: Sendable, Equatable {
    /// Lowest accepted value, in `unit`.
    public var minimum: Double
    /// Highest accepted value, in `unit`; always greater than `minimum`.
    public var maximum: Double
    /// The unit, as written in the file (`N·m`, `N`, `ml`, `cm³/min`, `cd`, `°`).
    public var unit: String

    /// Creates a window.
    public init(minimum: Double, maximum: Double, unit: String) {
        self.minimum = minimum
        self.maximum = maximum
        self.unit = unit
    }

    /// True when `value` lies in `minimum...maximum`.
    public func contains(_ value: Double) -> Bool { value >= minimum && value <= maximum }
}

/// The process windows a lamp must meet to be OK.
public struct ProcessWindows: Sendable, Equatable {
    /// Achieved screw torque of each screw, N·m (RA-610 `tool_result` × 0.01).
    public var screwTorque: ProcessWindow
    /// Peak press force, N (RA-610 `tool_result`).
    public var pressForce: ProcessWindow
    /// Dispensed glue volume of the bead, ml (RA-610 `tool_result` of DISPENSE_OFF × 0.01).
    public var glueVolume: ProcessWindow
    /// Leak rate, cm³/min (TS-200 `leak_rate` × 0.01).
    public var leakRate: ProcessWindow
    /// Luminous intensity at the test point, cd (TS-200 `luminous_intensity`).
    public var luminousIntensity: ProcessWindow
    /// Cut-off line position, degrees, negative below the horizon (TS-200 `cutoff_angle` × 0.01).
    public var cutoffAngle: ProcessWindow

    /// Creates the windows.
    public init(
        screwTorque: ProcessWindow, pressForce: ProcessWindow, glueVolume: ProcessWindow, leakRate: ProcessWindow,
        luminousIntensity: ProcessWindow, cutoffAngle: ProcessWindow
    ) {
        self.screwTorque = screwTorque
        self.pressForce = pressForce
        self.glueVolume = glueVolume
        self.leakRate = leakRate
        self.luminousIntensity = luminousIntensity
        self.cutoffAngle = cutoffAngle
    }
}

/// How to build one lamp variant on the cell: what each arm and the station do, in which order, and what a
/// good lamp measures.
public struct Recipe: Sendable, Equatable {
    /// Longest accepted ideal cycle time, s (the loader rejects larger values as a unit mistake).
    public static let maximumIdealCycleTimeSeconds = 3600.0

    /// The recipe's id (e.g. `HL-LEFT`), recorded with every lamp.
    public var id: String
    /// The lamp variant (also written to the TS-200 `variant` register).
    public var variant: Variant
    /// The cycle time the cell should reach at full speed, s (OEE performance denominator).
    public var idealCycleTimeSeconds: Double
    /// Screw torque and press force targets.
    public var toolParameters: ToolParameters
    /// One lane per arm of the cell, in the cell's arm order (sorted by name).
    public var armLanes: [ArmLane]
    /// The station lane.
    public var stationSteps: [StationStep]
    /// The events' names; `RecipeEvent.index` indexes this array (sorted by name).
    public var events: [String]
    /// The acceptance windows.
    public var processWindows: ProcessWindows

    /// Creates a recipe (the loader checks it; this initializer does not).
    public init(
        id: String, variant: Variant, idealCycleTimeSeconds: Double, toolParameters: ToolParameters,
        armLanes: [ArmLane], stationSteps: [StationStep], events: [String], processWindows: ProcessWindows
    ) {
        self.id = id
        self.variant = variant
        self.idealCycleTimeSeconds = idealCycleTimeSeconds
        self.toolParameters = toolParameters
        self.armLanes = armLanes
        self.stationSteps = stationSteps
        self.events = events
        self.processWindows = processWindows
    }

    /// The lane of the arm called `armName`, or nil.
    public func lane(forArm armName: String) -> ArmLane? {
        armLanes.first { $0.armName == armName }
    }
}

extension ProcessWindows {
    /// The window of one measurement kind (the four screws share one).
    public func window(of kind: MeasurementKind) -> ProcessWindow {
        switch kind {
        case .screwTorque1, .screwTorque2, .screwTorque3, .screwTorque4: screwTorque
        case .pressForce: pressForce
        case .glueVolume: glueVolume
        case .leakRate: leakRate
        case .luminousIntensity: luminousIntensity
        case .cutoffAngle: cutoffAngle
        }
    }
}
