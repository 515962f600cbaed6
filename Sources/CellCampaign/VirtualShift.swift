// Virtual-time mode: the real controller, cycle and ledger code against the in-process device models on a virtual
// clock, one thread, no sockets; faults injected by the seed, invariants checked every period.

import CellConfig
import CellControl
import CellCore
import CellModbus
import CellService
import CellSimulator
import Foundation
import Ledger
import Modbus
import PackML

/// Everything a virtual shift is made of. A value: build it once, run it on any thread.
public struct ShiftConfiguration: Sendable {
    public var cell: CellDefinition
    public var recipes: [Recipe]
    /// SHA-256 (hex) of each recipe file, recorded in the ledger like the daemon does ("" when unknown).
    public var recipeContentHashes: [String]
    /// Index of the recipe the operator orders.
    public var recipeIndex = 0
    /// Seed of every random choice of the run (models, faults, operator).
    public var seed: UInt64
    /// Virtual length of the shift, ns.
    public var durationNanoseconds: UInt64
    public var faults = FaultSchedule()
    /// Step every device model at 4 kHz (`CellModels.stepsEveryTick`, the reference) instead of skipping quiet steps.
    /// The report is the same either way (the exact-vs-stepped test); only the wall time differs.
    public var steppedModels = false
    /// Share of housings with a hidden defect.
    public var defectRate = 0.02
    /// The ledger file; nil: a fresh file in a temporary directory, removed at the end.
    public var ledgerPath: String?
    /// The controller's settings (the daemon's defaults: 4 ms period, 100 ms arm watchdog, device lost after 60 ms).
    public var settings = ControllerSettings()
    /// The drivers' reconnect policy (the daemon's: `ControlLoopSettings().reconnect`).
    public var reconnect = ControlLoopSettings().reconnect
    /// Connections of the station driver (the daemon's: `ControlLoopSettings().stationConnections`).
    public var stationConnections = ControlLoopSettings().stationConnections
    /// Wall clock at virtual time 0: the controller and the ledger see this + virtual time.
    public var startWallNanoseconds: UInt64 = ShiftConfiguration.defaultStartWallNanoseconds
    /// 2026-01-05 06:00:00 UTC.
    public static let defaultStartWallNanoseconds: UInt64 = 1_767_592_800_000_000_000
    /// Test hook, called on the engine's thread right after each controller step (before the outputs go to the
    /// devices): lets a test break the controller's outputs to prove an invariant is checked. nil in real runs.
    public var afterStep: (@Sendable (_ image: inout ProcessImage, _ periodIndex: UInt64) -> Void)?

    public init(
        cell: CellDefinition, recipes: [Recipe], recipeContentHashes: [String] = [], seed: UInt64,
        durationNanoseconds: UInt64
    ) {
        self.cell = cell
        self.recipes = recipes
        self.recipeContentHashes = recipeContentHashes
        self.seed = seed
        self.durationNanoseconds = durationNanoseconds
    }

    /// Loads the cell and recipe files (as the daemon does). Thread: any.
    public static func load(cellPath: String, recipePaths: [String], seed: UInt64, durationNanoseconds: UInt64)
        throws -> ShiftConfiguration
    {
        let cell = try CellDefinition.load(from: cellPath)
        var recipes: [Recipe] = []
        var hashes: [String] = []
        for path in recipePaths {
            recipes.append(try Recipe.load(from: path, cell: cell))
            let bytes = FileManager.default.contents(atPath: path) ?? Data()
            hashes.append(LedgerRecipe.sha256Hex(of: bytes))
        }
        return ShiftConfiguration(
            cell: cell, recipes: recipes, recipeContentHashes: hashes, seed: seed,
            durationNanoseconds: durationNanoseconds)
    }
}

/// The production report of one virtual shift. Everything but `wallNanoseconds` is a function of the seed.
public struct ShiftReport: Sendable, Equatable {
    public var seed: UInt64
    public var simulatedNanoseconds: UInt64
    /// Wall time the run took (not deterministic; not compared).
    public var wallNanoseconds: UInt64 = 0
    public var lampsOK = 0
    public var lampsNG = 0
    /// Scrapped lamps, all reasons (those at a controller restart included).
    public var lampsScrapped = 0
    public var scrappedAtRestart = 0
    /// Scrapped lamps whose housing was never picked (the abort came during the housing grip).
    public var scrappedWithoutHousing = 0
    public var housingsEntered = 0
    /// Mean and maximum cycle time of OK/NG lamps, s.
    public var meanCycleSeconds = 0.0
    public var maximumCycleSeconds = 0.0
    /// OEE of the last production order (of the last controller), and its factors.
    public var oee = OEEResult(availability: nil, performance: nil, performanceUncapped: nil, quality: nil, oee: nil)
    /// Faults injected, and those the controller noticed (left Execute, or a failed exchange), by kind.
    public var injected = FaultCounts()
    public var seen = FaultCounts()
    /// Controller restarts.
    public var restarts = 0
    /// The longest time from a recovery to Execute, and from Execute to the next lamp, ns (liveness margins).
    public var longestResumeNanoseconds: UInt64 = 0
    public var longestFirstLampNanoseconds: UInt64 = 0
    /// The ledger's head at the end (count, hash of the last entry).
    public var ledgerHead = Checkpoint.genesis
    public var periods: UInt64 = 0
    /// Model steps advanced in closed form (skipped) and run one by one (`CellModels`); not compared: the stepped
    /// reference runs them all.
    public var modelStepsSkipped: UInt64 = 0
    public var modelStepsRun: UInt64 = 0

