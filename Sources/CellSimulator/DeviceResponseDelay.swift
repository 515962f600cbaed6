import Foundation
import Modbus

/// One `--response-delay` value of `lampsim serve` and `lampcelld --simulate`: how late a simulated device answers,
/// so that slow hardware can be tried without a cell.
///
/// Syntax: `[DEVICE=]DELAY[±JITTER]`, durations in `ms` or `us` (`µs`), `+-` for `±`; e.g. `1ms±0.5ms` (every
/// device), `loader=2ms`, `station=1ms+-500us`. Each reply of the device is written a delay drawn uniformly from
/// DELAY ± JITTER after its request arrived (`ModbusTCPServer.replyDelayNanoseconds`). The option is repeatable; a
/// device's own value overrides the all-devices one.
///
/// Thread: any (a value; the parser is pure).
public struct DeviceResponseDelay: Sendable, Equatable, CustomStringConvertible {
    /// The option, as both executables spell it (and as error messages name it).
    public static let optionName = "--response-delay"
    /// The option's value name in usage texts.
    public static let valueName = "spec"
    /// The option's help text, shared by both executables.
    public static let help = """
        How late the simulated devices answer: [DEVICE=]DELAY[±JITTER] in ms or us (+- for ±), each reply \
        uniformly within DELAY ± JITTER, e.g. 1ms±0.5ms (every device) or loader=2ms. Repeatable; a device's own \
        value overrides the all-devices one.
        """

    /// The device this applies to; nil: every device without a value of its own.
    public let device: String?
    /// Delay from a request's arrival to its reply.
    public let delayNanoseconds: UInt64
    /// Each reply's delay lies uniformly in `delayNanoseconds` ± this; at most `delayNanoseconds`.
    public let jitterNanoseconds: UInt64
    /// The value as given on the command line (error messages quote it).
    public let text: String

    /// Largest delay + jitter accepted: the slowest reply a simulated device can be made to give.
    public static let maximumNanoseconds = ModbusTCPServer.maximumReplyDelayNanoseconds

    /// A value built in code (the command line goes through `parse(_:)`).
    /// - Throws: the jitter exceeds the delay, or delay + jitter exceeds `maximumNanoseconds`.
    public init(device: String?, delayNanoseconds: UInt64, jitterNanoseconds: UInt64 = 0)
        throws(DeviceResponseDelayError)
    {
        let text = Self.canonicalText(device: device, delay: delayNanoseconds, jitter: jitterNanoseconds)
        try self.init(device: device, delay: delayNanoseconds, jitter: jitterNanoseconds, text: text)
    }

    private init(device: String?, delay: UInt64, jitter: UInt64, text: String) throws(DeviceResponseDelayError) {
        guard jitter <= delay else {
            throw .jitterAboveDelay(text: text, delayNanoseconds: delay, jitterNanoseconds: jitter)
        }
        guard delay <= Self.maximumNanoseconds, jitter <= Self.maximumNanoseconds - delay else {
            throw .aboveMaximum(text: text)
        }
        self.device = device
        delayNanoseconds = delay
        jitterNanoseconds = jitter
        self.text = text
    }

