import CellControl
import CellCore
import PackML

/// Largest number of arms a cell may have (fixed storage in snapshots).
public let maximumArmCount = 4

/// A copy of the cell's state, published by the control thread every period for everyone else (status API,
/// systemd STATUS=, the daemon's logs). Fixed size: publishing it does not allocate.
public struct CellSnapshot: Sendable {
    public var periodIndex: UInt64 = 0
    public var monotonicNanoseconds: UInt64 = 0
    public var wallNanoseconds: UInt64 = 0
    public var unit: PackMLUnit
    public var orderSequence: UInt32 = 0
    public var activeRecipe: Int = 0
    public var lampInCell: LampRecord?
    public var lastLamp: LampRecord?
    public var lampsFinished: UInt64 = 0
    public var lampsNotQueued: UInt64 = 0
    public var cycleTimeLastSeconds: Double = 0
    public var lastFault: StopCause?
    public var materialWait = MaterialWait.none
    public var armCount = 0
    public var armInputs = InlineArray<4, ArmInputs>(repeating: ArmInputs())
    public var armTargetsRadians = InlineArray<4, JointVector>(repeating: JointVector())
    public var armStreaming = InlineArray<4, Bool>(repeating: false)
    /// The command word written to each arm this period (ENABLE, RESET, STOP, STREAM).
    public var armCommands = InlineArray<4, ArmCommand>(repeating: ArmCommand())
    public var stationInputs = StationInputs()
    public var stationOutputs = StationOutputs()

    public init(unit: PackMLUnit) { self.unit = unit }

    /// Copies the controller's state. Thread: the control thread (no allocation).
    mutating func capture(_ controller: CellController, image: ProcessImage, periodIndex: UInt64, now: UInt64, wall: UInt64) {
        self.periodIndex = periodIndex
        monotonicNanoseconds = now
        wallNanoseconds = wall
        unit = controller.unit
        orderSequence = controller.orderSequence
        activeRecipe = controller.activeRecipe
        lampInCell = controller.lamp
        lastLamp = controller.lastLamp
        lampsFinished = controller.lampsFinished
        lampsNotQueued = controller.lampsNotQueued
        cycleTimeLastSeconds = controller.cycleTimeLastSeconds
        lastFault = controller.lastFault
        materialWait = controller.materialWaitShown
        armCount = min(maximumArmCount, controller.arms.count)
        for index in 0..<armCount {
            armInputs[index] = image.armInputs[index]
            armTargetsRadians[index] = image.armOutputs[index].targetsRadians
            armStreaming[index] = controller.arms[index].isStreaming
            armCommands[index] = image.armOutputs[index].command
        }
        stationInputs = image.stationInputs
        stationOutputs = image.stationOutputs
    }
}
