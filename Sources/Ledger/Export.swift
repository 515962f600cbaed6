// Streaming export: CSV (RFC 4180) and JSON Lines, one row at a time from a database cursor.

import Foundation

/// Buffers text for a `FileHandle` and writes it in chunks; remembers the first write error.
final class FileHandleTextStream: TextOutputStream {
    /// Bytes gathered before a write to the file.
    static let chunkBytes = 64 * 1024

    let handle: FileHandle
    var buffer: [UInt8] = []
    var error: (any Error)?

    init(handle: FileHandle) {
        self.handle = handle
        buffer.reserveCapacity(Self.chunkBytes)
    }

    func write(_ string: String) {
        buffer.append(contentsOf: string.utf8)
        if buffer.count >= Self.chunkBytes { flush() }
    }

    func flush() {
        guard error == nil, !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            self.error = error
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension Ledger {
    /// The CSV header line's fields (the `lamp` table's columns).
    public static var csvColumns: [String] { LedgerSchema.columns }

    /// Writes the entries matching `filter` as CSV (RFC 4180: CRLF line ends, fields with `"`, `,`, CR or LF
    /// quoted, `"` doubled) with a header line. `measurements` and `devices` are JSON arrays as stored; reals are
    /// written in their shortest exact form. Streams row by row. Thread: any.
    public func exportCSV(matching filter: LedgerFilter, to output: inout some TextOutputStream) throws(LedgerError) {
        let encoder = LedgerSchema.makeEncoder()
        output.write(Self.csvHeaderLine)
        try forEachEntry(matching: filter) { (entry) throws(LedgerError) in
            output.write(try Self.csvLine(entry, encoder: encoder))
        }
    }

    /// `exportCSV` to a file handle (buffered, 64 KiB chunks). Thread: any.
    public func exportCSV(matching filter: LedgerFilter, to handle: FileHandle) throws(LedgerError) {
        let stream = FileHandleTextStream(handle: handle)
        var output = stream
        try exportCSV(matching: filter, to: &output)
        try finish(stream)
    }

    /// Writes the entries matching `filter` as JSON Lines: one JSON object per entry and line (`\n`), keys sorted,
    /// `measurements` and `devices` as nested arrays. Streams row by row. Thread: any.
    public func exportJSONLines(
        matching filter: LedgerFilter, to output: inout some TextOutputStream
    ) throws(LedgerError) {
        let encoder = LedgerSchema.makeEncoder()
        try forEachEntry(matching: filter) { (entry) throws(LedgerError) in
            output.write(try Self.jsonLine(entry, encoder: encoder))
        }
    }

    /// `exportJSONLines` to a file handle (buffered, 64 KiB chunks). Thread: any.
    public func exportJSONLines(matching filter: LedgerFilter, to handle: FileHandle) throws(LedgerError) {
        let stream = FileHandleTextStream(handle: handle)
        var output = stream
        try exportJSONLines(matching: filter, to: &output)
        try finish(stream)
    }

    private func finish(_ stream: FileHandleTextStream) throws(LedgerError) {
        stream.flush()
        if let error = stream.error { throw .exportFailed(message: "writing to the output: \(error)") }
    }

    /// The CSV header record (with CRLF) of `exportCSV`.
    public static var csvHeaderLine: String { csvColumns.map(csvField).joined(separator: ",") + "\r\n" }

    /// The JSON encoder of exports (keys sorted, non-finite reals as strings).
    public static func makeExportEncoder() -> JSONEncoder { LedgerSchema.makeEncoder() }

    /// One JSON Lines record (with LF) of `entry`, as `exportJSONLines` writes it.
    public static func jsonLine(_ entry: LedgerEntry, encoder: JSONEncoder) throws(LedgerError) -> String {
        do {
            return String(decoding: try encoder.encode(entry), as: UTF8.self) + "\n"
        } catch {
            throw LedgerError.invalidEntry(serial: entry.serial, field: "(json)", message: "\(error)")
        }
    }

    /// One CSV record (with CRLF) of `entry`, as `exportCSV` writes it.
    public static func csvLine(_ entry: LedgerEntry, encoder: JSONEncoder) throws(LedgerError) -> String {
        let measurements: String
        let devices: String
        do {
            measurements = String(decoding: try encoder.encode(entry.measurements), as: UTF8.self)
            devices = String(decoding: try encoder.encode(entry.devices), as: UTF8.self)
        } catch {
            throw .invalidEntry(serial: entry.serial, field: "measurements/devices", message: "\(error)")
        }
        let fields: [String] = [
            String(entry.position), entry.serial, String(entry.serialSequence), entry.cellID, entry.variant,
            entry.recipeID, entry.recipeSHA256, entry.orderID, entry.startUTC, String(entry.startWallNanoseconds),
            entry.endUTC, String(entry.endWallNanoseconds), "\(entry.cycleTimeSeconds)", entry.verdict,
            entry.reasons, measurements, String(entry.housingLot), String(entry.ledModuleLot), String(entry.lensLot),
            devices, entry.softwareVersion, entry.prevHash, entry.hash,
        ]
        return fields.map(csvField).joined(separator: ",") + "\r\n"
    }

    /// A CSV field, quoted when it holds `"`, `,`, CR or LF (RFC 4180).
    static func csvField(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x22 || $0 == 0x2C || $0 == 0x0D || $0 == 0x0A }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
