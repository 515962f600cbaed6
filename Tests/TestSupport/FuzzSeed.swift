// Test support shared by the test targets (the LampCellTestSupport target): the fuzz tests' seed and size.

import Foundation

/// The seed of a seeded fuzz run: `LAMPCELL_FUZZ_SEED` replays one. The only reader of that variable; prints
/// nothing (each fuzz test prints its seed with its replay line).
public enum FuzzSeed {
    /// `LAMPCELL_FUZZ_SEED` when it is set to a whole number (0 to 2⁶⁴ − 1), otherwise `fallback`.
    public static func value(default fallback: @autoclosure () -> UInt64) -> UInt64 {
        guard let text = ProcessInfo.processInfo.environment["LAMPCELL_FUZZ_SEED"], let value = UInt64(text) else {
            return fallback()
        }
        return value
    }

    /// A fresh seed below 10⁹ (short enough to retype), from the system's generator: the fallback of a run that was
    /// not given one.
    public static func fresh() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next() % 1_000_000_000
    }
}

/// The size of a fuzz run: `LAMPCELL_FUZZ_ITERATIONS` (what it counts is the test's: exchanges, mutants…).
public enum FuzzIterations {
    /// `LAMPCELL_FUZZ_ITERATIONS` when it is set to a positive whole number, otherwise `fallback`.
    public static func value(default fallback: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment["LAMPCELL_FUZZ_ITERATIONS"], let count = Int(text) else {
            return fallback
        }
        return count > 0 ? count : fallback
    }
}
