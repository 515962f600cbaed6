// The stored ledger row and how it is made from a controller's `LampRecord`.
//
// Everything here runs off the control thread (the ledger writer's thread, the CLI): it allocates freely.

import CellCore
import Crypto
import Foundation

/// One measurement of a lamp as recorded, with the acceptance window it was judged against.
public struct LedgerMeasurement: Sendable, Equatable, Codable {
    /// `MeasurementKind.name`, e.g. `leak_rate`.
    public var name: String
    /// The measured value, in `unit`.
    public var value: Double
    /// `MeasurementKind.unit`, e.g. `cm³/min`.
    public var unit: String
    /// Lowest accepted value of the recipe's window, in `unit`; nil when the context had no window for it.
    public var minimum: Double?
    /// Highest accepted value of the recipe's window, in `unit`; nil when the context had no window for it.
    public var maximum: Double?

    /// Creates a measurement.
    public init(name: String, value: Double, unit: String, minimum: Double?, maximum: Double?) {
        self.name = name
        self.value = value
        self.unit = unit
        self.minimum = minimum
        self.maximum = maximum
    }

    enum CodingKeys: String, CodingKey {
        case name, value, unit
        case minimum = "min"
        case maximum = "max"
    }
}

/// Identity of one device of the cell as recorded with every lamp.
public struct DeviceIdentity: Sendable, Equatable, Codable {
    /// The device's name in the cell definition, e.g. `arm1`, `station`.
    public var name: String
    /// Serial number as text; empty when the device does not report one (the TS-200 has no such register).
    public var serialNumber: String
    /// Firmware version as text, e.g. `2.7`; empty when unknown.
    public var firmware: String

    /// Creates an identity.
    public init(name: String, serialNumber: String, firmware: String) {
        self.name = name
        self.serialNumber = serialNumber
        self.firmware = firmware
    }

    /// The identity of an RA-610 from its registers: `serial_number` (u32) and `firmware` (major × 256 + minor).
    public static func ra610(name: String, serialNumber: UInt32, firmwareRegister: UInt16) -> DeviceIdentity {
        DeviceIdentity(
            name: name, serialNumber: String(serialNumber),
            firmware: "\(firmwareRegister >> 8).\(firmwareRegister & 0xFF)")
    }

    enum CodingKeys: String, CodingKey {
        case name
        case serialNumber = "serial_number"
        case firmware
    }
}

/// What the ledger records of one recipe: its id, the SHA-256 of its file and its process windows.
public struct LedgerRecipe: Sendable, Equatable {
    /// The recipe's id, e.g. `HL-LEFT`.
    public var id: String
    /// Lower-case hex SHA-256 of the recipe file's bytes, as loaded (see `LedgerRecipe.sha256Hex(of:)`).
    public var contentSHA256: String
    /// The windows measurements were judged against.
    public var windows: ProcessWindows

    /// Creates a recipe identity.
    public init(id: String, contentSHA256: String, windows: ProcessWindows) {
        self.id = id
        self.contentSHA256 = contentSHA256
        self.windows = windows
    }

    /// The identity of a loaded recipe; `contentSHA256` is the hash of its file (the caller read the file).
    public init(_ recipe: Recipe, contentSHA256: String) {
        self.init(id: recipe.id, contentSHA256: contentSHA256, windows: recipe.processWindows)
    }

    /// The identity of a compiled recipe; `contentSHA256` is the hash of its file.
    public init(_ recipe: CompiledRecipe, contentSHA256: String) {
        self.init(recipe.source, contentSHA256: contentSHA256)
    }

    /// Lower-case hex SHA-256 of `bytes` (a recipe file's content). Any thread.
    public static func sha256Hex(of bytes: some DataProtocol) -> String {
        hexString(SHA256.hash(data: bytes))
    }

    /// The window of one measurement kind.
    public func window(of kind: MeasurementKind) -> ProcessWindow { windows.window(of: kind) }
}

