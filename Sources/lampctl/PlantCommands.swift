import ArgumentParser
import Foundation
import Ledger
import Plant

/// `lampctl plant …`: the plant database (PostgreSQL) that every cell replicates its ledger to (docs/PLANT.md).
struct PlantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plant",
        abstract: "The plant database: migrate, add cells, recall across cells, counts, export, verify.",
        discussion: """
            Connects with --database (a libpq connection string or URI), else $\(databaseEnvironmentVariable), \
            else libpq's own PGHOST, PGDATABASE, PGUSER… variables. Queries need the quality role (or the database \
            owner); migrate and add-cell need a role that may create roles.
            """,
        subcommands: [Migrate.self, AddCell.self, Recall.self, Show.self, Find.self, Counts.self, Export.self, Verify.self])

    /// The environment variable holding the connection string when `--database` is not given.
    static let databaseEnvironmentVariable = "LAMPCELL_PLANT_DATABASE"

    /// Where the plant database is; shared by every verb.
    struct Database: ParsableArguments {
        @Option(
            name: .customLong("database"),
            help: "libpq connection string or URI, e.g. 'host=plantdb dbname=plant user=quality' (default: $\(PlantCommand.databaseEnvironmentVariable), else libpq's PG* variables).")
        var connectionString: String?

        func connect() throws -> PostgresConnection {
            // The environment is read here, not as the option's default: --help must not print a password.
            let resolved = connectionString ?? ProcessInfo.processInfo.environment[PlantCommand.databaseEnvironmentVariable] ?? ""
            do {
                return try PostgresConnection(connectionString: resolved, applicationName: "lampctl")
            } catch {
                throw PlantCommandError(error.description)
            }
        }
    }

    /// Filters shared by recall, find, counts and export.
    struct Filters: ParsableArguments {
        @Option(help: "Only this cell.")
        var cell: String?
        @Option(help: "Lamps that left their cell at or after this UTC time (ISO-8601, e.g. 2026-11-28T08:00:00Z).")
        var from: String?
        @Option(help: "Lamps that left their cell before this UTC time (ISO-8601).")
        var to: String?
        @Option(help: "OK, NG or SCRAPPED.")
        var verdict: String?
        @Option(help: "At most this many lamps.")
        var limit: Int?

        func filter() throws -> PlantFilter {
            var filter = PlantFilter(cellID: cell, limit: limit)
            if let from { filter.endedAtOrAfterWallNanoseconds = try LedgerCommand.Filters.nanoseconds(from, option: "--from") }
            if let to { filter.endedBeforeWallNanoseconds = try LedgerCommand.Filters.nanoseconds(to, option: "--to") }
            if let verdict { filter.verdict = try LedgerCommand.Filters.verdict(verdict).name }
            return filter
        }
    }

    /// Prints each lamp matching `filter` on a line of its own, its cell first, and on standard error how many
    /// lamps from how many cells.
    static func printLamps(_ database: Database, _ filter: PlantFilter) throws {
        try run {
            var count = 0
            var cells = Set<String>()
            try PlantQueries.forEachLamp(try database.connect(), matching: filter) { entry in
                print("\(entry.cellID)  " + LedgerCommand.line(entry))
                count += 1
                cells.insert(entry.cellID)
            }
            FileHandle.standardError.write(Data("\(count) lamps from \(cells.count) cells\n".utf8))
        }
    }

    /// Runs `body`, turning a database error into one line on standard error and exit 1.
    static func run(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as PlantError {
            throw PlantCommandError(error.description)
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create or upgrade the central schema and its roles (lampcell_cell, lampcell_quality).")
        @OptionGroup var database: Database

        func run() throws {
            try PlantCommand.run {
                let connection = try database.connect()
                let applied = try PlantSchema.migrate(connection)
                print(applied.isEmpty ? "plant schema up to date" : "applied: \(applied.joined(separator: ", "))")
            }
        }
    }

    struct AddCell: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-cell",
            abstract: "Register a cell and its login role (created when missing); the role may insert only that cell's rows.")
        @OptionGroup var database: Database
        @Argument(help: "The cell's id, as in its Hardware/cell.toml (e.g. HL-CELL-01).")
        var cellID: String
        @Option(help: "The cell's login role (lower-case letters, digits, _).")
        var role: String
        @Option(help: "A file whose first line is the role's password (else the role has none).")
        var passwordFile: String?

        func run() throws {
            var password: String?
            if let passwordFile {
                guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8),
                    let first = text.split(whereSeparator: \.isNewline).first, !first.isEmpty
                else { throw ValidationError("--password-file \(passwordFile): cannot be read, or is empty") }
                password = String(first)
            }
            try PlantCommand.run {
                try PlantSchema.addCell(try database.connect(), cellID: cellID, role: role, password: password)
                print("cell \(cellID) registered with role \(role)")
            }
        }
    }

    struct Recall: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every lamp, from every cell, that holds a lot (e.g. a bad lens lot: --lot 300004 --lot-kind lens).")
        @OptionGroup var database: Database
        @Option(help: "The lot number.")
        var lot: Int64
        @Option(help: "housing, led or lens (default: any of them).")
        var lotKind: String?
        @OptionGroup var filters: Filters

        func run() throws {
            var filter = try filters.filter()
            filter.lot = lot
            if let lotKind {
                guard let kind = PlantFilter.LotKind(rawValue: lotKind.lowercased()) else {
                    throw ValidationError("--lot-kind \(lotKind): expected housing, led or lens")
                }
                filter.lotKind = kind
            }
            try PlantCommand.printLamps(database, filter)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One lamp by serial, as JSON (every field).")
        @OptionGroup var database: Database
        @Argument(help: "The lamp's serial.")
        var serial: String

        func run() throws {
            try PlantCommand.run {
                let found = try PlantQueries.lamps(try database.connect(), matching: PlantFilter(serial: serial))
                guard !found.isEmpty else { throw PlantCommandError("no lamp \(serial) in the plant database") }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                for entry in found { print(String(decoding: try encoder.encode(entry), as: UTF8.self)) }
            }
        }
    }

    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lamps by cell, time range and verdict.")
        @OptionGroup var database: Database
        @OptionGroup var filters: Filters

        func run() throws {
            try PlantCommand.printLamps(database, try filters.filter())
        }
    }

    struct Counts: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lamps per cell (and per shift) by verdict, with OEE quality (good / total).")
        @OptionGroup var database: Database
        @OptionGroup var filters: Filters
        @Option(help: "Count per shift of this many hours (a divisor of 24), e.g. 8.")
        var shiftHours: Int?
        @Option(help: "With --shift-hours: when the first shift of the day starts, UTC (HH:MM).")
        var firstShift = "06:00"

        func run() throws {
            let filter = try filters.filter()
            if let shiftHours, shiftHours <= 0 || 24 % shiftHours != 0 {
                throw ValidationError("--shift-hours \(shiftHours): expected a divisor of 24 (1, 2, 3, 4, 6, 8, 12, 24)")
            }
            let parts = firstShift.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2, (0..<24).contains(parts[0]), (0..<60).contains(parts[1]) else {
                throw ValidationError("--first-shift \(firstShift): expected HH:MM")
            }
            try PlantCommand.run {
                let counts = try PlantQueries.counts(
                    try database.connect(), matching: filter, shiftHours: shiftHours,
                    firstShiftStartSeconds: parts[0] * 3600 + parts[1] * 60)
                print("cell\(shiftHours == nil ? "" : "  shift start (UTC)")  lamps  OK  NG  scrapped  quality")
                for row in counts {
                    let shift = row.shiftStartWallNanoseconds.map { "  " + LedgerTime.iso8601(wallNanoseconds: $0) } ?? ""
                    let quality = row.quality.map { String(format: "%.4f", $0) } ?? "-"
                    print("\(row.cellID)\(shift)  \(row.total)  \(row.ok)  \(row.ng)  \(row.scrapped)  \(quality)")
                }
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Lamps from every cell as CSV or JSON Lines (the same columns as lampctl ledger export), to stdout.")
        @OptionGroup var database: Database
        @OptionGroup var filters: Filters
        @Option(help: "Only lamps holding this lot (any kind).")
        var lot: Int64?
        @Option(help: "csv or jsonl.")
        var format = "csv"

        func run() throws {
            var filter = try filters.filter()
            filter.lot = lot
            guard format == "csv" || format == "jsonl" else {
                throw ValidationError("--format \(format): expected csv or jsonl")
            }
            try PlantCommand.run {
                let encoder = Ledger.makeExportEncoder()
                let output = FileHandle.standardOutput
                var buffer = format == "csv" ? Ledger.csvHeaderLine : ""
                try PlantQueries.forEachLamp(try database.connect(), matching: filter) { entry in
                    buffer += format == "csv" ? try Ledger.csvLine(entry, encoder: encoder) : try Ledger.jsonLine(entry, encoder: encoder)
                    if buffer.utf8.count >= 64 * 1024 {
                        try output.write(contentsOf: Data(buffer.utf8))
                        buffer = ""
                    }
                }
                try output.write(contentsOf: Data(buffer.utf8))
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk each cell's whole central chain (or one cell's); exit 1 when any is broken.")
        @OptionGroup var database: Database
        @Option(help: "Only this cell.")
        var cell: String?

        func run() throws {
            var valid = true
            try PlantCommand.run {
                let connection = try database.connect()
                let cells = try cell.map { [$0] } ?? PlantQueries.cells(connection)
                for cellID in cells {
                    let result = try PlantQueries.verify(connection, cellID: cellID)
                    print(result)
                    valid = valid && result.isValid
                }
            }
            if !valid { throw ExitCode(1) }
        }
    }
}

/// A plant command that failed: one line, exit 1.
struct PlantCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
