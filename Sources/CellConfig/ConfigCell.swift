// Loading and validating `Hardware/cell.toml` (format: Hardware/README.md).

import CellCore

/// Validation limits of the cell definition.
enum CellConfigLimits {
    /// Two teach points of one arm must differ by at least this much in some joint, rad (otherwise one of them is
    /// almost certainly a copy-and-paste mistake).
    static let minimumTeachPointSeparationRadians = 0.05
    /// Every arm must have a teach point of this name (where it starts and parks).
    static let homePointName = "home"
    /// Valid TCP ports.
    static let portRange = 1...65535
    /// Valid Modbus unit ids.
    static let unitIDRange = 0...255
}

extension CellDefinition {
    /// Loads and validates the cell definition at `path` (normally `Hardware/cell.toml`).
    ///
    /// Checks every field's presence, type and range, rejects unknown keys, requires exactly one TS-200 and one
    /// `arms` entry per RA-610 device, every teach point inside `JointLimits.ra610`, motion limits within the
    /// datasheet's, and teach points of one arm at least 0.05 rad apart in some joint; then compiles the cell
    /// (`CompiledCell.compile`: one arm must reach the infeed, …) so that what loads also runs. Throws the first
    /// problem found, naming this file. Any thread; reads the file synchronously (call it at start-up, not on the
    /// control thread).
    public static func load(from path: String) throws(ConfigError) -> CellDefinition {
        let root = try loadConfigTable(path: path)
        let definition = try parse(root)
        // What the controller compiles must compile: its checks (an arm at the infeed, …) then name this file.
        // (Found by the configuration fuzzer: a cell whose infeed point was moved elsewhere loaded, and the daemon
        // later failed with "cell definition: arms: no arm has a teach point at the infeed".)
        do throws(ConfigError) {
            _ = try CompiledCell.compile(definition)
        } catch {
            throw ConfigError(
                filePath: path, fieldPath: error.fieldPath, kind: error.kind, message: error.message)
        }
        return definition
    }

    static func parse(_ root: ConfigTable) throws(ConfigError) -> CellDefinition {
        try root.rejectUnknownKeys(allowed: ["cell_id", "devices", "arms"])
        let cellID = try ConfigName.check(
            root.string("cell_id"), what: "cell id", at: root.path.key("cell_id"), in: root)

        // Devices.
        let devicesTable = try root.table("devices")
        var endpoints: [DeviceEndpoint] = []
        for name in devicesTable.sortedKeys {
            let field = devicesTable.path.key(name)
            _ = try ConfigName.check(name, what: "device name", at: field, in: devicesTable)
            let device = try ConfigTable.table(devicesTable.entries[name] ?? .table([:]), at: field, in: devicesTable)
            let endpoint = try parseDevice(device, name: name)
            if let other = endpoints.first(where: {
                $0.host == endpoint.host && $0.port == endpoint.port && $0.unitID == endpoint.unitID
            }) {
                throw device.error(
                    field, .duplicateName,
                    "same address as devices.\(other.name) (\(endpoint.host):\(endpoint.port), unit \(endpoint.unitID))")
            }
            endpoints.append(endpoint)
        }
        let stations = endpoints.filter { $0.kind == .ts200 }
        guard let station = stations.first else {
            throw devicesTable.error(
                devicesTable.path, .missingField, "no device of kind \"TS-200\" (the cell needs its station)")
        }
        if stations.count > 1 {
            throw devicesTable.error(
                devicesTable.path.key(stations[1].name), .duplicateName,
                "a second TS-200 station (devices.\(stations[0].name) is one already; the cell has exactly one)")
        }
        let armEndpoints = endpoints.filter { $0.kind == .ra610 }
        if armEndpoints.isEmpty {
            throw devicesTable.error(devicesTable.path, .missingField, "no device of kind \"RA-610\" (no arms)")
        }

        // Arms: one per RA-610 device.
        let armsTable = try root.table("arms")
        for name in armsTable.sortedKeys where !armEndpoints.contains(where: { $0.name == name }) {
            let kindNote = endpoints.contains(where: { $0.name == name }) ? "devices.\(name) is not an RA-610" :
                "there is no devices.\(name)"
            throw armsTable.error(
                armsTable.path.key(name), .unknownReference, "arm '\(name)' has no RA-610 device (\(kindNote))")
        }
        var arms: [ArmDefinition] = []
        for endpoint in armEndpoints {
            let arm = try armsTable.table(endpoint.name)
            arms.append(try parseArm(arm, endpoint: endpoint))
        }
        return CellDefinition(cellID: cellID, arms: arms, station: station)
    }

