// The PackML state machine (ISA-TR88.00.02 base state model) as LampCell uses it; see
// /work/shared/reference/PACKML.md for the transition table this implements exactly.

/// The cell's PackML state machine: state, unit mode, stop reason, suspend cause and time accounting.
///
/// Transitions (from the reference table, nothing more):
/// - Reset: Stopped, Complete → Resetting. Start: Idle → Starting. Hold: Execute → Holding.
///   Unhold: Held → Unholding. Suspend: Execute → Suspending. Unsuspend: Suspended → Unsuspending.
/// - Stop: Idle, Starting, Execute, Completing, Complete, Holding, Held, Unholding, Suspending, Suspended,
///   Unsuspending, Resetting → Stopping.
/// - Abort: any state but Aborting and Aborted (Undefined included) → Aborting.
/// - Clear: Aborted → Clearing, and only when the caller says the abort cause is gone.
/// - State complete (SC): Resetting→Idle, Starting→Execute, Holding→Held, Unholding→Execute,
///   Suspending→Suspended, Unsuspending→Execute, Completing→Complete, Stopping→Stopped, Aborting→Aborted,
///   Clearing→Stopped, and Execute→Completing (Execute's SC is "order done").
///
/// Unit modes: changes are accepted only in Stopped, Idle and Aborted (a simplified PackML mode-transition
/// matrix: only where nothing moves). Suspend/Unsuspend (command or trigger), order completion and Execute's
/// SC are used only in Production; in Maintenance and Manual they are refused with `.notUsedInMode`.
///
/// Stop reason: the first cause of an abort, stop or hold since the last accepted Reset; later causes do not
/// overwrite it. Exception: when the recorded first cause is a hold and Unhold is accepted, it is cleared —
/// the cell resumed Execute, so that hold did not stop it. An accepted Reset clears it.
///
/// Clock: every transition takes effect at the time of the last `advance(toNanoseconds:)`; the control thread
/// advances first, then applies commands and triggers. Everything is a pure function of the inputs.
///
/// Real-time: a value type with fixed-size storage; no method allocates on the accepted or the refused
/// path (only `PackMLRefusal.description` allocates). Owned and mutated by the control thread only; other
/// threads get copies (snapshots).
public struct PackMLStateMachine: Sendable, Equatable {
    /// PackTags `StateCurrent`.
    public private(set) var state: PackMLState
    /// PackTags `UnitModeCurrent`.
    public private(set) var mode: UnitMode
    /// PackTags `StopReason`: the first cause of an abort/stop/hold since the last Reset (see type doc).
    public private(set) var stopReason: StopReason?
    /// Why the cell is suspending/suspended (PackTags `EquipmentInterlock`); nil outside Suspending/Suspended.
    public private(set) var suspendCause: SuspendCause?
    /// Time accounting (state/mode current and cumulative times).
    public private(set) var times: PackMLTimes
    /// Number of state changes since construction (lets snapshot readers notice missed changes).
    public private(set) var stateChangeCount: UInt64 = 0

    /// Creates a machine in `state` (default Stopped) and `mode` (default Production) with its clock at
    /// `nowNanoseconds`. Undefined is allowed; the only way out of it is Abort (then Clear).
    public init(state: PackMLState = .stopped, mode: UnitMode = .production, nowNanoseconds: UInt64) {
        self.state = state
        self.mode = mode
        self.times = PackMLTimes(nowNanoseconds: nowNanoseconds)
    }

    // MARK: - The tables (pure, static)

    /// The state `command` leads to from `state` per the transition table, or nil if the table does not
    /// accept it there. Ignores unit mode and Clear's cause condition. Pure; no allocation.
    public static func target(of command: PackMLCommand, from state: PackMLState) -> PackMLState? {
        switch command {
        case .reset:
            return state == .stopped || state == .complete ? .resetting : nil
        case .start:
            return state == .idle ? .starting : nil
        case .stop:
            switch state {
            case .idle, .starting, .execute, .completing, .complete, .holding, .held, .unholding, .suspending,
                .suspended, .unsuspending, .resetting:
                return .stopping
            case .undefined, .clearing, .stopped, .stopping, .aborting, .aborted:
                return nil
            }
        case .hold:
            return state == .execute ? .holding : nil
        case .unhold:
            return state == .held ? .unholding : nil
        case .suspend:
            return state == .execute ? .suspending : nil
        case .unsuspend:
            return state == .suspended ? .unsuspending : nil
        case .abort:
            return state == .aborting || state == .aborted ? nil : .aborting
        case .clear:
            return state == .aborted ? .clearing : nil
        }
    }

