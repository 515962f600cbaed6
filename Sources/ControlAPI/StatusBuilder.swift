import CellCore
import CellRuntime
import CellService
import ControlAPIClient
import Foundation
import PackML

/// Builds status documents from the daemon's published snapshot. Thread: any but the control thread (reads the
/// timing histograms under their lock; the control thread only try-locks them).
struct StatusBuilder: Sendable {
    let cellID: String
    let armNames: [String]
    let stationName: String
    let recipeIDs: [String]
    let version: String
    let periodNanoseconds: UInt64

    /// Every device name in cell-definition order (arms, then the station): the `deviceIndex` of stop causes.
    var deviceNames: [String] { armNames + [stationName] }

    func build(
        snapshot: CellSnapshot, figures: [ControlPhase: PhaseFigures], loopCounters: LoopCounters, uptimeSeconds: Double, cycleTime: StatusDocument.CycleTime, ledger: LedgerHead?
    ) -> StatusDocument {
        let unit = snapshot.unit
        let machine = unit.machine
        var stopReason: StatusDocument.StopReasonText?
        if let reason = machine.stopReason {
            var text = StatusDocument.StopReasonText(
                code: Int(reason.cause.code.rawValue), kind: Self.name(reason.cause.code),
                message: reason.cause.message.description, action: Self.name(reason.action),
                inState: reason.state.description, device: reason.cause.deviceIndex.flatMap { deviceName(Int($0)) })
            text.remedy = Self.remedy(text, state: unit.state)
            stopReason = text
        }
        let packml = StatusDocument.PackML(
            state: unit.state.description, stateCode: Int(unit.state.rawValue), mode: machine.mode.description,
            stateSeconds: Double(machine.times.stateCurrentNanoseconds) / 1e9, stateChanges: machine.stateChangeCount,
            stopReason: stopReason,
            suspendCause: unit.state == .suspended || unit.state == .suspending ? machine.suspendCause.map(Self.name) : nil,
            materialWait: snapshot.materialWait == .none ? nil : snapshot.materialWait.name.description,
            modesAvailable: PackMLStateMachine.acceptsModeChange(in: unit.state)
                ? UnitMode.allCases.filter { $0 != machine.mode }.map { $0.description.lowercased() } : [],
            commandsAvailable: PackMLCommand.allCases.filter { PackMLStateMachine.target(of: $0, from: unit.state) != nil }
                .map { $0.description.lowercased() })
        var order: StatusDocument.Order?
        if let assigned = unit.order {
            order = StatusDocument.Order(
                id: assigned.id, variant: Variant(rawValue: assigned.variantCode)?.name ?? "\(assigned.variantCode)",
                quantity: assigned.quantity, produced: assigned.produced, remaining: assigned.remaining,
                active: unit.orderActive, sequence: snapshot.orderSequence,
                recipe: recipeIDs.indices.contains(snapshot.activeRecipe) ? recipeIDs[snapshot.activeRecipe] : nil)
        }
        let counters = unit.counters
        let counts = StatusDocument.Counts(
            processed: counters.processed.count, good: counters.good, defective: counters.defective.count,
            scrapped: counters.scrapped.count, processedTotal: counters.processed.accumulated,
            goodTotal: counters.goodAccumulated, defectiveTotal: counters.defective.accumulated,
            scrappedTotal: counters.scrapped.accumulated, consumedHousings: counters.consumed(.housing).accumulated,
            consumedLEDModules: counters.consumed(.ledModule).accumulated,
            consumedLenses: counters.consumed(.lens).accumulated, lampsFinished: snapshot.lampsFinished,
            lampsNotQueued: snapshot.lampsNotQueued)
        let result = unit.oeeResult
        let oee = StatusDocument.OEE(
            availability: result.availability, performance: result.performance, quality: result.quality,
            oee: result.oee, plannedSeconds: Double(unit.oee.plannedNanoseconds) / 1e9,
            runSeconds: Double(unit.oee.runNanoseconds) / 1e9,
            idealCycleSeconds: Double(unit.oee.idealCycleNanoseconds) / 1e9)
        var phases: [StatusDocument.Phase] = []
        for phase in ControlPhase.allCases {
            let figure = figures[phase]
            phases.append(
                StatusDocument.Phase(
                    name: phase.name, count: figure?.count ?? 0, meanMicroseconds: (figure?.meanNanoseconds ?? 0) / 1e3,
                    p50Microseconds: Double(figure?.p50Nanoseconds ?? 0) / 1e3,
                    p99Microseconds: Double(figure?.p99Nanoseconds ?? 0) / 1e3,
                    p999Microseconds: Double(figure?.p999Nanoseconds ?? 0) / 1e3,
                    maxMicroseconds: Double(figure?.maxNanoseconds ?? 0) / 1e3))
        }
        let wake = phases[ControlPhase.wakeLatency.rawValue]
        let loop = StatusDocument.ControlLoop(
            periodMicroseconds: Double(periodNanoseconds) / 1e3, periodsRun: loopCounters.periodsRun,
            overruns: loopCounters.overruns, wakeLatencyP99Microseconds: wake.p99Microseconds,
            wakeLatencyP999Microseconds: wake.p999Microseconds, wakeLatencyMaxMicroseconds: wake.maxMicroseconds,
            phases: phases, droppedSamples: loopCounters.droppedSamples, minorPageFaults: loopCounters.minorPageFaults,
            majorPageFaults: loopCounters.majorPageFaults)
        var devices: [StatusDocument.Device] = []
        for index in 0..<snapshot.armCount {
            devices.append(arm(index, snapshot))
        }
        devices.append(station(snapshot))
        return StatusDocument(
            apiVersion: 1, version: version, cellID: cellID,
            snapshotAt: RFC3339.text(wallNanoseconds: snapshot.wallNanoseconds), uptimeSeconds: uptimeSeconds,
            packml: packml, order: order, counts: counts, oee: oee, cycleTime: cycleTime,
            lampInCell: snapshot.lampInCell.map { lamp($0, inProgress: true) },
            lastLamp: snapshot.lastLamp.map { lamp($0, inProgress: false) }, controlLoop: loop, devices: devices,
            ledger: ledger)
    }

