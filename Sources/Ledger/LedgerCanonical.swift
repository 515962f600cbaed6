// The canonical byte encoding of a ledger entry and the chain hash over it. Byte-exact specification in
// docs/LEDGER.md ("Canonical encoding"); any change here is a new format version and breaks every stored hash.

import Crypto
import Glibc

/// Canonical encoding (`ledger-entry-v1`) and chain hashing of ledger entries. Thread: any.
public enum LedgerCanonical {
    /// First line of every encoding; names the format version.
    public static let formatLine = "ledger-entry-v1"
    /// `prev_hash` of the first entry: 64 zeros.
    public static let genesisHash = String(repeating: "0", count: 64)

    /// The canonical bytes of `entry` at chain position `position` (normally `entry.position`): `key=value\n`
    /// lines in a fixed order, texts escaped, integers in decimal, reals as C `%.17g`. `prevHash` and `hash`
    /// are not part of it.
    public static func encode(_ entry: LedgerEntry, position: Int64) -> [UInt8] {
        // Written straight into one byte buffer (no String per value): this runs once per lamp on the ledger
        // writer's append path, and again per entry in verify.
        var out = CanonicalWriter()
        out.bytes.append(contentsOf: formatLine.utf8)
        out.bytes.append(0x0A)
        out.line("position", position)
        out.line("serial", entry.serial)
        out.line("serial_sequence", entry.serialSequence)
        out.line("cell_id", entry.cellID)
        out.line("variant", entry.variant)
        out.line("recipe_id", entry.recipeID)
        out.line("recipe_sha256", entry.recipeSHA256)
        out.line("order_id", entry.orderID)
        out.line("start_utc", entry.startUTC)
        out.line("start_wall_ns", entry.startWallNanoseconds)
        out.line("end_utc", entry.endUTC)
        out.line("end_wall_ns", entry.endWallNanoseconds)
        out.line("cycle_time_s", real: entry.cycleTimeSeconds)
        out.line("verdict", entry.verdict)
        out.line("reasons", entry.reasons)
        out.line("measurement_count", Int64(entry.measurements.count))
        for (index, measurement) in entry.measurements.enumerated() {
            let keys = index < measurementKeys.count ? measurementKeys[index] : Self.measurementKeys(index)
            out.line(keys[0], measurement.name)
            out.line(keys[1], real: measurement.value)
            out.line(keys[2], measurement.unit)
            out.line(keys[3], real: measurement.minimum)
            out.line(keys[4], real: measurement.maximum)
        }
        out.line("housing_lot", entry.housingLot)
        out.line("led_module_lot", entry.ledModuleLot)
        out.line("lens_lot", entry.lensLot)
        out.line("device_count", Int64(entry.devices.count))
        for (index, device) in entry.devices.enumerated() {
            let keys = index < deviceKeys.count ? deviceKeys[index] : Self.deviceKeys(index)
            out.line(keys[0], device.name)
            out.line(keys[1], device.serialNumber)
            out.line(keys[2], device.firmware)
        }
        out.line("software_version", entry.softwareVersion)
        return out.bytes
    }

    /// The `key=value\n` lines of `encode`, appended to one buffer.
    private struct CanonicalWriter {
        var bytes: [UInt8] = []

        init() { bytes.reserveCapacity(2048) }

        mutating func key(_ key: String) {
            bytes.append(contentsOf: key.utf8)
            bytes.append(UInt8(ascii: "="))
        }

        /// A text, escaped as `escaped(_:)` does.
        mutating func line(_ key: String, _ value: String) {
            self.key(key)
            LedgerCanonical.appendEscaped(value, to: &bytes)
            bytes.append(0x0A)
        }

        /// An integer in decimal.
        mutating func line(_ key: String, _ value: Int64) {
            self.key(key)
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            // Digits least significant first, then reversed in place.
            let first = bytes.count
            var magnitude = value.magnitude
            repeat {
                bytes.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
                magnitude /= 10
            } while magnitude > 0
            bytes[first...].reverse()
            bytes.append(0x0A)
        }

        /// A real as `real(_:)` writes it; nothing after `=` for nil.
        mutating func line(_ key: String, real value: Double?) {
            self.key(key)
            if let value { LedgerCanonical.appendReal(value, to: &bytes) }
            bytes.append(0x0A)
        }
    }