    /// The state "state complete" (SC) leads to from `state`, or nil for states that are not acting.
    /// Execute → Completing (its SC is "order done"). Pure; no allocation.
    public static func stateCompleteTarget(from state: PackMLState) -> PackMLState? {
        switch state {
        case .resetting: return .idle
        case .starting: return .execute
        case .execute: return .completing
        case .holding: return .held
        case .unholding: return .execute
        case .suspending: return .suspended
        case .unsuspending: return .execute
        case .completing: return .complete
        case .stopping: return .stopped
        case .aborting: return .aborted
        case .clearing: return .stopped
        case .undefined, .stopped, .idle, .suspended, .aborted, .held, .complete: return nil
        }
    }

    /// True where a unit mode change is accepted: Stopped, Idle, Aborted. Pure; no allocation.
    public static func acceptsModeChange(in state: PackMLState) -> Bool {
        state == .stopped || state == .idle || state == .aborted
    }

    // MARK: - Clock

    /// Moves the clock to `nowNanoseconds` (monotonic), attributing the elapsed time to the current state and
    /// mode. Earlier times are ignored. Returns the elapsed nanoseconds. Control thread; no allocation.
    @discardableResult
    public mutating func advance(toNanoseconds nowNanoseconds: UInt64) -> UInt64 {
        times.advance(toNanoseconds: nowNanoseconds, state: state, mode: mode)
    }

    /// Zeroes the cumulative time accumulators (PackTags reset of `StateCumulativeTime`, `ModeCumulativeTime`,
    /// `AccTimeSinceReset`). Control thread; no allocation.
    public mutating func resetCumulativeTimes() { times.resetCumulative() }

    // MARK: - Commands

    /// Applies a PackML control command. `causeGone` is used only by Clear: the caller's judgement that the
    /// abort cause is gone (e-stop released, device back); Clear is refused while it is false, and the refusal
    /// names `presentCause` (the cause there now) when the caller knows it, else the recorded stop reason.
    /// Stop/Hold/Abort record `StopCause.operatorStop`/`.operatorHold`/`.operatorAbort` as the stop reason (the
    /// latest stop wins). Returns the new state or a refusal (state unchanged). Control thread; no allocation.
    @discardableResult
    public mutating func command(
        _ command: PackMLCommand, causeGone: Bool = false, presentCause: StopCause? = nil
    ) -> Result<PackMLState, PackMLRefusal> {
        let request = PackMLRequest.command(command)
        if (command == .suspend || command == .unsuspend) && mode != .production {
            return .failure(refusal(.notUsedInMode, request))
        }
        guard let next = Self.target(of: command, from: state) else {
            return .failure(refusal(.notAcceptedInState, request))
        }
        switch command {
        case .clear:
            guard causeGone else {
                let shown = presentCause.map {
                    StopReason(cause: $0, action: .abort, timeNanoseconds: times.nowNanoseconds, state: state)
                }
                return .failure(
                    PackMLRefusal(
                        reason: .causeStillPresent, request: request, state: state, mode: mode,
                        stopReason: shown ?? stopReason))
            }
        case .reset:
            stopReason = nil
            suspendCause = nil
        case .stop:
            record(.operatorStop, .stop)
        case .hold:
            record(.operatorHold, .hold)
        case .abort:
            record(.operatorAbort, .abort)
        case .unhold:
            if stopReason?.action == .hold { stopReason = nil }
        case .suspend:
            suspendCause = .operatorCommand
        case .unsuspend:
            suspendCause = nil
        case .start:
            break
        }
        return .success(enter(next))
    }

