import CellCore
import Motion
import PackML

extension CellController {
    // MARK: - Lanes

    /// Runs every lane of the active recipe for one period. With `mayStart` false, steps under way finish but no
    /// new step starts (Holding, Suspending, Held…). Returns true when the lanes are quiescent: no step under way
    /// except waiting for material.
    func runLanes(_ io: inout ProcessImage, mayStart: Bool) -> Bool {
        let recipe = recipes[activeRecipe]
        var quiescent = true
        for laneIndex in recipe.lanes.indices {
            var state = lanes[laneIndex]
            if !runLane(recipe.lanes[laneIndex], &state, io: &io, mayStart: mayStart) { quiescent = false }
            lanes[laneIndex] = state
        }
        return quiescent
    }

    /// Runs one lane for one period; returns true when it is quiescent (no step under way but a material wait).
    func runLane(_ lane: CompiledLane, _ state: inout LaneState, io: inout ProcessImage, mayStart: Bool) -> Bool {
        var passes = 0
        while passes < Self.maximumStepsPerPeriod {
            passes += 1
            let step = lane.steps[state.cursor]
            if state.active {
                guard poll(step, lane: lane, &state, io: &io) else {
                    // Waiting for the infeed, or for the lamp-in-cell record before the housing grip, is waiting
                    // for something outside the cell: the lane is at rest.
                    return step == .station(.infeedAdvance) || isGripAwaitingRecord(step, lane: lane)
                }
                state.active = false
                state.cursor = (state.cursor + 1) % lane.steps.count
                if lane.wraps == false && state.cursor == 0 { state.finished = true }
                continue
            }
            if state.finished { return true }
            let wait = materialNeeded(step, lane: lane, io: io)
            if wait != state.materialWait {
                state.materialWait = wait
                state.materialWaitSinceNanoseconds = nowNanoseconds
            }
            guard mayStart, wait == .none, canStart(step, state) else { return true }
            state.phase = 0
            state.active = true
            state.startedNanoseconds = nowNanoseconds
            state.settleSinceNanoseconds = nowNanoseconds
            start(step, lane: lane, &state, io: &io)
            if unit.state == .aborting { return false }
        }
        return !state.active
    }

    /// What must be there before `step` can start, judged from the station's signals.
    private func materialNeeded(_ step: CompiledStep, lane: CompiledLane, io: ProcessImage) -> MaterialWait {
        let signals = io.stationInputs.signals
        switch step {
        case .tool(.grip, _):
            guard let arm = lane.arm, let at = armAt[arm] else { return .none }
            switch cell.arms[arm].points[at].location {
            case .ledFeeder: return signals.contains(.ledModuleAvailable) ? .none : .ledModule
            case .lensFeeder: return signals.contains(.lensAvailable) ? .none : .lens
            case .infeed: return signals.contains(.housingAtInfeed) ? .none : .housing
            default: return .none
            }
        case .unload:
            guard let lamp else { return .none }
            if lamp.verdict == .ok || pendingVerdict(lamp) == .ok {
                return signals.contains(.outfeedClear) ? .none : .outfeed
            }
            return signals.contains(.rejectBinFull) ? .rejectBin : .none
        default:
            return .none
        }
    }

    private func canStart(_ step: CompiledStep, _ state: LaneState) -> Bool {
        switch step {
        case .waitFor(let event):
            return eventSignals[event] > state.waited[event]
        case .station(.infeedAdvance):
            // An order stops bringing in housings once enough lamps are under way.
            guard unit.orderActive, let order = unit.order else { return true }
            return order.remaining > (lamp == nil ? 0 : 1)
        default:
            return true
        }
    }

    private func start(_ step: CompiledStep, lane: CompiledLane, _ state: inout LaneState, io: inout ProcessImage) {
        switch step {
        case .move(let point, let speed):
            guard let arm = lane.arm else { return }
            startMove(arm: arm, point: point, speed: speed)
        case .path(let first, let count, let speed, let planned):
            guard let arm = lane.arm else { return }
            armAt[arm] = lane.pathPoints[first + count - 1]
            if planned >= 0, arms[arm].follow(lane.plannedPaths[planned].trajectory, plannedFrom: lane.plannedPaths[planned].start) {
                return
            }
            pathBuffer.removeAll(keepingCapacity: true)
            for offset in 0..<min(count, motionMaxWaypointCount) {
                pathBuffer.append(cell.arms[arm].points[lane.pathPoints[first + offset]].positionsRadians)
            }
            if !arms[arm].path(through: pathBuffer, limits: cell.arms[arm].limits.scaled(velocity: speed)) {
                abort(StopCause(code: .other, message: "path planning refused", deviceIndex: UInt8(arm)))
            }
            armAt[arm] = lane.pathPoints[first + count - 1]
        case .tool(let command, let param):
            guard let arm = lane.arm else { return }
            startTool(arm: arm, command: command, param: param, io: io)
        case .station(let action):
            startStation(action, &state, io: &io)
        case .waitFor(let event):
            state.waited[event] &+= 1
        case .signal(let event):
            eventSignals[event] &+= 1
        case .unload(let ok, let ng):
            guard let arm = lane.arm else { return }
            if var current = lamp, current.verdict == .scrapped {
                judge(&current)
                lamp = current
            }
            startMove(arm: arm, point: lamp?.verdict == .ok ? ok : ng, speed: 1)
        }
    }

