// Refusals of PackML commands and triggers: a fixed-size value on the control thread; the human-readable
// text is built only when `description` is read (that allocates, so read it off the control thread).

/// What was asked of the state machine or the unit, for naming it in a refusal. Any thread may use it.
public enum PackMLRequest: Sendable, Equatable {
    /// A PackML control command (`CntrlCmd`).
    case command(PackMLCommand)
    /// "State complete" (SC) of the current acting state.
    case stateComplete
    /// Internal abort (e-stop, fault, lost device).
    case abortTrigger
    /// Internal suspend (starved/blocked).
    case suspendTrigger
    /// Internal unsuspend (material back).
    case unsuspendTrigger
    /// Internal hold (e.g. the ledger cannot write).
    case holdTrigger
    /// Production order done (→ Completing).
    case completeTrigger
    /// Unit mode change to the given mode.
    case modeChange(UnitMode)
    /// Assigning a production order.
    case assignOrder
    /// Cancelling the active production order.
    case cancelOrder

    /// The request's name for messages ("Start", "Unit mode change to Manual").
    public var displayName: String {
        switch self {
        case .command(let command): return command.description
        case .stateComplete: return "State complete (SC)"
        case .abortTrigger: return "Abort (e-stop/fault)"
        case .suspendTrigger: return "Suspend (starved/blocked)"
        case .unsuspendTrigger: return "Unsuspend (material back)"
        case .holdTrigger: return "Hold (internal cause)"
        case .completeTrigger: return "Order completion"
        case .modeChange(let mode): return "Unit mode change to \(mode)"
        case .assignOrder: return "Assigning a production order"
        case .cancelOrder: return "Cancelling the production order"
        }
    }
}

/// Why a command or trigger was refused. The cell's state is unchanged by a refused request.
/// A fixed-size value (no allocation to create or return it); `description` builds the text lazily.
/// Any thread may use it; read `description` off the control thread.
public struct PackMLRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Reason: UInt8, Sendable, Equatable {
        /// The transition table does not accept this request in the current state.
        case notAcceptedInState = 1
        /// Clear was asked while the caller says the abort cause is still present.
        case causeStillPresent = 2
        /// The request is not used in the current unit mode (Suspend/Unsuspend/completion outside Production).
        case notUsedInMode = 3
        /// Start in Production mode without an active production order.
        case noProductionOrder = 4
        /// A production order is already active.
        case orderAlreadyActive = 5
        /// There is no active production order to cancel.
        case noActiveOrder = 6
    }

    /// The kind of refusal.
    public let reason: Reason
    /// What was asked.
    public let request: PackMLRequest
    /// The state the cell was (and still is) in.
    public let state: PackMLState
    /// The unit mode the cell was (and still is) in.
    public let mode: UnitMode
    /// The stop reason recorded at the time (named in a Clear refusal).
    public let stopReason: StopReason?

    /// Creates a refusal. Normally only the state machine and the unit do this.
    public init(
        reason: Reason, request: PackMLRequest, state: PackMLState, mode: UnitMode, stopReason: StopReason? = nil
    ) {
        self.reason = reason
        self.request = request
        self.state = state
        self.mode = mode
        self.stopReason = stopReason
    }

    /// The states in which `request` is accepted by the transition rules (allocates; for messages and tests).
    public static func acceptedStates(for request: PackMLRequest) -> [PackMLState] {
        PackMLState.allCases.filter { state in
            switch request {
            case .command(let command): return PackMLStateMachine.target(of: command, from: state) != nil
            case .stateComplete: return PackMLStateMachine.stateCompleteTarget(from: state) != nil
            case .abortTrigger: return PackMLStateMachine.target(of: .abort, from: state) != nil
            case .suspendTrigger, .holdTrigger, .completeTrigger: return state == .execute
            case .unsuspendTrigger: return state == .suspended
            case .modeChange: return PackMLStateMachine.acceptsModeChange(in: state)
            case .assignOrder: return PackMLUnit.acceptsOrderAssignment(in: state)
            case .cancelOrder: return PackMLUnit.acceptsOrderCancellation(in: state)
            }
        }
    }

    /// "A, B or C".
    static func list(_ states: [PackMLState]) -> String {
        let names = states.map(\.description)
        guard names.count > 1 else { return names.first ?? "no state" }
        return names.dropLast().joined(separator: ", ") + " or " + names[names.count - 1]
    }

    /// "Start is accepted only in Idle; the cell is Stopped" and similar (allocates).
    public var description: String {
        let what = request.displayName
        switch reason {
        case .notAcceptedInState:
            let accepted = Self.acceptedStates(for: request)
            let where_: String
            if accepted.count > PackMLState.count / 2 {
                let refused = PackMLState.allCases.filter { !accepted.contains($0) }
                where_ = "in any state but \(Self.list(refused))"
            } else {
                where_ = "only in \(Self.list(accepted))"
            }
            return "\(what) is accepted \(where_); the cell is \(state)"
        case .causeStillPresent:
            var text = "Clear is refused: the cause of the abort is still present"
            if let stopReason {
                text += " (\(stopReason.cause.message)"
                if let device = stopReason.cause.deviceIndex { text += ", device #\(device)" }
                text += ")"
            }
            return text + "; the cell stays \(state)"
        case .notUsedInMode:
            if case .command(.start) = request {
                return "\(what) is not used in \(mode) mode (reserved for the commissioning tools; the recipe runs in "
                    + "Production and Maintenance); the cell is \(state)"
            }
            return "\(what) is not used in \(mode) mode (only in Production); the cell is \(state)"
        case .noProductionOrder:
            return "\(what) in Production mode needs an active production order; none is assigned"
        case .orderAlreadyActive:
            return "\(what) is refused: a production order is already active; let it complete or cancel it first"
        case .noActiveOrder:
            return "\(what) is refused: no production order is active"
        }
    }
}
