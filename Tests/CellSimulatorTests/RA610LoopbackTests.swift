// RA610Model served over real Modbus TCP on loopback (ModbusTCPServer + libmodbus ModbusClient), stepped to the
// monotonic clock before each request by a small locked adapter.

import CRealtime
import Modbus
import Synchronization
import Testing
@testable import CellSimulator

/// Serves one RA610Model to `ModbusTCPServer`: a lock around the model, which is stepped to the current
/// CLOCK_MONOTONIC time (since the adapter was made) before each request. Thread: any.
final class LockedRA610Device: ModbusDevice, @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private let model: RA610Model
    private let startNanoseconds = lampcell_monotonic_ns()
    let supportedFunctions: Set<ModbusFunction>

    init(model: RA610Model) {
        self.model = model
        supportedFunctions = model.supportedFunctions
    }

    /// Runs `body` on the model, caught up to now, under the lock.
    func withModel<R>(_ body: (RA610Model) -> R) -> R {
        lock.withLock { _ in
            let now = lampcell_monotonic_ns() - startNanoseconds
            while model.timeNanoseconds + RA610Model.stepNanoseconds <= now { model.step() }
            return body(model)
        }
    }

    func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode? {
        withModel { $0.readBits(table, address: address, into: values) }
    }

    func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode? {
        withModel { $0.readRegisters(table, address: address, into: values) }
    }

    func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        withModel { $0.writeCoils(address: address, values: values) }
    }

    func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        withModel { $0.writeRegisters(address: address, values: values) }
    }

    func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        withModel {
            $0.writeAndReadRegisters(writeAddress: writeAddress, values: values, readAddress: readAddress,
                                     into: readValues)
        }
    }
}

/// One served arm and a way to make clients for it.
private final class ServedArm {
    let world = RecordingToolWorld()
    let device: LockedRA610Device
    let server: ModbusTCPServer
    let port: Int

    init(initialPositionsRadians: [Double] = [Double](repeating: 0, count: 6)) throws {
        let model = RA610Model(name: "lens", serialNumber: 61_000_042, firmware: 0x0104, toolKind: .gripper,
                               world: world, random: SimulationRandom(seed: 7),
                               initialPositionsRadians: initialPositionsRadians)
        device = LockedRA610Device(model: model)
        server = ModbusTCPServer(device: device)
        port = try server.start()
    }

    deinit { server.stop() }

    func client() throws -> ModbusClient {
        let client = try ModbusClient(host: "127.0.0.1", port: port, responseTimeoutNanoseconds: 1_000_000_000,
                                      connectTimeoutNanoseconds: 1_000_000_000)
        try client.connect()
        return client
    }
}

private func milliseconds(_ value: UInt64) -> UInt64 { value * 1_000_000 }

/// Polls `condition` until it holds or `timeoutNanoseconds` pass.
private func waitUntil(timeoutNanoseconds: UInt64 = 3_000_000_000, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = lampcell_monotonic_ns() + timeoutNanoseconds
    while lampcell_monotonic_ns() < deadline {
        if try condition() { return true }
        _ = lampcell_sleep_until_ns(lampcell_monotonic_ns() + milliseconds(2))
    }
    return try condition()
}

