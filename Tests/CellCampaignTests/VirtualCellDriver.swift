import CellConfig
import CellControl
import CellCore
import CellSimulator
import PackML
import Testing

@testable import CellCampaign

/// One period as the controller left it (after its step): what the per-period rules of the behaviour tests check.
struct DrivenPeriod {
    /// Virtual time of the period, ns.
    var nanoseconds: UInt64
    var state: PackMLState
    /// The station's safety relay as the controller read it this period.
    var safetyOK: Bool
    /// What the step commanded each arm (written to the arm at the next period's exchange).
    var armCommands: [ArmCommand]
}

/// A `VirtualCell` with an operator's hands and eyes, for behaviour tests in virtual time: it runs periods, collects
/// the lamps the controller hands over (as the ledger drain would), answers requests by ticket, records every
/// period's state and arm commands, and checks on the arms' side every streamed setpoint against the datasheet's
/// jump rule. Every wait is bounded in virtual time and fails the test with the cell's state when the bound passes.
///
/// Thread: the test's (one thread owns it, like `VirtualCell`).
final class CellDriver {
    let cell: VirtualCell
    /// Lamps handed over as they left the cell (OK, NG, scrapped), in order.
    private(set) var finished: [LampRecord] = []
    /// Lamps handed over as they entered the cell (the housing was picked), in order.
    private(set) var started: [LampRecord] = []
    /// Acts as the daemon's lamp drain for the lamp-in-cell record: reports each lamp recorded as soon as it starts
    /// (false: the record never becomes durable, as with an unwritable state directory).
    var recordsLampsInCell = true
    /// Every period run so far.
    private(set) var trace: [DrivenPeriod] = []
    /// Breaches of the RA-610's setpoint-jump rule seen on the arms' side (each a message).
    private(set) var setpointJumps: [String] = []
    /// Press tool parameters the controller sent (one per PRESS request).
    private(set) var pressParameters: [UInt16] = []

    private var replies: [UInt64: ControllerReply] = [:]
    private var nextTicket: UInt64 = 1
    private var stream: StreamChecker
    private var lastPressRequest: [UInt16]

    /// A fresh cell on virtual time at 0, Stopped, not yet connected.
    /// - Parameters:
    ///   - recipePaths: the recipes in the controller's table (index = `recipeIndex` of an order).
    ///   - defectRate: share of housings with a hidden defect (0: every lamp is good).
    init(seed: UInt64, defectRate: Double = 0, recipePaths: [String] = [Repository.leftRecipe]) throws {
        let definition = try CellDefinition.load(from: Repository.cell)
        var recipes: [Recipe] = []
        for path in recipePaths { recipes.append(try Recipe.load(from: path, cell: definition)) }
        let serials = InMemorySerials()
        cell = try VirtualCell(
            cell: definition, recipes: recipes, seed: seed, defectRate: defectRate, serials: { serials.take() })
        stream = StreamChecker(
            limits: cell.compiledCell.arms.map(\.limits),
            periodSeconds: Double(cell.settings.periodNanoseconds) / 1e9)
        lastPressRequest = Array(repeating: 0, count: cell.compiledCell.arms.count)
        cell.onArmWrite = { [unowned self] arm, words, streaming in
            if let message = stream.checkAccepted(arm: arm, words: words, armWasStreaming: streaming) {
                setpointJumps.append("at \(virtualTime(cell.nowNanoseconds)): \(message)")
            }
        }
    }

    // MARK: - What an operator sees

