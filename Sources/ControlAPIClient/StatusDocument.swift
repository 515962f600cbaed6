import Foundation

/// `GET /v1/status` (and each `GET /v1/watch` event): the cell as the API shows it. Fields that are not known
/// (no order yet, OEE not measurable yet) are left out of the JSON. Any thread.
public struct StatusDocument: Codable, Sendable, Equatable {
    /// Version of this document's shape (the `/v1/` of the paths).
    public var apiVersion: Int
    /// LampCell's version.
    public var version: String
    public var cellID: String
    /// When the control thread published the snapshot this document shows (RFC 3339 UTC).
    public var snapshotAt: String
    /// Seconds since the API server (and so the daemon) started.
    public var uptimeSeconds: Double
    public var packml: PackML
    public var order: Order?
    public var counts: Counts
    public var oee: OEE
    public var cycleTime: CycleTime
    public var lampInCell: Lamp?
    public var lastLamp: Lamp?
    public var controlLoop: ControlLoop
    public var devices: [Device]
    /// The ledger's head; absent when no ledger is attached to the API.
    public var ledger: LedgerHead?
    /// The ledger's replication to the plant database; absent when `[plant]` is not configured.
    public var plant: PlantReplication?

    /// PackML state machine.
    public struct PackML: Codable, Sendable, Equatable {
        /// PackML state name (`Execute`) and its PackTags number.
        public var state: String
        public var stateCode: Int
        /// `Production`, `Maintenance` or `Manual`.
        public var mode: String
        /// Seconds in the current state.
        public var stateSeconds: Double
        public var stateChanges: UInt64
        /// The cause of the latest abort, stop or hold since the last Reset (kept through Clear).
        public var stopReason: StopReasonText?
        /// Why the cell is suspended (`operator`, `starved`, `blocked`).
        public var suspendCause: String?
        /// What a lane waits for that the cell does not control (`no housing at the infeed`), when any.
        public var materialWait: String?
        /// The modes `POST /v1/mode/…` accepts now: the other modes in Stopped, Idle and Aborted, none while the
        /// cell may move.
        public var modesAvailable: [String] = []
        /// The PackML commands the state model accepts in the current state (`clear`, `reset`, …); the panel
        /// enables only these buttons. Other conditions (an order for Start) may still refuse one.
        public var commandsAvailable: [String] = []

        public init(
            state: String,
            stateCode: Int,
            mode: String,
            stateSeconds: Double,
            stateChanges: UInt64,
            stopReason: StopReasonText? = nil,
            suspendCause: String? = nil,
            materialWait: String? = nil,
            modesAvailable: [String] = [],
            commandsAvailable: [String] = []
        ) {
            self.state = state
            self.stateCode = stateCode
            self.mode = mode
            self.stateSeconds = stateSeconds
            self.stateChanges = stateChanges
            self.stopReason = stopReason
            self.suspendCause = suspendCause
            self.materialWait = materialWait
            self.modesAvailable = modesAvailable
            self.commandsAvailable = commandsAvailable
        }
    }

    /// A stop reason in words.
    public struct StopReasonText: Codable, Sendable, Equatable {
        /// PackTags StopReason.ID and its name (`emergencyStop`).
        public var code: Int
        public var kind: String
        public var message: String
        /// `abort`, `stop` or `hold`.
        public var action: String
        /// The state the cell was in when it happened.
        public var inState: String
        /// The device to blame, when one is.
        public var device: String?
        /// What to do next (`Guard door open: close it, then Clear`); absent once the cell produces again.
        public var remedy: String?

        public init(
            code: Int,
            kind: String,
            message: String,
            action: String,
            inState: String,
            device: String? = nil
        ) {
            self.code = code
            self.kind = kind
            self.message = message
            self.action = action
            self.inState = inState
            self.device = device
        }
    }

    /// The production order.
    public struct Order: Codable, Sendable, Equatable {
        public var id: String
        public var variant: String
        public var quantity: UInt32
        /// Good lamps made for it so far.
        public var produced: UInt32
        public var remaining: UInt32
        /// False once the order completed or was cancelled.
        public var active: Bool
        public var sequence: UInt32
        public var recipe: String?