/// What the ledger needs beside a `LampRecord` to make a full entry: the names behind the record's numbers.
///
/// Built by the daemon at start-up (and when an order starts); read on the writer thread.
public struct LedgerContext: Sendable, Equatable {
    /// The cell's id, e.g. `HL-CELL-01` (first part of every serial).
    public var cellID: String
    /// The controller's recipe table: `LampRecord.recipeIndex` indexes this array.
    public var recipes: [LedgerRecipe]
    /// Production order ids by `LampRecord.orderSequence`.
    public var orderIDs: [UInt32: String]
    /// Every device of the cell (any order; entries store them sorted by name).
    public var devices: [DeviceIdentity]
    /// The controller software's version, e.g. `lampcelld 0.4.0 (abc1234)`.
    public var softwareVersion: String

    /// Creates a context.
    public init(
        cellID: String, recipes: [LedgerRecipe], orderIDs: [UInt32: String], devices: [DeviceIdentity],
        softwareVersion: String
    ) {
        self.cellID = cellID
        self.recipes = recipes
        self.orderIDs = orderIDs
        self.devices = devices
        self.softwareVersion = softwareVersion
    }
}

/// One lamp as the ledger stores it: one row of the `lamp` table, text and numbers only.
///
/// An entry made by `init(_:context:)` is *pending*: `position` is 0 and `prevHash`/`hash` are empty.
/// `LedgerWriter.append` assigns the chain fields and returns the entries as stored.
public struct LedgerEntry: Sendable, Equatable, Codable {
    /// Place in the hash chain, 1-based, contiguous (the table's primary key); 0 while pending.
    public var position: Int64
    /// `LampSerial.text(cellID:)`, e.g. `HL-CELL-01-20261128-00000042`. Unique in the ledger.
    public var serial: String
    /// `LampSerial.sequence`.
    public var serialSequence: Int64
    /// The cell's id.
    public var cellID: String
    /// `LEFT` or `RIGHT` (`VARIANT_<n>` for an unknown variant number).
    public var variant: String
    /// The recipe's id; empty when the record's recipe index was not in the context.
    public var recipeID: String
    /// Lower-case hex SHA-256 of the recipe file; empty when unknown.
    public var recipeSHA256: String
    /// The production order's id; empty when the context did not know the order.
    public var orderID: String
    /// Start (housing pick), UTC, ISO-8601 with milliseconds: `2026-11-28T10:15:02.123Z`.
    public var startUTC: String
    /// Start, nanoseconds since the Unix epoch (UTC wall clock).
    public var startWallNanoseconds: Int64
    /// End (release at outfeed or reject), UTC, ISO-8601 with milliseconds.
    public var endUTC: String
    /// End, nanoseconds since the Unix epoch.
    public var endWallNanoseconds: Int64
    /// Cycle time from housing pick to release, seconds (from the monotonic clock when the controller ran through).
    public var cycleTimeSeconds: Double
    /// `OK`, `NG` or `SCRAPPED`.
    public var verdict: String
    /// Why the lamp is NG or scrapped, `; `-separated, e.g. `leak_rate 3.41 cm³/min above 2.0`; empty when OK.
    public var reasons: String
    /// Every measurement taken, in `MeasurementKind` order, with its window.
    public var measurements: [LedgerMeasurement]
    /// Housing lot (TS-200 `housing_lot`); 0 when the lamp never got one.
    public var housingLot: Int64
    /// LED module lot (TS-200 `led_module_lot`); 0 when the lamp never got one.
    public var ledModuleLot: Int64
    /// Lens lot (TS-200 `lens_lot`); 0 when the lamp never got one.
    public var lensLot: Int64
    /// Device serial numbers and firmware, sorted by device name.
    public var devices: [DeviceIdentity]
    /// The controller software's version.
    public var softwareVersion: String
    /// `hash` of the entry at `position - 1` (64 zeros for the first entry); empty while pending.
    public var prevHash: String
    /// Lower-case hex SHA-256 of `LedgerCanonical.encode(self)` followed by `prevHash` (see docs/LEDGER.md).
    public var hash: String