    public static func == (a: ShiftReport, b: ShiftReport) -> Bool {
        var a = a
        var b = b
        a.wallNanoseconds = 0
        b.wallNanoseconds = 0
        return a.seed == b.seed && a.simulatedNanoseconds == b.simulatedNanoseconds && a.lampsOK == b.lampsOK
            && a.lampsNG == b.lampsNG && a.lampsScrapped == b.lampsScrapped
            && a.scrappedAtRestart == b.scrappedAtRestart && a.scrappedWithoutHousing == b.scrappedWithoutHousing
            && a.housingsEntered == b.housingsEntered && a.meanCycleSeconds == b.meanCycleSeconds
            && a.maximumCycleSeconds == b.maximumCycleSeconds && a.oee == b.oee && a.injected == b.injected
            && a.seen == b.seen && a.restarts == b.restarts && a.longestResumeNanoseconds == b.longestResumeNanoseconds
            && a.longestFirstLampNanoseconds == b.longestFirstLampNanoseconds && a.ledgerHead == b.ledgerHead
            && a.periods == b.periods
    }

    /// Virtual seconds per wall second.
    public var speedUp: Double {
        wallNanoseconds == 0 ? 0 : Double(simulatedNanoseconds) / Double(wallNanoseconds)
    }

    /// The report as text (one item per line).
    public func text(includeWallTime: Bool = true) -> String {
        func percent(_ value: Double?) -> String { value.map { String(format: "%.1f %%", $0 * 100) } ?? "n/a" }
        let hours = Double(simulatedNanoseconds) / 3.6e12
        var lines = [
            "shift: seed \(seed), \(String(format: "%.2f", hours)) h simulated (\(periods) periods)",
            "lamps: \(lampsOK) OK, \(lampsNG) NG, \(lampsScrapped) scrapped (\(scrappedAtRestart) at controller restart, \(scrappedWithoutHousing) before the housing was picked); housings entered \(housingsEntered)",
            "cycle time: mean \(String(format: "%.2f", meanCycleSeconds)) s, max \(String(format: "%.2f", maximumCycleSeconds)) s",
            "OEE (last order): \(percent(oee.oee)) = availability \(percent(oee.availability)) × performance \(percent(oee.performance)) × quality \(percent(oee.quality))",
            "controller restarts: \(restarts); longest resume \(String(format: "%.1f", Double(longestResumeNanoseconds) / 1e9)) s, longest first lamp after resume \(String(format: "%.1f", Double(longestFirstLampNanoseconds) / 1e9)) s",
            "ledger: \(ledgerHead.count) entries, head \(ledgerHead.headHash)",
            "faults (injected/seen): " + FaultKind.allCases.filter { injected[$0] > 0 }
                .map { "\($0.rawValue) \(injected[$0])/\(seen[$0])" }.joined(separator: ", "),
        ]
        if injected.total == 0 { lines[lines.count - 1] = "faults: none injected" }
        let modelSteps = modelStepsSkipped + modelStepsRun
        lines.append(
            "model steps: \(modelStepsRun) run, \(modelStepsSkipped) skipped in closed form (\(String(format: "%.1f", modelSteps == 0 ? 0 : 100 * Double(modelStepsSkipped) / Double(modelSteps))) %)")
        if includeWallTime {
            lines.append(
                "wall time: \(String(format: "%.2f", Double(wallNanoseconds) / 1e9)) s, speed-up \(String(format: "%.0f", speedUp))× real time"
            )
        }
        return lines.joined(separator: "\n")
    }
}

/// Allocates lamp serial numbers in memory: unique within the run (continues across controller restarts, like the
/// daemon's `SerialAllocator` continues from its state file).
final class InMemorySerials: @unchecked Sendable {
    var next: UInt64 = 1
    func take() -> UInt64? {
        defer { next += 1 }
        return next
    }
}

/// One virtual shift: a `VirtualCell` (the real drivers, controller and period function on a virtual clock) with
/// seeded faults, a scripted operator, the ledger and its drain, and invariants checked every period. Build it,
/// `run()` it once. Thread: one thread owns it (any thread).
public final class VirtualShift {
    public let configuration: ShiftConfiguration
    /// The cell: models, drivers over in-memory links, controller.
    public let cell: VirtualCell
    let period: UInt64
    private let serials = InMemorySerials()

    private var models: CellModels { cell.models }
    private var compiledCell: CompiledCell { cell.compiledCell }
    private var compiledRecipes: [CompiledRecipe] { cell.compiledRecipes }
    /// The current process's controller and process image (replaced at a crash).
    private var controller: CellController { cell.controller }
    private var image: ProcessImage {
        get { cell.period.image }
        set { cell.period.image = newValue }
    }
    private var incarnation = 0
    private var crashedUntil: UInt64?

