import CellCore
import CellService
import ControlAPI
import ControlAPIClient
import Foundation
import LampCellTestSupport
import Testing

/// Every endpoint through the real Unix socket: against a running daemon on the simulated cell where the answer
/// depends on the controller, against `FakeCell` where it does not (order validation, no ledger).
@Suite("Control API endpoints", .serialized)
struct EndpointTests {
    @Test("GET /v1/status: the whole document, through the client and through curl --unix-socket")
    func status() throws {
        let cell = try APIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitForDevices())
        // A loopback exchange may time out in a VM stall (2 ms response timeout); the link is back within periods.
        let status = try cell.status { $0.devices.allSatisfy(\.connected) }
        #expect(status.apiVersion == 1)
        #expect(status.cellID == cell.daemon.cell.cellID)
        #expect(status.packml.state == cell.daemon.snapshot().unit.state.description)
        #expect(status.packml.mode == "Production")
        #expect(status.devices.map(\.name) == cell.daemon.cell.arms.map(\.name) + ["station"])
        #expect(status.devices.allSatisfy { $0.connected }, "\(status.devices.map { "\($0.name): \($0.link) \($0.linkDetail)" })")
        #expect(status.devices.filter { $0.kind == "arm" }.allSatisfy { $0.positionsRadians?.count == 6 })
        #expect(status.controlLoop.periodMicroseconds == 4000)
        #expect(status.controlLoop.periodsRun > 0)
        #expect(status.controlLoop.phases.map(\.name) == ["wake_latency", "read", "step", "write", "busy"])
        #expect(status.controlLoop.phases.allSatisfy { $0.count > 0 })
        // One version: the ledger's, the API's and `--version`'s.
        #expect(status.version == LampCellVersion.current)

