import Testing

@testable import PackML

/// The transition table of /work/shared/reference/PACKML.md, written out independently of the implementation:
/// command → (states that accept it, state it leads to).
private let expectedCommandTable: [PackMLCommand: (from: Set<PackMLState>, to: PackMLState)] = [
    .reset: ([.stopped, .complete], .resetting),
    .start: ([.idle], .starting),
    .stop: (
        [
            .idle, .starting, .execute, .completing, .complete, .holding, .held, .unholding, .suspending,
            .suspended, .unsuspending, .resetting,
        ], .stopping
    ),
    .hold: ([.execute], .holding),
    .unhold: ([.held], .unholding),
    .suspend: ([.execute], .suspending),
    .unsuspend: ([.suspended], .unsuspending),
    .abort: (Set(PackMLState.allCases).subtracting([.aborting, .aborted]), .aborting),
    .clear: ([.aborted], .clearing),
]

/// State complete (SC) from the reference document; states not listed are not acting (or Undefined).
private let expectedStateComplete: [PackMLState: PackMLState] = [
    .resetting: .idle, .starting: .execute, .holding: .held, .unholding: .execute, .suspending: .suspended,
    .unsuspending: .execute, .completing: .complete, .stopping: .stopped, .aborting: .aborted,
    .clearing: .stopped, .execute: .completing,
]

private let t0: UInt64 = 1_000_000_000
private let eStop = StopCause(code: .emergencyStop, message: "E-stop circuit open")
private let ledgerDown = StopCause(code: .ledgerUnavailable, message: "ledger cannot write")

/// Drives a Production-mode machine from Stopped into `target` through accepted transitions only.
private func machine(in target: PackMLState, mode: UnitMode = .production) -> PackMLStateMachine {
    var m = PackMLStateMachine(state: .stopped, mode: mode, nowNanoseconds: t0)
    drive(&m, to: target)
    return m
}

/// Drives `m`, which is in Stopped, into `target` through accepted transitions only.
private func drive(_ m: inout PackMLStateMachine, to target: PackMLState) {
    #expect(m.state == .stopped, "drive starts in Stopped")
    func ok(_ r: Result<PackMLState, PackMLRefusal>) { if case .failure(let f) = r { Issue.record("\(f)") } }
    switch target {
    case .undefined: m = PackMLStateMachine(state: .undefined, nowNanoseconds: t0)
    case .stopped: break
    case .clearing, .aborting, .aborted:
        ok(m.command(.abort))
        if target == .aborting { break }
        ok(m.stateComplete())
        if target == .clearing { ok(m.command(.clear, causeGone: true)) }
    default:
        ok(m.command(.reset))
        if target == .resetting { break }
        ok(m.stateComplete())
        if target == .idle { break }
        if target == .stopping { ok(m.command(.stop)); break }
        ok(m.command(.start))
        if target == .starting { break }
        ok(m.stateComplete())
        switch target {
        case .execute: break
        case .holding: ok(m.command(.hold))
        case .held: ok(m.command(.hold)); ok(m.stateComplete())
        case .unholding: ok(m.command(.hold)); ok(m.stateComplete()); ok(m.command(.unhold))
        case .suspending: ok(m.command(.suspend))
        case .suspended: ok(m.command(.suspend)); ok(m.stateComplete())
        case .unsuspending: ok(m.command(.suspend)); ok(m.stateComplete()); ok(m.command(.unsuspend))
        case .completing: ok(m.complete())
        case .complete: ok(m.complete()); ok(m.stateComplete())
        default: Issue.record("no path to \(target)")
        }
    }
    #expect(m.state == target)
}

@Suite("PackML states and commands")
struct PackMLNumberingTests {
    @Test("StateCurrent numbering follows ISA-TR88.00.02")
    func stateNumbering() {
        let names = [
            "Undefined", "Clearing", "Stopped", "Starting", "Idle", "Suspended", "Execute", "Stopping", "Aborting",
            "Aborted", "Holding", "Held", "Unholding", "Suspending", "Unsuspending", "Resetting", "Completing",
            "Complete",
        ]
        #expect(PackMLState.allCases.count == PackMLState.count)
        for (number, name) in names.enumerated() {
            #expect(PackMLState(rawValue: UInt8(number))?.description == name)
        }
        #expect(PackMLState(rawValue: 18) == nil)
    }

