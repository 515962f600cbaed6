// The JSON text of the ledger's `measurements` and `devices` columns, written by hand on the append path.
//
// Foundation's JSONEncoder cost more per lamp than the rest of an append's CPU work together (issue 17: ledger commits
// at ≥ 0.9 × raw SQLite). This writer produces the same text as `LedgerSchema.makeEncoder()` (sorted keys, slashes
// unescaped, non-finite reals as the strings "inf", "-inf", "nan", nil optionals left out); a test compares both on
// random entries. Reading still goes through JSONDecoder: the text is ordinary JSON.

/// Writes the ledger's JSON columns. Thread: any (pure functions).
enum LedgerJSON {
    /// `[{"max":…,"min":…,"name":"…","unit":"…","value":…}, …]`, keys sorted as JSONEncoder sorts them.
    static func measurements(_ measurements: [LedgerMeasurement]) -> String {
        array(of: measurements, bytesPerElement: 96) { measurement, separator, out in
            if let maximum = measurement.maximum { member("max", real: maximum, separator: &separator, into: &out) }
            if let minimum = measurement.minimum { member("min", real: minimum, separator: &separator, into: &out) }
            member("name", text: measurement.name, separator: &separator, into: &out)
            member("unit", text: measurement.unit, separator: &separator, into: &out)
            member("value", real: measurement.value, separator: &separator, into: &out)
        }
    }

    /// `[{"firmware":"…","name":"…","serial_number":"…"}, …]`.
    static func devices(_ devices: [DeviceIdentity]) -> String {
        array(of: devices, bytesPerElement: 64) { device, separator, out in
            member("firmware", text: device.firmware, separator: &separator, into: &out)
            member("name", text: device.name, separator: &separator, into: &out)
            member("serial_number", text: device.serialNumber, separator: &separator, into: &out)
        }
    }

    /// A JSON array of objects; `members` writes one element's members (at least one).
    private static func array<Element>(
        of elements: [Element], bytesPerElement: Int,
        members: (Element, inout UInt8, inout [UInt8]) -> Void
    ) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(elements.count * bytesPerElement + 2)
        out.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            var separator = UInt8(ascii: "{")
            members(element, &separator, &out)
            assert(separator == UInt8(ascii: ","), "an object without members")
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `{` before an object's first member, `,` before the others.
    private static func key(_ name: StaticString, separator: inout UInt8, into out: inout [UInt8]) {
        out.append(separator)
        separator = UInt8(ascii: ",")
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\""))
        out.append(UInt8(ascii: ":"))
    }

    private static func member(_ name: StaticString, text: String, separator: inout UInt8, into out: inout [UInt8]) {
        key(name, separator: &separator, into: &out)
        string(text, into: &out)
    }

    private static func member(_ name: StaticString, real: Double, separator: inout UInt8, into out: inout [UInt8]) {
        key(name, separator: &separator, into: &out)
        number(real, into: &out)
    }

    /// A JSON string as JSONEncoder writes it: `"` and `\` escaped, the short escapes for \b \f \n \r \t, other
    /// control characters as `\u00XX` (lower-case hex), everything else (`/` and non-ASCII included) as is.
    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most texts need no escape: copy them whole.
        guard text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            out.append(contentsOf: text.utf8)
            return out.append(UInt8(ascii: "\""))
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// A real as JSONEncoder writes it: Swift's shortest round-trip text without a trailing `.0`; the
    /// non-conforming values as the strings of `LedgerSchema.makeEncoder()`.
    static func number(_ value: Double, into out: inout [UInt8]) {
        if value.isNaN { return string("nan", into: &out) }
        if value.isInfinite { return string(value < 0 ? "-inf" : "inf", into: &out) }
        let text = value.description.utf8
        let integral = text.count > 2 && text.last == UInt8(ascii: "0")
            && text[text.index(text.endIndex, offsetBy: -2)] == UInt8(ascii: ".")
        out.append(contentsOf: integral ? text.dropLast(2) : text[...])
    }
}
