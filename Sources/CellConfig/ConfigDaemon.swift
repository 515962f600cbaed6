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
    /// Replication of the ledger to the plant database (`[plant]`); nil when the file has no such section (off).
    public var plant: PlantConfiguration?
    /// The operator's web panel (`[panel]`, docs/HMI.md); nil when the file has no such section (off).
    public var panel: PanelConfiguration?

    /// The alarm and event history (SQLite, beside the ledger): alarms, stops, state changes, commands and logins.
    public var eventsPath: String { stateDirectory + "/events.sqlite" }

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
            "cell", "recipes", "state_directory", "ledger", "api_socket", "command_group", "control", "plant",
            "panel",
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
        let plant = try root.entries["plant"] == nil ? nil : PlantConfiguration.load(root.table("plant"), resolve: resolve)
        let panel = try root.entries["panel"] == nil ? nil : PanelConfiguration.load(root.table("panel"), resolve: resolve)
        return DaemonConfiguration(
            filePath: path, cellPath: cell, recipePaths: recipes, stateDirectory: stateDirectory,
            ledgerPath: ledger.hasPrefix("/") ? ledger : stateDirectory + "/" + ledger, apiSocketPath: socket,
            commandGroup: group, periodNanoseconds: UInt64(period) * 1000,
            fifoPriority: priority == 0 ? nil : Int32(priority), lockMemory: lockMemory,
            armWatchdogMilliseconds: UInt16(watchdog), responseTimeoutNanoseconds: UInt64(timeout) * 1000,
            stationConnections: stationConnections, plant: plant, panel: panel)
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }
}

/// `[plant]`: where the cell replicates its ledger (PostgreSQL, docs/PLANT.md). Off when the section is absent.
public struct PlantConfiguration: Sendable, Equatable {
    /// Accepted `port` values.
    public static let portRange = 1...65_535
    /// Accepted `batch_entries` values: entries per transaction.
    public static let batchEntriesRange = 1...50_000
    /// `port` when the file does not say: PostgreSQL's.
    public static let defaultPort = 5432
    /// `batch_entries`, `lag_warning_seconds`, `lag_warning_entries` when the file does not say.
    public static let defaultBatchEntries = 2_000
    public static let defaultLagWarningSeconds = 300.0
    public static let defaultLagWarningEntries = 1_000

    /// Host name, address, or the directory of the server's Unix socket (an absolute path); several,
    /// comma-separated (`"db1,db2"`), for a primary and its standby: the cell writes to whichever takes writes.
    public var server: String
    public var port: Int
    public var database: String
    /// The cell's login role on the server (`lampctl plant add-cell` registers it).
    public var role: String
    /// A file holding the role's password (first line), readable by the daemon only; nil: no password (peer or
    /// certificate authentication, or `~/.pgpass`).
    public var passwordFile: String?
    /// TLS to the server: true requires it (`sslmode=require`); false sends in clear (a Unix socket, or a trusted
    /// cell network).
    public var tls: Bool
    /// With `tls`: the CA certificate(s) the server's certificate must chain to, its host name checked too
    /// (`sslmode=verify-full`). Without it the link is encrypted but the server is not authenticated.
    public var caFile: String?
    public var batchEntries: Int
    /// The status warns once the replication lags more than this.
    public var lagWarningSeconds: Double
    public var lagWarningEntries: Int

    public init(
        server: String, port: Int = defaultPort, database: String, role: String, passwordFile: String? = nil,
        tls: Bool, caFile: String? = nil, batchEntries: Int = defaultBatchEntries, lagWarningSeconds: Double = defaultLagWarningSeconds,
        lagWarningEntries: Int = defaultLagWarningEntries
    ) {
        self.server = server
        self.port = port
        self.database = database
        self.role = role
        self.passwordFile = passwordFile
        self.tls = tls
        self.caFile = caFile
        self.batchEntries = batchEntries
        self.lagWarningSeconds = lagWarningSeconds
        self.lagWarningEntries = lagWarningEntries
    }

