import CRealtime
import Foundation
import Modbus
import Synchronization
import Testing

@Suite("Modbus round trips and exceptions", .serialized)
struct ModbusRoundTripTests {
    @Test("every function code round-trips between libmodbus and the server")
    func everyFunctionCode() throws {
        let fixture = try ServerFixture()
        fixture.image.withTables { tables in
            for index in 0..<200 { tables.inputRegisters[index] = UInt16(1_000 + index) }
            for index in 0..<2_000 { tables.discreteInputs[index] = UInt8((index * 7 / 3) % 2) }
        }
        let client = try fixture.client()

        // 0x06 then 0x03.
        try client.writeSingleRegister(address: 10, value: 0xBEEF)
        var one = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 10, into: &one)
        #expect(one == [0xBEEF])

        // 0x10 then 0x03 (maximum write, maximum read).
        let written = (0..<123).map { UInt16(40_000 + $0 * 3) }
        try client.writeRegisters(address: 20, values: written)
        var readBack = [UInt16](repeating: 0, count: 125)
        try client.readHoldingRegisters(address: 19, into: &readBack)
        #expect(readBack[0] == 0 && Array(readBack[1...123]) == written && readBack[124] == 0)
        #expect(Array(fixture.image.tables.holdingRegisters[20..<143]) == written)

        // 0x04.
        var inputs = [UInt16](repeating: 0, count: 16)
        try client.readInputRegisters(address: 5, into: &inputs)
        #expect(inputs == (5..<21).map { UInt16(1_000 + $0) })

        // 0x05 then 0x01.
        try client.writeSingleCoil(address: 3, value: true)
        try client.writeSingleCoil(address: 4, value: true)
        try client.writeSingleCoil(address: 4, value: false)
        var coils = [UInt8](repeating: 9, count: 3)
        try client.readCoils(address: 2, into: &coils)
        #expect(coils == [0, 1, 0])

        // 0x0F then 0x01, an odd count spanning several bytes (LSB-first packing both ways).
        let pattern: [UInt8] = (0..<37).map { UInt8(($0 % 3 == 0 || $0 % 5 == 0) ? 1 : 0) }
        try client.writeCoils(address: 100, values: pattern)
        var patternBack = [UInt8](repeating: 9, count: 37)
        try client.readCoils(address: 100, into: &patternBack)
        #expect(patternBack == pattern)
        #expect(Array(fixture.image.tables.coils[100..<137]) == pattern)

        // 0x02, maximum quantity, unaligned start.
        var discrete = [UInt8](repeating: 9, count: 2_000)
        try client.readDiscreteInputs(address: 0, into: &discrete)
        #expect(discrete == fixture.image.tables.discreteInputs)
        var discreteTail = [UInt8](repeating: 9, count: 13)
        try client.readDiscreteInputs(address: 1_987, into: &discreteTail)
        #expect(discreteTail == Array(fixture.image.tables.discreteInputs[1_987..<2_000]))

        // 0x17: the write is applied before the read (the read range overlaps the write).
        let command = (0..<14).map { UInt16(7_000 + $0) }
        fixture.image.withTables { tables in
            for index in 200..<240 { tables.holdingRegisters[index] = UInt16(index) }
        }
        var status = [UInt16](repeating: 0, count: 40)
        try client.writeAndReadRegisters(writeAddress: 210, values: command, readAddress: 200, into: &status)
        #expect(Array(status[0..<10]) == (200..<210).map { UInt16($0) })
        #expect(Array(status[10..<24]) == command)
        #expect(Array(status[24..<40]) == (224..<240).map { UInt16($0) })

