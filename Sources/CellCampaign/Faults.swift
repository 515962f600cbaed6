// The faults a virtual shift injects, and how they are scheduled from the seed.

import CellCore
import CellSimulator
import Modbus

/// Every kind of fault the campaign injects. The raw value is the name in reports.
public enum FaultKind: String, CaseIterable, Sendable, Comparable {
    // Link faults on single requests (background: any time, any device; they need no operator). Each is a behaviour
    // of the in-memory transport (`ModbusLinkFault`) that the real Modbus client and drivers must survive.
    /// A request is lost: nothing applied, no reply (the driver times out and resyncs).
    case timeout
    /// A request is applied and its reply is lost (the driver times out; the arm got the setpoint).
    case replyLost = "reply-lost"
    /// A request is applied and its reply comes after the deadline (the driver times out and resyncs; the late reply
    /// must never be read).
    case lateReply = "late-reply"
    /// The device answers a request with exception 0x06 (busy) and applies nothing.
    case exceptionReply = "exception-reply"
    /// A reply with the wrong function code, cut short, too long, or with another transaction id (the client's
    /// reply checks reject it and resync).
    case malformedReply = "malformed-reply"
    case truncatedReply = "truncated-reply"
    case oversizedReply = "oversized-reply"
    case wrongTransaction = "wrong-transaction"
    /// An arm's reply, well framed, with register values no RA-610 reports (the driver's plausibility check).
    case corruptedValues = "corrupted-values"

    // Episodes: one at a time, then the operator recovers the cell.
    /// A device is unreachable for 8 ms … 3 s (connection dropped, reconnects with the driver's backoff).
    case droppedConnection = "dropped-connection"
    /// RA-610 fault codes, latched in one arm (`RA610Model.injectFault`).
    case armCommWatchdog = "arm-COMM_WATCHDOG"
    case armSetpointJump = "arm-SETPOINT_JUMP"
    case armFollowingError = "arm-FOLLOWING_ERROR"
    case armPositionLimit = "arm-POSITION_LIMIT"
    case armToolFault = "arm-TOOL_FAULT"
    case armCollision = "arm-COLLISION"
    case armOvertemperature = "arm-OVERTEMP"
    case armEstop = "arm-ESTOP"
    /// The next tool request of one arm jams (ends ERROR).
    case toolJam = "tool-jam"
    /// The e-stop is pressed while an arm moves, released 1–5 s later.
    case estopInMotion = "estop-in-motion"
    /// The guard door is opened for 2–10 s.
    case guardOpen = "guard-open"
    /// TS-200 faults for 1–8 s.
    case infeedJam = "station-INFEED_JAM"
    case clampFault = "station-CLAMP_FAULT"
    case testerFault = "station-TESTER_FAULT"
    /// Starvation of housings, LED modules or lenses for 3–30 s.
    case housingStarvation = "starved-housings"
    case ledModuleStarvation = "starved-led-modules"
    case lensStarvation = "starved-lenses"
    /// The outfeed is blocked, or the reject bin reads full, for 3–30 s.
    case outfeedBlocked = "blocked-outfeed"
    case rejectBinFull = "reject-bin-full"
    /// The ledger cannot write for 2–30 s (the cell holds; lamps wait in the queue).
    case ledgerUnwritable = "ledger-unwritable"
    /// The controller process dies and restarts 0.5–3 s later (new controller, fresh process image; the
    /// devices keep running; the lamp in the cell is recorded as scrapped "controller restart").
    case crash

    /// Faults on single requests, injected in the background.
    public static let background: [FaultKind] = [
        .timeout, .replyLost, .lateReply, .exceptionReply, .malformedReply, .truncatedReply, .oversizedReply,
        .wrongTransaction, .corruptedValues,
    ]