    @Test("acting and wait states as the reference table says")
    func actingAndWait() {
        let acting: Set<PackMLState> = [
            .clearing, .starting, .execute, .stopping, .aborting, .holding, .unholding, .suspending, .unsuspending,
            .resetting, .completing,
        ]
        let wait: Set<PackMLState> = [.stopped, .idle, .suspended, .aborted, .held, .complete]
        for state in PackMLState.allCases {
            #expect(state.isActing == acting.contains(state), "\(state)")
            #expect(state.isWait == wait.contains(state), "\(state)")
        }
        #expect(!PackMLState.undefined.isActing && !PackMLState.undefined.isWait)
    }

    @Test("CntrlCmd and UnitMode numbering")
    func commandAndModeNumbering() {
        let commands = ["Reset", "Start", "Stop", "Hold", "Unhold", "Suspend", "Unsuspend", "Abort", "Clear"]
        for (index, name) in commands.enumerated() {
            #expect(PackMLCommand(rawValue: UInt8(index + 1))?.description == name)
        }
        #expect(PackMLCommand(rawValue: 0) == nil && PackMLCommand(rawValue: 10) == nil)
        #expect(UnitMode(rawValue: 1) == .production)
        #expect(UnitMode(rawValue: 2) == .maintenance)
        #expect(UnitMode(rawValue: 3) == .manual)
    }
}

@Suite("PackML transition table")
struct PackMLTransitionTests {
    @Test("every (state, command) pair: accepted exactly where the table says", arguments: PackMLState.allCases,
        PackMLCommand.allCases)
    func commandTable(state: PackMLState, command: PackMLCommand) throws {
        let expected = try #require(expectedCommandTable[command])
        let shouldAccept = expected.from.contains(state)
        #expect((PackMLStateMachine.target(of: command, from: state) != nil) == shouldAccept)

        var m = machine(in: state)
        let before = m
        // causeGone: true so that Clear is judged on the state alone here.
        switch m.command(command, causeGone: true) {
        case .success(let next):
            #expect(shouldAccept, "\(command) must be refused in \(state)")
            #expect(next == expected.to)
            #expect(m.state == expected.to)
            #expect(m.stateChangeCount == before.stateChangeCount + 1)
        case .failure(let refusal):
            #expect(!shouldAccept, "\(command) must be accepted in \(state): \(refusal)")
            #expect(refusal.reason == .notAcceptedInState)
            #expect(refusal.request == .command(command))
            #expect(refusal.state == state)
            #expect(m == before, "a refused command changes nothing")
        }
    }

    @Test("SC moves every acting state on; wait states and Undefined refuse it", arguments: PackMLState.allCases)
    func stateComplete(state: PackMLState) {
        var m = machine(in: state)
        let result = m.stateComplete()
        if let expected = expectedStateComplete[state] {
            #expect(state.isActing)
            #expect(result == .success(expected))
            #expect(m.state == expected)
        } else {
            #expect(!state.isActing)
            #expect(result.refusalReason == .notAcceptedInState)
            #expect(m.state == state)
        }
    }

    @Test("internal abort from every state but Aborting/Aborted, with the cause recorded",
        arguments: PackMLState.allCases)
    func internalAbort(state: PackMLState) {
        var m = machine(in: state)
        m.advance(toNanoseconds: t0 + 5_000)
        let result = m.abort(reason: eStop)
        if state == .aborting || state == .aborted {
            #expect(result.refusalReason == .notAcceptedInState)
            #expect(m.state == state)
        } else {
            #expect(result == .success(.aborting))
            #expect(m.stateComplete() == .success(.aborted))
            // The abort's own cause, even where an earlier stop or hold had recorded one: the latest stop wins.
            #expect(m.stopReason == StopReason(cause: eStop, action: .abort, timeNanoseconds: t0 + 5_000, state: state))
        }
    }

