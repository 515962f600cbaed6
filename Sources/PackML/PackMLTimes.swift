// PackTags time accounting: StateCurrentTime, StateCumulativeTime[18], ModeCurrentTime,
// ModeCumulativeTime[4], AccTimeSinceReset. Fixed inline storage; a pure function of the times passed in.

/// Time accounting for the PackML state machine, in nanoseconds of a monotonic clock supplied by the caller
/// (`lampcell_monotonic_ns()` in the daemon, virtual time in simulation and tests).
///
/// Rule: the interval between two `advance` calls is attributed to the state and mode that were current
/// during it (the ones before the call). A transition takes effect at the time of the last `advance`, so the
/// control thread advances first and then applies commands/triggers in each period. A time earlier than the
/// last one is ignored (the clock is monotonic; nothing is attributed twice or negatively).
///
/// Fixed-size inline storage: copying, advancing and reading never allocate. Owned by the control thread;
/// other threads read copies.
public struct PackMLTimes: Sendable, Equatable {
    /// Time the accumulators were last reset (construction or `resetCumulative(…)`).
    public private(set) var resetNanoseconds: UInt64
    /// The clock as of the last `advance` (or construction).
    public private(set) var nowNanoseconds: UInt64
    /// When the current state was entered.
    public private(set) var stateEnteredNanoseconds: UInt64
    /// When the current mode was entered.
    public private(set) var modeEnteredNanoseconds: UInt64
    private var stateCumulative: InlineArray<18, UInt64>
    private var modeCumulative: InlineArray<4, UInt64>

    /// Starts accounting at `nowNanoseconds` with every accumulator at zero.
    public init(nowNanoseconds: UInt64) {
        resetNanoseconds = nowNanoseconds
        self.nowNanoseconds = nowNanoseconds
        stateEnteredNanoseconds = nowNanoseconds
        modeEnteredNanoseconds = nowNanoseconds
        stateCumulative = InlineArray(repeating: 0)
        modeCumulative = InlineArray(repeating: 0)
    }

    /// PackTags `StateCurrentTime`: time spent in the current state so far.
    public var stateCurrentNanoseconds: UInt64 { nowNanoseconds - stateEnteredNanoseconds }
    /// PackTags `ModeCurrentTime`: time spent in the current mode so far.
    public var modeCurrentNanoseconds: UInt64 { nowNanoseconds - modeEnteredNanoseconds }
    /// PackTags `AccTimeSinceReset`: time since the accumulators were reset.
    public var sinceResetNanoseconds: UInt64 { nowNanoseconds - resetNanoseconds }

    /// PackTags `StateCumulativeTime[state]`: total time in `state` since the accumulators were reset,
    /// including the current stint up to the last `advance`.
    public func stateCumulativeNanoseconds(_ state: PackMLState) -> UInt64 {
        stateCumulative[Int(state.rawValue)]
    }

    /// PackTags `ModeCumulativeTime[mode]`: total time in `mode` since the accumulators were reset.
    public func modeCumulativeNanoseconds(_ mode: UnitMode) -> UInt64 {
        modeCumulative[Int(mode.rawValue)]
    }

    /// Moves the clock to `nowNanoseconds`, attributing the elapsed time to `state` and `mode` (those current
    /// during the interval). Returns the elapsed time (0 if the time did not move forward).
    /// Control thread; no allocation.
    @discardableResult
    mutating func advance(toNanoseconds now: UInt64, state: PackMLState, mode: UnitMode) -> UInt64 {
        guard now > nowNanoseconds else { return 0 }
        let elapsed = now - nowNanoseconds
        stateCumulative[Int(state.rawValue)] += elapsed
        modeCumulative[Int(mode.rawValue)] += elapsed
        nowNanoseconds = now
        return elapsed
    }

    /// Marks a state change at the current clock. Control thread; no allocation.
    mutating func enteredState() { stateEnteredNanoseconds = nowNanoseconds }

    /// Marks a mode change at the current clock. Control thread; no allocation.
    mutating func enteredMode() { modeEnteredNanoseconds = nowNanoseconds }

    /// Zeroes the cumulative accumulators and `AccTimeSinceReset` at the current clock; the current state's
    /// and mode's entry times are kept. Control thread; no allocation.
    mutating func resetCumulative() {
        stateCumulative = InlineArray(repeating: 0)
        modeCumulative = InlineArray(repeating: 0)
        resetNanoseconds = nowNanoseconds
    }

    /// Equal when every field and accumulator is equal.
    public static func == (lhs: PackMLTimes, rhs: PackMLTimes) -> Bool {
        guard lhs.resetNanoseconds == rhs.resetNanoseconds, lhs.nowNanoseconds == rhs.nowNanoseconds,
            lhs.stateEnteredNanoseconds == rhs.stateEnteredNanoseconds,
            lhs.modeEnteredNanoseconds == rhs.modeEnteredNanoseconds
        else { return false }
        for index in 0..<PackMLState.count where lhs.stateCumulative[index] != rhs.stateCumulative[index] {
            return false
        }
        for index in 0..<UnitMode.cumulativeSlotCount where lhs.modeCumulative[index] != rhs.modeCumulative[index] {
            return false
        }
        return true
    }
}
