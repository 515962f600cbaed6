// The ledger's SQLite schema (migrations) and the mapping between `LedgerEntry` and a `lamp` row.

import Foundation
import GRDB

/// Schema, column list and row mapping. Thread: whichever thread holds the GRDB connection.
enum LedgerSchema {
    /// Migration identifiers this software knows, in order.
    static let migrationIdentifiers = ["v1-lamp-table"]

    /// The migrator that creates and upgrades the schema.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-lamp-table") { db in
            try db.execute(
                sql: """
                    CREATE TABLE lamp (
                        position INTEGER PRIMARY KEY,
                        serial TEXT NOT NULL UNIQUE,
                        serial_sequence INTEGER NOT NULL,
                        cell_id TEXT NOT NULL,
                        variant TEXT NOT NULL,
                        recipe_id TEXT NOT NULL,
                        recipe_sha256 TEXT NOT NULL,
                        order_id TEXT NOT NULL,
                        start_utc TEXT NOT NULL,
                        start_wall_ns INTEGER NOT NULL,
                        end_utc TEXT NOT NULL,
                        end_wall_ns INTEGER NOT NULL,
                        cycle_time_s REAL NOT NULL,
                        verdict TEXT NOT NULL,
                        reasons TEXT NOT NULL,
                        measurements TEXT NOT NULL,
                        housing_lot INTEGER NOT NULL,
                        led_module_lot INTEGER NOT NULL,
                        lens_lot INTEGER NOT NULL,
                        devices TEXT NOT NULL,
                        software_version TEXT NOT NULL,
                        prev_hash TEXT NOT NULL,
                        hash TEXT NOT NULL
                    );
                    CREATE INDEX lamp_end_wall_ns ON lamp(end_wall_ns);
                    CREATE INDEX lamp_housing_lot ON lamp(housing_lot);
                    CREATE INDEX lamp_led_module_lot ON lamp(led_module_lot);
                    CREATE INDEX lamp_lens_lot ON lamp(lens_lot);
                    CREATE INDEX lamp_verdict ON lamp(verdict);
                    CREATE INDEX lamp_serial_sequence ON lamp(serial_sequence);
                    CREATE TRIGGER lamp_no_update BEFORE UPDATE ON lamp
                    BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE of lamp refused'); END;
                    CREATE TRIGGER lamp_no_delete BEFORE DELETE ON lamp
                    BEGIN SELECT RAISE(ABORT, 'ledger is append-only: DELETE from lamp refused'); END;
                    """)
        }
        return migrator
    }

    /// Columns of the `lamp` table in `select` order (also the CSV header).
    static let columns = [
        "position", "serial", "serial_sequence", "cell_id", "variant", "recipe_id", "recipe_sha256", "order_id",
        "start_utc", "start_wall_ns", "end_utc", "end_wall_ns", "cycle_time_s", "verdict", "reasons",
        "measurements", "housing_lot", "led_module_lot", "lens_lot", "devices", "software_version", "prev_hash",
        "hash",
    ]

    /// `position, serial, …, hash`.
    static let columnList = columns.joined(separator: ", ")

    /// `INSERT INTO lamp (…) VALUES (?, …)`.
    static let insertSQL =
        "INSERT INTO lamp (\(columnList)) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))"

    /// JSON encoder of the `measurements` and `devices` columns and of JSON Lines export.
    static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// JSON decoder matching `makeEncoder()`.
    static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    /// The statement arguments that store `entry` (all of its fields, chain fields included). The JSON columns are
    /// written by `LedgerJSON` (the same text as `makeEncoder()`, at a fraction of the cost).
    static func arguments(_ entry: LedgerEntry) -> StatementArguments {
        let measurements = LedgerJSON.measurements(entry.measurements)
        let devices = LedgerJSON.devices(entry.devices)
        let values: [(any DatabaseValueConvertible)?] = [
            entry.position, entry.serial, entry.serialSequence, entry.cellID, entry.variant, entry.recipeID,
            entry.recipeSHA256, entry.orderID, entry.startUTC, entry.startWallNanoseconds, entry.endUTC,
            entry.endWallNanoseconds, entry.cycleTimeSeconds, entry.verdict, entry.reasons, measurements,
            entry.housingLot, entry.ledModuleLot, entry.lensLot, devices, entry.softwareVersion, entry.prevHash,
            entry.hash,
        ]
        return StatementArguments(values)
    }

    /// The entry of a row selected with `columnList`. Throws `undecodableRow` naming the row.
    static func entry(_ row: Row, decoder: JSONDecoder) throws(LedgerError) -> LedgerEntry {
        let position: Int64 = (try? row.decode(Int64.self, atIndex: 0)) ?? 0
        let serial: String = (try? row.decode(String.self, atIndex: 1)) ?? "?"
        do {
            var entry = LedgerEntry(
                position: position,
                serial: serial,
                serialSequence: try row.decode(atIndex: 2),
                cellID: try row.decode(atIndex: 3),
                variant: try row.decode(atIndex: 4),
                recipeID: try row.decode(atIndex: 5),
                recipeSHA256: try row.decode(atIndex: 6),
                orderID: try row.decode(atIndex: 7),
                startWallNanoseconds: try row.decode(atIndex: 9),
                endWallNanoseconds: try row.decode(atIndex: 11),
                cycleTimeSeconds: try row.decode(atIndex: 12),
                verdict: try row.decode(atIndex: 13),
                reasons: try row.decode(atIndex: 14),
                measurements: try decoder.decode(
                    [LedgerMeasurement].self, from: Data((try row.decode(String.self, atIndex: 15)).utf8)),
                housingLot: try row.decode(atIndex: 16),
                ledModuleLot: try row.decode(atIndex: 17),
                lensLot: try row.decode(atIndex: 18),
                devices: try decoder.decode(
                    [DeviceIdentity].self, from: Data((try row.decode(String.self, atIndex: 19)).utf8)),
                softwareVersion: try row.decode(atIndex: 20),
                prevHash: try row.decode(atIndex: 21),
                hash: try row.decode(atIndex: 22))
            // The stored texts, not the ones recomputed from the nanoseconds: a changed text must show in verify.
            entry.startUTC = try row.decode(atIndex: 8)
            entry.endUTC = try row.decode(atIndex: 10)
            return entry
        } catch {
            throw .undecodableRow(position: position, serial: serial, message: "\(error)")
        }
    }
}