    // The ledger and its drain.
    private let ledgerPath: String
    private let temporaryDirectory: String?
    private var writer: LedgerWriter
    private var context: LedgerContext
    private var drainBlocked: LampRecord?
    /// The daemon's drain decisions (hold, retry delays); the append that failed is retried at `retryAt`.
    private var drainPolicy = LedgerDrainPolicy()
    private var drainRetryAtNanoseconds: UInt64 = 0
    private var inCell: (lamp: LampRecord, orderID: String?)?
    private var ledgerFailingUntil: UInt64 = 0
    /// Entries the ledger held before the run (a `--ledger` file may be reused).
    private var initialLedgerCount: Int64 = 0

    // Random sources, one per purpose.
    private var faultRandom: SimulationRandom
    private var backgroundRandom: SimulationRandom
    private var operatorRandom: SimulationRandom

    // Bookkeeping for the invariants.
    private var stream: StreamChecker
    private var pendingStreamBreach: String?
    private var injectedArmFaults: [(arm: Int, code: UInt16)] = []
    private var faultHistorySeen: [Int]
    private var previousInfeedPart: UInt64?
    private var partOfSerial: [UInt64: UInt64] = [:]
    private var serialOfPart: [UInt64: UInt64] = [:]
    private var lastLampSequence: UInt64?
    private var recorded: [UInt64: LampVerdict] = [:]
    private var chainOpenPeriods: UInt64 = 0
    private var tally = Tally()
    private var cycleSum = 0.0
    private var cycleCount = 0

    // Faults and the operator.
    private var deck: EpisodeDeck
    private var episode: Episode = .quiet(untilNanoseconds: 0, awaitLamp: false)
    private var nextBackgroundNanoseconds: UInt64 = 0
    private var pendingBackground: (kind: FaultKind, device: Int)?
    private var operatorActionAt: UInt64?
    private var lampsAtRecovery: UInt64 = 0

    private(set) var report: ShiftReport
    private var now: UInt64 = 0
    private var periodIndex: UInt64 = 0

    /// What the engine's episode scheduler is doing.
    enum Episode {
        /// No fault; the next episode starts at `untilNanoseconds` (and, when `awaitLamp`, once a lamp finished).
        case quiet(untilNanoseconds: UInt64, awaitLamp: Bool)
        /// Waiting for an arm to move before pressing the e-stop (gives up at the deadline and presses anyway).
        case arming(FaultKind, deadlineNanoseconds: UInt64)
        /// The fault is active until `clearAt`.
        case active(FaultKind, target: Int, clearAtNanoseconds: UInt64, leftExecute: Bool)
        /// The cause is gone; the operator recovers the cell. `since`: when the cause went.
        case recovering(FaultKind, sinceNanoseconds: UInt64, leftExecute: Bool)
        /// Back in Execute at `since`; waiting for a lamp (liveness).
        case awaitingLamp(sinceNanoseconds: UInt64, lampsAtStart: UInt64)
    }

    /// Ledger tallies of the current controller (for the counters/OEE invariant).
    struct Tally {
        var ok: UInt64 = 0
        var ng: UInt64 = 0
        var scrapped: UInt64 = 0
        var orderSequence: UInt32 = 0
        var orderOK: UInt64 = 0
        var orderNG: UInt64 = 0
        var orderScrapped: UInt64 = 0
    }

    /// Builds the models, the first controller and the ledger. Thread: the owner.
    public init(configuration: ShiftConfiguration) throws {
        self.configuration = configuration
        guard !configuration.recipes.isEmpty else { throw ShiftError("no recipe") }
        guard configuration.recipeIndex < configuration.recipes.count else {
            throw ShiftError("no recipe \(configuration.recipeIndex)")
        }
        period = configuration.settings.periodNanoseconds

        var master = SimulationRandom(seed: configuration.seed)
        let cellSeed = master.next()
        faultRandom = master.split()
        backgroundRandom = master.split()
        operatorRandom = master.split()
        let allocator = serials
        cell = try VirtualCell(
            cell: configuration.cell, recipes: configuration.recipes, settings: configuration.settings, seed: cellSeed,
            defectRate: configuration.defectRate, reconnect: configuration.reconnect,
            stationConnections: configuration.stationConnections, serials: { allocator.take() })
        cell.models.stepsEveryTick = configuration.steppedModels
        let compiled = cell.compiledRecipes
        faultHistorySeen = Array(repeating: 0, count: cell.models.arms.count)

        if let path = configuration.ledgerPath {
            ledgerPath = path
            temporaryDirectory = nil
        } else {
            let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
            let directory = base + "/lampcell-shift-\(configuration.seed)-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            ledgerPath = directory + "/ledger.sqlite"
            temporaryDirectory = directory
        }
        writer = try LedgerWriter(path: ledgerPath)
        var ledgerRecipes: [LedgerRecipe] = []
        for (index, recipe) in compiled.enumerated() {
            let hash = index < configuration.recipeContentHashes.count ? configuration.recipeContentHashes[index] : ""
            ledgerRecipes.append(LedgerRecipe(recipe, contentSHA256: hash))
        }
        context = LedgerContext(
            cellID: cell.compiledCell.cellID, recipes: ledgerRecipes, orderIDs: [:], devices: [],
            softwareVersion: "lampsim shift \(LampCellVersion.current)")
        serials.next = try writer.ledger.highestSerialSequence() + 1
        initialLedgerCount = try writer.ledger.count()

        deck = EpisodeDeck(kinds: configuration.faults.kinds, seed: configuration.seed)
        stream = StreamChecker(
            limits: cell.compiledCell.arms.map(\.limits),
            periodSeconds: Double(configuration.settings.periodNanoseconds) / 1e9)
        report = ShiftReport(seed: configuration.seed, simulatedNanoseconds: configuration.durationNanoseconds)
        cell.onArmWrite = { [unowned self] arm, words, streaming in
            if pendingStreamBreach == nil,
                let message = stream.checkAccepted(arm: arm, words: words, armWasStreaming: streaming)
            {
                pendingStreamBreach = message
            }
        }
        resetProcessBookkeeping()
        if !configuration.faults.kinds.isEmpty {
            episode = .quiet(untilNanoseconds: configuration.faults.firstEpisodeNanoseconds, awaitLamp: false)
            nextBackgroundNanoseconds = nextBackgroundInterval()
        } else {
            nextBackgroundNanoseconds = .max
        }
    }

