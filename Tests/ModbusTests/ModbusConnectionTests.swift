import CRealtime
import Foundation
import Glibc
import Modbus
import Testing

@Suite("Modbus connections: unit id, limits, timeouts, resync, backoff", .serialized)
struct ModbusConnectionTests {
    @Test("requests to another unit id get no reply; the next request with unit 1 works")
    func unitIDFiltering() throws {
        let fixture = try ServerFixture()
        fixture.image.withTables { $0.holdingRegisters[0] = 4_242 }
        let client = try fixture.client(unitID: 2, responseTimeoutNanoseconds: ms(150))
        var value = [UInt16](repeating: 0, count: 1)
        #expect(throws: ModbusError.timeout) { try client.readHoldingRegisters(address: 0, into: &value) }
        #expect(waitUntil { fixture.server.statistics.requestsIgnored == 1 })
        try client.setUnitID(1)
        try client.readHoldingRegisters(address: 0, into: &value)
        #expect(value == [4_242])
        #expect(client.timeoutCount == 1)
    }

    @Test("broadcast and foreign unit ids get no reply on a raw socket; the stream stays usable")
    func noReplyToOtherUnits() throws {
        let fixture = try ServerFixture()
        let raw = try RawConnection(port: fixture.port)
        try raw.send(RawConnection.frame(transactionID: 1, unitID: 0, pdu: [0x06, 0x00, 0x00, 0x00, 0x05]))
        try raw.send(RawConnection.frame(transactionID: 2, unitID: 7, pdu: [0x03, 0x00, 0x00, 0x00, 0x01]))
        #expect(waitUntil { fixture.server.statistics.requestsIgnored == 2 })
        let reply = try raw.request(transactionID: 3, pdu: [0x03, 0x00, 0x00, 0x00, 0x01], replyPDUBytes: 4)
        // The reply is the one to transaction 3, and the broadcast write was not applied.
        #expect(reply == [0x00, 0x03, 0x00, 0x00, 0x00, 0x05, 0x01, 0x03, 0x02, 0x00, 0x00])
    }

    @Test("a connection beyond maxClients is accepted and closed at once; a freed slot is reused")
    func connectionLimit() throws {
        let fixture = try ServerFixture(maxClients: 2)
        let first = try fixture.client()
        let second = try fixture.client()
        var value = [UInt16](repeating: 0, count: 1)
        try first.readHoldingRegisters(address: 0, into: &value)
        try second.readHoldingRegisters(address: 0, into: &value)

        let raw = try RawConnection(port: fixture.port)
        let received = raw.receive(count: 1, timeoutMilliseconds: 2_000)
        #expect(received.endOfStream && received.bytes.isEmpty)

        let third = try fixture.client()
        #expect(throws: ModbusError.self) { try third.readHoldingRegisters(address: 0, into: &value) }
        #expect(!third.isConnected)
        #expect(fixture.server.statistics.connectionsRefused == 2)

        first.close()
        #expect(waitUntil { fixture.server.statistics.clientsConnected == 1 })
        let fourth = try fixture.client()
        try fourth.readHoldingRegisters(address: 0, into: &value)
        try second.readHoldingRegisters(address: 0, into: &value)
        #expect(fixture.server.statistics.connectionsAccepted == 3)
    }

    @Test("a late reply is discarded and the next request gets fresh data")
    func lateReplyDiscarded() throws {
        let fixture = try ServerFixture()
        fixture.image.withTables { $0.holdingRegisters[5] = 111 }
        let client = try fixture.client(responseTimeoutNanoseconds: ms(100))
        var value = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 5, into: &value)
        #expect(value == [111])

        fixture.server.replyDelayNanoseconds = ms(250)
        #expect(throws: ModbusError.timeout) { try client.readHoldingRegisters(address: 5, into: &value) }
        // The client closed the connection at its timeout (resync): the server sees it go, with its delayed reply
        // (value 111) still unwritten. That reply can never reach a later request.
        #expect(waitUntil { fixture.server.statistics.connectionsClosed == 1 })
        fixture.server.replyDelayNanoseconds = 0
        fixture.image.withTables { $0.holdingRegisters[5] = 222 }

