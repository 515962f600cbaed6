// ModbusClient robustness against the simulator's own servers (fault injection through
// `SimulatedCellServer.server(named:)`). Tests/ModbusTests proves the same in detail against a RegisterImage;
// here one test each shows it holds for the devices of the simulated cell.

import CRealtime
import CellSimulator
import Modbus
import LampCellTestSupport
import Testing

@Suite("ModbusClient robustness against the simulated cell", .serialized)
struct SimulatedCellRobustnessTests {
    @Test("a late reply is discarded and the next request succeeds with fresh data")
    func lateReplyDiscarded() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let name = cell.armNames[0]
        let server = try cell.modbusServer(name)
        let client = try cell.client(name, responseTimeoutMilliseconds: 100)
        let other = try cell.client(name, responseTimeoutMilliseconds: 2_000)
        #expect(try client.holding(RA610Register.watchdogMilliseconds) == [100])

        let closedBefore = server.statistics.connectionsClosed
        server.replyDelayNanoseconds = nanoseconds(milliseconds: 300)
        #expect(throws: ModbusError.timeout) { try client.holding(RA610Register.watchdogMilliseconds) }
        // The client gave up and closed its connection (resync) with the stale reply (100) still due; then the
        // value changes.
        #expect(eventually { server.statistics.connectionsClosed == closedBefore + 1 })
        server.replyDelayNanoseconds = 0
        try other.writeSingleRegister(address: RA610Register.watchdogMilliseconds, value: 250)

        #expect(try client.holding(RA610Register.watchdogMilliseconds) == [250])
        #expect(try client.input(RA610Register.model, 4)[0] == 610)
        #expect(client.timeoutCount == 1)
        #expect(client.reconnectCount == 1)
    }

    @Test("a dropped connection is reconnected, with backoff while the device refuses")
    func droppedConnectionReconnects() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let name = cell.stationName
        let server = try cell.modbusServer(name)
        let policy = ReconnectPolicy(
            initialDelayNanoseconds: nanoseconds(milliseconds: 20), maximumDelayNanoseconds: nanoseconds(milliseconds: 80),
            multiplier: 2, jitterFraction: 0)
        let client = try cell.client(name, reconnect: policy)
        #expect(try client.holding(0) == [1])

        // A working connection that is dropped is retried at once.
        server.dropAllConnections()
        #expect(eventually { server.statistics.clientsConnected == 0 })
        let lost = #expect(throws: ModbusError.self) { try client.holding(0) }
        #expect(lost?.requiresResync == true, "\(String(describing: lost))")
        #expect(try client.holding(0) == [1])
        #expect(client.reconnectCount == 1)

        // The device goes down (accepts and closes): attempts follow the backoff, 20, 40, 80, 80 ms.
        server.refusesConnections = true
        server.dropAllConnections()
        #expect(eventually { server.statistics.clientsConnected == 0 })
        #expect(throws: ModbusError.self) { try client.holding(0) }
        var delays: [UInt64] = []
        var refusedAtOnce = 0
        let found = eventually(withinMilliseconds: 3_000) {
            let attempts = client.connectAttemptCount
            do throws(ModbusError) {
                _ = try client.holding(0)
                Issue.record("a refusing device answered")
            } catch .notConnected {
                refusedAtOnce += 1
                #expect(client.connectAttemptCount == attempts, "an attempt during the backoff")
            } catch {
                // The attempt connected and was closed at once.
            }
            if client.connectAttemptCount > attempts { delays.append(client.lastBackoffDelayNanoseconds) }
            return delays.count >= 4
        }
        #expect(found)
        #expect(Array(delays.prefix(4)) == [20, 40, 80, 80].map { nanoseconds(milliseconds: $0) })
        #expect(refusedAtOnce > 0)

        // The device is back: the next allowed attempt succeeds, with fresh data, and the backoff resets.
        // Meanwhile the variant changed (written straight into the model, as no client gets through).
        let written = cell.server.cell.withModels { models in
            [UInt16(2)].withUnsafeBufferPointer { models.station.writeRegisters(address: 0, values: $0) }
        }
        #expect(written == nil)
        server.refusesConnections = false
        #expect(eventually { (try? client.holding(0)) == [2] })
        #expect(client.consecutiveFailures == 0)
    }

    @Test("no request blocks longer than its timeout when the device is silent")
    func silentDevice() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let name = cell.armNames[1]
        let server = try cell.modbusServer(name)
        let timeoutMilliseconds: UInt64 = 50
        let client = try cell.client(name, responseTimeoutMilliseconds: timeoutMilliseconds)
        _ = try client.holding(0)

        server.isSilent = true
        var timeouts = 0
        for _ in 0..<4 {
            let start = lampcell_monotonic_ns()
            do {
                _ = try client.input(RA610Register.status)
                Issue.record("a silent device answered")
            } catch .timeout {
                timeouts += 1
            } catch .notConnected {
                // Backoff after a connection that never answered: refused without waiting.
            } catch {
                Issue.record("unexpected \(error)")
            }
            let elapsed = lampcell_monotonic_ns() - start
            // A reconnect (about 100 µs on loopback) plus the response timeout, with a generous margin.
            #expect(elapsed < nanoseconds(milliseconds: timeoutMilliseconds + 250), "blocked \(elapsed) ns")
        }
        #expect(timeouts >= 2)

        server.isSilent = false
        #expect(eventually { (try? client.input(RA610Register.model)) == [610] })
    }
}