        public init(
            id: String,
            variant: String,
            quantity: UInt32,
            produced: UInt32,
            remaining: UInt32,
            active: Bool,
            sequence: UInt32,
            recipe: String? = nil
        ) {
            self.id = id
            self.variant = variant
            self.quantity = quantity
            self.produced = produced
            self.remaining = remaining
            self.active = active
            self.sequence = sequence
            self.recipe = recipe
        }
    }

    /// Production counters: since the order started, and since the daemon started (`…Total`).
    public struct Counts: Codable, Sendable, Equatable {
        public var processed: UInt64
        public var good: UInt64
        public var defective: UInt64
        public var scrapped: UInt64
        public var processedTotal: UInt64
        public var goodTotal: UInt64
        public var defectiveTotal: UInt64
        public var scrappedTotal: UInt64
        public var consumedHousings: UInt64
        public var consumedLEDModules: UInt64
        public var consumedLenses: UInt64
        /// Lamps handed on by the controller since start (to the ledger queue).
        public var lampsFinished: UInt64
        /// Lamps the ledger queue could not take (non-zero holds the cell).
        public var lampsNotQueued: UInt64

        public init(
            processed: UInt64,
            good: UInt64,
            defective: UInt64,
            scrapped: UInt64,
            processedTotal: UInt64,
            goodTotal: UInt64,
            defectiveTotal: UInt64,
            scrappedTotal: UInt64,
            consumedHousings: UInt64,
            consumedLEDModules: UInt64,
            consumedLenses: UInt64,
            lampsFinished: UInt64,
            lampsNotQueued: UInt64
        ) {
            self.processed = processed
            self.good = good
            self.defective = defective
            self.scrapped = scrapped
            self.processedTotal = processedTotal
            self.goodTotal = goodTotal
            self.defectiveTotal = defectiveTotal
            self.scrappedTotal = scrappedTotal
            self.consumedHousings = consumedHousings
            self.consumedLEDModules = consumedLEDModules
            self.consumedLenses = consumedLenses
            self.lampsFinished = lampsFinished
            self.lampsNotQueued = lampsNotQueued
        }
    }

    /// OEE of the current (or last) order, each in 0…1; absent while not measurable.
    public struct OEE: Codable, Sendable, Equatable {
        public var availability: Double?
        public var performance: Double?
        public var quality: Double?
        public var oee: Double?
        public var plannedSeconds: Double
        public var runSeconds: Double
        public var idealCycleSeconds: Double

        public init(
            availability: Double? = nil,
            performance: Double? = nil,
            quality: Double? = nil,
            oee: Double? = nil,
            plannedSeconds: Double,
            runSeconds: Double,
            idealCycleSeconds: Double
        ) {
            self.availability = availability
            self.performance = performance
            self.quality = quality
            self.oee = oee
            self.plannedSeconds = plannedSeconds
            self.runSeconds = runSeconds
            self.idealCycleSeconds = idealCycleSeconds
        }
    }

    /// Cycle times of the last lamps the API saw leave the cell (up to `samples` lamps).
    public struct CycleTime: Codable, Sendable, Equatable {
        public var lastSeconds: Double?
        public var meanSeconds: Double?
        public var p50Seconds: Double?
        public var p95Seconds: Double?
        public var samples: Int

        public init(
            lastSeconds: Double? = nil,
            meanSeconds: Double? = nil,
            p50Seconds: Double? = nil,
            p95Seconds: Double? = nil,
            samples: Int
        ) {
            self.lastSeconds = lastSeconds
            self.meanSeconds = meanSeconds
            self.p50Seconds = p50Seconds
            self.p95Seconds = p95Seconds
            self.samples = samples
        }
    }

    /// A lamp in brief.
    public struct Lamp: Codable, Sendable, Equatable {
        public var serial: String
        public var variant: String
        /// `OK`, `NG`, `SCRAPPED`; for the lamp in the cell: `IN_PROGRESS`.
        public var verdict: String
        public var reasons: [String]
        public var cycleTimeSeconds: Double?

        public init(
            serial: String,
            variant: String,
            verdict: String,
            reasons: [String],
            cycleTimeSeconds: Double? = nil
        ) {
            self.serial = serial
            self.variant = variant
            self.verdict = verdict
            self.reasons = reasons
            self.cycleTimeSeconds = cycleTimeSeconds
        }
    }