    /// True when `step` has finished this period.
    private func poll(_ step: CompiledStep, lane: CompiledLane, _ state: inout LaneState, io: inout ProcessImage) -> Bool {
        switch step {
        case .move, .path, .unload:
            guard let arm = lane.arm else { return true }
            if arms[arm].isMoving {
                state.settleSinceNanoseconds = nowNanoseconds
                return false
            }
            if arms[arm].isSettled(io.armInputs[arm]) { return true }
            if nowNanoseconds &- state.settleSinceNanoseconds > settings.settleTimeoutNanoseconds {
                abort(StopCause(code: .deviceFault, message: "arm did not reach position", deviceIndex: UInt8(arm)))
            }
            return false
        case .tool(let command, let param):
            guard let arm = lane.arm else { return true }
            if isGripAwaitingRecord(step, lane: lane), let awaited = gripAwaitingRecord {
                // The grip goes out in Execute only (not while Holding, Held or Suspended), once the record is
                // durable. The wait is timed in Execute only: it starts again after an Unhold.
                guard unit.state == .execute else {
                    gripAwaitingRecord?.sinceNanoseconds = nowNanoseconds
                    return false
                }
                guard lampInCellRecorded.load(ordering: .acquiring) == awaited.sequence else {
                    if nowNanoseconds &- awaited.sinceNanoseconds > settings.lampInCellRecordTimeoutNanoseconds {
                        hold(StopCause(
                            code: .other,
                            message: "the lamp-in-cell record is not written (state directory): the housing is picked once it is"))
                    }
                    return false
                }
                gripAwaitingRecord = nil
                arms[arm].requestTool(command, param: param)
                state.startedNanoseconds = nowNanoseconds
                return false
            }
            guard let outcome = arms[arm].toolOutcome(io.armInputs[arm]) else {
                if nowNanoseconds &- state.startedNanoseconds > settings.toolTimeoutNanoseconds {
                    abort(StopCause(code: .deviceFault, message: "tool request timed out", deviceIndex: UInt8(arm)))
                }
                return false
            }
            finishTool(arm: arm, command: command, outcome: outcome, io: io)
            return true
        case .station(let action):
            return pollStation(action, &state, io: &io)
        case .waitFor, .signal:
            return true
        }
    }

    /// True when `step` is the loader's housing grip waiting for the lamp-in-cell record of the lamp in the cell.
    private func isGripAwaitingRecord(_ step: CompiledStep, lane: CompiledLane) -> Bool {
        guard case .tool(.grip, _) = step, lane.arm == cell.loaderArm, let awaited = gripAwaitingRecord else {
            return false
        }
        return awaited.sequence == lamp?.serial.sequence
    }

    private func startMove(arm: Int, point: Int, speed: Double) {
        let limits = cell.arms[arm].limits.scaled(velocity: speed)
        if !arms[arm].move(to: cell.arms[arm].points[point].positionsRadians, limits: limits) {
            abort(StopCause(code: .other, message: "motion planning refused", deviceIndex: UInt8(arm)))
        }
        armAt[arm] = point
    }

    // MARK: - Tools and the lamp

    private func location(ofArm arm: Int) -> TeachPointLocation {
        guard let at = armAt[arm] else { return .none }
        return cell.arms[arm].points[at].location
    }

    private func startTool(arm: Int, command: ArmToolCommand, param: UInt16, io: ProcessImage) {
        if arm == cell.loaderArm { gripAwaitingRecord = nil }
        if command == .grip {
            switch location(ofArm: arm) {
            case .infeed where arm == cell.loaderArm:
                beginLamp(io)
                if let lamp {
                    // The grip goes out once the drain reports the lamp-in-cell record durable (`poll`).
                    gripAwaitingRecord = (lamp.serial.sequence, nowNanoseconds)
                    return
                }
            case .ledFeeder where heldKind[arm] != .ledFeeder:
                heldLot[arm] = io.stationInputs.ledModuleLot
                heldKind[arm] = .ledFeeder
            case .lensFeeder where heldKind[arm] != .lensFeeder:
                heldLot[arm] = io.stationInputs.lensLot
                heldKind[arm] = .lensFeeder
            default:
                break
            }
        }
        arms[arm].requestTool(command, param: param)
    }