    var controller: CellController { cell.controller }
    var models: CellModels { cell.models }
    var state: PackMLState { controller.unit.state }
    /// Virtual time now, s.
    var nowSeconds: Double { Double(cell.nowNanoseconds) / 1e9 }
    /// The lamp in the cell, if any.
    var lampInCell: LampRecord? { controller.lamp }
    /// True when any arm reports IN_MOTION (as the controller read it this period).
    var anyArmInMotion: Bool { cell.image.armInputs.contains { $0.status.contains(.inMotion) } }
    /// Names of the arms reporting IN_MOTION.
    var armsInMotion: [String] {
        cell.image.armInputs.indices.filter { cell.image.armInputs[$0].status.contains(.inMotion) }
            .map { models.armNames[$0] }
    }
    /// Every fault the simulated arms latched so far: (arm name, code).
    var armFaults: [(arm: String, code: UInt16)] {
        models.arms.enumerated().flatMap { index, arm in arm.faultHistory.map { (models.armNames[index], $0.code) } }
    }
    /// Index of the arm called `name` in the cell definition.
    func armIndex(_ name: String) -> Int? { models.armNames.firstIndex(of: name) }

    /// One line on the cell's state, for failure messages.
    var status: String {
        var text = "at \(virtualTime(cell.nowNanoseconds)) the cell is \(state)"
        if let fault = controller.lastFault {
            text += ", last fault \(fault.code) \"\(fault.message)\""
            if let device = fault.deviceIndex { text += " (device #\(device))" }
        }
        if let cause = controller.unit.machine.suspendCause { text += ", suspended \(cause)" }
        if controller.materialWaitShown != .none { text += ", waiting: \(controller.materialWaitShown.name)" }
        text += ", lamp in cell: \(lampInCell.map { "#\($0.serial.sequence)" } ?? "none")"
        text += ", \(finished.count) lamp(s) finished (\(finished.map(\.verdict.name).joined(separator: " ")))"
        if !armsInMotion.isEmpty { text += ", moving: \(armsInMotion.joined(separator: " "))" }
        return text
    }

    // MARK: - Running

    /// Runs one period (exchange with every device, step), then collects lamps and replies and records the period.
    func period() {
        cell.runPeriod()
        while let lamp = controller.lamps.pop() {
            if lamp.stage == .started {
                started.append(lamp)
                if recordsLampsInCell { controller.lampInCellRecorded.store(lamp.serial.sequence, ordering: .releasing) }
            } else {
                finished.append(lamp)
            }
        }
        while let reply = controller.replies.pop() { replies[reply.ticket] = reply }
        let image = cell.image
        trace.append(
            DrivenPeriod(
                nanoseconds: cell.nowNanoseconds - cell.settings.periodNanoseconds, state: state,
                safetyOK: image.stationInputs.signals.contains(.safetyOK),
                armCommands: image.armOutputs.map(\.command)))
        for (index, outputs) in image.armOutputs.enumerated()
        where outputs.toolCommand == .press && outputs.toolRequestID != lastPressRequest[index] {
            lastPressRequest[index] = outputs.toolRequestID
            pressParameters.append(outputs.toolParam)
        }
    }

    /// Runs `seconds` of virtual time.
    func run(seconds duration: Double) {
        let end = cell.nowNanoseconds + UInt64(duration * 1e9)
        while cell.nowNanoseconds < end { period() }
    }