    /// The control loop's timing.
    public struct ControlLoop: Codable, Sendable, Equatable {
        public var periodMicroseconds: Double
        public var periodsRun: UInt64
        /// Periods whose work ended after the next deadline (missed deadlines count once each).
        public var overruns: UInt64
        /// Wake-up latency after the period's deadline.
        public var wakeLatencyP99Microseconds: Double
        public var wakeLatencyP999Microseconds: Double
        public var wakeLatencyMaxMicroseconds: Double
        /// Per-phase timing: wake_latency, read, step, write, busy.
        public var phases: [Phase]
        /// Timing samples dropped while a reader held the histograms.
        public var droppedSamples: UInt64
        /// The control thread's minor page faults since it started; constant in steady production when
        /// memory is locked (a rise means a period touched a page for the first time).
        public var minorPageFaults: UInt64
        /// The control thread's major page faults (pages read from disk) since it started.
        public var majorPageFaults: UInt64

        public init(
            periodMicroseconds: Double,
            periodsRun: UInt64,
            overruns: UInt64,
            wakeLatencyP99Microseconds: Double,
            wakeLatencyP999Microseconds: Double,
            wakeLatencyMaxMicroseconds: Double,
            phases: [Phase],
            droppedSamples: UInt64,
            minorPageFaults: UInt64 = 0,
            majorPageFaults: UInt64 = 0
        ) {
            self.periodMicroseconds = periodMicroseconds
            self.periodsRun = periodsRun
            self.overruns = overruns
            self.wakeLatencyP99Microseconds = wakeLatencyP99Microseconds
            self.wakeLatencyP999Microseconds = wakeLatencyP999Microseconds
            self.wakeLatencyMaxMicroseconds = wakeLatencyMaxMicroseconds
            self.phases = phases
            self.droppedSamples = droppedSamples
            self.minorPageFaults = minorPageFaults
            self.majorPageFaults = majorPageFaults
        }
    }

    /// One timed phase of the control period, µs.
    public struct Phase: Codable, Sendable, Equatable {
        public var name: String
        public var count: UInt64
        public var meanMicroseconds: Double
        public var p50Microseconds: Double
        public var p99Microseconds: Double
        public var p999Microseconds: Double
        public var maxMicroseconds: Double

        public init(
            name: String,
            count: UInt64,
            meanMicroseconds: Double,
            p50Microseconds: Double,
            p99Microseconds: Double,
            p999Microseconds: Double,
            maxMicroseconds: Double
        ) {
            self.name = name
            self.count = count
            self.meanMicroseconds = meanMicroseconds
            self.p50Microseconds = p50Microseconds
            self.p99Microseconds = p99Microseconds
            self.p999Microseconds = p999Microseconds
            self.maxMicroseconds = maxMicroseconds
        }
    }

    /// One device (arm or station).
    public struct Device: Codable, Sendable, Equatable {
        public var name: String
        /// `arm` or `station`.
        public var kind: String
        /// The last exchange succeeded.
        public var connected: Bool
        /// `ok`, `disconnected`, `timeout`, `exception`, `badData`.
        public var link: String
        public var linkDetail: Int32
        public var consecutiveFailures: UInt32
        /// Status bits that are set, by their datasheet names.
        public var status: [String]
        /// Fault code as hex (`0x0601`), its number and datasheet name (`ESTOP`).
        public var faultCode: String
        public var faultCodeValue: UInt16
        public var faultName: String
        /// Arms: model, firmware, serial (read after each connect).
        public var model: UInt16?
        public var firmware: UInt16?
        public var serialNumber: UInt32?
        /// Arms: actual joint positions and the targets last written, rad (6 joints).
        public var positionsRadians: [Double]?
        public var targetsRadians: [Double]?
        public var streaming: Bool?
        /// Arms: the command bits written this period; tool state bits.
        public var command: [String]?
        public var tool: [String]?
        /// Station: discrete inputs and coils that are on; material lots; the variant register.
        public var signals: [String]?
        public var coils: [String]?
        public var housingLot: UInt32?
        public var ledModuleLot: UInt32?
        public var lensLot: UInt32?
        public var variant: String?