    deinit {
        if let temporaryDirectory { try? FileManager.default.removeItem(atPath: temporaryDirectory) }
    }

    /// The ledger file of the run (removed with a temporary directory when the shift is released).
    public var ledgerFile: String { ledgerPath }

    // MARK: - The process (controller, image, drivers)

    /// A new process: a new controller, drivers and connections (the models keep running).
    private func startProcess() {
        let allocator = serials
        cell.startProcess(serials: { allocator.take() })
        resetProcessBookkeeping()
    }

    private func resetProcessBookkeeping() {
        incarnation += 1
        stream.reset()
        tally = Tally()
        context.orderIDs = [:]
        operatorActionAt = nil
    }

    // MARK: - Running

    /// Runs the whole shift. Throws the first invariant breach. Thread: the owner, once.
    public func run() throws -> ShiftReport {
        let periods = configuration.durationNanoseconds / period
        report.periods = periods
        while periodIndex < periods {
            now = periodIndex * period
            cell.advance(toNanoseconds: now)
            try scheduleFaults()
            if let until = crashedUntil {
                if now >= until {
                    crashedUntil = nil
                    try restartAfterCrash()
                }
            } else {
                try runPeriod()
            }
            periodIndex += 1
        }
        try finish()
        return report
    }

    private func breach(_ invariant: String, _ message: String) -> InvariantBreach {
        InvariantBreach(
            invariant: invariant, message: message, seed: configuration.seed, periodIndex: periodIndex,
            virtualNanoseconds: now)
    }

    /// The daemon's period (`CellPeriod`: exchange with every device at once, step, dispatch), with the invariants
    /// checked between and after its phases.
    private func runPeriod() throws {
        let monotonic = cell.monotonicNanoseconds
        cell.period.exchange()
        if let message = pendingStreamBreach { throw breach("setpoint-jump", message) }
        cell.period.step(nowNanoseconds: monotonic, wallNanoseconds: configuration.startWallNanoseconds + now)
        if let afterStep = configuration.afterStep { afterStep(&cell.period.image, periodIndex) }
        cell.period.dispatch()
        try checkAfterStep()
        while controller.replies.pop() != nil {}
        try drain()
        try checkHousings()
        try checkCounters()
        try operate()
    }

    // MARK: - Invariants after the step

    private func checkAfterStep() throws {
        let state = controller.unit.state
        let station = image.stationInputs
        let seesChainOpen =
            station.link.state == .ok
            && (!station.signals.contains(.safetyOK) || station.signals.contains(.estopPressed)
                || station.signals.contains(.guardOpen))
        if models.world.safetyChainClosed { chainOpenPeriods = 0 } else { chainOpenPeriods += 1 }
        let chainLongOpen =
            chainOpenPeriods > UInt64(configuration.settings.deviceLostAfterFailures) + InvariantLimits.chainOpenGracePeriods
        for index in image.armOutputs.indices {
            let outputs = image.armOutputs[index]
            let powered = outputs.command.contains(.enable) || outputs.command.contains(.stream)
            if powered {
                if state == .aborting || state == .aborted {
                    throw breach("enabled-while-aborted", "arm \(models.armNames[index]) commanded \(outputs.command.rawValue) in \(state)")
                }
                if seesChainOpen {
                    throw breach(
                        "enabled-with-chain-open",
                        "arm \(models.armNames[index]) commanded ENABLE/STREAM while the station reports the safety chain open")
                }
                if chainLongOpen {
                    throw breach(
                        "enabled-with-chain-open",
                        "arm \(models.armNames[index]) commanded ENABLE/STREAM \(chainOpenPeriods) periods after the safety chain opened")
                }
            }
            if let message = stream.checkCommanded(
                arm: index, outputs: outputs, streaming: controller.arms[index].isStreaming)
            {
                throw breach("setpoint-limits", message)
            }
        }
        for (index, arm) in models.arms.enumerated() where arm.faultHistory.count > faultHistorySeen[index] {
            for entry in arm.faultHistory[faultHistorySeen[index]...]
            where entry.code == ArmFaultCode.setpointJump || entry.code == ArmFaultCode.followingError {
                if let injected = injectedArmFaults.firstIndex(where: { $0.arm == index && $0.code == entry.code }) {
                    injectedArmFaults.remove(at: injected)
                } else {
                    throw breach(
                        "arm-fault-not-injected",
                        "arm \(models.armNames[index]) latched \(ArmFaultCode.name(entry.code)) that was not injected")
                }
            }
            faultHistorySeen[index] = arm.faultHistory.count
        }
        if let lamp = controller.lamp { lastLampSequence = lamp.serial.sequence }
    }