        try client.readHoldingRegisters(address: 5, into: &value)
        #expect(value == [222])
        try client.readHoldingRegisters(address: 5, into: &value)
        #expect(value == [222])
        #expect(client.timeoutCount == 1)
        #expect(client.reconnectCount == 1)
    }

    @Test("no request blocks much longer than its timeout when the server is silent")
    func silentServerBoundsEveryRequest() throws {
        let fixture = try ServerFixture()
        fixture.server.isSilent = true
        let timeout = ms(100)
        let client = try fixture.client(responseTimeoutNanoseconds: timeout)
        var value = [UInt16](repeating: 0, count: 4)
        var timeouts = 0
        for _ in 0..<4 {
            let start = lampcell_monotonic_ns()
            do {
                try client.readHoldingRegisters(address: 0, into: &value)
                Issue.record("a silent server answered")
            } catch .timeout {
                timeouts += 1
                #expect(lampcell_monotonic_ns() - start >= timeout - ms(5))
            } catch .notConnected {
                // Backoff after a connection that never answered: refused at once.
            } catch {
                Issue.record("unexpected \(error)")
            }
            #expect(lampcell_monotonic_ns() - start < 3 * timeout)
        }
        #expect(timeouts >= 2)
        #expect(waitUntil { fixture.server.statistics.requestsIgnored == UInt64(timeouts) })
    }

    @Test("dropped connections reconnect with growing, capped backoff that resets after success")
    func dropAndBackoff() throws {
        let fixture = try ServerFixture()
        let policy = ReconnectPolicy(
            initialDelayNanoseconds: ms(20), maximumDelayNanoseconds: ms(80), multiplier: 2, jitterFraction: 0.2)
        let client = try fixture.client(responseTimeoutNanoseconds: ms(500), reconnect: policy)
        var value = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 0, into: &value)

        fixture.server.refusesConnections = true
        fixture.server.dropAllConnections()
        #expect(waitUntil { fixture.server.statistics.clientsConnected == 0 })
        let dropError = #expect(throws: ModbusError.self) {
            try client.readHoldingRegisters(address: 0, into: &value)
        }
        if case .connectionLost = dropError {} else { #expect(dropError == .timeout) }

        // Keep requesting: attempts happen only when the backoff allows; in between `.notConnected` at once.
        var attemptStarts: [UInt64] = []
        var delays: [UInt64] = []
        var notConnected = 0
        let deadline = lampcell_monotonic_ns() + ms(3_000)
        while delays.count < 5 && lampcell_monotonic_ns() < deadline {
            let attemptsBefore = client.connectAttemptCount
            do {
                try client.readHoldingRegisters(address: 0, into: &value)
                Issue.record("a refusing server answered")
            } catch .notConnected {
                notConnected += 1
            } catch {
                // The server accepted and closed: the attempt failed.
            }
            if client.connectAttemptCount > attemptsBefore {
                attemptStarts.append(client.lastAttemptNanoseconds)
                delays.append(client.lastBackoffDelayNanoseconds)
                #expect(client.nextAttemptNanoseconds == client.lastAttemptNanoseconds + client.lastBackoffDelayNanoseconds)
            }
            usleep(1_000)
        }
        try #require(delays.count == 5)
        #expect(notConnected > 0)
        // Bases 20, 40, 80, 80, 80 ms with up to 20 % taken off.
        let bases = [ms(20), ms(40), ms(80), ms(80), ms(80)]
        for (delay, base) in zip(delays, bases) {
            #expect(delay <= base && delay >= base - base / 5, "delay \(delay) for base \(base)")
        }
        for index in 1..<attemptStarts.count {
            #expect(attemptStarts[index] >= attemptStarts[index - 1] + delays[index - 1])
        }
        #expect(client.consecutiveFailures == 5)

        // The device comes back: the next allowed attempt succeeds and resets the backoff.
        fixture.server.refusesConnections = false
        #expect(waitUntil(timeoutNanoseconds: ms(2_000)) {
            (try? client.readHoldingRegisters(address: 0, into: &value)) != nil
        })
        #expect(client.consecutiveFailures == 0)
        let reconnects = client.reconnectCount

        // A working connection that drops is retried at once (no backoff).
        fixture.server.dropAllConnections()
        #expect(waitUntil { fixture.server.statistics.clientsConnected == 0 })
        #expect(throws: ModbusError.self) { try client.readHoldingRegisters(address: 0, into: &value) }
        try client.readHoldingRegisters(address: 0, into: &value)
        #expect(client.reconnectCount == reconnects + 1)
    }

    @Test("maintainConnection honours the backoff deterministically; jitter follows the seed")
    func maintainConnectionBackoff() throws {
        // A port with nothing listening: start a server to get a free port, then stop it.
        let port: Int
        do {
            let fixture = try ServerFixture()
            port = fixture.port
        }
        let policy = ReconnectPolicy(
            initialDelayNanoseconds: ms(1_000), maximumDelayNanoseconds: ms(8_000), multiplier: 2,
            jitterFraction: 0.2)
        func makeClient(seed: UInt64) throws -> ModbusClient {
            try ModbusClient(
                host: "127.0.0.1", port: port, responseTimeoutNanoseconds: ms(100),
                connectTimeoutNanoseconds: ms(100), reconnect: policy, jitterSeed: seed)
        }
        func delays(of client: ModbusClient) -> [UInt64] {
            var now = lampcell_monotonic_ns()
            var result: [UInt64] = []
            for _ in 0..<6 {
                #expect(!client.maintainConnection(nowNanoseconds: now))
                result.append(client.lastBackoffDelayNanoseconds)
                #expect(client.nextAttemptNanoseconds == now + client.lastBackoffDelayNanoseconds)
                // Just before the next allowed time: no attempt.
                let attempts = client.connectAttemptCount
                #expect(!client.maintainConnection(nowNanoseconds: client.nextAttemptNanoseconds - 1))
                #expect(client.connectAttemptCount == attempts)
                now = client.nextAttemptNanoseconds
            }
            return result
        }

        let client = try makeClient(seed: 1)
        #expect(throws: ModbusError.connectFailed(errno: ECONNREFUSED)) { try client.connect() }
        #expect(client.consecutiveFailures == 1)
        // A request during the backoff (1 s ahead) fails at once without an attempt.
        var value = [UInt16](repeating: 0, count: 1)
        #expect(throws: ModbusError.notConnected) { try client.readHoldingRegisters(address: 0, into: &value) }
        #expect(client.connectAttemptCount == 1)

        let fresh = try makeClient(seed: 1)
        let first = delays(of: fresh)
        let bases = [1_000, 2_000, 4_000, 8_000, 8_000, 8_000].map { ms(UInt64($0)) }
        for (delay, base) in zip(first, bases) {
            #expect(delay <= base && delay >= base - base / 5)
        }
        #expect(delays(of: try makeClient(seed: 1)) == first)
        #expect(delays(of: try makeClient(seed: 2)) != first)

        // close() stops automatic reconnection until connect().
        fresh.close()
        #expect(!fresh.maintainConnection(nowNanoseconds: UInt64.max))
        #expect(throws: ModbusError.notConnected) { try fresh.readHoldingRegisters(address: 0, into: &value) }
    }

    @Test("a half frame does not stall other clients and is dropped after the frame timeout")
    func halfFrameDoesNotStall() throws {
        let fixture = try ServerFixture(partialFrameTimeoutNanoseconds: ms(200))
        let raw = try RawConnection(port: fixture.port)
        try raw.send([0x00, 0x01, 0x00, 0x00, 0x00])  // 5 of the 12 bytes of a request
        let client = try fixture.client(responseTimeoutNanoseconds: ms(100))
        var value = [UInt16](repeating: 0, count: 1)
        for _ in 0..<20 { try client.readHoldingRegisters(address: 0, into: &value) }
        let received = raw.receive(count: 1, timeoutMilliseconds: 2_000)
        #expect(received.endOfStream && received.bytes.isEmpty)
        #expect(fixture.server.statistics.framingErrors == 1)
        try client.readHoldingRegisters(address: 0, into: &value)
    }

    @Test("a host name is resolved at connect")
    func hostName() throws {
        let fixture = try ServerFixture()
        fixture.image.withTables { $0.holdingRegisters[1] = 77 }
        let client = try ModbusClient(
            host: "localhost", port: fixture.port, responseTimeoutNanoseconds: ms(500),
            connectTimeoutNanoseconds: ms(500))
        var value = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 1, into: &value)
        #expect(value == [77])
    }

    @Test("a server can be stopped and started again")
    func restart() throws {
        let image = RegisterImage(holdingRegisters: 4)
        let server = ModbusTCPServer(device: image)
        let firstPort = try server.start()
        #expect(throws: ModbusServerError.alreadyStarted) { try server.start() }
        server.stop()
        server.stop()
        let secondPort = try server.start()
        defer { server.stop() }
        #expect(firstPort > 0 && secondPort > 0)
        let client = try ModbusClient(
            host: "127.0.0.1", port: secondPort, responseTimeoutNanoseconds: ms(500),
            connectTimeoutNanoseconds: ms(500))
        try client.writeSingleRegister(address: 3, value: 9)
        #expect(image.tables.holdingRegisters[3] == 9)
    }

    @Test("invalid arguments are rejected before anything is sent")
    func invalidArguments() throws {
        #expect(throws: ModbusError.self) {
            try ModbusClient(host: "127.0.0.1", port: 0, responseTimeoutNanoseconds: ms(1),
                connectTimeoutNanoseconds: ms(1))
        }
        #expect(throws: ModbusError.self) {
            try ModbusClient(host: "127.0.0.1", port: 502, responseTimeoutNanoseconds: 0,
                connectTimeoutNanoseconds: ms(1))
        }
        let fixture = try ServerFixture()
        let client = try fixture.client()
        var tooMany = [UInt16](repeating: 0, count: 126)
        #expect(throws: ModbusError.self) { try client.readHoldingRegisters(address: 0, into: &tooMany) }
        var empty: [UInt16] = []
        #expect(throws: ModbusError.self) { try client.readHoldingRegisters(address: 0, into: &empty) }
        var two = [UInt16](repeating: 0, count: 2)
        #expect(throws: ModbusError.self) { try client.readHoldingRegisters(address: 65_535, into: &two) }
        #expect(client.requestCount == 0)
        #expect(fixture.server.statistics.connectionsAccepted == 0)
    }
}