    @Test("refusal text names the command, where it is accepted and the current state")
    func refusalText() {
        var m = PackMLStateMachine(nowNanoseconds: t0)
        let start = m.command(.start)
        #expect(start.refusal?.description == "Start is accepted only in Idle; the cell is Stopped")
        #expect(m.command(.reset) == .success(.resetting))
        #expect(m.stateComplete() == .success(.idle))
        #expect(
            m.command(.reset).refusal?.description == "Reset is accepted only in Stopped or Complete; the cell is Idle")
        #expect(
            m.command(.unhold).refusal?.description == "Unhold is accepted only in Held; the cell is Idle")
        #expect(
            m.command(.stop).map(\.rawValue) == .success(PackMLState.stopping.rawValue))
        #expect(
            m.command(.stop).refusal?.description
                == "Stop is accepted in any state but Undefined, Clearing, Stopped, Stopping, Aborting or Aborted; "
                + "the cell is Stopping")
        _ = m.command(.abort)
        _ = m.stateComplete()
        #expect(
            m.command(.abort).refusal?.description
                == "Abort is accepted in any state but Aborting or Aborted; the cell is Aborted")
        #expect(
            m.changeMode(to: .manual) == .success(.manual), "mode change is accepted in Aborted")
    }
}

@Suite("PackML causes: clear, stop reason, hold, suspend, modes")
struct PackMLCauseTests {
    @Test("Clear is refused while the cause persists and accepted when it is gone")
    func clearNeedsCauseGone() {
        var m = machine(in: .execute)
        m.advance(toNanoseconds: t0 + 10)
        #expect(m.abort(reason: StopCause(code: .deviceLost, message: "no answer", deviceIndex: 2)) == .success(.aborting))
        #expect(m.command(.clear, causeGone: true).refusalReason == .notAcceptedInState, "Aborting is not Aborted")
        #expect(m.stateComplete() == .success(.aborted))

        let refused = m.command(.clear)
        #expect(refused.refusalReason == .causeStillPresent)
        #expect(
            refused.refusal?.description
                == "Clear is refused: the cause of the abort is still present (no answer, device #2); the cell stays Aborted"
        )
        #expect(m.command(.clear, causeGone: false).refusalReason == .causeStillPresent)
        #expect(m.state == .aborted)