    /// Every housing that leaves the infeed is tied to the lamp record the controller opened for it.
    private func checkHousings() throws {
        let current = models.world.housingAtInfeed?.id
        if let previous = previousInfeedPart, previous != current {
            report.housingsEntered += 1
            guard let sequence = lastLampSequence else {
                throw breach("lamp-exactly-once", "housing \(previous) was picked with no lamp record open")
            }
            if let other = partOfSerial[sequence] {
                throw breach("lamp-exactly-once", "housing \(previous) picked for lamp \(sequence), which already has housing \(other)")
            }
            partOfSerial[sequence] = previous
            serialOfPart[previous] = sequence
        }
        previousInfeedPart = current
    }

    /// The controller's counters agree with what it handed to the ledger (checked whenever nothing waits).
    private func checkCounters() throws {
        guard drainBlocked == nil, controller.lamps.count == 0 else { return }
        let counters = controller.unit.counters
        if counters.processed.accumulated != tally.ok + tally.ng || counters.defective.accumulated != tally.ng
            || counters.scrapped.accumulated != tally.scrapped
        {
            throw breach(
                "counters-match-ledger",
                "controller counts processed \(counters.processed.accumulated), defective \(counters.defective.accumulated), scrapped \(counters.scrapped.accumulated); ledger has OK \(tally.ok), NG \(tally.ng), scrapped \(tally.scrapped)")
        }
        if tally.orderSequence == controller.orderSequence {
            if counters.processed.count != tally.orderOK + tally.orderNG || counters.scrapped.count != tally.orderScrapped
                || counters.defective.count != tally.orderNG
            {
                throw breach(
                    "counters-match-ledger",
                    "order counts processed \(counters.processed.count), defective \(counters.defective.count), scrapped \(counters.scrapped.count); ledger for the order: OK \(tally.orderOK), NG \(tally.orderNG), scrapped \(tally.orderScrapped)")
            }
            let total = tally.orderOK + tally.orderNG + tally.orderScrapped
            let quality = controller.unit.oeeResult.quality
            if total > 0 {
                let expected = Double(tally.orderOK) / Double(total)
                guard let quality, abs(quality - expected) < 1e-9 else {
                    throw breach(
                        "oee-matches-ledger", "OEE quality \(String(describing: quality)) but the ledger gives \(expected)")
                }
            }
        }
    }

    // MARK: - The ledger drain (LedgerSink's decisions, `LedgerDrainPolicy`, on this thread and clock)

    private func drain() throws {
        while true {
            let record: LampRecord
            if let blocked = drainBlocked {
                record = blocked
            } else if let next = controller.lamps.pop() {
                record = next
            } else {
                return
            }
            switch record.stage {
            case .started:
                // The lamp-in-cell record (the daemon's file; here in memory, kept across a crash): recorded at once.
                inCell = (record, context.orderIDs[record.orderSequence])
                controller.lampInCellRecorded.store(record.serial.sequence, ordering: .releasing)
            case .finished:
                if drainBlocked != nil && now < drainRetryAtNanoseconds {
                    return  // the drain waits before its next attempt
                }
                if now < ledgerFailingUntil {
                    // The disk refuses the append (the one fake of the ledger path: a retryable failure, decided here
                    // before SQLite sees the entry). The sink keeps the lamp, holds the cell and retries later.
                    let decision = drainPolicy.appendFailed(retryable: true)
                    if decision.holdCell { controller.ledgerWritable.store(false, ordering: .relaxed) }
                    drainBlocked = record
                    drainRetryAtNanoseconds = now + decision.retryAfterNanoseconds
                    return
                }
                try append(LedgerEntry(record, context: currentContext()), record: record)
                drainBlocked = nil
                if drainPolicy.appendCommitted() { controller.ledgerWritable.store(true, ordering: .relaxed) }
                if inCell?.lamp.serial == record.serial { inCell = nil }
                tallyFinished(record)
            }
        }
    }

    private func currentContext() -> LedgerContext {
        var context = self.context
        context.devices = image.armInputs.indices.map {
            DeviceIdentity.ra610(
                name: models.armNames[$0], serialNumber: image.armInputs[$0].link.serialNumber,
                firmwareRegister: image.armInputs[$0].link.firmware)
        } + [DeviceIdentity(name: models.stationName, serialNumber: "", firmware: "")]
        return context
    }