    /// Parses one `--response-delay` value. Unknown device names are found later, by `resolve(_:deviceNames:)`
    /// (the parser does not know the cell).
    public static func parse(_ text: String) throws(DeviceResponseDelayError) -> DeviceResponseDelay {
        var value = Substring(text.trimmingCharacters(in: .whitespaces))
        var device: String?
        if let equals = value.firstIndex(of: "=") {
            let name = value[..<equals].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw .missingDevice(text: text) }
            device = name
            value = value[value.index(after: equals)...]
        }
        let parts = value.replacingOccurrences(of: "+-", with: "±").split(
            separator: "±", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.trimmingCharacters(in: .whitespaces).isEmpty }) else {
            throw .malformed(text: text)
        }
        let delay = try nanoseconds(parts[0], in: text)
        let jitter = parts.count == 2 ? try nanoseconds(parts[1], in: text) : 0
        return try DeviceResponseDelay(device: device, delay: delay, jitter: jitter, text: text)
    }

    /// Parses every value of a repeated option, refusing a second value for the same device (or a second
    /// all-devices value).
    public static func parse(_ texts: [String]) throws(DeviceResponseDelayError) -> [DeviceResponseDelay] {
        var values: [DeviceResponseDelay] = []
        for text in texts { values.append(try parse(text)) }
        try checkDuplicates(values)
        return values
    }

    /// The value in force for each of `deviceNames`: the device's own, else the all-devices one, else none (0).
    /// - Throws: a value names a device not in `deviceNames`, or two values name the same device.
    public static func resolve(_ values: [DeviceResponseDelay], deviceNames: [String])
        throws(DeviceResponseDelayError) -> [String: DeviceResponseDelay]
    {
        try checkDuplicates(values)
        for value in values {
            if let device = value.device, !deviceNames.contains(device) {
                throw .unknownDevice(text: value.text, device: device, known: deviceNames)
            }
        }
        let everyDevice = values.first { $0.device == nil }
        var resolved: [String: DeviceResponseDelay] = [:]
        for name in deviceNames {
            let chosen = values.first { $0.device == name } ?? everyDevice
            // Cannot throw: the bounds were checked when `chosen` was made.
            resolved[name] = try DeviceResponseDelay(
                device: name, delay: chosen?.delayNanoseconds ?? 0, jitter: chosen?.jitterNanoseconds ?? 0,
                text: chosen?.text ?? "\(name)=0ms")
        }
        return resolved
    }

    /// `DEVICE=DELAY±JITTER` in the option's own syntax, e.g. `loader=2ms±0.5ms`.
    public var description: String {
        Self.canonicalText(device: device, delay: delayNanoseconds, jitter: jitterNanoseconds)
    }

    /// For people: `2 ms ± 0.5 ms`, `500 µs`, `none`.
    public var summary: String {
        Self.summary(delayNanoseconds: delayNanoseconds, jitterNanoseconds: jitterNanoseconds)
    }

    /// For people: `2 ms ± 0.5 ms`, `500 µs`, `none`.
    public static func summary(delayNanoseconds delay: UInt64, jitterNanoseconds jitter: UInt64) -> String {
        if delay == 0 && jitter == 0 { return "none" }
        if jitter == 0 { return duration(delay, spaced: true) }
        return "\(duration(delay, spaced: true)) ± \(duration(jitter, spaced: true))"
    }

    public static func == (left: DeviceResponseDelay, right: DeviceResponseDelay) -> Bool {
        left.device == right.device && left.delayNanoseconds == right.delayNanoseconds
            && left.jitterNanoseconds == right.jitterNanoseconds
    }

    // MARK: Helpers

    /// Units accepted after a number, with their length in nanoseconds.
    private static let units: [(suffix: String, nanoseconds: Double)] = [
        ("ms", 1_000_000), ("us", 1_000), ("µs", 1_000), ("μs", 1_000),
    ]

    /// One duration (`2ms`, `0.5ms`, `500us`; a bare `0` needs no unit), rounded to the nanosecond.
    private static func nanoseconds(_ part: Substring, in text: String) throws(DeviceResponseDelayError) -> UInt64 {
        let word = part.trimmingCharacters(in: .whitespaces)
        if word.hasPrefix("-") { throw .negative(text: text, part: word) }
        var number = Substring(word)
        var scale: Double?
        for unit in units where word.hasSuffix(unit.suffix) {
            number = number.dropLast(unit.suffix.count)
            scale = unit.nanoseconds
            break
        }
        let digits = number.trimmingCharacters(in: .whitespaces)
        guard isDecimal(digits), let value = Double(digits) else { throw .notADuration(text: text, part: word) }
        guard let scale else {
            if value == 0 { return 0 }
            throw .missingUnit(text: text, part: word)
        }
        let nanoseconds = (value * scale).rounded()
        guard nanoseconds <= Double(maximumNanoseconds) else { throw .aboveMaximum(text: text) }
        return UInt64(nanoseconds)
    }

    /// Digits with at most one decimal point, and at least one digit (no sign, exponent, hex, inf or nan).
    private static func isDecimal(_ text: String) -> Bool {
        var digits = 0
        var points = 0
        for character in text {
            if character.isASCII && character.isNumber {
                digits += 1
            } else if character == "." {
                points += 1
            } else {
                return false
            }
        }
        return digits > 0 && points <= 1
    }

    private static func checkDuplicates(_ values: [DeviceResponseDelay]) throws(DeviceResponseDelayError) {
        for (index, value) in values.enumerated() {
            if let earlier = values[..<index].first(where: { $0.device == value.device }) {
                throw .duplicate(text: value.text, device: value.device, earlier: earlier.text)
            }
        }
    }

    private static func canonicalText(device: String?, delay: UInt64, jitter: UInt64) -> String {
        let value = jitter == 0 ? duration(delay, spaced: false) : "\(duration(delay, spaced: false))±\(duration(jitter, spaced: false))"
        return device.map { "\($0)=\(value)" } ?? value
    }

    /// `nanoseconds` in ms from 1 ms up, else in µs (`us` when not `spaced`, to stay typeable); exact decimals.
    static func duration(_ nanoseconds: UInt64, spaced: Bool) -> String {
        let (unitNanoseconds, fractionDigits, unit): (UInt64, Int, String) =
            nanoseconds >= 1_000_000 ? (1_000_000, 6, "ms") : (1_000, 3, spaced ? "µs" : "us")
        var text = String(nanoseconds / unitNanoseconds)
        let fraction = nanoseconds % unitNanoseconds
        if fraction != 0 {
            var digits = String(fraction)
            digits = String(repeating: "0", count: fractionDigits - digits.count) + digits
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return spaced ? "\(text) \(unit)" : text + unit
    }
}