        #expect(client.errorCount == 0)
        #expect(client.requestCount == 14)
        // The server counts a reply after writing it: wait for the last one.
        #expect(waitUntil { fixture.server.statistics.requestsServed == 14 })
    }

    @Test("replies are exact Modbus bytes: echoed transaction id, bits packed LSB first")
    func exactReplyBytes() throws {
        let fixture = try ServerFixture()
        fixture.image.withTables { tables in
            // Coils 0..9 = 1,0,1,1,0,0,0,0, 1,1 → bytes 0b0000_1101, 0b0000_0011.
            for (index, bit) in [1, 0, 1, 1, 0, 0, 0, 0, 1, 1].enumerated() { tables.coils[index] = UInt8(bit) }
            tables.inputRegisters[7] = 0x1234
        }
        let raw = try RawConnection(port: fixture.port)
        let coils = try raw.request(transactionID: 0xA1B2, pdu: [0x01, 0x00, 0x00, 0x00, 0x0A], replyPDUBytes: 4)
        #expect(coils == [0xA1, 0xB2, 0x00, 0x00, 0x00, 0x05, 0x01, 0x01, 0x02, 0x0D, 0x03])
        let input = try raw.request(transactionID: 0x0001, pdu: [0x04, 0x00, 0x07, 0x00, 0x01], replyPDUBytes: 4)
        #expect(input == [0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x01, 0x04, 0x02, 0x12, 0x34])
        let single = try raw.request(transactionID: 0x0002, pdu: [0x05, 0x00, 0x09, 0xFF, 0x00], replyPDUBytes: 5)
        #expect(single == [0x00, 0x02, 0x00, 0x00, 0x00, 0x06, 0x01, 0x05, 0x00, 0x09, 0xFF, 0x00])
        #expect(fixture.image.tables.coils[9] == 1)
    }

    @Test("exceptions: 0x01 unsupported, 0x02 address, 0x03 hook rejection writes nothing")
    func exceptionsThroughLibmodbus() throws {
        let image = RegisterImage(
            holdingRegisters: 10, inputRegisters: 4,
            supportedFunctions: [
                .readHoldingRegisters, .readInputRegisters, .writeSingleRegister, .writeMultipleRegisters,
                .readWriteMultipleRegisters,
            ],
            validateWrite: { _, table, address, values in
                // Register 2 accepts 0...1000 only.
                guard table == .holdingRegisters, (address...address + values.count - 1).contains(2) else {
                    return nil
                }
                return values[2 - address] <= 1_000 ? nil : .illegalDataValue
            })
        let fixture = try ServerFixture(image: image)
        let client = try fixture.client()
        try client.writeRegisters(address: 0, values: [11, 12, 13, 14])

        var coils = [UInt8](repeating: 0, count: 4)
        #expect(throws: ModbusError.exception(.illegalFunction)) { try client.readCoils(address: 0, into: &coils) }
        #expect(throws: ModbusError.exception(.illegalFunction)) {
            try client.writeSingleCoil(address: 0, value: true)
        }

        var registers = [UInt16](repeating: 0, count: 5)
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.readHoldingRegisters(address: 8, into: &registers)
        }
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.writeRegisters(address: 9, values: [1, 2])
        }
        #expect(fixture.image.tables.holdingRegisters[9] == 0)
        var inputs = [UInt16](repeating: 0, count: 5)
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.readInputRegisters(address: 0, into: &inputs)
        }

        // The hook rejects register 2 = 2000: nothing of the request is written.
        #expect(throws: ModbusError.exception(.illegalDataValue)) {
            try client.writeRegisters(address: 1, values: [91, 2_000, 93])
        }
        #expect(throws: ModbusError.exception(.illegalDataValue)) {
            try client.writeSingleRegister(address: 2, value: 1_001)
        }
        var status = [UInt16](repeating: 0, count: 4)
        #expect(throws: ModbusError.exception(.illegalDataValue)) {
            try client.writeAndReadRegisters(writeAddress: 2, values: [5_000], readAddress: 0, into: &status)
        }
        // 0x17 with the read range outside: 0x02 and the (valid) write is not applied.
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.writeAndReadRegisters(writeAddress: 0, values: [77], readAddress: 8, into: &status)
        }
        var readBack = [UInt16](repeating: 0, count: 4)
        try client.readHoldingRegisters(address: 0, into: &readBack)
        #expect(readBack == [11, 12, 13, 14])

        // Exceptions are answers: the connection stays up and is not resynchronised.
        #expect(client.isConnected)
        #expect(client.exceptionCount == 9)
        #expect(client.reconnectCount == 0)
        #expect(fixture.server.statistics.exceptionsSent == 9)
    }

    @Test("server-side quantity/format checks and their precedence, over a raw socket")
    func quantityAndFormatChecks() throws {
        let image = RegisterImage(
            holdingRegisters: 10,
            supportedFunctions: [.readHoldingRegisters, .writeSingleCoil, .writeMultipleRegisters,
                .writeMultipleCoils, .readWriteMultipleRegisters])
        let fixture = try ServerFixture(image: image)
        let raw = try RawConnection(port: fixture.port)
        func exceptionCode(_ pdu: [UInt8], id: UInt16) throws -> [UInt8] {
            let reply = try raw.request(transactionID: id, pdu: pdu, replyPDUBytes: 2)
            #expect(Array(reply[0..<2]) == [UInt8(id >> 8), UInt8(id & 0xFF)])
            return Array(reply[7...])
        }
        // Quantity 0 and 126 → 0x03 (even at an address that does not exist: quantity comes first).
        #expect(try exceptionCode([0x03, 0x00, 0x00, 0x00, 0x00], id: 1) == [0x83, 0x03])
        #expect(try exceptionCode([0x03, 0xFF, 0x00, 0x00, 0x7E], id: 2) == [0x83, 0x03])
        // A valid quantity at a bad address → 0x02.
        #expect(try exceptionCode([0x03, 0x00, 0x09, 0x00, 0x02], id: 3) == [0x83, 0x02])
        // Unsupported function even with a bad quantity → 0x01 (function comes first).
        #expect(try exceptionCode([0x04, 0x00, 0x00, 0x00, 0x00], id: 4) == [0x84, 0x01])
        // An unknown function code with extra bytes → 0x01, and the stream stays framed.
        #expect(try exceptionCode([0x2B, 0x0E, 0x01, 0x00], id: 5) == [0xAB, 0x01])
        // Single coil value other than 0x0000/0xFF00 → 0x03.
        #expect(try exceptionCode([0x05, 0x00, 0x00, 0x12, 0x34], id: 6) == [0x85, 0x03])
        // 0x10 byte count mismatch → 0x03; quantity 0 → 0x03; quantity 124 (cannot fit a PDU) → 0x03.
        #expect(try exceptionCode([0x10, 0x00, 0x00, 0x00, 0x02, 0x03, 0, 1, 0], id: 7) == [0x90, 0x03])
        #expect(try exceptionCode([0x10, 0x00, 0x00, 0x00, 0x00, 0x00], id: 8) == [0x90, 0x03])
        #expect(try exceptionCode([0x10, 0x00, 0x00, 0x00, 0x7C, 0xF8, 0, 1, 0, 2], id: 8) == [0x90, 0x03])
        // 0x0F byte count mismatch → 0x03.
        #expect(try exceptionCode([0x0F, 0x00, 0x00, 0x00, 0x09, 0x01, 0xFF], id: 9) == [0x8F, 0x03])
        // 0x17 read quantity 126 → 0x03; write quantity 122 → 0x03.
        #expect(try exceptionCode([0x17, 0x00, 0x00, 0x00, 0x7E, 0x00, 0x00, 0x00, 0x01, 0x02, 0, 1], id: 10)
            == [0x97, 0x03])
        #expect(try exceptionCode([0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x7A, 0xF4, 0, 1], id: 10)
            == [0x97, 0x03])
        // Still framed: a valid request answers normally.
        let reply = try raw.request(transactionID: 11, pdu: [0x03, 0x00, 0x00, 0x00, 0x01], replyPDUBytes: 4)
        #expect(Array(reply[7...]) == [0x03, 0x02, 0x00, 0x00])
        #expect(fixture.image.tables.holdingRegisters == [UInt16](repeating: 0, count: 10))
        // An MBAP length no Modbus frame can have (longer than a maximal PDU) closes the connection.
        try raw.send([0x00, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x01, 0x03])
        let received = raw.receive(count: 1, timeoutMilliseconds: 2_000)
        #expect(received.endOfStream && received.bytes.isEmpty)
        #expect(fixture.server.statistics.framingErrors == 1)
    }

    @Test("several clients on several threads are served concurrently and correctly")
    func concurrentClients() throws {
        let fixture = try ServerFixture()
        let failures = FailureLog()
        let requestsPerClient = 400
        let threads = (0..<2).map { clientIndex in
            let client = Result { try fixture.client() }
            return TestThread {
                do {
                    let client = try client.get()
                    let base = clientIndex * 100
                    var readBack = [UInt16](repeating: 0, count: 8)
                    for round in 0..<requestsPerClient {
                        let values = (0..<8).map { UInt16(truncatingIfNeeded: clientIndex * 10_000 + round + $0) }
                        try client.writeAndReadRegisters(
                            writeAddress: base, values: values, readAddress: base, into: &readBack)
                        if readBack != values {
                            failures.append("client \(clientIndex) round \(round): \(readBack)")
                        }
                    }
                } catch {
                    failures.append("client \(clientIndex): \(error)")
                }
            }
        }
        threads.forEach { $0.join() }
        #expect(failures.entries == [])
        #expect(waitUntil { fixture.server.statistics.requestsServed == UInt64(2 * requestsPerClient) })
        #expect(fixture.server.statistics.connectionsAccepted == 2)
    }

    @Test("benchmark: 0x17 round trip (write 14, read 40) over loopback, mean of 10,000")
    func benchmarkWriteAndRead() throws {
        let fixture = try ServerFixture()
        let client = try fixture.client()
        try client.connect()
        let command = [UInt16](repeating: 0x55AA, count: 14)
        var status = [UInt16](repeating: 0, count: 40)
        let iterations = 10_000
        try command.withUnsafeBufferPointer { source in
            try status.withUnsafeMutableBufferPointer { destination in
                try client.writeAndReadRegisters(
                    writeAddress: 0, values: source, readAddress: 0, into: destination)  // warm-up
                let start = lampcell_monotonic_ns()
                for _ in 0..<iterations {
                    try client.writeAndReadRegisters(
                        writeAddress: 0, values: source, readAddress: 0, into: destination)
                }
                let meanNanoseconds = Double(lampcell_monotonic_ns() - start) / Double(iterations)
                print(String(format: "Modbus 0x17 (write 14, read 40) loopback round trip: mean %.1f µs over %d",
                    meanNanoseconds / 1_000, iterations))
            }
        }
        #expect(Array(status[0..<14]) == command)
        #expect(client.errorCount == 0)
    }
}