    /// The chain hash: lower-case hex SHA-256 of `encode(entry, position:)` followed by the 64 ASCII characters
    /// of `prevHash`.
    public static func hash(_ entry: LedgerEntry, position: Int64, prevHash: String) -> String {
        var hasher = SHA256()
        hasher.update(data: encode(entry, position: position))
        hasher.update(data: Array(prevHash.utf8))
        return hexString(hasher.finalize())
    }

    /// The hash `entry` should have given its own `position` and `prevHash`.
    public static func expectedHash(of entry: LedgerEntry) -> String {
        hash(entry, position: entry.position, prevHash: entry.prevHash)
    }

    /// `measurement.<i>.name` … `measurement.<i>.max`.
    static func measurementKeys(_ index: Int) -> [String] {
        ["name", "value", "unit", "min", "max"].map { "measurement.\(index).\($0)" }
    }

    /// `device.<i>.name` … `device.<i>.firmware`.
    static func deviceKeys(_ index: Int) -> [String] {
        ["name", "serial_number", "firmware"].map { "device.\(index).\($0)" }
    }

    /// Keys of the first measurements and devices, made once.
    static let measurementKeys = (0..<16).map(measurementKeys)
    static let deviceKeys = (0..<16).map(deviceKeys)

    /// `value` as its canonical line holds it: backslash, LF and CR escaped as `\\`, `\n`, `\r`.
    public static func escaped(_ value: String) -> String {
        guard needsEscape(value) else { return value }
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 8)
        appendEscaped(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `escaped(value)`'s bytes to `bytes`.
    static func appendEscaped(_ value: String, to bytes: inout [UInt8]) {
        guard needsEscape(value) else { return bytes.append(contentsOf: value.utf8) }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "\\"))
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            default: bytes.append(byte)
            }
        }
    }

    /// The value of an escaped canonical line (the inverse of `escaped`); nil for a dangling or unknown escape.
    static func unescaped(_ value: Substring) -> String? {
        guard value.utf8.contains(UInt8(ascii: "\\")) else { return String(value) }
        var out: [UInt8] = []
        var escaping = false
        for byte in value.utf8 {
            if escaping {
                switch byte {
                case UInt8(ascii: "\\"): out.append(byte)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                default: return nil
                }
                escaping = false
            } else if byte == UInt8(ascii: "\\") {
                escaping = true
            } else {
                out.append(byte)
            }
        }
        return escaping ? nil : String(decoding: out, as: UTF8.self)
    }

    /// The entry whose canonical text is `text` (the inverse of `encode`), at the position the text names, with
    /// `prevHash` and `hash` as given; nil when `text` is not a `ledger-entry-v1` encoding. Thread: any.
    public static func decode(_ text: String, prevHash: String, hash: String) -> LedgerEntry? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first == Substring(formatLine), lines.last == "" else { return nil }
        lines.removeLast()
        var fields: [Substring: Substring] = [:]
        for line in lines.dropFirst() {
            guard let equals = line.firstIndex(of: "=") else { return nil }
            fields[line[..<equals]] = line[line.index(after: equals)...]
        }
        func string(_ key: String) -> String? { fields[Substring(key)].flatMap(unescaped) }
        func integer(_ key: String) -> Int64? { fields[Substring(key)].flatMap { Int64($0) } }
        func real(_ key: String) -> Double? {
            guard let value = fields[Substring(key)] else { return nil }
            switch value {
            case "nan": return .nan
            case "inf": return .infinity
            case "-inf": return -.infinity
            default: return Double(value)
            }
        }
        func optionalReal(_ key: String) -> Double?? {
            guard let value = fields[Substring(key)] else { return nil }
            return value.isEmpty ? .some(nil) : real(key).map { .some($0) }
        }
        guard let measurementCount = integer("measurement_count"), (0...1024).contains(measurementCount),
            let deviceCount = integer("device_count"), (0...1024).contains(deviceCount)
        else { return nil }
        var measurements: [LedgerMeasurement] = []
        for index in 0..<Int(measurementCount) {
            let keys = measurementKeys(index)
            guard let name = string(keys[0]), let value = real(keys[1]), let unit = string(keys[2]),
                let minimum = optionalReal(keys[3]), let maximum = optionalReal(keys[4])
            else { return nil }
            measurements.append(LedgerMeasurement(name: name, value: value, unit: unit, minimum: minimum, maximum: maximum))
        }
        var devices: [DeviceIdentity] = []
        for index in 0..<Int(deviceCount) {
            let keys = deviceKeys(index)
            guard let name = string(keys[0]), let serialNumber = string(keys[1]), let firmware = string(keys[2]) else {
                return nil
            }
            devices.append(DeviceIdentity(name: name, serialNumber: serialNumber, firmware: firmware))
        }
        guard let position = integer("position"), let serial = string("serial"),
            let serialSequence = integer("serial_sequence"), let cellID = string("cell_id"), let variant = string("variant"),
            let recipeID = string("recipe_id"), let recipeSHA256 = string("recipe_sha256"), let orderID = string("order_id"),
            let startUTC = string("start_utc"), let startWall = integer("start_wall_ns"), let endUTC = string("end_utc"),
            let endWall = integer("end_wall_ns"), let cycleTime = real("cycle_time_s"), let verdict = string("verdict"),
            let reasons = string("reasons"), let housingLot = integer("housing_lot"),
            let ledModuleLot = integer("led_module_lot"), let lensLot = integer("lens_lot"),
            let softwareVersion = string("software_version")
        else { return nil }
        var entry = LedgerEntry(
            position: position, serial: serial, serialSequence: serialSequence, cellID: cellID, variant: variant,
            recipeID: recipeID, recipeSHA256: recipeSHA256, orderID: orderID, startWallNanoseconds: startWall,
            endWallNanoseconds: endWall, cycleTimeSeconds: cycleTime, verdict: verdict, reasons: reasons,
            measurements: measurements, housingLot: housingLot, ledModuleLot: ledModuleLot, lensLot: lensLot,
            devices: devices, softwareVersion: softwareVersion, prevHash: prevHash, hash: hash)
        entry.startUTC = startUTC
        entry.endUTC = endUTC
        // Only an exact inverse counts: any line this decoder did not read (or read differently) fails here.
        guard encode(entry, position: position) == Array(text.utf8) else { return nil }
        return entry
    }

    /// True when `value` holds a backslash, LF or CR (which the canonical form escapes).
    static func needsEscape(_ value: String) -> Bool {
        var text = value
        return text.withUTF8 { buffer in
            guard let base = buffer.baseAddress else { return false }
            return memchr(base, 0x5C, buffer.count) != nil || memchr(base, 0x0A, buffer.count) != nil
                || memchr(base, 0x0D, buffer.count) != nil
        }
    }

    /// A real in canonical form: `%.17g` (17 significant digits, exact for every binary64), except `nan`, `inf`,
    /// `-inf` for the non-finite values (whatever the NaN's sign or payload).
    public static func real(_ value: Double) -> String {
        var bytes: [UInt8] = []
        appendReal(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `real(value)`'s bytes to `bytes`, without making a String.
    static func appendReal(_ value: Double, to bytes: inout [UInt8]) {
        if value.isNaN { return bytes.append(contentsOf: "nan".utf8) }
        if value.isInfinite { return bytes.append(contentsOf: (value < 0 ? "-inf" : "inf").utf8) }
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: realBufferBytes) { buffer in
            let count: Int32
            if let strfromd = Self.strfromd {
                count = strfromd(buffer.baseAddress, realBufferBytes, "%.17g", value)
            } else {
                count = withVaList([value]) { vsnprintf(buffer.baseAddress, realBufferBytes, "%.17g", $0) }
            }
            let written = UnsafeRawBufferPointer(
                start: buffer.baseAddress, count: Int(max(0, min(count, Int32(realBufferBytes - 1)))))
            bytes.append(contentsOf: written)
        }
    }

    /// Room for `%.17g` of any binary64 (at most 24 characters) and the terminator.
    static let realBufferBytes = 40

    /// glibc's `strfromd` (ISO/IEC TS 18661-1; not in the Swift Glibc module): the same output as `snprintf`
    /// with a `%.17g` format, without the cost of building a `va_list`. Nil where absent (then `vsnprintf`).
    private static let strfromd: (@convention(c) (UnsafeMutablePointer<CChar>?, Int, UnsafePointer<CChar>?, Double) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "strfromd") else { return nil }
        return unsafeBitCast(
            symbol, to: (@convention(c) (UnsafeMutablePointer<CChar>?, Int, UnsafePointer<CChar>?, Double) -> Int32).self)
    }()
}
