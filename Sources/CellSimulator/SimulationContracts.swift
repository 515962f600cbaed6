// Types shared by the simulator's device models and the simulated cell's world.

#if canImport(Glibc)
import Glibc
#endif
import SeededRandom

/// A seeded, reproducible random source: the package's one SplitMix64 (`next()`, `nextUnit()`, `split()`) plus
/// `normal()`. Every random choice of the simulator comes from one of these, so a run is reproduced exactly by its
/// seed. Not thread-safe: owned by whoever steps the model.
public typealias SimulationRandom = SplitMix64

extension SplitMix64 {
    /// A standard normal sample (Box–Muller).
    public mutating func normal() -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// RA-610 `tool_command` values (datasheet, holding register 2).
public enum ToolCommand: UInt16, Sendable, CaseIterable {
    case none = 0, grip = 1, release = 2, screw = 3, press = 4, dispenseOn = 5, dispenseOff = 6
}

/// RA-610 `tool_kind` values (datasheet, input register 8).
public enum ToolKind: UInt16, Sendable, CaseIterable {
    case gripper = 1, vacuumScrewdriver = 2, dispenserPress = 3
}

/// How a finished tool request turned out, as the world decides it.
public struct ToolOutcome: Sendable, Equatable {
    /// false: the request ends with tool_state ERROR.
    public var succeeded: Bool
    /// `tool_result` (datasheet units: 0.01 N·m for SCREW, N for PRESS, 0.01 ml for DISPENSE_OFF, 1/0 for GRIP).
    public var result: UInt16
    /// tool_state HOLDING_PART after the request.
    public var holdingPart: Bool

    public init(succeeded: Bool, result: UInt16, holdingPart: Bool) {
        self.succeeded = succeeded
        self.result = result
        self.holdingPart = holdingPart
    }
}

/// The physical cell as an arm's tool sees it: the parts and where they are, and the safety chain.
/// Implemented by the cell world; called by `RA610Model` while the cell is being stepped (one thread at a time).
public protocol ArmToolWorld: AnyObject {
    /// The hardware safety chain (e-stops and guard door in series) is closed.
    var safetyChainClosed: Bool { get }

    /// A tool request of `arm` has run for its duration with the arm at rest at `jointPositionsRadians` (6 values);
    /// the world moves parts accordingly and decides the result. `dispensedMilliliters` is the glue dispensed since
    /// DISPENSE_ON (only meaningful for DISPENSE_OFF). `random` is the arm's own seeded source.
    func toolFinished(
        arm: String, command: ToolCommand, param: UInt16, jointPositionsRadians: [Double],
        dispensedMilliliters: Double, random: inout SimulationRandom
    ) -> ToolOutcome
}
