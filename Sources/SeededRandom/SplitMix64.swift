/// SplitMix64 (Steele, Lea and Flood, 2014): the package's one small, fast, seeded pseudo-random generator.
///
/// For everything that must be reproduced from a seed: the simulator's random choices (`SimulationRandom` in
/// CellSimulator is this generator), a campaign's faults, the Modbus client's backoff jitter, and the seeded
/// random cases of the tests and benchmarks. The same seed always gives the same sequence, on every platform and
/// in every build; recorded seeds (campaign reports, fuzz replays, regression cases) depend on that, so the
/// algorithm and the derived values below must never change.
///
/// Not cryptographic: the state is 64 bits and the output reveals it. Do not use it for secrets or anything an
/// adversary must not predict.
///
/// Threads: a value type with one owner. Whoever holds a generator draws from it; to give another thread (or
/// device, or test case) its own stream, hand it a copy or, better, an independent generator from `split()`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    @usableFromInline
    internal var state: UInt64

    /// A generator whose sequence is determined by `seed` alone (any value, 0 included).
    @inlinable
    public init(seed: UInt64) { state = seed }

    /// The next 64 uniformly distributed bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits of `next()`, scaled (every value a multiple of 2⁻⁵³).
    @inlinable
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A new generator seeded from `next()`, for an independent stream (one device of a cell, one test case).
    @inlinable
    public mutating func split() -> SplitMix64 { SplitMix64(seed: next()) }
}