        let (code, body) = try curl(cell.socketPath, "GET", "/v1/status")
        #expect(code == 200)
        let decoded = try JSONDecoder().decode(StatusDocument.self, from: Data(body.utf8))
        #expect(decoded.cellID == status.cellID)
    }

    @Test("GET /metrics: Prometheus text with state, counts, OEE, loop timing, overruns and device gauges")
    func metrics() throws {
        let cell = try APIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitForDevices())
        // As for the status: a link that timed out in a VM stall is up again within periods.
        let deviceUp = (cell.daemon.cell.arms.map { ($0.name, "arm") } + [("station", "station")]).map {
            "lampcell_device_up{device=\"\($0.0)\",kind=\"\($0.1)\"} 1.0"
        }
        var response = try cell.client.send("GET", "/metrics")
        _ = try eventually(withinMilliseconds: 2_000) {
            response = try cell.client.send("GET", "/metrics")
            let lines = Set(response.text.split(separator: "\n").map(String.init))
            return deviceUp.allSatisfy(lines.contains)
        }
        #expect(response.status == 200)
        #expect(response.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = response.text
        let state = cell.daemon.snapshot().unit.state.description
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("lampcell_packml_state{state=\"\(state)\"} 1.0"), "\(text.prefix(3000))")
        #expect(lines.contains("lampcell_packml_mode{mode=\"Production\"} 1.0"))
        for line in deviceUp {
            #expect(lines.contains(line), "\(line)")
        }
        for name in [
            "# TYPE lampcell_control_overruns_total counter", "# TYPE lampcell_lamps_processed_total counter",
            "# TYPE lampcell_oee_ratio gauge", "# TYPE lampcell_control_phase_seconds gauge",
            "# TYPE lampcell_device_fault_code gauge", "# TYPE lampcell_cycle_time_seconds gauge",
        ] {
            #expect(lines.contains(name), "\(name)")
        }
        #expect(lines.contains { $0.hasPrefix("lampcell_control_phase_seconds{phase=\"wake_latency\",quantile=\"0.99\"}") })
        #expect(lines.contains { $0.hasPrefix("lampcell_control_periods_total ") })
        let (code, body) = try curl(cell.socketPath, "GET", "/metrics")
        #expect(code == 200 && body.contains("lampcell_packml_state_code"))
    }

    @Test("GET /v1/watch: a first event at once, then one when the state changes; curl sees the event stream")
    func watch() throws {
        let cell = try APIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitForDevices())
        try #require(cell.waitFor(seconds: 5) { $0.unit.state == .stopped })
        let states = LockedList()
        let client = cell.client
        let watcher = Thread {
            _ = try? client.watch(intervalMilliseconds: 100) { data in
                guard let document = try? JSONDecoder().decode(StatusDocument.self, from: Data(data.utf8)) else {
                    states.append("undecodable")
                    return false
                }
                states.append(document.packml.state)
                return document.packml.state != "Idle"
            }
            states.append("end")
        }
        watcher.start()
        #expect(states.wait(seconds: 5) { $0.first == "Stopped" }, "\(states.items)")
        #expect(try cell.client.send("POST", "/v1/commands/reset").status == 200)
        #expect(states.wait(seconds: 60) { $0.contains("Idle") && $0.last == "end" }, "\(states.items)")
        #expect(!states.items.contains("undecodable"))

        let (code, body) = try curl(cell.socketPath, "GET", "/v1/watch?interval_ms=100", extra: ["-N", "--max-time", "2"])
        #expect(code == 200, "\(body.prefix(300))")
        #expect(body.contains("event: status\ndata: {"), "\(body.prefix(300))")

        // The interval is bounded.
        #expect(try cell.client.send("GET", "/v1/watch?interval_ms=5").status == 400)
    }

    @Test("POST /v1/commands/*: accepted ones move the cell; refused ones answer 409 with PackML's reason")
    func commands() throws {
        let cell = try APIFixture()
        defer { cell.shutdown() }
        try #require(cell.waitForDevices())
        try #require(cell.waitFor(seconds: 5) { $0.unit.state == .stopped })
        let client = cell.client

        // The unit mode changes in Stopped; the status lists the modes available.
        #expect(try client.status().packml.modesAvailable == ["maintenance", "manual"])
        var response = try client.send("POST", "/v1/mode/maintenance")
        #expect(response.status == 200, "\(response.text)")
        #expect(try response.decode(AcceptedBody.self).request == "mode Maintenance")
        let inMaintenance = try cell.status { $0.packml.mode == "Maintenance" }
        #expect(inMaintenance.packml.mode == "Maintenance")
        #expect(inMaintenance.packml.modesAvailable == ["production", "manual"])
        #expect(try client.send("POST", "/v1/mode/turbo").status == 404)
        #expect(try client.send("GET", "/v1/mode/manual").status == 405)
        #expect(try client.send("POST", "/v1/mode/production").status == 200)
        #expect(try cell.status { $0.packml.mode == "Production" }.packml.mode == "Production")

        // Refused in Stopped: Start (no order and not Idle), Hold (only in Execute).
        response = try client.send("POST", "/v1/commands/start")
        #expect(response.status == 409)
        let startRefusal = try #require(response.errorBody)
        #expect(startRefusal.error == "refused")
        #expect(startRefusal.message.contains("Start is accepted only in Idle; the cell is Stopped"), "\(startRefusal.message)")
        #expect(startRefusal.state == "Stopped")
        response = try client.send("POST", "/v1/commands/hold")
        #expect(response.status == 409)
        #expect(response.errorBody?.message.contains("Hold is accepted only in") == true, "\(response.text)")

        // Reset → Idle; Start without an order → 409 with the order reason.
        response = try client.send("POST", "/v1/commands/reset")
        #expect(response.status == 200, "\(response.text)")
        let accepted = try response.decode(AcceptedBody.self)
        #expect(accepted.accepted && accepted.request == "Reset")
        #expect(accepted.state == "Resetting", "the state after the period that took the command")
        try #require(cell.waitFor(seconds: 60) { $0.unit.state == .idle })
        response = try client.send("POST", "/v1/commands/start")
        #expect(response.status == 409)
        #expect(response.errorBody?.message.contains("needs an active production order") == true, "\(response.text)")

        // Order, Start (through curl), Hold/Unhold, Suspend/Unsuspend, Stop.
        let order = try curl(cell.socketPath, "POST", "/v1/order", body: #"{"id":"API-1","variant":"LEFT","quantity":3}"#)
        #expect(order.status == 200, "\(order.body)")
        let start = try curl(cell.socketPath, "POST", "/v1/commands/start")
        #expect(start.status == 200, "\(start.body)")
        try #require(cell.waitFor(seconds: 30) { $0.unit.state == .execute })
        #expect(try client.status().order?.id == "API-1")
        // Never while the cell moves: a mode change in Execute is refused, naming where it is accepted.
        let modeInExecute = try client.send("POST", "/v1/mode/maintenance")
        #expect(modeInExecute.status == 409, "\(modeInExecute.text)")
        #expect(modeInExecute.errorBody?.state == "Execute")
        #expect(modeInExecute.errorBody?.message.contains("Stopped") == true, "\(modeInExecute.text)")
        let inExecute = try cell.status { $0.packml.state == "Execute" }
        #expect(inExecute.packml.modesAvailable.isEmpty)
        #expect(inExecute.packml.mode == "Production")
        #expect(try client.send("POST", "/v1/commands/hold").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .held })
        #expect(try client.send("POST", "/v1/commands/unhold").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .execute })
        #expect(try client.send("POST", "/v1/commands/suspend").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .suspended })
        #expect(try client.send("POST", "/v1/commands/unsuspend").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .execute })
        #expect(try client.send("POST", "/v1/commands/stop").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .stopped })

        // A second order while the first is active → 409; cancel it → 200.
        response = try client.send("POST", "/v1/order", json: Array(#"{"id":"API-2","variant":"RIGHT","quantity":1}"#.utf8))
        #expect(response.status == 409)
        #expect(response.errorBody?.message.contains("already active") == true, "\(response.text)")
        #expect(try client.send("DELETE", "/v1/order").status == 200)
        #expect(try client.send("DELETE", "/v1/order").status == 409)

        // Abort → Aborted; Clear → Stopped.
        #expect(try client.send("POST", "/v1/commands/abort").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .aborted })
        #expect(try client.send("POST", "/v1/commands/clear").status == 200)
        #expect(cell.waitFor(seconds: 30) { $0.unit.state == .stopped })
    }

    @Test("POST /v1/order: malformed or invalid bodies answer 400 naming the field")
    func orderValidation() throws {
        let cell = try FakeAPIFixture()
        defer { cell.shutdown() }
        let client = cell.client
        let cases: [(String, String)] = [
            (#"{"id":"A","variant":"LEFT""#, "not valid JSON"),
            (#"{"id":"A","variant":"LEFT"}"#, "'quantity' is missing"),
            (#"{"id":"A","variant":"UP","quantity":1}"#, "'variant' is UP"),
            (#"{"id":"A","variant":"LEFT","quantity":0}"#, "'quantity' is 0"),
            (#"{"id":"A","variant":"LEFT","quantity":"many"}"#, "'quantity' has the wrong type"),
            (#"{"id":"","variant":"LEFT","quantity":1}"#, "'id' is empty"),
            ("{\"id\":\"\(String(repeating: "x", count: 65))\",\"variant\":\"LEFT\",\"quantity\":1}", "'id' is 65 bytes"),
        ]
        for (body, message) in cases {
            let response = try client.send("POST", "/v1/order", json: Array(body.utf8))
            #expect(response.status == 400, "\(body)")
            #expect(response.errorBody?.error == "bad_request")
            #expect(response.errorBody?.message.contains(message) == true, "\(body): \(response.text)")
        }
        #expect(cell.fake.snapshot().unit.order == nil)
        #expect(cell.fake.requests.isEmpty, "a bad body reached the controller: \(cell.fake.requests)")
    }

    @Test("GET /v1/lamps/{serial} and /v1/lamps?lot=&from=&to=&verdict= (in-memory stand-in for the ledger)")
    func lamps() throws {
        let cell = try APIFixture()
        defer { cell.shutdown() }
        let base: UInt64 = 1_795_000_000_000_000_000  // 2026-11-18
        func record(_ sequence: UInt64, verdict: LampVerdict, lot: UInt32, minutes: UInt64) -> LampRow {
            var lamp = LampRecord(
                serial: LampSerial(dateCode: 20_261_118, sequence: sequence), variant: 1,
                startWallNanoseconds: base + minutes * 60_000_000_000, startMonotonicNanoseconds: 1)
            lamp.endWallNanoseconds = lamp.startWallNanoseconds + 30_000_000_000
            lamp.endMonotonicNanoseconds = 30_000_000_001
            lamp.verdict = verdict
            lamp.housingLot = lot
            lamp.ledModuleLot = 900
            lamp.lensLot = 901
            lamp.measurements[.leakRate] = 0.8
            if verdict == .ng {
                lamp.measurements[.pressForce] = 5000
                lamp.outOfWindowMask = 1 << UInt16(MeasurementKind.pressForce.rawValue)
            }
            return LampRow(record: lamp, cellID: cell.daemon.cell.cellID, orderID: "ORD-7", recipe: "left")
        }
        let rows = [
            record(1, verdict: .ok, lot: 100, minutes: 0), record(2, verdict: .ng, lot: 100, minutes: 1),
            record(3, verdict: .ok, lot: 200, minutes: 2), record(4, verdict: .scrapped, lot: 200, minutes: 3),
        ]
        rows.forEach(cell.lamps.add)
        let client = cell.client

        var response = try client.send("GET", "/v1/lamps/\(rows[1].serial)")
        #expect(response.status == 200, "\(response.text)")
        let one = try response.decode(LampRow.self)
        #expect(one == rows[1])
        #expect(one.verdict == "NG" && one.reasons == ["press_force"])
        #expect(one.measurements.contains { $0.name == "press_force" && !$0.inWindow })
        #expect(try client.send("GET", "/v1/lamps/NO-SUCH-SERIAL").status == 404)

        func serials(_ query: String) throws -> [String] {
            let response = try client.send("GET", "/v1/lamps?\(query)")
            #expect(response.status == 200, "\(query): \(response.text)")
            return try response.decode([LampRow].self).map(\.serial)
        }
        #expect(try serials("verdict=NG") == [rows[1].serial])
        #expect(try serials("lot=200") == [rows[2].serial, rows[3].serial])
        #expect(try serials("lot=901&verdict=ok") == [rows[0].serial, rows[2].serial])
        #expect(try serials("from=\(rows[1].startedAt)&to=\(rows[3].startedAt)") == [rows[1].serial, rows[2].serial])
        #expect(try serials("limit=1") == [rows[0].serial])
        for bad in ["verdict=MAYBE", "lot=abc", "from=yesterday", "limit=0", "colour=red"] {
            response = try client.send("GET", "/v1/lamps?\(bad)")
            #expect(response.status == 400, "\(bad)")
            #expect(response.errorBody?.error == "bad_request")
        }
        let (code, body) = try curl(cell.socketPath, "GET", "/v1/lamps?verdict=SCRAPPED")
        #expect(code == 200 && body.contains(rows[3].serial))

        // The ledger head reaches the status document.
        let deadline = Date().addingTimeInterval(10)
        var head: LedgerHead?
        while Date() < deadline {
            head = try client.status().ledger
            if head?.count == 4 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(head?.count == 4 && head?.lastSerial == rows[3].serial)
    }

    @Test("GET /v1/lamps without a ledger attached: 503 with a message")
    func lampsWithoutLedger() throws {
        let cell = try FakeAPIFixture()
        defer { cell.shutdown() }
        let response = try cell.client.send("GET", "/v1/lamps/X")
        #expect(response.status == 503)
        #expect(response.errorBody?.message.contains("no lamp ledger") == true)
        #expect(try cell.client.status().ledger == nil)
    }
}

/// A list filled by another thread, with a wait on a condition.
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []

    func append(_ item: String) {
        lock.lock()
        storage.append(item)
        lock.unlock()
    }

    var items: [String] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }

    func wait(seconds: Double, _ condition: ([String]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(items) { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition(items)
    }
}
