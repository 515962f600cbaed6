import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 UTC timestamps (`2026-11-28T09:44:01.123Z`), written and read without locale surprises. Any thread.
public enum RFC3339 {
    /// The text of a wall time in ns since the Unix epoch, millisecond precision.
    public static func text(wallNanoseconds: UInt64) -> String {
        let seconds = Int(wallNanoseconds / 1_000_000_000)
        let milliseconds = Int(wallNanoseconds / 1_000_000 % 1000)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), milliseconds)
    }

    /// The latest time accepted (2100-01-01T00:00:00Z), s since the Unix epoch: later text is refused, so that no
    /// caller's arithmetic in ns (Int64 reaches 2262) can overflow.
    public static let maximumWallSeconds: Double = 4_102_444_800

    /// Parses `2026-11-28T09:44:01Z`, `2026-11-28T09:44:01.5+01:00`, `2026-11-28` (midnight UTC) or a number of
    /// seconds since the Unix epoch; nil when the text is none of these, or before 1970 or after
    /// `maximumWallSeconds`.
    public static func wallNanoseconds(_ text: String) -> UInt64? {
        if let seconds = Double(text) {
            guard seconds >= 0, seconds <= maximumWallSeconds else { return nil }
            return UInt64(seconds * 1e9)
        }
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var date = iso.date(from: text)
        if date == nil {
            iso.formatOptions = [.withInternetDateTime]
            date = iso.date(from: text)
        }
        if date == nil {
            iso.formatOptions = [.withFullDate]
            date = iso.date(from: text)
        }
        guard let date, date.timeIntervalSince1970 >= 0, date.timeIntervalSince1970 <= maximumWallSeconds else { return nil }
        return UInt64(date.timeIntervalSince1970 * 1e9)
    }
}

