import CellCore
import Foundation
import Ledger
import LampCellTestSupport
import Testing

/// `lampctl ledger …` against a real ledger file, as an operator runs it.
@Suite("lampctl ledger")
struct LampctlLedgerTests {
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try Repository.run("lampctl", arguments)
    }

    /// A ledger with `count` lamps; lamp i has lens lot 300000 + i % 3 and is NG when i % 4 == 3.
    static func makeLedger(count: Int) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampctl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/ledger.sqlite"
        let writer = try LedgerWriter(path: path)
        let context = LedgerContext(
            cellID: "HL-CELL-01", recipes: [], orderIDs: [1: "PO-7"], devices: [], softwareVersion: "test")
        for i in 0..<count {
            var lamp = LampRecord(
                serial: LampSerial(dateCode: 20_261_128, sequence: UInt64(i + 1)), variant: 1,
                startWallNanoseconds: 1_795_860_000_000_000_000 + UInt64(i) * 30_000_000_000,
                startMonotonicNanoseconds: 0)
            lamp.endWallNanoseconds = lamp.startWallNanoseconds + 27_000_000_000
            lamp.endMonotonicNanoseconds = 27_000_000_000
            lamp.orderSequence = 1
            lamp.housingLot = 100_000
            lamp.ledModuleLot = 200_000
            lamp.lensLot = 300_000 + UInt32(i % 3)
            lamp.measurements[.leakRate] = i % 4 == 3 ? 4.2 : 0.5
            lamp.verdict = i % 4 == 3 ? .ng : .ok
            if lamp.verdict == .ng { lamp.outOfWindowMask = 1 << MeasurementKind.leakRate.rawValue }
            _ = try writer.append(LedgerEntry(lamp, context: context))
        }
        return path
    }

    @Test("verify, tail, show, find by lot (the recall query), export CSV and JSON Lines")
    func verbs() throws {
        let path = try Self.makeLedger(count: 12)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }

        let verify = try Self.run(["ledger", "verify", "--ledger", path])
        #expect(verify.status == 0 && verify.output.contains("ledger verified: 12 entries"), "\(verify)")

        let tail = try Self.run(["ledger", "tail", "--ledger", path, "-n", "3"])
        #expect(tail.output.split(separator: "\n").count == 3)
        #expect(tail.output.contains("HL-CELL-01-20261128-00000012"))

        let show = try Self.run(["ledger", "show", "--ledger", path, "HL-CELL-01-20261128-00000004"])
        #expect(show.status == 0 && show.output.contains("NG") && show.output.contains("leak_rate"), "\(show)")
        let missing = try Self.run(["ledger", "show", "--ledger", path, "HL-CELL-01-20261128-00000099"])
        #expect(missing.status != 0 && missing.errors.contains("no lamp HL-CELL-01-20261128-00000099"))

        // Every lamp with lens lot 300001: serials 2, 5, 8, 11.
        let recall = try Self.run(["ledger", "find", "--ledger", path, "--lot", "300001", "--lot-kind", "lens"])
        let serials = recall.output.split(separator: "\n").map { String($0.prefix(28)) }
        #expect(serials == [2, 5, 8, 11].map { "HL-CELL-01-20261128-" + String(repeating: "0", count: 8 - String($0).count) + String($0) })
        let ng = try Self.run(["ledger", "find", "--ledger", path, "--verdict", "NG"])
        #expect(ng.output.split(separator: "\n").count == 3)

        let csv = try Self.run(["ledger", "export", "--ledger", path, "--format", "csv"])
        #expect(csv.output.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count == 13)  // RFC 4180 CRLF: header + 12
        let jsonl = try Self.run(["ledger", "export", "--ledger", path, "--format", "jsonl", "--verdict", "OK"])
        let lines = jsonl.output.split(separator: "\n")
        #expect(lines.count == 9)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
    }

    @Test("a missing ledger: one line naming the path, non-zero exit")
    func missingLedger() throws {
        let result = try Self.run(["ledger", "verify", "--ledger", "/nonexistent/ledger.sqlite"])
        #expect(result.status != 0)
        #expect(result.errors.contains("/nonexistent/ledger.sqlite"))
    }
}
