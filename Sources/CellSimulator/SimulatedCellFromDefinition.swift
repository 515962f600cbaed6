import CellCore

/// Options of a simulated run that are not in the cell definition.
public struct SimulationOptions: Sendable {
    /// Seed of every random choice (tool durations, measurements, defects, lots).
    public var seed: UInt64 = 1
    /// Share (0…1) of housings with a hidden defect.
    public var defectRate: Double = 0.02

    public init(seed: UInt64 = 1, defectRate: Double = 0.02) {
        self.seed = seed
        self.defectRate = defectRate
    }
}

extension SimulatedCellConfiguration {
    /// The simulated twin of `cell`: one RA-610 model per arm (standing at its `home` teach point, with a made-up
    /// serial number and firmware 2.3), the TS-200, and a world whose locations are the arms' teach points.
    /// Thread: any (start-up).
    public init(cell: CellDefinition, options: SimulationOptions) throws(CellWorldConfigurationError) {
        var specs: [SimulatedArmSpec] = []
        var stations: [ArmStations] = []
        for (index, arm) in cell.arms.enumerated() {
            let home = arm.teachPoint(named: "home")?.jointsRadians ?? Array(repeating: 0, count: 6)
            specs.append(
                SimulatedArmSpec(
                    name: arm.name, toolKind: ToolKind(rawValue: arm.tool.registerValue) ?? .gripper,
                    serialNumber: 610_000_001 + UInt32(index), firmware: 2 << 8 | 3, initialPositionsRadians: home))
            stations.append(
                ArmStations(
                    arm: arm.name,
                    locations: arm.teachPoints.map {
                        TeachLocation(poseRadians: $0.jointsRadians, location: WorldLocation(teachPoint: $0.location))
                    }))
        }
        let world = CellWorldConfiguration(arms: stations, defectRate: options.defectRate)
        try world.validate()
        self.init(arms: specs, stationName: cell.station.name, world: world, seed: options.seed)
    }
}

extension WorldLocation {
    /// The world's name for a teach point's location tag.
    public init(teachPoint location: TeachPointLocation) {
        switch location {
        case .infeed: self = .infeed
        case .fixture: self = .fixture
        case .ledFeeder: self = .ledFeeder
        case .lensFeeder: self = .lensFeeder
        case .outfeed: self = .outfeed
        case .reject: self = .reject
        case .none: self = .none
        }
    }
}
