// PackML vocabulary: states, commands, unit modes, stop and suspend causes.
// Numbering follows ISA-TR88.00.02 PackTags (`StateCurrent`, `CntrlCmd`, `UnitMode`), NOT the OPC UA
// PackML companion specification (OPC 30050), which numbers the states differently.
// Everything here is a trivial value type: safe to use on the real-time control thread.

/// A PackML machine state, numbered as the PackTags `StateCurrent` tag of ISA-TR88.00.02
/// (0 Undefined … 17 Complete). Any thread may use it.
public enum PackMLState: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case undefined = 0
    case clearing = 1
    case stopped = 2
    case starting = 3
    case idle = 4
    case suspended = 5
    case execute = 6
    case stopping = 7
    case aborting = 8
    case aborted = 9
    case holding = 10
    case held = 11
    case unholding = 12
    case suspending = 13
    case unsuspending = 14
    case resetting = 15
    case completing = 16
    case complete = 17

    /// Number of states including Undefined (the size of `StateCumulativeTime[]`).
    public static let count = 18

    /// True for acting states: they end by themselves when their work is done ("state complete", SC).
    /// Execute is acting: its SC is "production order done" (→ Completing).
    public var isActing: Bool {
        switch self {
        case .clearing, .starting, .execute, .stopping, .aborting, .holding, .unholding, .suspending,
            .unsuspending, .resetting, .completing:
            return true
        case .undefined, .stopped, .idle, .suspended, .aborted, .held, .complete:
            return false
        }
    }

    /// True for wait states: they stay until a command or an internal trigger moves them on.
    /// Undefined is neither acting nor wait.
    public var isWait: Bool {
        switch self {
        case .stopped, .idle, .suspended, .aborted, .held, .complete: return true
        default: return false
        }
    }

    /// The state's PackML name ("Execute"), a static string: no allocation.
    public var name: StaticString {
        switch self {
        case .undefined: return "Undefined"
        case .clearing: return "Clearing"
        case .stopped: return "Stopped"
        case .starting: return "Starting"
        case .idle: return "Idle"
        case .suspended: return "Suspended"
        case .execute: return "Execute"
        case .stopping: return "Stopping"
        case .aborting: return "Aborting"
        case .aborted: return "Aborted"
        case .holding: return "Holding"
        case .held: return "Held"
        case .unholding: return "Unholding"
        case .suspending: return "Suspending"
        case .unsuspending: return "Unsuspending"
        case .resetting: return "Resetting"
        case .completing: return "Completing"
        case .complete: return "Complete"
        }
    }

    /// The name as a `String` (allocates; not for the control thread).
    public var description: String { name.description }
}

/// A PackML control command, numbered as the PackTags `CntrlCmd` tag (1 Reset … 9 Clear).
/// Any thread may use it.
public enum PackMLCommand: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case reset = 1
    case start = 2
    case stop = 3
    case hold = 4
    case unhold = 5
    case suspend = 6
    case unsuspend = 7
    case abort = 8
    case clear = 9

    /// The command's PackML name ("Start"), a static string: no allocation.
    public var name: StaticString {
        switch self {
        case .reset: return "Reset"
        case .start: return "Start"
        case .stop: return "Stop"
        case .hold: return "Hold"
        case .unhold: return "Unhold"
        case .suspend: return "Suspend"
        case .unsuspend: return "Unsuspend"
        case .abort: return "Abort"
        case .clear: return "Clear"
        }
    }

    /// The name as a `String` (allocates; not for the control thread).
    public var description: String { name.description }
}

/// The PackML unit mode (PackTags `UnitModeCurrent`): 1 Production, 2 Maintenance, 3 Manual.
///
/// LampCell's rule: Suspend/Unsuspend (starved/blocked) and production-order completion are used only in
/// Production. Maintenance and Manual run no production order, so they use the state model without
/// Suspending/Suspended/Unsuspending/Completing/Complete. Any thread may use it.
public enum UnitMode: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case production = 1
    case maintenance = 2
    case manual = 3

    /// Size of `ModeCumulativeTime[]`: index = raw value, index 0 (no mode) is unused and stays 0.
    public static let cumulativeSlotCount = 4

    /// The mode's name ("Production"), a static string: no allocation.
    public var name: StaticString {
        switch self {
        case .production: return "Production"
        case .maintenance: return "Maintenance"
        case .manual: return "Manual"
        }
    }

    /// The name as a `String` (allocates; not for the control thread).
    public var description: String { name.description }
}

