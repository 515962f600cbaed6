// Wire types of the operator panel's endpoints (docs/API.md): the cell's description, the alarm history, the
// cycle-time trend and the login session.

/// `GET /v1/cell`: what does not change while the daemon runs: the arms' joint limits and the recipes' process
/// windows (the panel draws positions and measurements against them).
public struct CellDescription: Codable, Sendable, Equatable {
    public struct Arm: Codable, Sendable, Equatable {
        public var name: String
        /// Each joint's [lowest, highest] position, rad.
        public var jointLimitsRadians: [[Double]]

        public init(name: String, jointLimitsRadians: [[Double]]) {
            self.name = name
            self.jointLimitsRadians = jointLimitsRadians
        }
    }

    /// One measurement's acceptance window.
    public struct Window: Codable, Sendable, Equatable {
        /// The measurement's name in lamp records (`press_force`).
        public var name: String
        public var minimum: Double
        public var maximum: Double
        public var unit: String

        public init(name: String, minimum: Double, maximum: Double, unit: String) {
            self.name = name
            self.minimum = minimum
            self.maximum = maximum
            self.unit = unit
        }
    }

    public struct Recipe: Codable, Sendable, Equatable {
        public var id: String
        public var variant: String
        public var idealCycleSeconds: Double
        public var windows: [Window]

        public init(id: String, variant: String, idealCycleSeconds: Double, windows: [Window]) {
            self.id = id
            self.variant = variant
            self.idealCycleSeconds = idealCycleSeconds
            self.windows = windows
        }
    }

    public var cellID: String
    public var arms: [Arm]
    public var station: String
    public var recipes: [Recipe]

    public init(cellID: String, arms: [Arm], station: String, recipes: [Recipe]) {
        self.cellID = cellID
        self.arms = arms
        self.station = station
        self.recipes = recipes
    }
}

/// One entry of the alarm and event history as the API shows it.
public struct HistoryEntry: Codable, Sendable, Equatable {
    /// `alarm`, `stop`, `state`, `command` or `login`.
    public var kind: String
    public var code: String
    public var source: String
    public var message: String
    /// What to do (alarms, stops), or the outcome (commands, logins).
    public var detail: String
    /// Who gave the command or logged in.
    public var actor: String
    /// RFC 3339 with milliseconds.
    public var startedAt: String
    /// Absent while active.
    public var endedAt: String?
    /// To the end, or to now while active.
    public var durationSeconds: Double

    public init(
        kind: String, code: String, source: String, message: String, detail: String, actor: String, startedAt: String,
        endedAt: String?, durationSeconds: Double
    ) {
        self.kind = kind
        self.code = code
        self.source = source
        self.message = message
        self.detail = detail
        self.actor = actor
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.durationSeconds = durationSeconds
    }
}

/// `GET /v1/alarms`: the alarms and stops active now, the history of a window, and the stop reasons' Pareto.
public struct AlarmsDocument: Codable, Sendable, Equatable {
    public struct ParetoRow: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public var stops: Int
        public var downtimeSeconds: Double
        /// Share of the window's downtime up to and including this row, 0…1.
        public var cumulativeShare: Double

        public init(code: String, message: String, stops: Int, downtimeSeconds: Double, cumulativeShare: Double) {
            self.code = code
            self.message = message
            self.stops = stops
            self.downtimeSeconds = downtimeSeconds
            self.cumulativeShare = cumulativeShare
        }
    }

    public var from: String
    public var to: String
    public var active: [HistoryEntry]
    /// Newest first.
    public var history: [HistoryEntry]
    public var pareto: [ParetoRow]

    public init(from: String, to: String, active: [HistoryEntry], history: [HistoryEntry], pareto: [ParetoRow]) {
        self.from = from
        self.to = to
        self.active = active
        self.history = history
        self.pareto = pareto
    }
}

/// One lamp of the cycle-time trend (`GET /v1/cycletimes`: the last lamps that left the cell, oldest first).
public struct CycleTimeSample: Codable, Sendable, Equatable {
    public var serial: String
    public var seconds: Double
    /// `OK`, `NG` or `SCRAPPED`.
    public var verdict: String

    public init(serial: String, seconds: Double, verdict: String) {
        self.serial = serial
        self.seconds = seconds
        self.verdict = verdict
    }
}

/// `POST /v1/session` body: an operator's login on the panel.
public struct LoginRequestBody: Codable, Sendable {
    public var `operator`: String
    public var password: String

    public init(operator: String, password: String) {
        self.operator = `operator`
        self.password = password
    }
}

/// `GET`/`POST /v1/session` answer: who is logged in, and the token commands must carry in `X-CSRF-Token`.
public struct SessionBody: Codable, Sendable, Equatable {
    public var `operator`: String
    public var csrfToken: String
    /// The session ends after this long without a request.
    public var idleTimeoutSeconds: Int

    public init(operator: String, csrfToken: String, idleTimeoutSeconds: Int) {
        self.operator = `operator`
        self.csrfToken = csrfToken
        self.idleTimeoutSeconds = idleTimeoutSeconds
    }
}
