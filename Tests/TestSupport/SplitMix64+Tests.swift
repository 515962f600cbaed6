// Test support shared by the test targets (the LampCellTestSupport target): what the seeded random cases draw.
// The generator itself is the package's one SplitMix64 (SeededRandom), re-exported here for the tests.

@_exported import SeededRandom

extension SplitMix64 {
    /// Uniform in 0..<bound (0 for a bound below 1). Plain modulo: the tiny bias does not matter to a test.
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }

    /// true with probability `percent` / 100.
    public mutating func chance(_ percent: Int) -> Bool { below(100) < percent }

    /// One of `items` (not empty).
    public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double {
        lo + (hi - lo) * Double(next() >> 11) * 0x1.0p-53
    }

    /// Uniform in `range` (plain modulo, as `below`).
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}
