import CellCore
import ControlAPIClient
import Foundation

/// What `GET /v1/lamps…` asks of the lamp ledger. The ledger (module `Ledger`, SQLite) implements it; the API only
/// reads through it. Calls are blocking (disk): the server makes them on its blocking-work threads, never on an
/// event loop or the control thread. Implementations must be safe to call from several threads at once.
public protocol LampQuerying: Sendable {
    /// The lamp with this serial text (`HL-CELL-01-20261128-00000042`), or nil when the ledger has none.
    func lamp(serial: String) throws -> LampRow?
    /// Lamps matching every given filter, ordered by start time (oldest first), at most `query.limit`.
    func lamps(matching query: LampQuery) throws -> [LampRow]
    /// The ledger's head (count, last hash, last serial), or nil when it is empty.
    func head() throws -> LedgerHead?
}

/// Filters of `GET /v1/lamps?lot=&from=&to=&verdict=&limit=`. Any thread.
public struct LampQuery: Sendable, Equatable {
    /// Largest `limit` a client may ask for.
    public static let maximumLimit = 1000
    /// `limit` when the client gives none.
    public static let defaultLimit = 100

    /// Matches a lamp when its housing, LED module or lens lot equals this number.
    public var lot: UInt32?
    /// Lamps started at or after this wall time, ns since the Unix epoch.
    public var fromWallNanoseconds: UInt64?
    /// Lamps started before this wall time, ns since the Unix epoch.
    public var toWallNanoseconds: UInt64?
    /// Only lamps with this verdict.
    public var verdict: LampVerdict?
    /// At most this many rows (1…`maximumLimit`).
    public var limit: Int

    public init(
        lot: UInt32? = nil, fromWallNanoseconds: UInt64? = nil, toWallNanoseconds: UInt64? = nil,
        verdict: LampVerdict? = nil, limit: Int = LampQuery.defaultLimit
    ) {
        self.lot = lot
        self.fromWallNanoseconds = fromWallNanoseconds
        self.toWallNanoseconds = toWallNanoseconds
        self.verdict = verdict
        self.limit = limit
    }

    /// True when `row` passes every filter (for in-memory implementations). Pure.
    public func matches(_ row: LampRow) -> Bool {
        if let lot, row.lots.housing != lot, row.lots.ledModule != lot, row.lots.lens != lot { return false }
        if let fromWallNanoseconds, row.startWallNanoseconds < fromWallNanoseconds { return false }
        if let toWallNanoseconds, row.startWallNanoseconds >= toWallNanoseconds { return false }
        if let verdict, row.verdict != verdict.name { return false }
        return true
    }
}


/// One lamp as the API shows it (JSON). Any thread.
public struct LampRow: Codable, Sendable, Equatable {
    /// One measurement with its unit and whether it was inside its window.
    public struct Measurement: Codable, Sendable, Equatable {
        public var name: String
        public var value: Double
        public var unit: String
        public var inWindow: Bool
        /// The recipe's window the lamp was judged against, as the ledger recorded it (absent: no bound).
        public var minimum: Double?
        public var maximum: Double?

        public init(name: String, value: Double, unit: String, inWindow: Bool, minimum: Double? = nil, maximum: Double? = nil) {
            self.name = name
            self.value = value
            self.unit = unit
            self.inWindow = inWindow
            self.minimum = minimum
            self.maximum = maximum
        }
    }

    /// Material lots of the lamp's parts.
    public struct Lots: Codable, Sendable, Equatable {
        public var housing: UInt32
        public var ledModule: UInt32
        public var lens: UInt32

        public init(housing: UInt32, ledModule: UInt32, lens: UInt32) {
            self.housing = housing
            self.ledModule = ledModule
            self.lens = lens
        }
    }

    public var serial: String
    /// `LEFT` or `RIGHT`.
    public var variant: String
    /// The production order's id, when known.
    public var orderID: String?
    /// The recipe's id, when known.
    public var recipe: String?
    /// `OK`, `NG` or `SCRAPPED`.
    public var verdict: String
    /// Names of the measurements outside their window (or missing) for an NG lamp.
    public var reasons: [String]
    /// Why a scrapped lamp was scrapped (empty otherwise).
    public var scrapReason: String
    /// RFC 3339 UTC start and end of the lamp's cycle.
    public var startedAt: String
    public var endedAt: String
    public var startWallNanoseconds: UInt64
    public var cycleTimeSeconds: Double
    public var measurements: [Measurement]
    public var lots: Lots

    public init(
        serial: String, variant: String, orderID: String?, recipe: String?, verdict: String, reasons: [String],
        scrapReason: String, startedAt: String, endedAt: String, startWallNanoseconds: UInt64,
        cycleTimeSeconds: Double, measurements: [Measurement], lots: Lots
    ) {
        self.serial = serial
        self.variant = variant
        self.orderID = orderID
        self.recipe = recipe
        self.verdict = verdict
        self.reasons = reasons
        self.scrapReason = scrapReason
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.startWallNanoseconds = startWallNanoseconds
        self.cycleTimeSeconds = cycleTimeSeconds
        self.measurements = measurements
        self.lots = lots
    }

    /// The row of a lamp record as the controller produced it. Not for the control thread (allocates).
    public init(record: LampRecord, cellID: String, orderID: String? = nil, recipe: String? = nil) {
        var measurements: [Measurement] = []
        var reasons: [String] = []
        for kind in MeasurementKind.allCases {
            let outside = record.outOfWindowMask & (1 << kind.rawValue) != 0
            if outside { reasons.append(kind.name) }
            if let value = record.measurements[kind] {
                measurements.append(Measurement(name: kind.name, value: value, unit: kind.unit, inWindow: !outside))
            }
        }
        self.init(
            serial: record.serial.text(cellID: cellID),
            variant: Variant(rawValue: record.variant)?.name ?? "\(record.variant)", orderID: orderID, recipe: recipe,
            verdict: record.verdict.name, reasons: reasons, scrapReason: record.scrapReason.text,
            startedAt: RFC3339.text(wallNanoseconds: record.startWallNanoseconds),
            endedAt: RFC3339.text(wallNanoseconds: record.endWallNanoseconds),
            startWallNanoseconds: record.startWallNanoseconds, cycleTimeSeconds: record.cycleTimeSeconds,
            measurements: measurements,
            lots: Lots(housing: record.housingLot, ledModule: record.ledModuleLot, lens: record.lensLot))
    }
}

/// What the status and metrics show of the ledger's replication to the plant database. `lampcelld` adapts its
/// `PlantReplicator` to it, so that the API links no database client. Thread: any; cheap (a lock and a copy).
public protocol PlantReporting: Sendable {
    /// The replication's state now.
    func plantReplication() -> PlantReplication
}