    /// The in-memory transport's behaviour for a background kind, nil for episodes.
    public var linkFault: ModbusLinkFault? {
        switch self {
        case .timeout: .requestLost
        case .replyLost: .replyLost
        case .lateReply: .replyLate
        case .exceptionReply: .exceptionReply
        case .malformedReply: .malformedReply
        case .truncatedReply: .truncatedReply
        case .oversizedReply: .oversizedReply
        case .wrongTransaction: .wrongTransactionReply
        case .corruptedValues: .corruptedValues
        default: nil
        }
    }
    /// Faults run as episodes.
    public static let episodes: [FaultKind] = allCases.filter { !background.contains($0) }

    public static func < (a: FaultKind, b: FaultKind) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The RA-610 fault code of an `arm…` kind, nil for other kinds.
    public var armFaultCode: UInt16? {
        switch self {
        case .armCommWatchdog: ArmFaultCode.commWatchdog
        case .armSetpointJump: ArmFaultCode.setpointJump
        case .armFollowingError: ArmFaultCode.followingError
        case .armPositionLimit: ArmFaultCode.positionLimit
        case .armToolFault: ArmFaultCode.toolFault
        case .armCollision: ArmFaultCode.collision
        case .armOvertemperature: ArmFaultCode.overtemperature
        case .armEstop: ArmFaultCode.estop
        default: nil
        }
    }
}

/// How many faults of a shift and how they are spaced. The defaults make a simulated hour see every kind several
/// times (episodes are drawn from a shuffled deck of all episode kinds, so they come round evenly).
public struct FaultSchedule: Sendable {
    /// Faults to inject; empty: a fault-free shift.
    public var kinds: Set<FaultKind> = Set(FaultKind.allCases)
    /// Mean time between two background link faults (each picks a device and a kind), ns.
    public var backgroundMeanIntervalNanoseconds: UInt64 = 6_000_000_000
    /// Quiet time after a recovery before the next episode: uniform in this range, ns.
    public var quietRangeNanoseconds: ClosedRange<UInt64> = 3_000_000_000...15_000_000_000
    /// Share of episodes after which the next one waits until a lamp has been finished (the liveness check).
    public var awaitLampFraction: Double = 0.5
    /// The first episode does not come before this, ns (the cell starts up first).
    public var firstEpisodeNanoseconds: UInt64 = 60_000_000_000

    public init() {}

    /// No faults at all.
    public static var none: FaultSchedule {
        var schedule = FaultSchedule()
        schedule.kinds = []
        return schedule
    }
}

/// Draws episodes from a deck: every enabled kind once, then again. The first round is the canonical order
/// rotated by `rotationStep × seed` (consecutive seeds start at different kinds, so a few short seeds together
/// cover every kind); later rounds are shuffled by the seed.
struct EpisodeDeck {
    private var deck: [FaultKind] = []
    private let kinds: [FaultKind]
    /// Rotation of the first round per seed.
    static let rotationStep = 7

    init(kinds: Set<FaultKind>, seed: UInt64) {
        let enabled = FaultKind.episodes.filter { kinds.contains($0) }
        self.kinds = enabled
        if !enabled.isEmpty {
            let offset = Int((seed &* UInt64(Self.rotationStep)) % UInt64(enabled.count))
            // `deck` is drawn from its end.
            deck = Array((enabled[offset...] + enabled[..<offset]).reversed())
        }
    }

    var isEmpty: Bool { kinds.isEmpty }

    mutating func draw(_ random: inout SimulationRandom) -> FaultKind? {
        if kinds.isEmpty { return nil }
        if deck.isEmpty {
            deck = kinds
            deck.shuffle(using: &random)
        }
        return deck.removeLast()
    }
}

/// Counts per fault kind (a fixed order: no dictionary iteration in reports).
public struct FaultCounts: Sendable, Equatable {
    public private(set) var values = [Int](repeating: 0, count: FaultKind.allCases.count)

    public init() {}

    public subscript(kind: FaultKind) -> Int {
        get { values[FaultKind.allCases.firstIndex(of: kind)!] }
        set { values[FaultKind.allCases.firstIndex(of: kind)!] = newValue }
    }

    /// Adds `other` kind by kind.
    public mutating func add(_ other: FaultCounts) {
        for index in values.indices { values[index] += other.values[index] }
    }

    public var total: Int { values.reduce(0, +) }
}