        public init(
            name: String,
            kind: String,
            connected: Bool,
            link: String,
            linkDetail: Int32,
            consecutiveFailures: UInt32,
            status: [String],
            faultCode: String,
            faultCodeValue: UInt16,
            faultName: String,
            model: UInt16? = nil,
            firmware: UInt16? = nil,
            serialNumber: UInt32? = nil,
            positionsRadians: [Double]? = nil,
            targetsRadians: [Double]? = nil,
            streaming: Bool? = nil,
            command: [String]? = nil,
            tool: [String]? = nil,
            signals: [String]? = nil,
            coils: [String]? = nil,
            housingLot: UInt32? = nil,
            ledModuleLot: UInt32? = nil,
            lensLot: UInt32? = nil,
            variant: String? = nil
        ) {
            self.name = name
            self.kind = kind
            self.connected = connected
            self.link = link
            self.linkDetail = linkDetail
            self.consecutiveFailures = consecutiveFailures
            self.status = status
            self.faultCode = faultCode
            self.faultCodeValue = faultCodeValue
            self.faultName = faultName
            self.model = model
            self.firmware = firmware
            self.serialNumber = serialNumber
            self.positionsRadians = positionsRadians
            self.targetsRadians = targetsRadians
            self.streaming = streaming
            self.command = command
            self.tool = tool
            self.signals = signals
            self.coils = coils
            self.housingLot = housingLot
            self.ledModuleLot = ledModuleLot
            self.lensLot = lensLot
            self.variant = variant
        }
    }

    public init(
        apiVersion: Int,
        version: String,
        cellID: String,
        snapshotAt: String,
        uptimeSeconds: Double,
        packml: PackML,
        order: Order? = nil,
        counts: Counts,
        oee: OEE,
        cycleTime: CycleTime,
        lampInCell: Lamp? = nil,
        lastLamp: Lamp? = nil,
        controlLoop: ControlLoop,
        devices: [Device],
        ledger: LedgerHead? = nil,
        plant: PlantReplication? = nil
    ) {
        self.apiVersion = apiVersion
        self.version = version
        self.cellID = cellID
        self.snapshotAt = snapshotAt
        self.uptimeSeconds = uptimeSeconds
        self.packml = packml
        self.order = order
        self.counts = counts
        self.oee = oee
        self.cycleTime = cycleTime
        self.lampInCell = lampInCell
        self.lastLamp = lastLamp
        self.controlLoop = controlLoop
        self.devices = devices
        self.ledger = ledger
        self.plant = plant
    }
}

/// The ledger's replication to the plant database (`[plant]`, docs/PLANT.md), in `GET /v1/status`.
public struct PlantReplication: Codable, Sendable, Equatable {
    /// `connecting`, `replicating`, `caughtUp`, `disconnected`, `refused` (an alarm: the server refused the chain,
    /// or the local ledger disagrees with it) or `stopped`.
    public var state: String
    /// `host=… port=… dbname=… user=…`.
    public var server: String
    /// Entries in the local ledger.
    public var localPosition: Int64
    /// The last position the server acknowledged; absent while never known.
    public var acknowledgedPosition: Int64?
    /// Local entries not yet on the server, and the age of the oldest of them, s.
    public var lagEntries: Int64?
    public var lagSeconds: Double?
    /// Entries shipped since the daemon started.
    public var shippedEntries: Int64
    /// The last error, one line.
    public var lastError: String?
    /// The first position the server refused.
    public var chainBreakPosition: Int64?
    /// What is wrong, in words, once the lag passes its configured bound or the chain was refused.
    public var warning: String?

    public init(
        state: String, server: String, localPosition: Int64, acknowledgedPosition: Int64?, lagEntries: Int64?,
        lagSeconds: Double?, shippedEntries: Int64, lastError: String?, chainBreakPosition: Int64?, warning: String?
    ) {
        self.state = state
        self.server = server
        self.localPosition = localPosition
        self.acknowledgedPosition = acknowledgedPosition
        self.lagEntries = lagEntries
        self.lagSeconds = lagSeconds
        self.shippedEntries = shippedEntries
        self.lastError = lastError
        self.chainBreakPosition = chainBreakPosition
        self.warning = warning
    }
}

/// The ledger's head, shown in `GET /v1/status`.
public struct LedgerHead: Codable, Sendable, Equatable {
    /// Lamps recorded.
    public var count: UInt64
    /// Hash of the last record (hex), as the ledger chains them.
    public var hash: String
    /// Serial of the last record.
    public var lastSerial: String?

    public init(count: UInt64, hash: String, lastSerial: String?) {
        self.count = count
        self.hash = hash
        self.lastSerial = lastSerial
    }
}