    private func finishTool(
        arm: Int, command: ArmToolCommand, outcome: (succeeded: Bool, result: UInt16), io: ProcessImage
    ) {
        guard outcome.succeeded else {
            abort(StopCause(code: .deviceFault, message: "tool request failed", deviceIndex: UInt8(arm)))
            return
        }
        switch command {
        case .grip:
            if outcome.result == 0 {
                abort(StopCause(code: .processFault, message: "no part gripped", deviceIndex: UInt8(arm)))
            }
        case .release:
            let at = location(ofArm: arm)
            if at == .fixture, var current = lamp {
                if heldKind[arm] == .ledFeeder {
                    current.ledModuleLot = heldLot[arm]
                    unit.recordConsumed(.ledModule)
                }
                if heldKind[arm] == .lensFeeder {
                    current.lensLot = heldLot[arm]
                    unit.recordConsumed(.lens)
                }
                lamp = current
            }
            heldKind[arm] = .none
            heldLot[arm] = 0
            if (at == .outfeed || at == .reject) && arm == cell.loaderArm { finishLamp() }
        case .screw:
            if var current = lamp, screwsDriven < MeasurementKind.maximumScrews {
                current.measurements[.screwTorque(screwsDriven)] = Double(outcome.result) / 100
                screwsDriven += 1
                lamp = current
            }
        case .press:
            lamp?.measurements[.pressForce] = Double(outcome.result)
        case .dispenseOff:
            lamp?.measurements[.glueVolume] = Double(outcome.result) / 100
        case .none, .dispenseOn:
            break
        }
    }

    private func beginLamp(_ io: ProcessImage) {
        guard lamp == nil else { return }
        guard let sequence = serials() else {
            hold(StopCause(code: .other, message: "no lamp serial numbers left (serial state file)"))
            return
        }
        var record = LampRecord(
            serial: LampSerial(
                dateCode: LampSerial.dateCode(wallNanoseconds: wallNanoseconds), sequence: sequence),
            variant: recipes[activeRecipe].variant.rawValue, startWallNanoseconds: wallNanoseconds,
            startMonotonicNanoseconds: nowNanoseconds)
        record.recipeIndex = UInt8(truncatingIfNeeded: activeRecipe)
        record.orderSequence = orderSequence
        record.housingLot = io.stationInputs.housingLot
        lamp = record
        screwsDriven = 0
        var started = record
        started.stage = .started
        if !lamps.push(started) { lampsNotQueued &+= 1 }
        unit.recordConsumed(.housing)
    }

    /// The verdict `lamp` would get now.
    func pendingVerdict(_ lamp: LampRecord) -> LampVerdict {
        var copy = lamp
        judge(&copy)
        return copy.verdict
    }

    /// Judges every required measurement against its window: OK, or NG with the reasons in `outOfWindowMask`.
    func judge(_ lamp: inout LampRecord) {
        let windows = recipes[activeRecipe].windows
        var bad: UInt16 = 0
        // By raw value (0, 1, … contiguous), not `allCases`: at -Onone that builds an array on every call.
        var raw = 0
        while let kind = MeasurementKind(rawValue: raw) {
            raw += 1
            guard windows.requiredMask & (1 << kind.rawValue) != 0 else { continue }
            guard let value = lamp.measurements[kind], windows.contains(kind, value) else {
                bad |= 1 << kind.rawValue
                continue
            }
        }
        lamp.outOfWindowMask = bad
        lamp.verdict = bad == 0 ? .ok : .ng
    }

    private func finishLamp() {
        guard var record = lamp else { return }
        if record.verdict == .scrapped { judge(&record) }
        record.endWallNanoseconds = wallNanoseconds
        record.endMonotonicNanoseconds = nowNanoseconds
        unit.recordProcessedLamp(defective: record.verdict != .ok)
        cycleTimeLastSeconds = record.cycleTimeSeconds
        hand(record)
        lamp = nil
    }

    /// Resolves the lamp in the cell as scrapped (abort, stop). Physically it is taken out at the next Reset.
    func scrapLamp(_ reason: ScrapReason) {
        guard var record = lamp else { return }
        record.verdict = .scrapped
        record.scrapReason = reason
        record.endWallNanoseconds = wallNanoseconds
        record.endMonotonicNanoseconds = nowNanoseconds
        unit.recordScrapped()
        hand(record)
        lamp = nil
        gripAwaitingRecord = nil
    }

