import CellCore

extension CellController {
    /// Resetting: open the clamp, take every part out of the cell to the reject place (a lamp scrapped by an
    /// abort or stop is still physically there), put down held components, home every arm, then restart the
    /// recipe's lanes from the top. Runs once the arms stream.
    func runResetting(_ io: inout ProcessImage) {
        guard allArmsStreaming() else { return }
        switch resetPhase {
        case .unclamp:
            io.stationOutputs.coils.subtract(StationCoils.fixtureClamp.union(.leakTestStart).union(.lightTestStart))
            guard !io.stationInputs.signals.contains(.fixtureClamped) else { return }
            // A lamp left on the outfeed place point (the process died between its release and the index): index
            // it away, or the next good lamp waits for OUTFEED_CLEAR for ever. Not awaited: while the outfeed is
            // blocked downstream the index waits, and production suspends on "outfeed not clear" as before.
            if !io.stationInputs.signals.contains(.outfeedClear) { io.stationOutputs.outfeedRequests &+= 1 }
            planPurge(io)
            resetPhase = .purge
        case .purge, .home:
            guard runResetLanes(&io) else { return }
            if resetPhase == .purge {
                planHome()
                resetPhase = .home
            } else {
                resetPhase = .done
            }
        case .done:
            for index in lanes.indices { lanes[index] = LaneState() }
            for index in eventSignals.indices { eventSignals[index] = 0 }
            screwsDriven = 0
            _ = unit.stateComplete()
        }
    }

    /// Plans the loader's purge: a housing or lamp in its gripper or in the fixture goes to the reject place.
    /// Components held by the other arms (an LED module, a lens) stay in their grippers: the lanes start by picking
    /// one, and a grip while holding keeps the part.
    private func planPurge(_ io: ProcessImage) {
        for arm in arms.indices {
            resetSteps[arm].removeAll(keepingCapacity: true)
            resetLanes[arm] = LaneState()
            guard arm == cell.loaderArm else { continue }
            let compiled = cell.arms[arm]
            if io.armInputs[arm].toolState.contains(.holdingPart), let reject = compiled.rejectPoint {
                resetSteps[arm].append(.move(point: reject, speed: 1))
                resetSteps[arm].append(.tool(.release, param: 0))
            }
            if io.stationInputs.signals.contains(.partInFixture),
                let fixture = compiled.fixturePoint, let reject = compiled.rejectPoint
            {
                resetSteps[arm].append(.move(point: fixture, speed: 1))
                resetSteps[arm].append(.tool(.grip, param: 0))
                resetSteps[arm].append(.move(point: reject, speed: 1))
                resetSteps[arm].append(.tool(.release, param: 0))
            }
        }
    }

    private func planHome() {
        for arm in arms.indices {
            resetSteps[arm].removeAll(keepingCapacity: true)
            resetSteps[arm].append(.move(point: cell.arms[arm].homePoint, speed: 1))
            resetLanes[arm] = LaneState()
        }
    }

    /// Runs the reset lanes; true when every one has finished.
    private func runResetLanes(_ io: inout ProcessImage) -> Bool {
        var done = true
        for arm in arms.indices {
            guard !resetSteps[arm].isEmpty else { continue }
            let lane = CompiledLane(arm: arm, steps: resetSteps[arm], pathPoints: [], wraps: false)
            var state = resetLanes[arm]
            _ = runLane(lane, &state, io: &io, mayStart: true)
            resetLanes[arm] = state
            if !state.finished { done = false }
            if unit.state != .resetting { return false }
        }
        return done
    }
}