    /// A hash of what a watcher cares about: everything but times, timing figures and uptime. Positions count
    /// to 1 mrad.
    func changeSignature(_ document: StatusDocument) -> Int {
        var hasher = Hasher()
        var quiet = document
        quiet.snapshotAt = ""
        quiet.uptimeSeconds = 0
        quiet.packml.stateSeconds = 0
        quiet.oee.plannedSeconds = 0
        quiet.oee.runSeconds = 0
        quiet.oee.availability = nil
        quiet.oee.performance = nil
        quiet.oee.oee = nil
        quiet.plant?.lagSeconds = nil
        quiet.controlLoop = StatusDocument.ControlLoop(
            periodMicroseconds: 0, periodsRun: 0, overruns: document.controlLoop.overruns,
            wakeLatencyP99Microseconds: 0, wakeLatencyP999Microseconds: 0, wakeLatencyMaxMicroseconds: 0, phases: [],
            droppedSamples: 0)
        for index in quiet.devices.indices {
            quiet.devices[index].positionsRadians = quiet.devices[index].positionsRadians?.map { ($0 * 1000).rounded() }
            quiet.devices[index].targetsRadians = quiet.devices[index].targetsRadians?.map { ($0 * 1000).rounded() }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        hasher.combine((try? encoder.encode(quiet)) ?? Data())
        return hasher.finalize()
    }

    private func deviceName(_ index: Int) -> String? { deviceNames.indices.contains(index) ? deviceNames[index] : nil }

    private func arm(_ index: Int, _ snapshot: CellSnapshot) -> StatusDocument.Device {
        let inputs = snapshot.armInputs[index]
        let link = inputs.link
        let statusNames: [(ArmStatus, String)] = [
            (.powered, "POWERED"), (.enabled, "ENABLED"), (.inMotion, "IN_MOTION"), (.fault, "FAULT"),
            (.estop, "ESTOP"), (.protectiveStop, "PROTECTIVE_STOP"), (.streaming, "STREAMING"),
            (.inPosition, "IN_POSITION"), (.remoteReady, "REMOTE_READY"),
        ]
        let commandNames: [(ArmCommand, String)] = [
            (.enable, "ENABLE"), (.reset, "RESET"), (.stop, "STOP"), (.stream, "STREAM"),
        ]
        let toolNames: [(ToolState, String)] = [
            (.holdingPart, "HOLDING_PART"), (.busy, "BUSY"), (.done, "DONE"), (.error, "ERROR"),
        ]
        let command = snapshot.armCommands[index]
        return StatusDocument.Device(
            name: armNames.indices.contains(index) ? armNames[index] : "arm\(index)", kind: "arm",
            connected: link.state == .ok, link: Self.name(link.state), linkDetail: link.detail,
            consecutiveFailures: link.consecutiveFailures,
            status: statusNames.filter { inputs.status.contains($0.0) }.map(\.1),
            faultCode: Self.hex(inputs.faultCode), faultCodeValue: inputs.faultCode,
            faultName: ArmFaultCode.name(inputs.faultCode).description, model: link.model,
            firmware: link.firmware, serialNumber: link.serialNumber,
            positionsRadians: (0..<armJointCount).map { inputs.actualPositionsRadians[$0] },
            targetsRadians: (0..<armJointCount).map { snapshot.armTargetsRadians[index][$0] },
            streaming: snapshot.armStreaming[index],
            command: commandNames.filter { command.contains($0.0) }.map(\.1),
            tool: toolNames.filter { inputs.toolState.contains($0.0) }.map(\.1))
    }

    private func station(_ snapshot: CellSnapshot) -> StatusDocument.Device {
        let inputs = snapshot.stationInputs
        let link = inputs.link
        var status: [String] = []
        if inputs.isReady { status.append("READY") }
        if inputs.isFaulted { status.append("FAULT") }
        let signalNames: [(StationSignals, String)] = [
            (.housingAtInfeed, "HOUSING_AT_INFEED"), (.fixtureClamped, "FIXTURE_CLAMPED"),
            (.partInFixture, "PART_IN_FIXTURE"), (.leakTestBusy, "LEAK_TEST_BUSY"),
            (.lightTestBusy, "LIGHT_TEST_BUSY"), (.outfeedClear, "OUTFEED_CLEAR"), (.safetyOK, "SAFETY_OK"),
            (.estopPressed, "ESTOP_PRESSED"), (.guardOpen, "GUARD_OPEN"),
            (.ledModuleAvailable, "LED_MODULE_AVAILABLE"), (.lensAvailable, "LENS_AVAILABLE"),
            (.rejectBinFull, "REJECT_BIN_FULL"),
        ]
        let coilNames: [(StationCoils, String)] = [
            (.fixtureClamp, "FIXTURE_CLAMP"), (.infeedAdvance, "INFEED_ADVANCE"),
            (.leakTestStart, "LEAK_TEST_START"), (.lightTestStart, "LIGHT_TEST_START"),
            (.outfeedAdvance, "OUTFEED_ADVANCE"), (.lampGreen, "LAMP_GREEN"), (.lampAmber, "LAMP_AMBER"),
            (.lampRed, "LAMP_RED"),
        ]
        return StatusDocument.Device(
            name: stationName, kind: "station", connected: link.state == .ok, link: Self.name(link.state),
            linkDetail: link.detail, consecutiveFailures: link.consecutiveFailures, status: status,
            faultCode: Self.hex(inputs.faultCode), faultCodeValue: inputs.faultCode,
            faultName: StationFaultCode.name(inputs.faultCode).description,
            signals: signalNames.filter { inputs.signals.contains($0.0) }.map(\.1),
            coils: coilNames.filter { inputs.coils.contains($0.0) }.map(\.1), housingLot: inputs.housingLot,
            ledModuleLot: inputs.ledModuleLot, lensLot: inputs.lensLot,
            variant: Variant(rawValue: inputs.variant)?.name)
    }

    private func lamp(_ record: LampRecord, inProgress: Bool) -> StatusDocument.Lamp {
        var reasons: [String] = []
        if record.verdict == .ng {
            for kind in MeasurementKind.allCases where record.outOfWindowMask & (1 << kind.rawValue) != 0 {
                reasons.append(kind.name)
            }
        } else if record.verdict == .scrapped, !inProgress, record.scrapReason != .none {
            reasons.append(record.scrapReason.text)
        }
        return StatusDocument.Lamp(
            serial: record.serial.text(cellID: cellID), variant: Variant(rawValue: record.variant)?.name ?? "\(record.variant)",
            verdict: inProgress ? "IN_PROGRESS" : record.verdict.name, reasons: reasons,
            cycleTimeSeconds: inProgress ? nil : record.cycleTimeSeconds)
    }

    static func hex(_ code: UInt16) -> String {
        let digits = String(code, radix: 16, uppercase: true)
        return "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// What the operator does next after `reason`, in `state`: the fix for its cause, then the command that moves
    /// the cell on (Clear in Aborted, Reset in Stopped, Start in Idle, Unhold in Held). nil once producing again.
    static func remedy(_ reason: StatusDocument.StopReasonText, state: PackMLState) -> String? {
        let next: String
        switch state {
        case .aborted: next = ", then Clear"
        case .stopped: next = ", then Reset"
        case .idle: next = ", then Start"
        case .held: next = ", then Unhold"
        case .complete: next = ", then Reset for the next order"
        case .aborting, .stopping, .holding, .clearing, .resetting: next = "; wait for the cell to settle"
        default: return nil
        }
        let device = reason.device ?? "a device"
        let fix: String
        switch reason.kind {
        case "emergencyStop": fix = "E-stop pressed: release the e-stop button"
        case "safetyInterlock": fix = "Safety chain open (guard door): close it"
        case "deviceFault": fix = "\(device) reports a fault (\(reason.message)): remove its cause"
        case "deviceLost": fix = "\(device) does not answer: check its power and network cable"
        case "processFault": fix = "Process fault (\(reason.message)): check the station"
        case "ledgerUnavailable": fix = "The ledger cannot record lamps (\(reason.message)): call maintenance (disk)"
        case "operatorStop": fix = "Stopped by a Stop command"
        case "operatorHold": fix = "Held by a Hold command"
        case "operatorAbort": fix = "Aborted by an Abort command"
        default: fix = reason.message
        }
        return fix + next
    }

    static func name(_ state: DeviceLinkState) -> String {
        switch state {
        case .ok: "ok"
        case .disconnected: "disconnected"
        case .timeout: "timeout"
        case .exception: "exception"
        case .badData: "badData"
        }
    }

    static func name(_ code: StopReasonCode) -> String {
        switch code {
        case .operatorStop: "operatorStop"
        case .operatorHold: "operatorHold"
        case .operatorAbort: "operatorAbort"
        case .emergencyStop: "emergencyStop"
        case .safetyInterlock: "safetyInterlock"
        case .deviceFault: "deviceFault"
        case .deviceLost: "deviceLost"
        case .processFault: "processFault"
        case .ledgerUnavailable: "ledgerUnavailable"
        case .other: "other"
        }
    }

    static func name(_ action: StopAction) -> String {
        switch action {
        case .abort: "abort"
        case .stop: "stop"
        case .hold: "hold"
        }
    }

    static func name(_ cause: SuspendCause) -> String {
        switch cause {
        case .operatorCommand: "operator"
        case .starved: "starved"
        case .blocked: "blocked"
        }
    }
}