    /// Runs until `condition` holds (checked after every period, and once before the first), at most `seconds` of
    /// virtual time; fails the test at the caller with `what` and the cell's state when it does not.
    /// Returns the virtual time it took, s.
    @discardableResult
    func run(
        until what: String, withinSeconds limit: Double, sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: (CellDriver) -> Bool
    ) throws -> Double {
        let start = cell.nowNanoseconds
        let end = start + UInt64(limit * 1e9)
        var met = condition(self)
        while !met && cell.nowNanoseconds < end {
            period()
            met = condition(self)
        }
        try #require(
            met, "not within \(limit) s of virtual time: \(what); \(status)", sourceLocation: sourceLocation)
        return Double(cell.nowNanoseconds - start) / 1e9
    }

    /// Runs `seconds` of virtual time and returns the cell's state at the first period where `condition` did not
    /// hold, nil when it held throughout.
    func firstBreach(duringSeconds duration: Double, _ condition: (CellDriver) -> Bool) -> String? {
        let end = cell.nowNanoseconds + UInt64(duration * 1e9)
        while cell.nowNanoseconds < end {
            period()
            if !condition(self) { return status }
        }
        return nil
    }

    // MARK: - Requests (the API's, through the controller's request queue)

    /// Sends `request` and runs the period that handles it; returns the controller's reply.
    func request(_ request: ControllerRequest, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> ControllerReply
    {
        let ticket = nextTicket
        nextTicket += 1
        try #require(controller.requests.push((ticket, request)), "request queue full", sourceLocation: sourceLocation)
        period()
        let reply = replies.removeValue(forKey: ticket)
        return try #require(
            reply, "no reply to \(request) in the period that handled it", sourceLocation: sourceLocation)
    }

    /// A PackML command; returns its refusal as text (PackML's or the controller's), nil when accepted.
    func command(_ command: PackMLCommand, sourceLocation: SourceLocation = #_sourceLocation) throws -> String? {
        let reply = try request(.command(command), sourceLocation: sourceLocation)
        if let refusal = reply.refusal { return refusal.description }
        if let message = reply.message { return "\(message)" }
        return nil
    }

    /// What the daemon's `autoStart` does, in virtual time: from Aborted Clear; from Stopped/Idle/Complete place
    /// an order of `quantity` lamps of recipe `recipeIndex` (once), then Reset or Start; until Execute, within
    /// `seconds` of virtual time (an operator's pace: one request every 50 ms). Fails the test when it cannot.
    func produce(
        lamps quantity: UInt32, recipeIndex: Int = 0, withinSeconds limit: Double = 60,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let variant = cell.compiledRecipes[recipeIndex].variant
        let end = cell.nowNanoseconds + UInt64(limit * 1e9)
        var orderPlaced = false
        var refusals: [String] = []
        while state != .execute && cell.nowNanoseconds < end {
            switch state {
            case .aborted:
                if let refusal = try command(.clear, sourceLocation: sourceLocation) { refusals.append(refusal) }
            case .stopped, .complete, .idle:
                if !orderPlaced {
                    let order = try ProductionOrder(
                        id: "TEST-\(controller.orderSequence + 1)", variantCode: variant.rawValue,
                        quantity: quantity)
                    let reply = try request(.order(order, recipeIndex: recipeIndex), sourceLocation: sourceLocation)
                    if reply.refusal == nil && reply.message == nil {
                        orderPlaced = true
                    } else {
                        refusals.append(reply.refusal?.description ?? reply.message.map { "\($0)" } ?? "")
                    }
                }
                let next: PackMLCommand = state == .idle ? .start : .reset
                if let refusal = try command(next, sourceLocation: sourceLocation) { refusals.append(refusal) }
            default:
                period()
            }
            for _ in 0..<12 where state != .execute { period() }
        }
        try #require(
            state == .execute,
            "the cell did not reach Execute within \(limit) s of virtual time; \(status); refusals: \(refusals.suffix(3))",
            sourceLocation: sourceLocation)
    }
}

/// "12.345 s" (virtual time).
func virtualTime(_ nanoseconds: UInt64) -> String {
    let milliseconds = nanoseconds / 1_000_000
    let fraction = String(milliseconds % 1000)
    return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) s"
}

extension LampRecord {
    /// The names of the measurements out of their windows (the NG reasons).
    var reasons: Set<String> {
        Set(MeasurementKind.allCases.filter { outOfWindowMask & (1 << $0.rawValue) != 0 }.map(\.name))
    }

    /// "#3 NG (press_force)", "#4 SCRAPPED (cell aborted)", for messages.
    var line: String {
        var text = "#\(serial.sequence) \(verdict.name)"
        if verdict == .ng { text += " (\(reasons.sorted().joined(separator: ", ")))" }
        if verdict == .scrapped { text += " (\(scrapReason.text))" }
        return text
    }
}

extension Repository {
    static let rightRecipe = root + "/Hardware/recipes/right.toml"
}