    /// Creates an entry from all its fields (decoding, tests). Thread: any.
    public init(
        position: Int64 = 0, serial: String, serialSequence: Int64, cellID: String, variant: String,
        recipeID: String, recipeSHA256: String, orderID: String, startWallNanoseconds: Int64,
        endWallNanoseconds: Int64, cycleTimeSeconds: Double, verdict: String, reasons: String,
        measurements: [LedgerMeasurement], housingLot: Int64, ledModuleLot: Int64, lensLot: Int64,
        devices: [DeviceIdentity], softwareVersion: String, prevHash: String = "", hash: String = ""
    ) {
        self.position = position
        self.serial = serial
        self.serialSequence = serialSequence
        self.cellID = cellID
        self.variant = variant
        self.recipeID = recipeID
        self.recipeSHA256 = recipeSHA256
        self.orderID = orderID
        self.startUTC = LedgerTime.iso8601(wallNanoseconds: startWallNanoseconds)
        self.startWallNanoseconds = startWallNanoseconds
        self.endUTC = LedgerTime.iso8601(wallNanoseconds: endWallNanoseconds)
        self.endWallNanoseconds = endWallNanoseconds
        self.cycleTimeSeconds = cycleTimeSeconds
        self.verdict = verdict
        self.reasons = reasons
        self.measurements = measurements
        self.housingLot = housingLot
        self.ledModuleLot = ledModuleLot
        self.lensLot = lensLot
        self.devices = devices
        self.softwareVersion = softwareVersion
        self.prevHash = prevHash
        self.hash = hash
    }

    /// A pending entry for a lamp that left the cell, with the names from `context`. Thread: any but the
    /// control thread (allocates).
    public init(_ lamp: LampRecord, context: LedgerContext) {
        let recipe = Int(lamp.recipeIndex) < context.recipes.count ? context.recipes[Int(lamp.recipeIndex)] : nil
        var measurements: [LedgerMeasurement] = []
        for kind in MeasurementKind.allCases {
            guard let value = lamp.measurements[kind] else { continue }
            let window = recipe?.window(of: kind)
            measurements.append(
                LedgerMeasurement(
                    name: kind.name, value: value, unit: kind.unit, minimum: window?.minimum,
                    maximum: window?.maximum))
        }
        let cycleNanoseconds =
            lamp.endMonotonicNanoseconds >= lamp.startMonotonicNanoseconds
            ? lamp.endMonotonicNanoseconds - lamp.startMonotonicNanoseconds : 0
        self.init(
            serial: lamp.serial.text(cellID: context.cellID),
            serialSequence: Int64(clamping: lamp.serial.sequence),
            cellID: context.cellID,
            variant: Variant(rawValue: lamp.variant)?.name ?? "VARIANT_\(lamp.variant)",
            recipeID: recipe?.id ?? "",
            recipeSHA256: recipe?.contentSHA256 ?? "",
            orderID: context.orderIDs[lamp.orderSequence] ?? "",
            startWallNanoseconds: Int64(clamping: lamp.startWallNanoseconds),
            endWallNanoseconds: Int64(clamping: lamp.endWallNanoseconds),
            cycleTimeSeconds: Double(cycleNanoseconds) / 1e9,
            verdict: lamp.verdict.name,
            reasons: Self.reasons(lamp, recipe: recipe),
            measurements: measurements,
            housingLot: Int64(lamp.housingLot),
            ledModuleLot: Int64(lamp.ledModuleLot),
            lensLot: Int64(lamp.lensLot),
            devices: context.devices.sorted { $0.name < $1.name },
            softwareVersion: context.softwareVersion)
    }

