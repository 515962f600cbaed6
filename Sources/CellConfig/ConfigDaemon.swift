// Loading and validating the daemon's own configuration (`/etc/lampcelld/lampcelld.toml`; format in
// docs/CONFIGURATION.md and the commented default in Systemd/lampcelld.toml).

import CellCore

/// The daemon's configuration: which cell and recipes, where state and sockets live, the control loop's timing.
/// Relative paths are resolved against the directory of the configuration file.
public struct DaemonConfiguration: Sendable, Equatable {
    /// Shortest and longest control period accepted, µs (the RA-610 accepts stream periods of 250..20000 µs).
    public static let periodMicrosecondsRange = 500...20_000
    /// SCHED_FIFO priorities (0: do not ask for real-time scheduling).
    public static let fifoPriorityRange = 0...99
    /// The RA-610's `watchdog_ms` range.
    public static let armWatchdogMillisecondsRange = 20...1000
    /// Connections to the TS-200: its datasheet allows 2 concurrent clients.
    public static let stationConnectionsRange = 1...2
    /// `control.station_connections` when the file does not say.
    public static let defaultStationConnections = 2

    /// The file this configuration was read from.
    public var filePath: String
    /// The cell definition (`Hardware/cell.toml`).
    public var cellPath: String
    /// The recipes the cell can run, one per variant.
    public var recipePaths: [String]
    /// Persistent state: the ledger database and the serial state file.
    public var stateDirectory: String
    /// The ledger database.
    public var ledgerPath: String
    /// The API's Unix socket (status for any local user; commands need root or the command group).
    public var apiSocketPath: String
    /// Group whose members may command the cell through the API.
    public var commandGroup: String
    /// The control period, ns.
    public var periodNanoseconds: UInt64
    /// SCHED_FIFO priority of the control thread, nil for SCHED_OTHER.
    public var fifoPriority: Int32?
    /// mlockall at start.
    public var lockMemory: Bool
    /// The arms' heartbeat timeout (`watchdog_ms`), ms.
    public var armWatchdogMilliseconds: UInt16
    /// Response timeout of one Modbus transaction, ns.
    public var responseTimeoutNanoseconds: UInt64
    /// Connections to the station (1 or 2): with 2, the period's station transactions run side by side, and the
    /// station refuses any other client while the daemon runs.
    public var stationConnections: Int = DaemonConfiguration.defaultStationConnections

    /// Moves the persistent state to `directory`, as if the file's `state_directory` said so (`lampcelld
    /// --state-directory`): a ledger inside the old state directory (the default, or any relative `ledger`) moves
    /// with it; a ledger configured elsewhere stays where it is. Paths are compared in their standard form
    /// (`//`, `.` and `..` resolved, no trailing slash). `directory` must be an absolute path. Thread: any.
    public mutating func moveStateDirectory(to directory: String) {
        precondition(directory.hasPrefix("/"), "moveStateDirectory needs an absolute path, not \(directory)")
        // The standard form of an absolute path: empty and "." components dropped, ".." taking one back.
        func standard(_ path: String) -> String {
            var components: [Substring] = []
            for component in path.split(separator: "/") where component != "." {
                if component == ".." { _ = components.popLast() } else { components.append(component) }
            }
            return "/" + components.joined(separator: "/")
        }
        let old = standard(stateDirectory)
        let new = standard(directory)
        let ledger = standard(ledgerPath)
        let inside = old == "/" ? nil : old + "/"
        if let inside, ledger.hasPrefix(inside) {
            ledgerPath = (new == "/" ? "/" : new + "/") + ledger.dropFirst(inside.count)
        }
        stateDirectory = new
    }

    /// Loads and validates `path`. Any thread (start-up); throws the first problem with file and key.
    public static func load(from path: String) throws(ConfigError) -> DaemonConfiguration {
        let root = try loadConfigTable(path: path)
        try root.rejectUnknownKeys(allowed: [
            "cell", "recipes", "state_directory", "ledger", "api_socket", "command_group", "control",
        ])
        let directory = parentDirectory(of: path)
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : directory + "/" + file }