    private func append(_ entry: LedgerEntry, record: LampRecord) throws {
        let sequence = record.serial.sequence
        if recorded[sequence] != nil {
            throw breach("lamp-exactly-once", "lamp \(entry.serial) handed to the ledger twice")
        }
        do {
            _ = try writer.append(entry)
        } catch {
            throw breach("ledger-append", "\(error)")
        }
        recorded[sequence] = record.verdict
        switch record.verdict {
        case .ok: report.lampsOK += 1
        case .ng: report.lampsNG += 1
        case .scrapped:
            report.lampsScrapped += 1
            if record.scrapReason == .controllerRestart { report.scrappedAtRestart += 1 }
        }
        if record.verdict != .scrapped {
            let cycle = record.cycleTimeSeconds
            cycleSum += cycle
            cycleCount += 1
            report.maximumCycleSeconds = max(report.maximumCycleSeconds, cycle)
        }
    }

    private func tallyFinished(_ record: LampRecord) {
        if record.orderSequence != tally.orderSequence {
            tally.orderSequence = record.orderSequence
            tally.orderOK = 0
            tally.orderNG = 0
            tally.orderScrapped = 0
        }
        switch record.verdict {
        case .ok:
            tally.ok += 1
            tally.orderOK += 1
        case .ng:
            tally.ng += 1
            tally.orderNG += 1
        case .scrapped:
            tally.scrapped += 1
            tally.orderScrapped += 1
        }
    }

    // MARK: - Crash and restart

    private func crash(downtimeNanoseconds: UInt64) {
        // The process dies between two periods: its queue, its pending append and its connections go with it.
        drainBlocked = nil
        drainPolicy = LedgerDrainPolicy()
        crashedUntil = now + downtimeNanoseconds
        report.restarts += 1
    }

    private func restartAfterCrash() throws {
        // A new process: reopen the ledger, verify it, resolve the lamp left in the cell (LedgerSink.recoverAtStart).
        writer = try LedgerWriter(path: ledgerPath)
        let verification = try writer.ledger.verify()
        guard verification.isValid else {
            throw breach("ledger-verifies", "at restart: \(verification)")
        }
        if let (lamp, orderID) = inCell {
            if let entry = try LedgerDrainPolicy.entryForLampLeftInCell(
                lamp, orderID: orderID, devices: [], ledger: writer.ledger, context: context,
                recordedAtWallNanoseconds: configuration.startWallNanoseconds + now)
            {
                var record = lamp
                record.verdict = .scrapped
                record.scrapReason = .controllerRestart
                try append(entry, record: record)
            }
            inCell = nil
        }
        serials.next = max(serials.next, try writer.ledger.highestSerialSequence() + 1)
        startProcess()
    }

    // MARK: - Faults

    private func nextBackgroundInterval() -> UInt64 {
        let mean = Double(configuration.faults.backgroundMeanIntervalNanoseconds)
        let u = Double.random(in: Double.ulpOfOne..<1, using: &backgroundRandom)
        return now + max(period, UInt64(-log(u) * mean))
    }

    private var linkCount: Int { cell.deviceCount }

    private func scheduleFaults() throws {
        // Background link faults on single requests.
        if now >= nextBackgroundNanoseconds {
            nextBackgroundNanoseconds = nextBackgroundInterval()
            let enabled = FaultKind.background.filter { configuration.faults.kinds.contains($0) }
            if !enabled.isEmpty, crashedUntil == nil {
                let kind = enabled[Int.random(in: 0..<enabled.count, using: &backgroundRandom)]
                // Corrupted values (the first data word of a read reply set to 0xFFFF) are caught by the drivers'
                // plausibility checks, the RA-610's and the TS-200's (the station's first connection reads the
                // discrete inputs or the input registers first in a period: both are checked).
                let devices = linkCount
                let device = Int.random(in: 0..<devices, using: &backgroundRandom)
                let target = cell.transport(ofDevice: device)
                if target.pendingFault == nil, let fault = kind.linkFault {
                    target.pendingFault = fault
                    report.injected[kind] += 1
                    pendingBackground = (kind, device)
                }
            }
        } else if let (kind, device) = pendingBackground, crashedUntil == nil {
            // Seen: the driver recorded a failed exchange for it.
            let failed =
                device < image.armInputs.count
                ? image.armInputs[device].link.state != .ok : image.stationInputs.link.state != .ok
            if failed || cell.transport(ofDevice: device).pendingFault == nil {
                if failed { report.seen[kind] += 1 }
                pendingBackground = nil
            }
        }

        switch episode {
        case .quiet(let until, let awaitLamp):
            guard !deck.isEmpty, now >= until else { return }
            if awaitLamp {
                episode = .awaitingLamp(sinceNanoseconds: now, lampsAtStart: controller.lampsFinished)
                return
            }
            guard crashedUntil == nil, let kind = deck.draw(&faultRandom) else { return }
            if kind == .estopInMotion {
                episode = .arming(kind, deadlineNanoseconds: now + 30_000_000_000)
            } else {
                inject(kind)
            }
        case .arming(let kind, let deadline):
            if models.arms.contains(where: { $0.statusWord & ArmStatus.inMotion.rawValue != 0 }) || now >= deadline {
                inject(kind)
            }
        case .active(let kind, let target, let clearAt, var leftExecute):
            if crashedUntil == nil && controller.unit.state != .execute { leftExecute = true }
            if now >= clearAt {
                clear(kind, target: target)
                episode = .recovering(kind, sinceNanoseconds: now, leftExecute: leftExecute)
            } else {
                episode = .active(kind, target: target, clearAtNanoseconds: clearAt, leftExecute: leftExecute)
            }
        case .recovering(let kind, let since, var leftExecute):
            guard crashedUntil == nil else { return }
            if controller.unit.state != .execute {
                leftExecute = true
                if now - since > InvariantLimits.resumeBoundNanoseconds {
                    throw breach(
                        "liveness",
                        "after \(kind.rawValue) was cleared the cell did not reach Execute within \(InvariantLimits.resumeBoundNanoseconds / 1_000_000_000) s (it is \(controller.unit.state); last fault: \(controller.lastFault.map { "\($0.message)" } ?? "none"))")
                }
                episode = .recovering(kind, sinceNanoseconds: since, leftExecute: leftExecute)
                return
            }
            if leftExecute { report.seen[kind] += 1 }
            report.longestResumeNanoseconds = max(report.longestResumeNanoseconds, now - since)
            let quiet = UInt64.random(in: configuration.faults.quietRangeNanoseconds, using: &faultRandom)
            let awaitLamp = Double.random(in: 0..<1, using: &faultRandom) < configuration.faults.awaitLampFraction
            episode = .quiet(untilNanoseconds: awaitLamp ? now : now + quiet, awaitLamp: awaitLamp)
        case .awaitingLamp(let since, let lampsAtStart):
            guard crashedUntil == nil else { return }
            let bound = UInt64(
                InvariantLimits.firstLampBoundIdealCycles * compiledRecipes[configuration.recipeIndex].idealCycleTimeSeconds * 1e9)
            if controller.lampsFinished > lampsAtStart {
                report.longestFirstLampNanoseconds = max(report.longestFirstLampNanoseconds, now - since)
                let quiet = UInt64.random(in: configuration.faults.quietRangeNanoseconds, using: &faultRandom)
                episode = .quiet(untilNanoseconds: now + quiet, awaitLamp: false)
            } else if now - since > bound {
                throw breach(
                    "liveness",
                    "no lamp finished within \(bound / 1_000_000_000) s of production resuming (state \(controller.unit.state), waiting for \(controller.materialWaitShown.name))")
            }
        }
    }