/// Why a `--response-delay` value is refused. The description names the option and the offending text.
public enum DeviceResponseDelayError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not of the form `[DEVICE=]DELAY[±JITTER]` (empty, an empty part, or more than one `±`).
    case malformed(text: String)
    /// Nothing before the `=`.
    case missingDevice(text: String)
    /// `part` (the delay or the jitter) is not a number with a unit.
    case notADuration(text: String, part: String)
    /// `part` is a number other than 0 without a unit.
    case missingUnit(text: String, part: String)
    /// `part` is negative.
    case negative(text: String, part: String)
    /// The jitter exceeds the delay (a reply cannot come before its request).
    case jitterAboveDelay(text: String, delayNanoseconds: UInt64, jitterNanoseconds: UInt64)
    /// Delay + jitter exceeds `DeviceResponseDelay.maximumNanoseconds`.
    case aboveMaximum(text: String)
    /// `device` is not a device of the cell (`known`).
    case unknownDevice(text: String, device: String, known: [String])
    /// A second value for `device` (nil: every device); `earlier` is the first one.
    case duplicate(text: String, device: String?, earlier: String)

    /// The offending value, as given.
    public var text: String {
        switch self {
        case .malformed(let text), .missingDevice(let text), .notADuration(let text, _), .missingUnit(let text, _),
            .negative(let text, _), .jitterAboveDelay(let text, _, _), .aboveMaximum(let text),
            .unknownDevice(let text, _, _), .duplicate(let text, _, _):
            text
        }
    }

    public var description: String {
        let option = DeviceResponseDelay.optionName
        let shown = text.isEmpty ? "\"\"" : text
        let reason: String
        switch self {
        case .malformed:
            reason = "expected [DEVICE=]DELAY[±JITTER] in ms or us, e.g. 1ms±0.5ms or loader=2ms"
        case .missingDevice:
            reason = "no device name before \"=\" (expected DEVICE=DELAY, e.g. loader=2ms)"
        case .notADuration(_, let part):
            reason = "\"\(part)\" is not a duration (a number with ms or us, e.g. 2ms, 0.5ms, 500us)"
        case .missingUnit(_, let part):
            reason = "\"\(part)\" has no unit (write \(part)ms or \(part)us)"
        case .negative(_, let part):
            reason = "\"\(part)\" is negative (a device cannot answer before it is asked)"
        case .jitterAboveDelay(_, let delay, let jitter):
            reason =
                "the jitter \(DeviceResponseDelay.duration(jitter, spaced: true)) is larger than the delay "
                + "\(DeviceResponseDelay.duration(delay, spaced: true)) (a reply cannot come before its request)"
        case .aboveMaximum:
            reason =
                "the slowest reply (delay + jitter) would be later than "
                + "\(DeviceResponseDelay.duration(DeviceResponseDelay.maximumNanoseconds, spaced: true)), the "
                + "longest the simulated devices wait (a device that never answers is `silent` in lampsim)"
        case .unknownDevice(_, let device, let known):
            reason = "the cell has no device \"\(device)\" (its devices: \(known.joined(separator: ", ")))"
        case .duplicate(_, let device, let earlier):
            reason = "\(device.map { "device \($0)" } ?? "every device") already has a delay (\(earlier))"
        }
        return "\(option) \(shown): \(reason)"
    }
}

extension SimulatedCellServer {
    /// Sets every device's reply delay and jitter from `--response-delay` values (see
    /// `DeviceResponseDelay.resolve`): a device's own value, else the all-devices value, else none. Checks every
    /// value first and changes nothing when one is refused.
    /// Thread: any (before `start()`, so the first reply is already late; or later, from the next request on).
    public func setResponseDelays(_ values: [DeviceResponseDelay]) throws(DeviceResponseDelayError) {
        let resolved = try DeviceResponseDelay.resolve(values, deviceNames: deviceNames)
        for name in deviceNames {
            guard let server = server(named: name), let value = resolved[name] else { continue }
            server.replyJitterNanoseconds = value.jitterNanoseconds
            server.replyDelayNanoseconds = value.delayNanoseconds
        }
    }

    /// One line naming the reply delays in force, e.g.
    /// `response delays: loader 2 ms, assembler none, lens none, station 1 ms ± 0.5 ms` or `response delays: none`.
    /// Thread: any.
    public var responseDelaySummary: String {
        let delays = deviceNames.map { name -> (String, String) in
            let server = server(named: name)
            let summary = DeviceResponseDelay.summary(
                delayNanoseconds: server?.replyDelayNanoseconds ?? 0,
                jitterNanoseconds: server?.replyJitterNanoseconds ?? 0)
            return (name, summary)
        }
        if delays.allSatisfy({ $0.1 == "none" }) { return "response delays: none" }
        return "response delays: " + delays.map { "\($0.0) \($0.1)" }.joined(separator: ", ")
    }
}
