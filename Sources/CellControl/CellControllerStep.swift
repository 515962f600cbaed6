import CellCore
import Motion
import PackML

extension CellController {
    /// Maximum steps a lane may pass in one period (signals and waits take no time).
    static let maximumStepsPerPeriod = 8

    /// One control period: requests, supervision, PackML, the recipe, the arms' streams.
    /// Thread: the control thread, between reading and writing the devices. Does not allocate, block or log.
    public func step(_ io: inout ProcessImage, nowNanoseconds: UInt64, wallNanoseconds: UInt64) {
        self.nowNanoseconds = nowNanoseconds
        self.wallNanoseconds = wallNanoseconds
        let previousState = unit.state
        unit.advance(toNanoseconds: nowNanoseconds)

        handleRequests(io)
        supervise(io)
        if unit.state != previousState { entered(unit.state, io: io) }

        let before = unit.state
        run(&io)
        if unit.state != before { entered(unit.state, io: io) }

        for index in arms.indices {
            arms[index].update(io.armInputs[index], into: &io.armOutputs[index], periodSeconds: periodSeconds)
            io.armOutputs[index].watchdogMilliseconds = settings.armWatchdogMilliseconds
            io.armOutputs[index].streamPeriodMicroseconds = UInt16(
                clamping: settings.periodNanoseconds / 1000)
        }
        updateStackLight(&io.stationOutputs)
    }

    // MARK: - Requests

    private func handleRequests(_ io: ProcessImage) {
        while let (ticket, request) = requests.pop() {
            var reply = ControllerReply(ticket: ticket, refusal: nil, message: nil)
            let before = unit.state
            switch request {
            case .command(let command):
                if command == .reset, let cause = abortCause(io, includeArmFaults: true) {
                    // Reset would power the arms: refused while a device is missing or the safety chain is open.
                    lastFault = cause
                    reply.message = cause.message
                } else {
                    // Clear is judged, and refused, on the abort cause present now.
                    let present = abortCause(io, includeArmFaults: false)
                    if case .failure(let refusal) = unit.command(
                        command, causeGone: present == nil, presentCause: present)
                    {
                        reply.refusal = refusal
                    }
                }
            case .mode(let mode):
                if case .failure(let refusal) = unit.changeMode(to: mode) { reply.refusal = refusal }
            case .order(let newOrder, let recipeIndex):
                if recipeIndex < 0 || recipeIndex >= recipes.count {
                    reply.message = "no recipe for that variant"
                } else if recipeIndex != activeRecipe && unit.state != .stopped && unit.state != .aborted {
                    reply.message = "another variant needs a Reset first (the lanes restart from the top)"
                } else if case .failure(let refusal) = unit.assignOrder(newOrder) {
                    reply.refusal = refusal
                } else {
                    orderSequence &+= 1
                    reply.orderSequence = orderSequence
                    activeRecipe = recipeIndex
                    unit.setIdealCycle(nanoseconds: UInt64(recipes[recipeIndex].idealCycleTimeSeconds * 1e9))
                }
            case .cancelOrder:
                if case .failure(let refusal) = unit.cancelOrder() { reply.refusal = refusal }
            }
            if unit.state != before { entered(unit.state, io: io) }
            _ = replies.push(reply)
        }
    }

    // MARK: - Supervision

    /// The first reason the cell must abort now, if any.
    private func abortCause(_ io: ProcessImage, includeArmFaults: Bool) -> StopCause? {
        let stationIndex = UInt8(arms.count)
        let station = io.stationInputs
        if station.link.isLost(after: settings.deviceLostAfterFailures) {
            return StopCause(code: .deviceLost, message: "station not answering", deviceIndex: stationIndex)
        }
        if station.signals.contains(.estopPressed) {
            return StopCause(code: .emergencyStop, message: "emergency stop pressed", deviceIndex: stationIndex)
        }
        if station.signals.contains(.guardOpen) {
            return StopCause(code: .safetyInterlock, message: "guard door open", deviceIndex: stationIndex)
        }
        if !station.signals.contains(.safetyOK) {
            return StopCause(code: .safetyInterlock, message: "safety chain open", deviceIndex: stationIndex)
        }
        if station.isFaulted {
            return StopCause(code: .deviceFault, message: "station fault", deviceIndex: stationIndex)
        }
        for index in arms.indices {
            let inputs = io.armInputs[index]
            if inputs.link.isLost(after: settings.deviceLostAfterFailures) {
                return StopCause(code: .deviceLost, message: "arm not answering", deviceIndex: UInt8(index))
            }
            if includeArmFaults {
                if inputs.status.contains(.estop) {
                    return StopCause(code: .emergencyStop, message: "arm e-stop", deviceIndex: UInt8(index))
                }
                if inputs.status.contains(.fault) || inputs.status.contains(.protectiveStop) {
                    return StopCause(code: .deviceFault, message: "arm fault", deviceIndex: UInt8(index))
                }
            }
        }
        return nil
    }

    /// Clear is accepted when the safety chain is closed, every device answers and the station is not faulted
    /// (latched arm faults are then cleared by Clearing itself, through RESET).
    func abortCauseIsGone(_ io: ProcessImage) -> Bool {
        abortCause(io, includeArmFaults: false) == nil
    }

    private func supervise(_ io: ProcessImage) {
        switch unit.state {
        case .aborting, .aborted:
            return
        case .clearing:
            if let cause = abortCause(io, includeArmFaults: false) { abort(cause) }
        case .stopped:
            // Nothing moves in Stopped: a device that is missing (not yet connected at start, or lost) is shown
            // as the reason and retried with backoff; Reset is refused until it answers. Safety and arm faults
            // still abort, so that Clear resets them.
            guard let cause = abortCause(io, includeArmFaults: true) else { return }
            if cause.code == .deviceLost { lastFault = cause } else { abort(cause) }
        default:
            if let cause = abortCause(io, includeArmFaults: true) { abort(cause) }
        }
    }