    private func hand(_ finished: LampRecord) {
        var record = finished
        record.stage = .finished
        lastLamp = record
        if !lamps.push(record) { lampsNotQueued &+= 1 }
        lampsFinished &+= 1
    }

    // MARK: - Station actions

    private func startStation(_ action: StationAction, _ state: inout LaneState, io: inout ProcessImage) {
        switch action {
        case .clamp: io.stationOutputs.coils.insert(.fixtureClamp)
        case .unclamp: io.stationOutputs.coils.remove(.fixtureClamp)
        case .infeedAdvance:
            if !io.stationInputs.signals.contains(.housingAtInfeed) {
                io.stationOutputs.infeedRequests &+= 1
                state.indexRequestedNanoseconds = nowNanoseconds
                state.phase = 1
            } else {
                state.phase = 3  // a housing is already there
            }
        case .outfeedAdvance:
            io.stationOutputs.outfeedRequests &+= 1
            state.phase = 1
        case .leakTest:
            io.stationOutputs.coils.remove(.leakTestStart)
            state.captured = io.stationInputs.leakTestCount
        case .lightTest:
            io.stationOutputs.coils.remove(.lightTestStart)
            state.captured = io.stationInputs.lightTestCount
        }
    }

    private func pollStation(_ action: StationAction, _ state: inout LaneState, io: inout ProcessImage) -> Bool {
        let inputs = io.stationInputs
        let elapsed = nowNanoseconds &- state.startedNanoseconds
        switch action {
        case .clamp, .unclamp:
            let wanted = action == .clamp
            if inputs.signals.contains(.fixtureClamped) == wanted && inputs.coils.contains(.fixtureClamp) == wanted {
                return true
            }
        case .infeedAdvance, .outfeedAdvance:
            let coil: StationCoils = action == .infeedAdvance ? .infeedAdvance : .outfeedAdvance
            switch state.phase {
            case 1 where inputs.coils.contains(coil): state.phase = 2
            case 2 where !inputs.coils.contains(coil): state.phase = 3
            default: break
            }
            if state.phase == 3 {
                if action == .outfeedAdvance { return true }
                if inputs.signals.contains(.housingAtInfeed) {
                    state.materialWait = .none
                    return true
                }
                // The index ended without a housing (nothing upstream): ask again a little later.
                if nowNanoseconds &- state.indexRequestedNanoseconds >= settings.infeedRetryNanoseconds {
                    io.stationOutputs.infeedRequests &+= 1
                    state.indexRequestedNanoseconds = nowNanoseconds
                    state.phase = 1
                }
            }
            if action == .infeedAdvance {
                if elapsed > settings.infeedTimeoutNanoseconds, state.materialWait != .housing {
                    state.materialWait = .housing
                    state.materialWaitSinceNanoseconds = nowNanoseconds
                }
                return false
            }
        case .leakTest, .lightTest:
            let coil: StationCoils = action == .leakTest ? .leakTestStart : .lightTestStart
            let count = action == .leakTest ? inputs.leakTestCount : inputs.lightTestCount
            switch state.phase {
            case 0 where !inputs.coils.contains(coil):
                io.stationOutputs.coils.insert(coil)  // the 0→1 edge
                state.phase = 1
            case 1 where count != state.captured:
                io.stationOutputs.coils.remove(coil)
                if action == .leakTest {
                    lamp?.measurements[.leakRate] = Double(inputs.leakRateHundredths) / 100
                } else {
                    lamp?.measurements[.luminousIntensity] = Double(inputs.luminousIntensityCandela)
                    lamp?.measurements[.cutoffAngle] = Double(inputs.cutoffAngleHundredthsDegree) / 100
                }
                return true
            default:
                break
            }
        }
        if elapsed > settings.stationActionTimeoutNanoseconds {
            abort(StopCause(code: .deviceFault, message: "station action timed out", deviceIndex: UInt8(arms.count)))
        }
        return false
    }

    func updateStackLight(_ outputs: inout StationOutputs) {
        // Not an array literal: at -Onone that builds an Array on the heap every period.
        outputs.coils.subtract(StationCoils.lampGreen.union(.lampAmber).union(.lampRed))
        switch unit.state {
        case .execute: outputs.coils.insert(.lampGreen)
        case .aborting, .aborted, .stopping, .stopped, .clearing: outputs.coils.insert(.lampRed)
        default: outputs.coils.insert(.lampAmber)
        }
    }
}
