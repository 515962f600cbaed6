// The plant database through the real executables: `lampcelld` replicating with `[plant]` (and SIGKILLed mid-batch),
// `lampctl plant` answering a recall across two cells, counting, exporting and verifying.

import ControlAPIClient
import Foundation
import Ledger
import LampCellTestSupport
import Plant
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Plant database: lampcelld and lampctl", .serialized)
struct PlantCommandLineTests {
    /// Runs `lampctl` with `arguments` to its end.
    static func lampctl(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        try Repository.run("lampctl", arguments)
    }

    @Test("lampctl plant: a lot recall across two cells, show, counts per shift, export, verify (and a broken chain found)")
    func lampctlAcrossCells() throws {
        let server = try LocalPostgresServer()
        let cells = [
            try TestCell("CELL-A", role: "cell_a", server: server, seed: 11),
            try TestCell("CELL-B", role: "cell_b", server: server, seed: 12),
        ]
        for cell in cells {
            try cell.produce(400, lots: 1...8)
            let replicator = cell.replicator(server)
            replicator.start()
            _ = try PlantReplicationTests.caughtUp(replicator, cell)
            replicator.stop()
        }
        let database = "host=\(server.socketDirectory) port=\(LocalPostgresServer.port) dbname=\(LocalPostgresServer.database) user=quality_eng"
        let admin = try server.connect(database: LocalPostgresServer.database)
        try admin.execute("CREATE ROLE quality_eng LOGIN IN ROLE \(PlantSchema.qualityRole)")

        // Recall: every lamp of housing lot 3, from both cells, and nothing else.
        let expected = try cells.flatMap { try $0.writer.ledger.entries(matching: LedgerFilter(housingLot: 3)) }
        try #require(Set(expected.map(\.cellID)).count == 2)
        let recall = try Self.lampctl(["plant", "--database", database, "recall", "--lot", "3", "--lot-kind", "housing"])
        #expect(recall.status == 0, "\(recall.errors)")
        let recalled = recall.output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true)[1] }
        #expect(recalled.map(String.init).sorted() == expected.map(\.serial).sorted())
        #expect(recall.errors.contains("\(expected.count) lamps from 2 cells"), "\(recall.errors)")

        // Show: one lamp as JSON, every field as the cell recorded it.
        let one = expected[0]
        let show = try Self.lampctl(["plant", "--database", database, "show", one.serial])
        #expect(show.status == 0, "\(show.errors)")
        #expect(try JSONDecoder().decode(LedgerEntry.self, from: Data(show.output.utf8)) == one)

        // Counts per 8-hour shift add up to each cell's verdicts.
        let counts = try Self.lampctl(["plant", "--database", database, "counts", "--shift-hours", "8"])
        #expect(counts.status == 0, "\(counts.errors)")
        for cell in cells {
            let entries = try cell.writer.ledger.entries(matching: .all)
            let rows = counts.output.split(separator: "\n").filter { $0.hasPrefix(cell.cellID + "  ") }
            let totals = rows.map { $0.split(separator: " ", omittingEmptySubsequences: true) }
            #expect(totals.reduce(0) { $0 + Int($1[2])! } == entries.count, "\(counts.output)")
            #expect(totals.reduce(0) { $0 + Int($1[3])! } == entries.filter { $0.verdict == "OK" }.count)
        }

        // Export as JSON Lines: the very entries of both local ledgers.
        let export = try Self.lampctl(["plant", "--database", database, "export", "--format", "jsonl"])
        #expect(export.status == 0, "\(export.errors)")
        let exported = try export.output.split(separator: "\n").map {
            try JSONDecoder().decode(LedgerEntry.self, from: Data($0.utf8))
        }
        #expect(exported == (try cells.flatMap { try $0.writer.ledger.entries(matching: .all) }))

        // Verify: both chains whole; then a row changed behind the server's back (the owner disabling the
        // append-only trigger) is found, with its position.
        let verified = try Self.lampctl(["plant", "--database", database, "verify"])
        #expect(verified.status == 0, "\(verified.output)\(verified.errors)")
        #expect(verified.output.contains("CELL-A: OK, 400 entries") && verified.output.contains("CELL-B: OK, 400 entries"))
        try admin.execute("ALTER TABLE lampcell.lamp DISABLE TRIGGER lamp_append_only")
        try admin.execute(
            "UPDATE lampcell.lamp SET canonical = replace(canonical, E'\\nverdict=NG\\n', E'\\nverdict=OK\\n'), verdict = 'OK' WHERE cell_id = 'CELL-B' AND position = (SELECT min(position) FROM lampcell.lamp WHERE cell_id = 'CELL-B' AND verdict = 'NG')")
        let broken = try Self.lampctl(["plant", "--database", database, "verify", "--cell", "CELL-B"])
        #expect(broken.status == 1, "\(broken.output)")
        #expect(broken.output.contains("CELL-B: INVALID") && broken.output.contains("hash does not match"), "\(broken.output)")

        // Bad input: a clear line, no stack.
        let bad = try Self.lampctl(["plant", "--database", database, "recall", "--lot", "3", "--lot-kind", "glass"])
        #expect(bad.status != 0 && bad.errors.contains("--lot-kind glass"), "\(bad.errors)")
        let away = try Self.lampctl(["plant", "--database", "host=/nonexistent dbname=plant", "find"])
        #expect(away.status == 1 && away.errors.contains("connect to"), "\(away.errors)")
    }

    @Test("lampcelld with [plant]: SIGKILLed mid-batch, restarted, ships the rest once; status and metrics show the lag")
    func daemonKilledMidBatch() throws {
        let server = try LocalPostgresServer()
        let state = server.directory + "/state"
        let cell = try TestCell("HL-CELL-01", role: "cell_hl_cell_01", server: server, seed: 13, directory: state)
        try cell.produce(5_000)
        let socket = state + "/api.sock"
        let configuration = try String(contentsOfFile: Repository.developmentConfiguration, encoding: .utf8)
            .replacingOccurrences(of: "\"../.build/lampcell-state/api.sock\"", with: "\"\(socket)\"")
            .replacingOccurrences(of: "\"../.build/lampcell-state\"", with: "\"\(state)\"")
            .replacingOccurrences(of: "\"../", with: "\"\(Repository.root)/")
            + """

            [plant]
            server = "\(server.socketDirectory)"
            port = \(LocalPostgresServer.port)
            database = "\(LocalPostgresServer.database)"
            role = "\(cell.role)"
            tls = false
            batch_entries = 50
            lag_warning_entries = 100

            """
        let configurationPath = server.directory + "/lampcelld.toml"
        try configuration.write(toFile: configurationPath, atomically: true, encoding: .utf8)
        let logPath = server.directory + "/lampcelld.log"
        try #require(FileManager.default.createFile(atPath: logPath, contents: nil))
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        func daemon() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Repository.executable("lampcelld"))
            process.arguments = ["-c", configurationPath, "--simulate"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = log
            try process.run()
            return process
        }
        func logTail() -> String {
            String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(3000))
        }

        let first = try daemon()
        let client = APIClient(socketPath: socket)
        let partway = try eventually(withinMilliseconds: 60_000) { try cell.centralCount(server) >= 500 }
        // While the backlog ships, the status shows the lag past its bound.
        let lagging = try? client.status().plant
        #expect(lagging?.warning?.contains("plant replication lags") == true, "\(String(describing: lagging))")
        #expect((lagging?.lagEntries ?? 0) > 100)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let landed = try cell.centralCount(server)
        try #require(partway && landed < 5_000, "landed \(landed) before the kill; lampcelld: \(logTail())")

        let second = try daemon()
        defer {
            kill(second.processIdentifier, SIGTERM)
            second.waitUntilExit()
        }
        var status: StatusDocument?
        let caughtUp = eventually(withinMilliseconds: 90_000) {
            status = try? client.status()
            return status?.plant?.state == "caughtUp" && status?.plant?.lagEntries == 0
        }
        #expect(caughtUp, "\(String(describing: status?.plant)); lampcelld: \(logTail())")
        #expect(status?.plant?.acknowledgedPosition == 5_000)
        #expect(status?.plant?.warning == nil)
        #expect(try cell.differenceFromCentral(server) == nil)
        let metrics = try client.send("GET", "/metrics").text
        #expect(metrics.contains("lampcell_plant_lag_entries 0.0"), "\(metrics.suffix(2000))")
        #expect(metrics.contains("lampcell_plant_up 1.0"))
    }
}