        #expect(m.command(.clear, causeGone: true) == .success(.clearing))
        #expect(m.stateComplete() == .success(.stopped))
        #expect(m.stopReason?.cause.code == .deviceLost, "kept after Clear, until Reset")
        #expect(m.stopReason?.cause.deviceIndex == 2)
        #expect(m.stopReason?.state == .execute)
        #expect(m.stopReason?.timeNanoseconds == t0 + 10)
    }

    @Test("stop reason: the latest stop or abort wins, is kept through Clear, and Reset forgets it")
    func stopReasonLatestCauseUntilReset() {
        var m = machine(in: .execute)
        m.advance(toNanoseconds: t0 + 100)
        #expect(m.command(.stop) == .success(.stopping))
        #expect(m.stopReason == StopReason(cause: .operatorStop, action: .stop, timeNanoseconds: t0 + 100, state: .execute))
        m.advance(toNanoseconds: t0 + 200)
        #expect(m.abort(reason: eStop) == .success(.aborting), "a later abort")
        let latest = StopReason(cause: eStop, action: .abort, timeNanoseconds: t0 + 200, state: .stopping)
        #expect(m.stopReason == latest)
        _ = m.stateComplete()
        _ = m.command(.clear, causeGone: true)
        _ = m.stateComplete()
        #expect(m.state == .stopped)
        #expect(m.stopReason == latest, "kept after Clear: the cause of the latest stop")
        #expect(m.command(.reset) == .success(.resetting))
        #expect(m.stopReason == nil)
    }

    /// The states from which a second abort is tried (issue: "a second abort keeps the first one's cause").
    static let abortFromStates: [PackMLState] = [.execute, .held, .suspended, .idle, .stopped, .complete]

    @Test(
        "a second abort names its own cause, from every state, with and without a Reset between the two",
        arguments: abortFromStates, [false, true])
    func secondAbortNamesItsCause(from state: PackMLState, resetBetween: Bool) {
        let guardOpen = StopCause(code: .safetyInterlock, message: "guard door open", deviceIndex: 3)
        var m = machine(in: state)
        m.advance(toNanoseconds: t0 + 1_000)
        #expect(m.abort(reason: eStop) == .success(.aborting))
        #expect(m.stopReason == StopReason(cause: eStop, action: .abort, timeNanoseconds: t0 + 1_000, state: state))
        _ = m.stateComplete()
        // The e-stop is released, the guard is opened: Clear is refused, naming the guard, not the e-stop.
        let refused = m.command(.clear, causeGone: false, presentCause: guardOpen)
        #expect(refused.refusalReason == .causeStillPresent)
        #expect(refused.refusal?.stopReason?.cause == guardOpen)
        #expect(refused.refusal?.description.contains("guard door open") == true, "\(refused)")
        #expect(refused.refusal?.description.contains("E-stop") == false, "\(refused)")
        // The guard is closed again: Clear, Stopped; the e-stop is still the latest stop's cause.
        #expect(m.command(.clear, causeGone: true) == .success(.clearing))
        _ = m.stateComplete()
        #expect(m.state == .stopped && m.stopReason?.cause == eStop)

        var secondFrom = PackMLState.stopped
        if resetBetween {
            #expect(m.command(.reset) == .success(.resetting))
            #expect(m.stopReason == nil)
            _ = m.stateComplete()
            _ = m.command(.stop)
            _ = m.stateComplete()
            drive(&m, to: state)
            secondFrom = state
        }
        m.advance(toNanoseconds: t0 + 5_000)
        #expect(m.abort(reason: guardOpen) == .success(.aborting))
        #expect(
            m.stopReason == StopReason(cause: guardOpen, action: .abort, timeNanoseconds: t0 + 5_000, state: secondFrom),
            "\(String(describing: m.stopReason))")
        _ = m.stateComplete()
        #expect(m.state == .aborted && m.stopReason?.cause == guardOpen)
    }

    @Test("a stop after an abort, Clear and Reset names the operator's stop", arguments: abortFromStates)
    func stopAfterAbortNamesTheStop(from state: PackMLState) {
        guard state != .stopped else { return }  // Stop is not accepted in Stopped
        var m = machine(in: .execute)
        #expect(m.abort(reason: ledgerDown) == .success(.aborting))
        _ = m.stateComplete()
        _ = m.command(.clear, causeGone: true)
        _ = m.stateComplete()
        drive(&m, to: state)
        m.advance(toNanoseconds: t0 + 7_000)
        #expect(m.command(.stop) == .success(.stopping))
        #expect(m.stopReason == StopReason(cause: .operatorStop, action: .stop, timeNanoseconds: t0 + 7_000, state: state))
        _ = m.stateComplete()
        #expect(m.state == .stopped && m.stopReason?.cause == .operatorStop)
    }

    @Test("internal hold: Execute → Holding → Held; Unhold → Execute; a hold that resumed is no stop reason")
    func holdAndUnhold() {
        var m = machine(in: .execute)
        #expect(m.hold(reason: ledgerDown) == .success(.holding))
        #expect(m.stopReason?.cause == ledgerDown)
        #expect(m.stopReason?.action == .hold)
        #expect(m.hold(reason: ledgerDown).refusalReason == .notAcceptedInState)
        #expect(m.stateComplete() == .success(.held))
        #expect(m.command(.unhold) == .success(.unholding))
        #expect(m.stateComplete() == .success(.execute))
        #expect(m.stopReason == nil)

        // A hold followed by a stop: the operator's stop is the latest cause.
        #expect(m.hold(reason: ledgerDown) == .success(.holding))
        _ = m.stateComplete()
        #expect(m.command(.stop) == .success(.stopping))
        _ = m.stateComplete()
        #expect(m.stopReason?.cause == .operatorStop)
        #expect(m.stopReason?.state == .held)
    }

    @Test("automatic suspend on starved/blocked and unsuspend when material is back")
    func automaticSuspend() {
        var m = machine(in: .execute)
        #expect(m.applyInterlock(starved: false, blocked: false) == nil)
        #expect(m.state == .execute)
        #expect(m.applyInterlock(starved: true, blocked: false) == .suspending)
        #expect(m.suspendCause == .starved)
        #expect(m.applyInterlock(starved: false, blocked: false) == nil, "waits for SC of Suspending")
        #expect(m.stateComplete() == .success(.suspended))
        #expect(m.applyInterlock(starved: false, blocked: true) == nil, "still blocked")
        #expect(m.suspendCause == .blocked)
        #expect(m.applyInterlock(starved: false, blocked: false) == .unsuspending)
        #expect(m.suspendCause == nil)
        #expect(m.stateComplete() == .success(.execute))
        #expect(m.stopReason == nil, "a suspension is not a stop")

        // Explicit triggers.
        #expect(m.suspend(reason: .blocked) == .success(.suspending))
        #expect(m.unsuspend().refusalReason == .notAcceptedInState)
        _ = m.stateComplete()
        #expect(m.unsuspend() == .success(.unsuspending))

        // An operator suspension is not ended by the interlock.
        _ = m.stateComplete()
        #expect(m.command(.suspend) == .success(.suspending))
        _ = m.stateComplete()
        #expect(m.suspendCause == .operatorCommand)
        #expect(m.applyInterlock(starved: false, blocked: false) == nil)
        #expect(m.state == .suspended)
        #expect(m.command(.unsuspend) == .success(.unsuspending))
    }

    @Test("unit mode changes only in Stopped, Idle and Aborted", arguments: PackMLState.allCases)
    func modeChange(state: PackMLState) {
        var m = machine(in: state)
        let allowed: Set<PackMLState> = [.stopped, .idle, .aborted]
        let result = m.changeMode(to: .maintenance)
        if allowed.contains(state) {
            #expect(result == .success(.maintenance))
            #expect(m.mode == .maintenance)
        } else {
            #expect(result.refusal?.reason == .notAcceptedInState)
            #expect(m.mode == .production)
        }
        #expect(m.changeMode(to: m.mode) == .success(m.mode), "same mode is a no-op")
    }

    @Test("mode change refusal text")
    func modeChangeText() {
        var m = machine(in: .execute)
        #expect(
            m.changeMode(to: .manual).refusal?.description
                == "Unit mode change to Manual is accepted only in Stopped, Idle or Aborted; the cell is Execute")
    }

    @Test("Maintenance mode: no Suspend, Unsuspend or completion; the rest of the model works")
    func maintenanceMode() {
        var m = PackMLStateMachine(state: .stopped, mode: .maintenance, nowNanoseconds: t0)
        #expect(m.command(.reset) == .success(.resetting))
        #expect(m.stateComplete() == .success(.idle))
        #expect(m.command(.start) == .success(.starting))
        #expect(m.stateComplete() == .success(.execute))
        #expect(m.command(.suspend).refusalReason == .notUsedInMode)
        #expect(m.suspend(reason: .starved).refusalReason == .notUsedInMode)
        #expect(m.applyInterlock(starved: true, blocked: true) == nil)
        #expect(m.complete().refusalReason == .notUsedInMode)
        #expect(m.stateComplete().refusalReason == .notUsedInMode)
        #expect(
            m.command(.suspend).refusal?.description
                == "Suspend is not used in Maintenance mode (only in Production); the cell is Execute")
        #expect(m.state == .execute)
        #expect(m.command(.hold) == .success(.holding))
        #expect(m.stateComplete() == .success(.held))
        #expect(m.command(.stop) == .success(.stopping))
        #expect(m.stateComplete() == .success(.stopped))
    }

    @Test("Undefined: only Abort leads out")
    func undefinedState() {
        var m = PackMLStateMachine(state: .undefined, nowNanoseconds: t0)
        #expect(m.command(.reset).refusalReason == .notAcceptedInState)
        #expect(m.abort(reason: eStop) == .success(.aborting))
        #expect(m.stateComplete() == .success(.aborted))
        #expect(m.command(.clear, causeGone: true) == .success(.clearing))
        #expect(m.stateComplete() == .success(.stopped))
    }
}

extension Result where Failure == PackMLRefusal {
    var refusal: PackMLRefusal? {
        if case .failure(let refusal) = self { return refusal }
        return nil
    }
    var refusalReason: PackMLRefusal.Reason? { refusal?.reason }
}
