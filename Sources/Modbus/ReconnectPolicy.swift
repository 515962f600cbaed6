import SeededRandom

/// Capped exponential backoff with jitter between connection attempts of a `ModbusClient`.
///
/// After the n-th consecutive failed attempt (n ≥ 1) the next attempt waits
/// `base = min(maximumDelayNanoseconds, initialDelayNanoseconds × multiplier^(n−1))`, shortened by a random
/// fraction of at most `jitterFraction` (the delay lies in `[base × (1 − jitterFraction), base]`, so it never
/// exceeds the cap). Delays are measured from the start of the failed attempt. A value type: any thread.
public struct ReconnectPolicy: Sendable, Equatable {
    /// Delay after the first failed attempt.
    public var initialDelayNanoseconds: UInt64
    /// Cap on the delay.
    public var maximumDelayNanoseconds: UInt64
    /// Growth factor per further failure (values below 1 are treated as 1).
    public var multiplier: Double
    /// Largest fraction removed at random from a delay, 0...1 (values outside are clamped).
    public var jitterFraction: Double

    /// 50 ms doubling up to 2 s, 20 % jitter.
    public static let `default` = ReconnectPolicy(
        initialDelayNanoseconds: 50_000_000, maximumDelayNanoseconds: 2_000_000_000, multiplier: 2,
        jitterFraction: 0.2)

    /// Creates a policy; see the type's documentation for how the fields combine.
    public init(
        initialDelayNanoseconds: UInt64, maximumDelayNanoseconds: UInt64, multiplier: Double,
        jitterFraction: Double
    ) {
        self.initialDelayNanoseconds = initialDelayNanoseconds
        self.maximumDelayNanoseconds = maximumDelayNanoseconds
        self.multiplier = multiplier
        self.jitterFraction = jitterFraction
    }

    /// The delay before the next attempt without jitter, after `consecutiveFailures` (≥ 1) failed attempts.
    public func baseDelayNanoseconds(consecutiveFailures: Int) -> UInt64 {
        let cap = max(maximumDelayNanoseconds, initialDelayNanoseconds)
        guard consecutiveFailures > 1 else { return min(initialDelayNanoseconds, cap) }
        let factor = multiplier.isFinite ? max(multiplier, 1) : 1
        var delay = Double(initialDelayNanoseconds)
        for _ in 1..<consecutiveFailures {
            delay *= factor
            if delay >= Double(cap) { return cap }
        }
        return UInt64(delay)
    }

    /// The delay with jitter applied; `unitRandom` is a uniform sample in [0, 1).
    public func delayNanoseconds(consecutiveFailures: Int, unitRandom: Double) -> UInt64 {
        let base = baseDelayNanoseconds(consecutiveFailures: consecutiveFailures)
        let jitter = jitterFraction.isFinite ? min(max(jitterFraction, 0), 1) : 0
        let sample = min(max(unitRandom, 0), 1)
        return base - UInt64(Double(base) * jitter * sample)
    }
}

/// The backoff jitter's generator (ModbusClient, ModbusTCPServer): the package's one SplitMix64, seeded so that the
/// jitter is reproducible in tests.
typealias SplitMix64 = SeededRandom.SplitMix64
