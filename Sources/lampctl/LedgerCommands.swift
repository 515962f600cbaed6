import ArgumentParser
import CellCore
import ControlAPIClient
import Foundation
import Ledger

/// `lampctl ledger …`: read the lamp ledger directly (read-only; the daemon may run meanwhile).
struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Read the lamp ledger: show, tail, find, verify, export (read-only).",
        subcommands: [Show.self, Tail.self, Find.self, Verify.self, Export.self])

    /// Where the ledger is; shared by every verb.
    struct Location: ParsableArguments {
        @Option(name: .long, help: "The ledger database.")
        var ledger = "/var/lib/lampcelld/ledger.sqlite"

        func open() throws -> Ledger {
            guard FileManager.default.fileExists(atPath: ledger) else {
                throw ValidationError("no ledger at \(ledger) (use --ledger PATH)")
            }
            do {
                return try Ledger.openReadOnly(path: ledger)
            } catch {
                throw ValidationError("\(ledger): \(error)")
            }
        }
    }

    /// Filters of `find` and `export`.
    struct Filters: ParsableArguments {
        @Option(help: "Lamps whose housing, LED-module or lens lot is this (the recall query).")
        var lot: Int64?
        @Option(help: "Only this lot kind for --lot: housing, led, lens (default: any of them).")
        var lotKind: String?
        @Option(help: "Lamps that left the cell at or after this UTC time (ISO-8601, e.g. 2026-11-28T08:00:00Z).")
        var from: String?
        @Option(help: "Lamps that left the cell before this UTC time (ISO-8601).")
        var to: String?
        @Option(help: "OK, NG or SCRAPPED.")
        var verdict: String?
        @Option(help: "At most this many lamps.")
        var limit: Int?

        func filters() throws -> [LedgerFilter] {
            var base = LedgerFilter()
            base.limit = limit
            if let from { base.endedAtOrAfterWallNanoseconds = try Self.nanoseconds(from, option: "--from") }
            if let to { base.endedBeforeWallNanoseconds = try Self.nanoseconds(to, option: "--to") }
            if let verdict { base.verdict = try Self.verdict(verdict) }
            guard let lot else { return [base] }
            var housing = base, led = base, lens = base
            housing.housingLot = lot
            led.ledModuleLot = lot
            lens.lensLot = lot
            switch lotKind?.lowercased() {
            case nil: return [housing, led, lens]
            case "housing": return [housing]
            case "led": return [led]
            case "lens": return [lens]
            case let other?: throw ValidationError("--lot-kind \(other): expected housing, led or lens")
            }
        }

        /// The verdict `--verdict` names (any case).
        static func verdict(_ text: String) throws -> LampVerdict {
            guard let found = [LampVerdict.ok, .ng, .scrapped].first(where: { $0.name == text.uppercased() }) else {
                throw ValidationError("--verdict \(text): expected OK, NG or SCRAPPED")
            }
            return found
        }

        /// A time option parsed as the API parses its `from`/`to` (`RFC3339.wallNanoseconds`).
        static func nanoseconds(_ text: String, option: String) throws -> Int64 {
            guard let nanoseconds = RFC3339.wallNanoseconds(text) else {
                throw ValidationError(
                    "\(option) \(text): expected an RFC 3339 time like 2026-11-28T08:00:00Z, a date (2026-11-28) or Unix seconds, 1970…2099")
            }
            return Int64(nanoseconds)
        }
    }

    static func line(_ entry: LedgerEntry) -> String {
        var text = "\(entry.serial)  \(entry.variant)  \(entry.verdict)  \(entry.endUTC)  "
            + "\(String(format: "%.1f", entry.cycleTimeSeconds)) s  lots H\(entry.housingLot) L\(entry.ledModuleLot) "
            + "N\(entry.lensLot)"
        if !entry.reasons.isEmpty { text += "  (\(entry.reasons))" }
        return text
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one lamp by serial, every field.")
        @OptionGroup var location: Location
        @Argument(help: "The lamp's serial, e.g. HL-CELL-01-20261128-00000042.")
        var serial: String
        @Flag(help: "Print the entry as JSON.")
        var json = false

        func run() throws {
            guard let entry = try location.open().entry(serial: serial) else {
                throw ValidationError("no lamp \(serial) in \(location.ledger)")
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(entry)
            if json {
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(LedgerCommand.line(entry))
                print("recipe \(entry.recipeID) (sha256 \(entry.recipeSHA256)), order \(entry.orderID)")
                print("started \(entry.startUTC), software \(entry.softwareVersion)")
                for m in entry.measurements {
                    let window = "[\(m.minimum.map { String($0) } ?? "–") … \(m.maximum.map { String($0) } ?? "–")]"
                    print("  \(m.name) \(m.value) \(m.unit) \(window)")
                }
                for d in entry.devices { print("  device \(d.name): serial \(d.serialNumber), firmware \(d.firmware)") }
                print("position \(entry.position), hash \(entry.hash), prev \(entry.prevHash)")
            }
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The last lamps recorded.")
        @OptionGroup var location: Location
        @Option(name: .short, help: "How many.")
        var n = 10

        func run() throws {
            for entry in try location.open().tail(n) { print(LedgerCommand.line(entry)) }
        }
    }

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lamps by lot, time range or verdict (e.g. every lamp with lens lot 300004: --lot 300004 --lot-kind lens).")
        @OptionGroup var location: Location
        @OptionGroup var filters: Filters

        func run() throws {
            let ledger = try location.open()
            var seen = Set<String>()
            var entries: [LedgerEntry] = []
            for filter in try filters.filters() {
                for entry in try ledger.entries(matching: filter) where seen.insert(entry.serial).inserted {
                    entries.append(entry)
                }
            }
            for entry in entries.sorted(by: { $0.position < $1.position }) { print(LedgerCommand.line(entry)) }
            FileHandle.standardError.write(Data("\(entries.count) lamps\n".utf8))
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk the hash chain; report the first row that does not match. Exit 1 when it fails.")
        @OptionGroup var location: Location
        @Option(help: "A checkpoint line from the log (`ledger-checkpoint count=… head=…`): detects a truncated tail.")
        var checkpoint: [String] = []

        func run() throws {
            let ledger = try location.open()
            var checkpoints: [Checkpoint] = []
            for text in checkpoint {
                guard let parsed = Checkpoint(text) else { throw ValidationError("not a checkpoint line: \(text)") }
                checkpoints.append(parsed)
            }
            let result = checkpoints.isEmpty ? try ledger.verify() : try ledger.verify(against: checkpoints)
            print(result)
            if !result.isValid { throw ExitCode(1) }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export lamps as CSV or JSON Lines, streaming, to stdout.")
        @OptionGroup var location: Location
        @OptionGroup var filters: Filters
        @Option(help: "csv or jsonl.")
        var format = "csv"

        func run() throws {
            let ledger = try location.open()
            let filterList = try filters.filters()
            guard filterList.count == 1 else {
                throw ValidationError("export with --lot needs --lot-kind housing, led or lens")
            }
            switch format {
            case "csv": try ledger.exportCSV(matching: filterList[0], to: FileHandle.standardOutput)
            case "jsonl": try ledger.exportJSONLines(matching: filterList[0], to: FileHandle.standardOutput)
            default: throw ValidationError("--format \(format): expected csv or jsonl")
            }
        }
    }
}
