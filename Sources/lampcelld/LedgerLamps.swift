import CellCore
import ControlAPI
import ControlAPIClient
import Foundation
import Ledger

/// The API's lamp queries answered from the ledger (a read-only connection beside the daemon's writer).
/// Thread: any (GRDB serialises access).
final class LedgerLamps: LampQuerying, @unchecked Sendable {
    private let ledger: Ledger

    init(path: String) throws {
        ledger = try Ledger.openReadOnly(path: path)
    }

    func lamp(serial: String) throws -> LampRow? {
        try ledger.entry(serial: serial).map(Self.row)
    }

    func lamps(matching query: LampQuery) throws -> [LampRow] {
        var base = LedgerFilter()
        // The ledger indexes the end time (when the lamp left the cell); the API's range is applied to it.
        base.endedAtOrAfterWallNanoseconds = query.fromWallNanoseconds.map { Int64(clamping: $0) }
        base.endedBeforeWallNanoseconds = query.toWallNanoseconds.map { Int64(clamping: $0) }
        base.verdict = query.verdict
        base.limit = query.limit
        var filters = [base]
        if let lot = query.lot {
            var housing = base, led = base, lens = base
            housing.housingLot = Int64(lot)
            led.ledModuleLot = Int64(lot)
            lens.lensLot = Int64(lot)
            filters = [housing, led, lens]
        }
        var seen = Set<String>()
        var entries: [LedgerEntry] = []
        for filter in filters {
            for entry in try ledger.entries(matching: filter) where seen.insert(entry.serial).inserted {
                entries.append(entry)
            }
        }
        return entries.sorted { $0.position < $1.position }.prefix(query.limit).map(Self.row)
    }

    func head() throws -> LedgerHead? {
        let head = try ledger.head()
        return LedgerHead(
            count: UInt64(max(0, head.count)), hash: head.headHash,
            lastSerial: head.headSerial.isEmpty ? nil : head.headSerial)
    }

    static func row(_ entry: LedgerEntry) -> LampRow {
        LampRow(
            serial: entry.serial, variant: entry.variant, orderID: entry.orderID.isEmpty ? nil : entry.orderID,
            recipe: entry.recipeID.isEmpty ? nil : entry.recipeID, verdict: entry.verdict,
            reasons: entry.verdict == "NG" ? entry.reasons.components(separatedBy: "; ") : [],
            scrapReason: entry.verdict == "SCRAPPED" ? entry.reasons : "", startedAt: entry.startUTC,
            endedAt: entry.endUTC, startWallNanoseconds: UInt64(clamping: entry.startWallNanoseconds),
            cycleTimeSeconds: entry.cycleTimeSeconds,
            measurements: entry.measurements.map { m in
                LampRow.Measurement(
                    name: m.name, value: m.value, unit: m.unit,
                    inWindow: (m.minimum.map { m.value >= $0 } ?? true) && (m.maximum.map { m.value <= $0 } ?? true),
                    minimum: m.minimum, maximum: m.maximum)
            },
            lots: LampRow.Lots(
                housing: UInt32(clamping: entry.housingLot), ledModule: UInt32(clamping: entry.ledModuleLot),
                lens: UInt32(clamping: entry.lensLot)))
    }
}
