import CellCore
import Foundation
import Testing

@testable import Ledger

@Suite("Ledger writer and queries")
struct WriterTests {
    @Test("Appending the same entry twice stores it once; a retried batch does not duplicate")
    func idempotentAppend() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let entries = Fixture.entries(count: 5)
        let first = try writer.append(entries[0])
        let again = try writer.append(entries[0])
        #expect(again == first)
        #expect(try writer.ledger.count() == 1)

        // A batch that partly landed before (entry 0) and repeats an entry inside itself (entry 2).
        let stored = try writer.append([entries[0], entries[1], entries[2], entries[2], entries[3], entries[4]])
        #expect(stored.map(\.serial) == [0, 1, 2, 2, 3, 4].map { entries[$0].serial })
        #expect(stored[0] == first)
        #expect(stored[2] == stored[3])
        #expect(try writer.ledger.count() == 5)
        #expect(try writer.ledger.entries(matching: .all).map(\.position) == [1, 2, 3, 4, 5])
        // The whole batch again (a retry after an ambiguous failure): nothing new.
        #expect(try writer.append(entries) == (try writer.ledger.entries(matching: .all)))
        #expect(try writer.ledger.count() == 5)
        #expect(try writer.ledger.verify().isValid)
    }

    @Test("The same serial with other content is refused and nothing of its batch is stored")
    func conflictingDuplicate() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let entries = Fixture.entries(count: 4)
        let stored = try writer.append(Array(entries[0..<2]))
        var changed = entries[1]
        changed.lensLot += 1
        #expect {
            try writer.append([entries[2], changed, entries[3]])
        } throws: { error in
            guard case .conflictingDuplicate(let serial, let storedHash, let newHash) = error as? LedgerError else {
                return false
            }
            return serial == entries[1].serial && storedHash == stored[1].hash && newHash != storedHash
        }
        #expect(try writer.ledger.count() == 2)
        #expect(try writer.ledger.entry(serial: entries[2].serial) == nil)

        // Inside one batch too.
        var otherTwin = entries[2]
        otherTwin.reasons = "different"
        #expect(throws: LedgerError.self) { try writer.append([entries[2], otherTwin]) }
        #expect(try writer.ledger.count() == 2)
        #expect(try writer.ledger.verify().isValid)
    }

    @Test("A reopened ledger continues the chain; recovery helpers report the head")
    func reopen() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let entries = Fixture.entries(count: 30)
        do {
            let writer = try LedgerWriter(path: directory.file("ledger.db"))
            try writer.append(Array(entries[0..<20]))
        }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        let head = try writer.ledger.head()
        #expect(head.count == 20)
        #expect(head.headSerial == entries[19].serial)
        #expect(try writer.ledger.lastEntry()?.serial == entries[19].serial)
        #expect(try writer.ledger.highestSerialSequence() == 20)
        let more = try writer.append(Array(entries[20...]))
        #expect(more.first?.prevHash == head.headHash)
        #expect(more.first?.position == 21)
        #expect(try writer.ledger.verify().head == (try writer.ledger.head()))
        #expect(try writer.ledger.tail(3).map(\.serial) == entries[27...].map(\.serial))
        #expect(try writer.ledger.tail(100).count == 30)
        #expect(try writer.ledger.tail(0).isEmpty)
    }

    @Test("Empty ledger: genesis head, no last entry, verify passes")
    func emptyLedger() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try LedgerWriter(path: directory.file("ledger.db"))
        #expect(try writer.ledger.head() == .genesis)
        #expect(try writer.ledger.lastEntry() == nil)
        #expect(try writer.ledger.highestSerialSequence() == 0)
        let verification = try writer.ledger.verify(against: .genesis)
        #expect(verification.isValid && verification.verifiedCount == 0)
        #expect(try writer.append([]).isEmpty)
    }

    @Test("Recall: every lamp with a given lot, exactly, over 3000 lamps; by verdict, time range, combinations")
    func recallQueries() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (writer, stored) = try makeLedger(in: directory, count: 3000, batch: 500, seed: 11)
        let ledger = try Ledger.openReadOnly(path: writer.path)

        let lensLots = Array(Set(stored.map(\.lensLot))).sorted()
        #expect(lensLots.count > 10)
        for lot in [lensLots[0], lensLots[lensLots.count / 2], lensLots[lensLots.count - 1]] {
            let expected = stored.filter { $0.lensLot == lot }
            #expect(!expected.isEmpty)
            #expect(try ledger.entries(matching: LedgerFilter(lensLot: lot)) == expected)
            #expect(try ledger.count(matching: LedgerFilter(lensLot: lot)) == Int64(expected.count))
        }
        let housingLot = stored[1500].housingLot
        #expect(
            try ledger.entries(matching: LedgerFilter(housingLot: housingLot))
                == stored.filter { $0.housingLot == housingLot })
        let ledLot = stored[2999].ledModuleLot
        #expect(
            try ledger.entries(matching: LedgerFilter(ledModuleLot: ledLot))
                == stored.filter { $0.ledModuleLot == ledLot })
        #expect(try ledger.entries(matching: LedgerFilter(lensLot: 1)).isEmpty)

        let ng = stored.filter { $0.verdict == "NG" }
        #expect(!ng.isEmpty)
        #expect(try ledger.entries(matching: LedgerFilter(verdict: .ng)) == ng)
        let lot = stored[700].lensLot
        #expect(
            try ledger.entries(matching: LedgerFilter(lensLot: lot, verdict: .ok))
                == stored.filter { $0.lensLot == lot && $0.verdict == "OK" })

        let from = stored[1000].endWallNanoseconds
        let to = stored[1200].endWallNanoseconds
        let inRange = stored.filter { $0.endWallNanoseconds >= from && $0.endWallNanoseconds < to }
        #expect(inRange.count == 200)
        #expect(
            try ledger.entries(matching: LedgerFilter(endedAtOrAfterWallNanoseconds: from, endedBeforeWallNanoseconds: to))
                == inRange)
        #expect(
            try ledger.entries(
                matching: LedgerFilter(endedAtOrAfterWallNanoseconds: from, endedBeforeWallNanoseconds: to, verdict: .scrapped))
                == inRange.filter { $0.verdict == "SCRAPPED" })
        #expect(try ledger.entries(matching: LedgerFilter(positions: 10...19)) == Array(stored[9..<19]))
        #expect(try ledger.entries(matching: LedgerFilter(verdict: .ok, limit: 3)) == Array(stored.filter { $0.verdict == "OK" }.prefix(3)))
        #expect(try ledger.entry(serial: stored[2345].serial) == stored[2345])
        #expect(try ledger.entry(serial: "no such serial") == nil)

        // The recall query uses its index.
        #expect(try ledger.queryPlan(matching: LedgerFilter(lensLot: lot)).contains("lamp_lens_lot"))
        #expect(try ledger.queryPlan(matching: LedgerFilter(housingLot: lot)).contains("lamp_housing_lot"))
        #expect(try ledger.verify().isValid)
    }
}