/// Why the cell entered Suspending: an operator Suspend command or the equipment interlock
/// (PackTags `EquipmentInterlock.Starved` / `.Blocked`). Any thread may use it.
public enum SuspendCause: UInt8, Sendable, Equatable {
    /// Operator Suspend command; only an Unsuspend command (or an `unsuspend()` call) ends it.
    case operatorCommand = 1
    /// Upstream starved: no material to work on (e.g. no housing at the infeed).
    case starved = 2
    /// Downstream blocked: nowhere to put the result (e.g. outfeed full).
    case blocked = 3
}

/// What a `StopReason` led to: an abort, a stop or a hold.
public enum StopAction: UInt8, Sendable, Equatable {
    case abort = 1
    case stop = 2
    case hold = 3
}

/// The kind of cause behind an abort, stop or hold (the PackTags `StopReason.ID`). Any thread may use it.
public enum StopReasonCode: UInt16, Sendable, Equatable {
    /// Stop command from an operator or the API.
    case operatorStop = 1
    /// Hold command from an operator or the API.
    case operatorHold = 2
    /// Abort command from an operator or the API.
    case operatorAbort = 3
    /// Emergency stop circuit opened.
    case emergencyStop = 10
    /// Safety interlock opened (door, light curtain).
    case safetyInterlock = 11
    /// A device reported a fault.
    case deviceFault = 20
    /// A device stopped answering (connection lost, timeouts).
    case deviceLost = 21
    /// A process value left its window (force, torque, test result) in a way that needs an operator.
    case processFault = 30
    /// The lamp ledger cannot write (disk full, I/O error, queue full).
    case ledgerUnavailable = 40
    /// Anything else; the message says what.
    case other = 99
}

/// A cause as reported by the caller of `abort(reason:)`/`hold(reason:)`: a code, a static message and,
/// when one device is to blame, its index in the cell definition. A fixed-size value: no allocation.
public struct StopCause: Sendable, Equatable {
    /// The kind of cause.
    public var code: StopReasonCode
    /// A short human-readable message; a static string so creating a cause never allocates.
    public var message: StaticString
    /// Index of the device to blame in the cell definition's device list, or nil when no single device is.
    public var deviceIndex: UInt8?

    /// Creates a cause. Any thread may call it; it does not allocate.
    public init(code: StopReasonCode, message: StaticString, deviceIndex: UInt8? = nil) {
        self.code = code
        self.message = message
        self.deviceIndex = deviceIndex
    }

    /// The cause recorded for an operator/API Stop command.
    public static let operatorStop = StopCause(code: .operatorStop, message: "Stop command")
    /// The cause recorded for an operator/API Hold command.
    public static let operatorHold = StopCause(code: .operatorHold, message: "Hold command")
    /// The cause recorded for an operator/API Abort command.
    public static let operatorAbort = StopCause(code: .operatorAbort, message: "Abort command")

    /// Equal when code, device and message text are equal.
    public static func == (lhs: StopCause, rhs: StopCause) -> Bool {
        guard lhs.code == rhs.code, lhs.deviceIndex == rhs.deviceIndex else { return false }
        return lhs.message.withUTF8Buffer { left in
            rhs.message.withUTF8Buffer { right in left.elementsEqual(right) }
        }
    }
}

/// The first cause of an abort, stop or hold since the last Reset (PackTags `StopReason`), stamped with
/// the monotonic time and the state it happened in. A fixed-size value: no allocation. Any thread may use it.
public struct StopReason: Sendable, Equatable {
    /// What was reported.
    public var cause: StopCause
    /// What the cause led to.
    public var action: StopAction
    /// Monotonic time of the cause, in nanoseconds (the state machine's clock at that moment).
    public var timeNanoseconds: UInt64
    /// The state the cell was in when the cause arrived.
    public var state: PackMLState

    /// Creates a stop reason. Normally only the state machine does this.
    public init(cause: StopCause, action: StopAction, timeNanoseconds: UInt64, state: PackMLState) {
        self.cause = cause
        self.action = action
        self.timeNanoseconds = timeNanoseconds
        self.state = state
    }
}
