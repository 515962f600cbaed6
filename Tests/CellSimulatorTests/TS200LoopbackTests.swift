// TS200Model served by the real ModbusTCPServer and read/written by the real ModbusClient over loopback.

@testable import CellSimulator
import Modbus
import Synchronization
import Testing

/// A TS200Model behind a lock, so the server thread and the test thread (which steps it) can share it.
final class LockedStation: ModbusDevice, @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private let model: TS200Model
    let supportedFunctions: Set<ModbusFunction>

    init(_ model: TS200Model) {
        self.model = model
        supportedFunctions = model.supportedFunctions
    }

    /// Runs `body` on the model under the lock (stepping, fault injection, direct reads).
    func with<Result>(_ body: (TS200Model) -> Result) -> Result {
        lock.withLock { _ in body(model) }
    }

    func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode?
    {
        with { $0.readBits(table, address: address, into: values) }
    }

    func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode?
    {
        with { $0.readRegisters(table, address: address, into: values) }
    }

    func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        with { $0.writeCoils(address: address, values: values) }
    }

    func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        with { $0.writeRegisters(address: address, values: values) }
    }

    func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        with {
            $0.writeAndReadRegisters(
                writeAddress: writeAddress, values: values, readAddress: readAddress, into: readValues)
        }
    }

    /// Steps the model for `seconds` of virtual time.
    func run(seconds: Double) {
        let steps = Int((seconds * 1e9 / Double(TS200Model.stepNanoseconds)).rounded())
        with { model in
            for _ in 0..<steps { model.step() }
        }
    }
}

@Suite("TS-200 over Modbus TCP loopback")
struct TS200LoopbackTests {
    @Test("coils, inputs and registers through ModbusTCPServer and ModbusClient")
    func loopback() throws {
        let h = StationHarness()
        let station = LockedStation(h.station)
        let server = ModbusTCPServer(device: station)
        let port = try server.start()
        defer { server.stop() }
        let client = try ModbusClient(
            host: "127.0.0.1", port: port, responseTimeoutNanoseconds: 1_000_000_000,
            connectTimeoutNanoseconds: 500_000_000)
        try client.connect()

        var inputs = [UInt8](repeating: 0xAA, count: 12)
        try client.readDiscreteInputs(address: 0, into: &inputs)
        #expect(inputs == [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0])

        var registers = [UInt16](repeating: 0xAAAA, count: 16)
        try client.readInputRegisters(address: 0, into: &registers)
        #expect(Array(registers[0..<14]) == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0004, 0x0005, 0x0006, 0x0007])

        // Exceptions arrive as the datasheet says, and nothing is written.
        var coils = [UInt8](repeating: 0, count: 2)
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.readCoils(address: 7, into: &coils)
        }
        #expect(throws: ModbusError.exception(.illegalDataValue)) {
            try client.writeSingleRegister(address: 0, value: 3)
        }
        try client.writeSingleRegister(address: 0, value: 2)
        var holding = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 0, into: &holding)
        #expect(holding == [2])
        var readBack = [UInt16](repeating: 0, count: 1)
        #expect(throws: ModbusError.exception(.illegalFunction)) {
            try client.writeAndReadRegisters(writeAddress: 0, values: [1], readAddress: 0, into: &readBack)
        }
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.writeCoils(address: 6, values: [1, 1, 1])
        }

        // Index the infeed: the coil is written back to 0 and a housing waits, with its lot high word first.
        try client.writeSingleCoil(address: TS200Model.Coil.infeedAdvance.rawValue, value: true)
        var infeedCoil = [UInt8](repeating: 0, count: 1)
        try client.readCoils(address: 1, into: &infeedCoil)
        #expect(infeedCoil == [1])
        station.run(seconds: 1.6)
        try client.readCoils(address: 1, into: &infeedCoil)
        #expect(infeedCoil == [0])
        try client.readDiscreteInputs(address: 0, into: &inputs)
        #expect(inputs[0] == 1)
        var lot = [UInt16](repeating: 0, count: 2)
        try client.readInputRegisters(address: 8, into: &lot)
        #expect(lot == [0x0002, 0x0003])

        // A light test with no part: the count and the (no-part) results change together.
        try client.writeCoils(address: TS200Model.Coil.lightTestStart.rawValue, values: [1])
        try client.readDiscreteInputs(address: 0, into: &inputs)
        #expect(inputs[TS200Model.DiscreteInput.lightTestBusy.rawValue] == 1)
        station.run(seconds: 2.1)
        var light = [UInt16](repeating: 0xAAAA, count: 3)
        try client.readInputRegisters(address: 4, into: &light)
        #expect(light == [1, 0, 0])

        // The e-stop shows at once.
        station.with { $0.world.pressEstop() }
        try client.readDiscreteInputs(address: 6, into: &coils)
        #expect(coils == [0, 1])
        #expect(server.statistics.requestsServed > 0)
    }
}