    /// "State complete" (SC): the current acting state finished its work; moves to the next state (see the
    /// type doc). Refused in wait states and Undefined, and for Execute outside Production.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func stateComplete() -> Result<PackMLState, PackMLRefusal> {
        if state == .execute && mode != .production {
            return .failure(refusal(.notUsedInMode, .stateComplete))
        }
        guard let next = Self.stateCompleteTarget(from: state) else {
            return .failure(refusal(.notAcceptedInState, .stateComplete))
        }
        return .success(enter(next))
    }

    // MARK: - Internal triggers

    /// Internal abort (e-stop, device fault, lost device): any state but Aborting/Aborted → Aborting.
    /// Records `reason` as the stop reason (the latest stop wins). Control thread; no allocation.
    @discardableResult
    public mutating func abort(reason: StopCause) -> Result<PackMLState, PackMLRefusal> {
        guard let next = Self.target(of: .abort, from: state) else {
            return .failure(refusal(.notAcceptedInState, .abortTrigger))
        }
        record(reason, .abort)
        return .success(enter(next))
    }

    /// Internal hold (an internal cause such as the ledger being unable to write): Execute → Holding.
    /// Records `reason` as the stop reason (the latest stop wins). Control thread; no allocation.
    @discardableResult
    public mutating func hold(reason: StopCause) -> Result<PackMLState, PackMLRefusal> {
        guard state == .execute else { return .failure(refusal(.notAcceptedInState, .holdTrigger)) }
        record(reason, .hold)
        return .success(enter(.holding))
    }

    /// Internal suspend (upstream starved / downstream blocked): Execute → Suspending. Production only.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func suspend(reason: SuspendCause) -> Result<PackMLState, PackMLRefusal> {
        guard mode == .production else { return .failure(refusal(.notUsedInMode, .suspendTrigger)) }
        guard state == .execute else { return .failure(refusal(.notAcceptedInState, .suspendTrigger)) }
        suspendCause = reason
        return .success(enter(.suspending))
    }

    /// Internal unsuspend (material back): Suspended → Unsuspending. Production only.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func unsuspend() -> Result<PackMLState, PackMLRefusal> {
        guard mode == .production else { return .failure(refusal(.notUsedInMode, .unsuspendTrigger)) }
        guard state == .suspended else { return .failure(refusal(.notAcceptedInState, .unsuspendTrigger)) }
        suspendCause = nil
        return .success(enter(.unsuspending))
    }

    /// Production order done: Execute → Completing. Production only. Control thread; no allocation.
    @discardableResult
    public mutating func complete() -> Result<PackMLState, PackMLRefusal> {
        guard mode == .production else { return .failure(refusal(.notUsedInMode, .completeTrigger)) }
        guard state == .execute else { return .failure(refusal(.notAcceptedInState, .completeTrigger)) }
        return .success(enter(.completing))
    }

    /// The automatic suspend/unsuspend path, level-triggered: call every period with the equipment
    /// interlock inputs. In Execute, starved or blocked → Suspending (starved wins if both). In Suspended
    /// entered by the interlock, neither → Unsuspending. An operator suspension is left alone, and nothing
    /// happens outside Production. Returns the new state if a transition happened, else nil.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func applyInterlock(starved: Bool, blocked: Bool) -> PackMLState? {
        guard mode == .production else { return nil }
        switch state {
        case .execute where starved || blocked:
            return try? suspend(reason: starved ? .starved : .blocked).get()
        case .suspending, .suspended:
            // Keep the shown interlock current while suspended by it.
            if suspendCause == .starved || suspendCause == .blocked {
                if starved { suspendCause = .starved } else if blocked { suspendCause = .blocked }
            }
            if state == .suspended && !starved && !blocked
                && (suspendCause == .starved || suspendCause == .blocked)
            {
                return try? unsuspend().get()
            }
            return nil
        default:
            return nil
        }
    }

    // MARK: - Unit mode

    /// Changes the unit mode; accepted only in Stopped, Idle and Aborted (changing to the current mode is
    /// accepted anywhere and changes nothing). Returns the new mode or a refusal.
    /// Control thread; no allocation.
    @discardableResult
    public mutating func changeMode(to newMode: UnitMode) -> Result<UnitMode, PackMLRefusal> {
        if newMode == mode { return .success(mode) }
        guard Self.acceptsModeChange(in: state) else {
            return .failure(refusal(.notAcceptedInState, .modeChange(newMode)))
        }
        mode = newMode
        times.enteredMode()
        return .success(newMode)
    }

    // MARK: - Private

    private func refusal(_ reason: PackMLRefusal.Reason, _ request: PackMLRequest) -> PackMLRefusal {
        PackMLRefusal(reason: reason, request: request, state: state, mode: mode, stopReason: stopReason)
    }

    /// Records the cause of a stop, hold or abort that is being accepted. The latest one wins, whatever the path
    /// through the state model: an operator must be told what stopped the cell last, not what stopped it first
    /// (an e-stop cleared, then the guard opened in Stopped, is a guard abort). Reset forgets it.
    private mutating func record(_ cause: StopCause, _ action: StopAction) {
        stopReason = StopReason(cause: cause, action: action, timeNanoseconds: times.nowNanoseconds, state: state)
    }

    private mutating func enter(_ next: PackMLState) -> PackMLState {
        if next != .suspending && next != .suspended { suspendCause = nil }
        state = next
        times.enteredState()
        stateChangeCount += 1
        return next
    }
}