    private func duration(_ range: ClosedRange<Double>) -> UInt64 {
        UInt64(Double.random(in: range, using: &faultRandom) * 1e9)
    }

    private func inject(_ kind: FaultKind) {
        report.injected[kind] += 1
        let world = models.world
        var target = 0
        var clearAt = now
        switch kind {
        case .timeout, .replyLost, .lateReply, .exceptionReply, .malformedReply, .truncatedReply, .oversizedReply,
            .wrongTransaction, .corruptedValues:
            break
        case .droppedConnection:
            target = Int.random(in: 0..<linkCount, using: &faultRandom)
            let down = Bool.random(using: &faultRandom) ? duration(0.008...0.05) : duration(0.1...3)
            cell.makeUnreachable(device: target, untilNanoseconds: now + down)
            clearAt = now + down
        case .armCommWatchdog, .armSetpointJump, .armFollowingError, .armPositionLimit, .armToolFault, .armCollision,
            .armOvertemperature, .armEstop:
            target = Int.random(in: 0..<models.arms.count, using: &faultRandom)
            let code = kind.armFaultCode ?? 0
            models.arms[target].injectFault(code: code)
            injectedArmFaults.append((target, code))
            clearAt = now + duration(0.5...3)
        case .toolJam:
            target = Int.random(in: 0..<models.arms.count, using: &faultRandom)
            models.arms[target].failNextToolRequest()
            clearAt = now + duration(0.5...3)
        case .estopInMotion:
            world.pressEstop()
            clearAt = now + duration(1...5)
        case .guardOpen:
            world.openGuard()
            clearAt = now + duration(2...10)
        case .infeedJam:
            models.station.jamInfeed()
            clearAt = now + duration(1...8)
        case .clampFault:
            models.station.injectFault(code: .clampFault)
            clearAt = now + duration(1...8)
        case .testerFault:
            models.station.injectFault(code: .testerFault)
            clearAt = now + duration(1...8)
        case .housingStarvation:
            world.starveHousings(true)
            clearAt = now + duration(3...30)
        case .ledModuleStarvation:
            world.starveLEDModules(true)
            clearAt = now + duration(3...30)
        case .lensStarvation:
            world.starveLenses(true)
            clearAt = now + duration(3...30)
        case .outfeedBlocked:
            world.blockOutfeed(true)
            clearAt = now + duration(3...30)
        case .rejectBinFull:
            world.setRejectBinFull(true)
            clearAt = now + duration(3...30)
        case .ledgerUnwritable:
            clearAt = now + duration(2...30)
            ledgerFailingUntil = clearAt
        case .crash:
            let downtime = duration(0.5...3)
            crash(downtimeNanoseconds: downtime)
            clearAt = now + downtime
        }
        episode = .active(kind, target: target, clearAtNanoseconds: clearAt, leftExecute: false)
    }