@Suite("RA610Model over Modbus TCP loopback", .serialized)
struct RA610LoopbackTests {
    @Test("identity, encoding and the datasheet's exceptions arrive through libmodbus")
    func identityAndExceptions() throws {
        let arm = try ServedArm(initialPositionsRadians: [-1.5, 0, 0, 0, 0, 0])
        let client = try arm.client()
        var identity = [UInt16](repeating: 0, count: 4)
        try client.readInputRegisters(address: RA610Register.model, into: &identity)
        #expect(identity == [610, 0x0104, UInt16(61_000_042 >> 16), UInt16(61_000_042 & 0xFFFF)])
        var position = [UInt16](repeating: 0, count: 2)
        try client.readInputRegisters(address: RA610Register.actualPosition, into: &position)
        #expect(position == [0xFFE9, 0x1CA0])

        var one = [UInt16](repeating: 0, count: 1)
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.readHoldingRegisters(address: 28, into: &one)
        }
        #expect(throws: ModbusError.exception(.illegalDataAddress)) {
            try client.writeRegisters(address: RA610Register.statusMirror, values: [1])
        }
        #expect(throws: ModbusError.exception(.illegalDataValue)) {
            try client.writeRegisters(address: RA610Register.toolCommand, values: [7])
        }
        var coils = [UInt8](repeating: 0, count: 1)
        #expect(throws: ModbusError.exception(.illegalFunction)) { try client.readCoils(address: 0, into: &coils) }
        // The connection survives exceptions.
        try client.readHoldingRegisters(address: RA610Register.watchdogMilliseconds, into: &one)
        #expect(one == [100])
    }

    @Test("one 0x17 per period commands and samples the arm: enable, stream a ramp, settle")
    func streamOverLoopback() throws {
        let arm = try ServedArm()
        let client = try arm.client()
        let periodNanoseconds = milliseconds(4)
        // Holding 0..27: command, heartbeat, tool (0, 0, 0), watchdog 1000 ms (generous on a shared box),
        // stream period 4000 µs, reserved, target[].
        var block = [UInt16](repeating: 0, count: RA610Register.holdingCount)
        block[RA610Register.watchdogMilliseconds] = 1_000
        block[RA610Register.streamPeriodMicroseconds] = 4_000
        var mirror = [UInt16](repeating: 0, count: RA610Register.statusMirrorCount)
        var setpoint = 0.0
        var streamingPeriods = 0
        var deadline = lampcell_monotonic_ns()
        for period in 0..<400 {
            block[RA610Register.heartbeat] = UInt16(truncatingIfNeeded: period)
            let status = mirror[RA610Register.status]
            block[RA610Register.command] = RA610CommandBit.enable | RA610CommandBit.stream
            if status & RA610StatusBit.streaming != 0 {
                streamingPeriods += 1
                if streamingPeriods <= 250 { setpoint += 0.002 }  // 0.5 rad/s for 1 s
            }
            let words = ArmHarness.encode(radians: [setpoint, 0, 0, 0, 0, 0])
            for i in 0..<12 { block[RA610Register.target + i] = words[i] }
            try client.writeAndReadRegisters(writeAddress: 0, values: block, readAddress: RA610Register.statusMirror,
                                             into: &mirror)
            #expect(mirror[RA610Register.heartbeatEcho] == block[RA610Register.heartbeat])
            #expect(mirror[RA610Register.faultCode] == 0)
            if mirror[RA610Register.faultCode] != 0 { break }
            deadline += periodNanoseconds
            _ = lampcell_sleep_until_ns(deadline)
        }
        #expect(streamingPeriods > 300)
        #expect(abs(setpoint - 0.5) < 1e-9)
        let positions = ArmHarness.decodeInt32s(Array(mirror[16..<28]))
        #expect(abs(Double(positions[0]) / 1e6 - 0.5) < 0.001, "J1 at \(positions[0]) µrad")
        #expect(mirror[RA610Register.status] & RA610StatusBit.inPosition != 0)
    }

    @Test("losing the connection while streaming trips the watchdog once watchdog_ms passes")
    func connectionLossTripsWatchdog() throws {
        let arm = try ServedArm()
        let client = try arm.client()
        try client.writeRegisters(address: RA610Register.command, values: [RA610CommandBit.enable])
        var status = [UInt16](repeating: 0, count: 2)
        #expect(try waitUntil {
            try client.readInputRegisters(address: RA610Register.status, into: &status)
            return status[0] & RA610StatusBit.enabled != 0
        })
        // watchdog 300 ms: long enough to see STREAMING on a busy machine before it trips.
        try client.writeRegisters(address: RA610Register.watchdogMilliseconds, values: [300])
        try client.writeRegisters(address: RA610Register.command,
                                  values: [RA610CommandBit.enable | RA610CommandBit.stream])
        #expect(try waitUntil {
            try client.readInputRegisters(address: RA610Register.status, into: &status)
            return status[0] & RA610StatusBit.streaming != 0
        })
        #expect(status[1] == 0)
        client.close()
        arm.server.dropAllConnections()
        let observer = try arm.client()
        #expect(try waitUntil {
            try observer.readInputRegisters(address: RA610Register.status, into: &status)
            return status[1] == RA610FaultCode.commWatchdog
        })
        #expect(status[0] & RA610StatusBit.streaming == 0 && status[0] & RA610StatusBit.fault != 0)
    }
}