    /// A pending entry for a lamp that was in the cell when the controller died, recorded at the next start as
    /// scrapped with reason `controller restart`. `lamp` holds what was known of it (at least serial, variant,
    /// start); the end is `recordedAtWallNanoseconds` and the cycle time is taken from the wall clock (the
    /// monotonic clock of the dead process means nothing now). Thread: any but the control thread.
    public static func scrappedAtRestart(
        _ lamp: LampRecord, recordedAtWallNanoseconds: UInt64, context: LedgerContext
    ) -> LedgerEntry {
        var record = lamp
        record.verdict = .scrapped
        record.scrapReason = .controllerRestart
        record.outOfWindowMask = 0
        record.endWallNanoseconds = max(recordedAtWallNanoseconds, record.startWallNanoseconds)
        record.startMonotonicNanoseconds = 0
        record.endMonotonicNanoseconds = record.endWallNanoseconds - record.startWallNanoseconds
        return LedgerEntry(record, context: context)
    }

    /// The NG or scrap reasons of `lamp`, `; `-separated. NG: each measurement outside its window (with value and
    /// the bound it crossed) or missing; scrapped: the scrap reason.
    public static func reasons(_ lamp: LampRecord, recipe: LedgerRecipe?) -> String {
        switch lamp.verdict {
        case .ok:
            return ""
        case .scrapped:
            return lamp.scrapReason == .none ? "scrapped" : lamp.scrapReason.text
        case .ng:
            var parts: [String] = []
            for kind in MeasurementKind.allCases where lamp.outOfWindowMask & (1 << kind.rawValue) != 0 {
                guard let value = lamp.measurements[kind] else {
                    parts.append("\(kind.name) missing")
                    continue
                }
                let window = recipe?.window(of: kind)
                if let window, value > window.maximum {
                    parts.append("\(kind.name) \(value) \(kind.unit) above \(window.maximum)")
                } else if let window, value < window.minimum {
                    parts.append("\(kind.name) \(value) \(kind.unit) below \(window.minimum)")
                } else {
                    parts.append("\(kind.name) \(value) \(kind.unit) out of window")
                }
            }
            return parts.isEmpty ? "NG" : parts.joined(separator: "; ")
        }
    }

    /// True when both entries record the same lamp with the same content (chain fields not compared).
    public func hasSameContent(as other: LedgerEntry) -> Bool {
        LedgerCanonical.encode(self, position: 0) == LedgerCanonical.encode(other, position: 0)
    }

    enum CodingKeys: String, CodingKey {
        case position, serial
        case serialSequence = "serial_sequence"
        case cellID = "cell_id"
        case variant
        case recipeID = "recipe_id"
        case recipeSHA256 = "recipe_sha256"
        case orderID = "order_id"
        case startUTC = "start_utc"
        case startWallNanoseconds = "start_wall_ns"
        case endUTC = "end_utc"
        case endWallNanoseconds = "end_wall_ns"
        case cycleTimeSeconds = "cycle_time_s"
        case verdict, reasons, measurements
        case housingLot = "housing_lot"
        case ledModuleLot = "led_module_lot"
        case lensLot = "lens_lot"
        case devices
        case softwareVersion = "software_version"
        case prevHash = "prev_hash"
        case hash
    }
}

/// Lower-case hex of a digest.
func hexString(_ digest: some Sequence<UInt8>) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(64)
    for byte in digest {
        bytes.append(digits[Int(byte >> 4)])
        bytes.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// UTC text of wall-clock times.
public enum LedgerTime {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` of nanoseconds since the Unix epoch (truncated to the millisecond; negative
    /// values are clamped to the epoch). Thread: any.
    public static func iso8601(wallNanoseconds: Int64) -> String {
        let nanoseconds = max(wallNanoseconds, 0)
        let seconds = nanoseconds / 1_000_000_000
        let milliseconds = (nanoseconds % 1_000_000_000) / 1_000_000
        let days = seconds / 86_400
        let secondOfDay = seconds % 86_400
        // Civil from days (H. Hinnant), as `LampSerial.dateCode`.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(milliseconds, 3))Z"
    }
}