    /// The cause of `kind` goes away (the operator fixed it, or it passed).
    private func clear(_ kind: FaultKind, target: Int) {
        let world = models.world
        switch kind {
        case .estopInMotion: world.releaseEstop()
        case .guardOpen: world.closeGuard()
        case .infeedJam: models.station.clearInfeedJam()
        case .clampFault, .testerFault: models.station.clearFault()
        case .housingStarvation: world.starveHousings(false)
        case .ledModuleStarvation: world.starveLEDModules(false)
        case .lensStarvation: world.starveLenses(false)
        case .outfeedBlocked: world.blockOutfeed(false)
        case .rejectBinFull: world.setRejectBinFull(false)
        default: break
        }
    }

    /// True while an episode's cause is still there (the operator waits for it to go).
    private var causeActive: Bool {
        switch episode {
        case .active: true
        default: false
        }
    }

    // MARK: - The operator

    /// A scripted operator: after a stop, once the cause is gone, Clear, Reset, Start (Unhold where needed), each
    /// after a human delay of 1.5–5 s. Empties the reject bin when it is full by count. Places the order.
    private func operate() throws {
        let state = controller.unit.state
        let needsAction: Bool
        switch state {
        case .aborted, .stopped, .idle, .complete: needsAction = true
        case .held: needsAction = controller.unit.machine.stopReason?.cause.code != .ledgerUnavailable
        default: needsAction = false
        }
        let binFull = models.world.rejectBinFull && !isRejectBinEpisode
        guard (needsAction || binFull) && !causeActive else {
            operatorActionAt = nil
            return
        }
        guard let at = operatorActionAt else {
            operatorActionAt = now + UInt64(Double.random(in: 1.5...5, using: &operatorRandom) * 1e9)
            return
        }
        guard now >= at else { return }
        operatorActionAt = nil
        if binFull {
            models.world.emptyRejectBin()
            return
        }
        switch state {
        case .aborted:
            submit(.command(.clear))
        case .stopped, .complete, .idle:
            if !controller.unit.orderActive {
                let order = try ProductionOrder(
                    id: "SHIFT-\(configuration.seed)-\(incarnation)-\(controller.orderSequence + 1)",
                    variantCode: compiledRecipes[configuration.recipeIndex].variant.rawValue, quantity: 1_000_000)
                context.orderIDs[controller.orderSequence + 1] = order.id
                submit(.order(order, recipeIndex: configuration.recipeIndex))
            } else {
                submit(.command(state == .idle ? .start : .reset))
            }
        case .held:
            submit(.command(.unhold))
        default:
            break
        }
    }

    private var isRejectBinEpisode: Bool {
        switch episode {
        case .active(.rejectBinFull, _, _, _): true
        default: false
        }
    }

    private func submit(_ request: ControllerRequest) {
        _ = controller.requests.push((periodIndex, request))
    }

    // MARK: - The end

    private func finish() throws {
        // Drain what is left (a failing ledger writes again at the end of the shift).
        ledgerFailingUntil = 0
        if crashedUntil == nil { try drain() }
        let verification = try writer.ledger.verify()
        guard verification.isValid else { throw breach("ledger-verifies", "\(verification)") }
        report.ledgerHead = verification.head
        let inCellSequence = crashedUntil == nil ? controller.lamp?.serial.sequence : inCell?.lamp.serial.sequence
        // Every housing that entered left exactly once in the ledger (or is still in the cell).
        for (sequence, part) in partOfSerial.sorted(by: { $0.key < $1.key }) {
            if recorded[sequence] == nil && sequence != inCellSequence && !(drainBlocked?.serial.sequence == sequence) {
                throw breach("lamp-exactly-once", "housing \(part) (lamp \(sequence)) entered the cell but is not in the ledger")
            }
        }
        var exitOf: [UInt64: LampDestination] = [:]
        for exit in models.world.exits { exitOf[exit.partID] = exit.destination }
        for (sequence, verdict) in recorded.sorted(by: { $0.key < $1.key }) {
            guard let part = partOfSerial[sequence] else {
                if verdict != .scrapped {
                    throw breach("lamp-exactly-once", "lamp \(sequence) is \(verdict.name) in the ledger but no housing was picked for it")
                }
                report.scrappedWithoutHousing += 1
                continue
            }
            if verdict == .ok && exitOf[part] != .outfeed {
                throw breach("lamp-exactly-once", "lamp \(sequence) is OK in the ledger but housing \(part) did not leave on the outfeed")
            }
            if verdict == .ng && exitOf[part] != .reject {
                throw breach("lamp-exactly-once", "lamp \(sequence) is NG in the ledger but housing \(part) did not go to the reject bin")
            }
        }
        let count = try writer.ledger.count()
        if count - initialLedgerCount != Int64(recorded.count) {
            throw breach(
                "lamp-exactly-once",
                "the ledger holds \(count - initialLedgerCount) new entries, the run appended \(recorded.count)")
        }
        report.meanCycleSeconds = cycleCount == 0 ? 0 : cycleSum / Double(cycleCount)
        report.modelStepsSkipped = models.skippedSteps
        report.modelStepsRun = models.runSteps
        if crashedUntil == nil { report.oee = controller.unit.oeeResult }
    }
}

/// A shift that could not be set up (bad configuration).
public struct ShiftError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