    func abort(_ cause: StopCause) {
        lastFault = cause
        _ = unit.abort(reason: cause)
    }

    func hold(_ cause: StopCause) {
        lastFault = cause
        _ = unit.hold(reason: cause)
    }

    /// Called once when a state is entered.
    private func entered(_ state: PackMLState, io: ProcessImage) {
        switch state {
        case .aborting:
            scrapLamp(.aborted)
            // Servos off in this very period: an abort raised inside `run` (a failed tool request, a refused plan)
            // must not leave ENABLE|STREAM in the outputs written for the period that entered Aborting.
            setPower(.off)
        case .stopping:
            scrapLamp(.stopped)
            for index in arms.indices { arms[index].stop(limits: cell.arms[index].limits) }
        case .clearing:
            clearingTicks = 0
        case .resetting:
            resetPhase = .unclamp
        case .starting:
            break
        default:
            break
        }
    }

    // MARK: - States

    private func run(_ io: inout ProcessImage) {
        switch unit.state {
        case .stopped, .aborted, .undefined:
            setPower(.off)
            io.stationOutputs.coils.subtract(StationCoils.leakTestStart.union(.lightTestStart))
        case .aborting:
            setPower(.off)
            if arms.indices.allSatisfy({ io.armInputs[$0].link.isLost(after: settings.deviceLostAfterFailures) || arms[$0].isAtRest(io.armInputs[$0]) }) {
                _ = unit.stateComplete()
            }
        case .clearing:
            runClearing(io)
        case .stopping:
            if arms.indices.allSatisfy({ !arms[$0].isMoving && arms[$0].isAtRest(io.armInputs[$0]) }) {
                setPower(.off)
                _ = unit.stateComplete()
            }
        case .resetting:
            setPower(.on)
            runResetting(&io)
        case .idle, .complete:
            setPower(.on)
            _ = runLanes(&io, mayStart: false)
        case .starting:
            setPower(.on)
            io.stationOutputs.variant = recipes[activeRecipe].variant.rawValue
            if io.stationInputs.variant == io.stationOutputs.variant, allArmsStreaming() {
                _ = unit.stateComplete()
            }
        case .execute:
            setPower(.on)
            _ = runLanes(&io, mayStart: true)
            if lampsNotQueued > 0 {
                hold(StopCause(code: .ledgerUnavailable, message: "lamp queue to the ledger is full"))
            } else if !ledgerWritable.load(ordering: .relaxed) {
                hold(StopCause(code: .ledgerUnavailable, message: "the ledger cannot write"))
            } else {
                applyInterlock()
            }
        case .holding:
            setPower(.on)
            if runLanes(&io, mayStart: false) { _ = unit.stateComplete() }
        case .held:
            setPower(.on)
            _ = runLanes(&io, mayStart: false)
            // Held for the ledger: resume by itself once it writes again (and nothing was lost on the way).
            if unit.machine.stopReason?.cause.code == .ledgerUnavailable, ledgerWritable.load(ordering: .relaxed),
                lampsNotQueued == 0
            {
                _ = unit.command(.unhold)
            }
        case .suspending:
            setPower(.on)
            if runLanes(&io, mayStart: false) { _ = unit.stateComplete() }
        case .suspended:
            setPower(.on)
            _ = runLanes(&io, mayStart: false)
            applyInterlock()
        case .unholding, .unsuspending:
            setPower(.on)
            _ = runLanes(&io, mayStart: false)
            _ = unit.stateComplete()
        case .completing:
            // The order is fulfilled: finish what is under way (no new lamp starts), then Complete.
            setPower(.on)
            if runLanes(&io, mayStart: false) && lamp == nil { _ = unit.stateComplete() }
        }
    }

    private func setPower(_ power: ArmAxis.Power) {
        for index in arms.indices { arms[index].power = power }
    }

    func allArmsStreaming() -> Bool { arms.allSatisfy(\.isStreaming) }

    /// Clearing: ENABLE seen clear, a RESET pulse, then wait until no arm reports a fault.
    private func runClearing(_ io: ProcessImage) {
        clearingTicks += 1
        let resetPulseTicks = 3
        if clearingTicks <= 1 {
            setPower(.off)
        } else if clearingTicks <= 1 + resetPulseTicks {
            setPower(.reset)
        } else {
            setPower(.off)
            let faulted = arms.indices.contains {
                let status = io.armInputs[$0].status
                return status.contains(.fault) || status.contains(.estop) || status.contains(.protectiveStop)
            }
            if !faulted {
                _ = unit.stateComplete()
            } else if UInt64(clearingTicks) * settings.periodNanoseconds > settings.settleTimeoutNanoseconds {
                // The cause of an arm fault is still there: back to Aborted, with the cause shown.
                if let cause = abortCause(io, includeArmFaults: true) { abort(cause) }
            }
        }
    }

    /// Feeds the PackML interlock with the lanes' material waits (debounced).
    private func applyInterlock() {
        var starved = false
        var blocked = false
        for index in lanes.indices where index < recipes[activeRecipe].lanes.count {
            let lane = lanes[index]
            guard lane.materialWait != .none,
                nowNanoseconds &- lane.materialWaitSinceNanoseconds >= settings.materialWaitNanoseconds
            else { continue }
            if lane.materialWait.suspendCause == .starved { starved = true } else { blocked = true }
            materialWaitShown = lane.materialWait
        }
        if !starved && !blocked { materialWaitShown = .none }
        _ = unit.applyInterlock(starved: starved, blocked: blocked)
    }
}