        let cell = resolve(try root.string("cell"))
        var recipes: [String] = []
        let recipeValues = try root.array("recipes", expected: "an array of recipe file paths")
        for (index, value) in recipeValues.enumerated() {
            recipes.append(resolve(try ConfigTable.string(value, at: root.path.key("recipes").index(index), in: root)))
        }
        guard !recipes.isEmpty else {
            throw root.error(root.path.key("recipes"), .invalidValue, "at least one recipe is needed")
        }
        let stateDirectory = resolve(try root.string("state_directory"))
        let ledger = try root.entries["ledger"] == nil ? "ledger.sqlite" : root.string("ledger")
        let socket = resolve(try root.string("api_socket"))
        let group = try root.entries["command_group"] == nil ? "lampcell" : root.string("command_group")

        let control = try root.table("control")
        try control.rejectUnknownKeys(allowed: [
            "period_microseconds", "fifo_priority", "lock_memory", "arm_watchdog_milliseconds",
            "response_timeout_microseconds", "station_connections",
        ])
        let period = try control.integer("period_microseconds")
        guard periodMicrosecondsRange.contains(period) else {
            throw control.error(
                control.path.key("period_microseconds"), .outOfRange,
                "\(period) µs is outside \(periodMicrosecondsRange.lowerBound)..\(periodMicrosecondsRange.upperBound) µs")
        }
        let priority = try control.integer("fifo_priority")
        guard fifoPriorityRange.contains(priority) else {
            throw control.error(control.path.key("fifo_priority"), .outOfRange, "\(priority) is outside 0..99")
        }
        let lockMemory: Bool
        switch try control.value("lock_memory", expected: "a boolean") {
        case .bool(let value): lockMemory = value
        case let other:
            throw control.error(
                control.path.key("lock_memory"), .wrongType, "expected a boolean, found \(other.typeDescription)")
        }
        let watchdog = try control.integer("arm_watchdog_milliseconds")
        guard armWatchdogMillisecondsRange.contains(watchdog) else {
            throw control.error(
                control.path.key("arm_watchdog_milliseconds"), .outOfRange, "\(watchdog) ms is outside 20..1000 ms")
        }
        let timeout = try control.integer("response_timeout_microseconds")
        guard timeout >= 100, timeout < period else {
            throw control.error(
                control.path.key("response_timeout_microseconds"), .outOfRange,
                "\(timeout) µs must be at least 100 µs and below the period (\(period) µs)")
        }
        let stationConnections =
            try control.entries["station_connections"] == nil
            ? defaultStationConnections : control.integer("station_connections")
        guard stationConnectionsRange.contains(stationConnections) else {
            throw control.error(
                control.path.key("station_connections"), .outOfRange,
                "\(stationConnections) is outside 1..2 (the TS-200 accepts 2 concurrent connections)")
        }
        guard watchdog * 1000 >= 5 * period else {
            throw control.error(
                control.path.key("arm_watchdog_milliseconds"), .outOfRange,
                "\(watchdog) ms is less than 5 control periods (\(period) µs): one late period would trip the arms")
        }
        return DaemonConfiguration(
            filePath: path, cellPath: cell, recipePaths: recipes, stateDirectory: stateDirectory,
            ledgerPath: ledger.hasPrefix("/") ? ledger : stateDirectory + "/" + ledger, apiSocketPath: socket,
            commandGroup: group, periodNanoseconds: UInt64(period) * 1000,
            fifoPriority: priority == 0 ? nil : Int32(priority), lockMemory: lockMemory,
            armWatchdogMilliseconds: UInt16(watchdog), responseTimeoutNanoseconds: UInt64(timeout) * 1000,
            stationConnections: stationConnections)
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}