    private static func parseDevice(_ device: ConfigTable, name: String) throws(ConfigError) -> DeviceEndpoint {
        try device.rejectUnknownKeys(allowed: ["kind", "host", "port", "unit_id"])
        let kind = try device.word("kind", as: DeviceKind.self, what: "device kind")
        let host = try device.string("host")
        if host.isEmpty || host.contains(where: { $0.isWhitespace }) {
            throw device.error(device.path.key("host"), .invalidValue, "\"\(configExcerpt(host))\" is not a host name or address")
        }
        let port = try device.integer("port")
        guard CellConfigLimits.portRange.contains(port) else {
            throw device.error(device.path.key("port"), .outOfRange, "port \(port) is outside 1..65535")
        }
        let unitID = try device.integer("unit_id")
        guard CellConfigLimits.unitIDRange.contains(unitID) else {
            throw device.error(device.path.key("unit_id"), .outOfRange, "unit id \(unitID) is outside 0..255")
        }
        return DeviceEndpoint(name: name, kind: kind, host: host, port: port, unitID: UInt8(unitID))
    }

    private static func parseArm(_ arm: ConfigTable, endpoint: DeviceEndpoint) throws(ConfigError) -> ArmDefinition {
        try arm.rejectUnknownKeys(allowed: ["tool", "max_velocity", "max_acceleration", "max_jerk", "teach_points"])
        let limits = JointLimits.ra610
        let tool = try arm.word("tool", as: ArmToolKind.self, what: "tool kind")
        let count = JointLimits.jointCount

        let velocity = try arm.numbers("max_velocity", count: count)
        try checkPositive(
            velocity, ceilings: limits.maximumVelocityRadiansPerSecond, unit: "rad/s", what: "datasheet maximum",
            field: arm.path.key("max_velocity"), in: arm)
        let acceleration = try arm.numbers("max_acceleration", count: count)
        try checkPositive(
            acceleration, ceilings: limits.maximumAccelerationRadiansPerSecondSquared, unit: "rad/s²",
            what: "datasheet maximum", field: arm.path.key("max_acceleration"), in: arm)
        let jerk = try arm.numbers("max_jerk", count: count)
        try checkPositive(
            jerk, ceilings: Array(repeating: ArmMotionLimits.jerkCeilingRadiansPerSecondCubed, count: count),
            unit: "rad/s³", what: "ceiling", field: arm.path.key("max_jerk"), in: arm)

        let pointsTable = try arm.table("teach_points")
        var points: [TeachPoint] = []
        for name in pointsTable.sortedKeys {
            let field = pointsTable.path.key(name)
            _ = try ConfigName.check(name, what: "teach point name", at: field, in: pointsTable)
            let pointTable = try ConfigTable.table(pointsTable.entries[name] ?? .table([:]), at: field, in: pointsTable)
            try pointTable.rejectUnknownKeys(allowed: ["joints", "location"])
            let joints = try pointTable.numbers("joints", count: count)
            for joint in 0..<count
            where !(joints[joint] >= limits.positionMinimumRadians[joint]
                && joints[joint] <= limits.positionMaximumRadians[joint])
            {
                throw pointTable.error(
                    field.key("joints").index(joint), .outOfRange,
                    "\(formatNumber(joints[joint])) rad is outside J\(joint + 1)'s limits "
                        + "\(formatNumber(limits.positionMinimumRadians[joint]))..\(formatNumber(limits.positionMaximumRadians[joint])) rad")
            }
            let location = try pointTable.word("location", as: TeachPointLocation.self, what: "location")
            let point = TeachPoint(name: name, jointsRadians: joints, location: location)
            for other in points {
                var largestDifference = 0.0
                for joint in 0..<count {
                    largestDifference = max(largestDifference, abs(other.jointsRadians[joint] - joints[joint]))
                }
                if largestDifference < CellConfigLimits.minimumTeachPointSeparationRadians {
                    throw pointTable.error(
                        field.key("joints"), .duplicateName,
                        "the same pose as teach point '\(other.name)' (no joint differs by "
                            + "\(formatNumber(CellConfigLimits.minimumTeachPointSeparationRadians)) rad or more)")
                }
            }
            points.append(point)
        }
        if !points.contains(where: { $0.name == CellConfigLimits.homePointName }) {
            throw pointsTable.error(
                pointsTable.path.key(CellConfigLimits.homePointName), .missingField,
                "missing required teach point (every arm needs '\(CellConfigLimits.homePointName)')")
        }
        return ArmDefinition(
            endpoint: endpoint, tool: tool,
            motionLimits: ArmMotionLimits(
                maximumVelocityRadiansPerSecond: velocity, maximumAccelerationRadiansPerSecondSquared: acceleration,
                maximumJerkRadiansPerSecondCubed: jerk),
            jointLimits: limits, teachPoints: points)
    }

    /// Every value must satisfy 0 < value ≤ its joint's ceiling.
    private static func checkPositive(
        _ values: [Double], ceilings: [Double], unit: String, what: String, field: FieldPath, in table: ConfigTable
    ) throws(ConfigError) {
        for (joint, value) in values.enumerated() where !(value > 0 && value <= ceilings[joint]) {
            throw table.error(
                field.index(joint), .outOfRange,
                "\(formatNumber(value)) \(unit) is outside J\(joint + 1)'s range: above 0, at most "
                    + "\(formatNumber(ceilings[joint])) \(unit) (\(what))")
        }
    }
}
