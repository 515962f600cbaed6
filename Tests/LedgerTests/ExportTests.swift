import CellCore
import Foundation
import Testing

@testable import Ledger

/// A minimal RFC 4180 reader: records of fields, quoted fields may hold `,`, CR, LF and `""`.
func parseCSV(_ text: String) throws -> [[String]] {
    struct Malformed: Error { let message: String }
    var records: [[String]] = []
    var record: [String] = []
    var field: [UInt8] = []
    var quoted = false
    var bytes = Array(text.utf8)[...]
    while let byte = bytes.popFirst() {
        if quoted {
            if byte == 0x22 {
                if bytes.first == 0x22 {
                    field.append(0x22)
                    bytes.removeFirst()
                } else {
                    quoted = false
                    guard bytes.first == 0x2C || bytes.first == 0x0D || bytes.first == nil else {
                        throw Malformed(message: "text after a closing quote")
                    }
                }
            } else {
                field.append(byte)
            }
            continue
        }
        switch byte {
        case 0x22:
            guard field.isEmpty else { throw Malformed(message: "quote inside an unquoted field") }
            quoted = true
        case 0x2C:
            record.append(String(decoding: field, as: UTF8.self))
            field = []
        case 0x0D:
            guard bytes.popFirst() == 0x0A else { throw Malformed(message: "CR without LF") }
            record.append(String(decoding: field, as: UTF8.self))
            records.append(record)
            record = []
            field = []
        case 0x0A:
            throw Malformed(message: "bare LF outside quotes")
        default:
            field.append(byte)
        }
    }
    guard !quoted, record.isEmpty, field.isEmpty else { throw Malformed(message: "unterminated record") }
    return records
}

/// The entry of one CSV record (columns as `Ledger.csvColumns`).
func entryFromCSV(_ fields: [String]) throws -> LedgerEntry {
    struct Bad: Error { let field: String }
    let columns = Ledger.csvColumns
    var values: [String: String] = [:]
    for (column, value) in zip(columns, fields) { values[column] = value }
    func text(_ name: String) throws -> String {
        guard let value = values[name] else { throw Bad(field: name) }
        return value
    }
    func integer(_ name: String) throws -> Int64 {
        guard let value = Int64(try text(name)) else { throw Bad(field: name) }
        return value
    }
    let decoder = LedgerSchema.makeDecoder()
    guard let cycle = Double(try text("cycle_time_s")) else { throw Bad(field: "cycle_time_s") }
    var entry = LedgerEntry(
        position: try integer("position"), serial: try text("serial"), serialSequence: try integer("serial_sequence"),
        cellID: try text("cell_id"), variant: try text("variant"), recipeID: try text("recipe_id"),
        recipeSHA256: try text("recipe_sha256"), orderID: try text("order_id"),
        startWallNanoseconds: try integer("start_wall_ns"), endWallNanoseconds: try integer("end_wall_ns"),
        cycleTimeSeconds: cycle, verdict: try text("verdict"), reasons: try text("reasons"),
        measurements: try decoder.decode([LedgerMeasurement].self, from: Data(try text("measurements").utf8)),
        housingLot: try integer("housing_lot"), ledModuleLot: try integer("led_module_lot"),
        lensLot: try integer("lens_lot"),
        devices: try decoder.decode([DeviceIdentity].self, from: Data(try text("devices").utf8)),
        softwareVersion: try text("software_version"), prevHash: try text("prev_hash"), hash: try text("hash"))
    entry.startUTC = try text("start_utc")
    entry.endUTC = try text("end_utc")
    return entry
}

/// Collects exported text.
struct StringSink: TextOutputStream {
    var text = ""
    var writes = 0
    mutating func write(_ string: String) {
        text += string
        writes += 1
    }
}

@Suite("Ledger export")
struct ExportTests {
    /// A ledger whose reasons hold quotes, commas, CR/LF and non-ASCII text.
    func prepare(_ directory: TemporaryDirectory) throws -> (LedgerWriter, [LedgerEntry]) {
        var entries = Fixture.entries(count: 60, seed: 5)
        entries[12].reasons = "leak_rate 3.41 cm³/min above 2.0; operator note: \"re-test\", bench 2, 3"
        entries[13].reasons = "line one\r\nline two, \"quoted\"\n"
        entries[14].orderID = "PO,\"odd\""
        entries[15].measurements[0].value = 0.1 + 0.2
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        return (writer, try writer.append(entries))
    }

    @Test("CSV of a range parses back (RFC 4180) to the same entries, quotes and commas included")
    func csvRoundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (writer, stored) = try prepare(directory)
        let filter = LedgerFilter(positions: 10...40)
        var sink = StringSink()
        try writer.ledger.exportCSV(matching: filter, to: &sink)
        #expect(sink.writes == 1 + 31)  // header, then one write per row: streamed
        #expect(sink.text.contains("\"leak_rate 3.41 cm³/min above 2.0; operator note: \"\"re-test\"\", bench 2, 3\""))
        let records = try parseCSV(sink.text)
        #expect(records.first == Ledger.csvColumns)
        let entries = try records.dropFirst().map(entryFromCSV)
        #expect(entries == Array(stored[9..<40]))
        // Still verifiable from the export alone.
        for entry in entries { #expect(LedgerCanonical.expectedHash(of: entry) == entry.hash) }
    }

    @Test("JSON Lines of a filter parse back to the same entries")
    func jsonLinesRoundTrip() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (writer, stored) = try prepare(directory)
        var sink = StringSink()
        try writer.ledger.exportJSONLines(matching: LedgerFilter(positions: 5...30), to: &sink)
        let lines = sink.text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 27 && lines.last == "")
        let decoder = LedgerSchema.makeDecoder()
        let entries = try lines.dropLast().map { try decoder.decode(LedgerEntry.self, from: Data($0.utf8)) }
        #expect(entries == Array(stored[4..<30]))
        #expect(lines[0].hasPrefix("{\"cell_id\":\"HL-CELL-01\""))
        #expect(lines[8].contains("cm³/min"))  // slashes not escaped, UTF-8 kept
    }

    @Test("Export to a file handle: CSV and JSON Lines of everything, read back from the files")
    func exportToFiles() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (writer, stored) = try prepare(directory)
        let reader = try Ledger.openReadOnly(path: writer.path)
        let csvPath = directory.file("export.csv")
        let jsonPath = directory.file("export.jsonl")
        _ = FileManager.default.createFile(atPath: csvPath, contents: nil)
        _ = FileManager.default.createFile(atPath: jsonPath, contents: nil)
        do {
            let csv = try #require(FileHandle(forWritingAtPath: csvPath))
            defer { try? csv.close() }
            try reader.exportCSV(matching: .all, to: csv)
            let json = try #require(FileHandle(forWritingAtPath: jsonPath))
            defer { try? json.close() }
            try reader.exportJSONLines(matching: .all, to: json)
        }
        let csvText = try String(contentsOfFile: csvPath, encoding: .utf8)
        #expect(try parseCSV(csvText).dropFirst().map(entryFromCSV) == stored)
        let decoder = LedgerSchema.makeDecoder()
        let jsonText = try String(contentsOfFile: jsonPath, encoding: .utf8)
        #expect(
            try jsonText.split(separator: "\n").map { try decoder.decode(LedgerEntry.self, from: Data($0.utf8)) }
                == stored)
    }
}