    static func load(_ table: ConfigTable, resolve: (String) -> String) throws(ConfigError) -> PlantConfiguration {
        try table.rejectUnknownKeys(allowed: [
            "server", "port", "database", "role", "password_file", "tls", "ca_file", "batch_entries", "lag_warning_seconds",
            "lag_warning_entries",
        ])
        func nonEmpty(_ key: String) throws(ConfigError) -> String {
            let value = try table.string(key)
            guard !value.isEmpty else { throw table.error(table.path.key(key), .invalidValue, "must not be empty") }
            return value
        }
        let server = try nonEmpty("server")
        let database = try nonEmpty("database")
        let role = try nonEmpty("role")
        let port = try table.entries["port"] == nil ? defaultPort : table.integer("port")
        guard portRange.contains(port) else {
            throw table.error(table.path.key("port"), .outOfRange, "\(port) is outside 1..65535")
        }
        let tls: Bool
        switch try table.value("tls", expected: "a boolean") {
        case .bool(let value): tls = value
        case let other:
            throw table.error(table.path.key("tls"), .wrongType, "expected a boolean, found \(other.typeDescription)")
        }
        let batch = try table.entries["batch_entries"] == nil ? defaultBatchEntries : table.integer("batch_entries")
        guard batchEntriesRange.contains(batch) else {
            throw table.error(table.path.key("batch_entries"), .outOfRange, "\(batch) is outside 1..50000")
        }
        let lagSeconds =
            try table.entries["lag_warning_seconds"] == nil ? defaultLagWarningSeconds : table.number("lag_warning_seconds")
        guard lagSeconds > 0 else {
            throw table.error(table.path.key("lag_warning_seconds"), .outOfRange, "\(lagSeconds) must be above 0")
        }
        let lagEntries =
            try table.entries["lag_warning_entries"] == nil ? defaultLagWarningEntries : table.integer("lag_warning_entries")
        guard lagEntries > 0 else {
            throw table.error(table.path.key("lag_warning_entries"), .outOfRange, "\(lagEntries) must be above 0")
        }
        let passwordFile = try table.entries["password_file"] == nil ? nil : resolve(nonEmpty("password_file"))
        let caFile = try table.entries["ca_file"] == nil ? nil : resolve(nonEmpty("ca_file"))
        guard caFile == nil || tls else {
            throw table.error(table.path.key("ca_file"), .invalidValue, "needs tls = true")
        }
        return PlantConfiguration(
            server: server, port: port, database: database, role: role, passwordFile: passwordFile, tls: tls,
            caFile: caFile, batchEntries: batch, lagWarningSeconds: lagSeconds, lagWarningEntries: lagEntries)
    }
}

/// `[panel]`: the operator's web panel served by the daemon over TCP (docs/HMI.md). Off when the section is absent.
public struct PanelConfiguration: Sendable, Equatable {
    /// `address` when the file does not say: this machine only. A panel PC on the cell network is a deliberate
    /// choice (`address = "0.0.0.0"` or the cell network's interface address).
    public static let defaultAddress = "127.0.0.1"
    /// `port` when the file does not say.
    public static let defaultPort = 8610
    public static let portRange = 1...65_535
    /// `session_idle_minutes` when the file does not say, and its accepted range.
    public static let defaultSessionIdleMinutes = 15
    public static let sessionIdleMinutesRange = 1...720

    /// The IPv4 or IPv6 address the panel listens on.
    public var address: String
    public var port: Int
    /// The operators' logins: one `name:hash` line each, the hash from crypt(3) (`lampctl operator add`). nil: the
    /// panel only shows the cell; no command is accepted over TCP.
    public var operatorsFile: String?
    /// A login session ends after this long without a request from it.
    public var sessionIdleMinutes: Int

    public init(
        address: String = defaultAddress, port: Int = defaultPort, operatorsFile: String? = nil,
        sessionIdleMinutes: Int = defaultSessionIdleMinutes
    ) {
        self.address = address
        self.port = port
        self.operatorsFile = operatorsFile
        self.sessionIdleMinutes = sessionIdleMinutes
    }

    static func load(_ table: ConfigTable, resolve: (String) -> String) throws(ConfigError) -> PanelConfiguration {
        try table.rejectUnknownKeys(allowed: ["address", "port", "operators_file", "session_idle_minutes"])
        let address = try table.entries["address"] == nil ? defaultAddress : table.string("address")
        guard NumericAddress.isValid(address) else {
            throw table.error(
                table.path.key("address"), .invalidValue,
                "\"\(configExcerpt(address))\" is not an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::1)")
        }
        let port = try table.entries["port"] == nil ? defaultPort : table.integer("port")
        guard portRange.contains(port) else {
            throw table.error(table.path.key("port"), .outOfRange, "\(port) is outside 1..65535")
        }
        let idle =
            try table.entries["session_idle_minutes"] == nil
            ? defaultSessionIdleMinutes : table.integer("session_idle_minutes")
        guard sessionIdleMinutesRange.contains(idle) else {
            throw table.error(table.path.key("session_idle_minutes"), .outOfRange, "\(idle) is outside 1..720 minutes")
        }
        var operators: String?
        if table.entries["operators_file"] != nil {
            let file = try table.string("operators_file")
            guard !file.isEmpty else {
                throw table.error(table.path.key("operators_file"), .invalidValue, "must not be empty")
            }
            operators = resolve(file)
        }
        return PanelConfiguration(address: address, port: port, operatorsFile: operators, sessionIdleMinutes: idle)
    }
}
