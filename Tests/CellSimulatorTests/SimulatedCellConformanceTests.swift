// Datasheet conformance of the simulated cell *as it is served*: a `SimulatedCellServer` built from the real
// `Hardware/cell.toml`, driven through the real `ModbusClient` (libmodbus) over loopback, checked against
// ../shared/datasheets/RA-610-arm-controller.md and TS-200-station-controller.md.
//
// The first part of this file is test support shared by the SimulatedCell*, Interop* and LampSim* tests:
// a served cell, small register helpers and a real-time arm streamer.

import CRealtime
import CellConfig
import CellCore
import CellSimulator
import Foundation
import Glibc
import LampCellTestSupport
import Modbus
import Synchronization
import Testing

// MARK: - Test support

/// Nanoseconds in `value` milliseconds.
func nanoseconds(milliseconds value: UInt64) -> UInt64 { value * 1_000_000 }

/// A test failure with a message (for helpers that must stop a test).
struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// The whole simulated cell from `Hardware/cell.toml`, served on loopback ephemeral ports (unit id 1, two
/// connections per device), as `lampsim` serves it. Call `stop()` when done (also done on deinit).
final class ServedCell: @unchecked Sendable {
    let definition: CellDefinition
    let server: SimulatedCellServer
    let ports: [String: Int]

    init(seed: UInt64 = 3) throws {
        definition = try CellDefinition.load(from: Repository.cellDefinitionPath)
        let configuration = try SimulatedCellConfiguration(
            cell: definition, options: SimulationOptions(seed: seed, defectRate: 0))
        server = SimulatedCellServer(cell: SimulatedCell(configuration: configuration))
        ports = try server.start()
    }

    deinit { server.stop() }

    /// Stops the ticker and every server (idempotent).
    func stop() { server.stop() }

    /// Arm names in definition order (the order of the simulated serial numbers).
    var armNames: [String] { definition.arms.map(\.name) }
    /// The station's name.
    var stationName: String { definition.station.name }
    /// The arm with the GRIPPER tool (the loader).
    var gripperArm: String { definition.arms.first { $0.tool == .gripper }?.name ?? armNames[0] }

    /// The bound port of `device`.
    func port(_ device: String) throws -> Int {
        guard let port = ports[device] else { throw TestSetupError(description: "no served device \(device)") }
        return port
    }

    /// The server of `device` (fault injection).
    func modbusServer(_ device: String) throws -> ModbusTCPServer {
        guard let server = server.server(named: device) else {
            throw TestSetupError(description: "no served device \(device)")
        }
        return server
    }

    /// A connected client of `device`.
    func client(
        _ device: String, unitID: UInt8 = 1, responseTimeoutMilliseconds: UInt64 = 1_000,
        reconnect: ReconnectPolicy = .default
    ) throws -> ModbusClient {
        let client = try ModbusClient(
            host: "127.0.0.1", port: port(device), unitID: unitID,
            responseTimeoutNanoseconds: nanoseconds(milliseconds: responseTimeoutMilliseconds),
            connectTimeoutNanoseconds: nanoseconds(milliseconds: 1_000), reconnect: reconnect)
        try client.connect()
        return client
    }
}

/// Array-returning reads for tests.
extension ModbusClient {
    /// 0x03: `count` holding registers from `address`.
    func holding(_ address: Int, _ count: Int = 1) throws(ModbusError) -> [UInt16] {
        var values = [UInt16](repeating: 0xDEAD, count: count)
        try readHoldingRegisters(address: address, into: &values)
        return values
    }

    /// 0x04: `count` input registers from `address`.
    func input(_ address: Int, _ count: Int = 1) throws(ModbusError) -> [UInt16] {
        var values = [UInt16](repeating: 0xDEAD, count: count)
        try readInputRegisters(address: address, into: &values)
        return values
    }

    /// 0x01: `count` coils from `address`.
    func coils(_ address: Int, _ count: Int = 1) throws(ModbusError) -> [UInt8] {
        var values = [UInt8](repeating: 0xAA, count: count)
        try readCoils(address: address, into: &values)
        return values
    }

    /// 0x02: `count` discrete inputs from `address`.
    func discreteInputs(_ address: Int, _ count: Int = 1) throws(ModbusError) -> [UInt8] {
        var values = [UInt8](repeating: 0xAA, count: count)
        try readDiscreteInputs(address: address, into: &values)
        return values
    }

    /// 0x17: writes `values` at `writeAddress`, reads `readCount` holding registers from `readAddress`.
    func writeThenRead(_ writeAddress: Int, _ values: [UInt16], _ readAddress: Int, _ readCount: Int)
        throws(ModbusError) -> [UInt16]
    {
        var read = [UInt16](repeating: 0xDEAD, count: readCount)
        try writeAndReadRegisters(writeAddress: writeAddress, values: values, readAddress: readAddress, into: &read)
        return read
    }
}

/// 32-bit values in two registers, high word first (both datasheets' encoding).
enum Words {
    static func int32(_ high: UInt16, _ low: UInt16) -> Int32 { Int32(bitPattern: uint32(high, low)) }
    static func uint32(_ high: UInt16, _ low: UInt16) -> UInt32 { UInt32(high) << 16 | UInt32(low) }
    static func words(_ value: Int32) -> [UInt16] { words(UInt32(bitPattern: value)) }
    static func words(_ value: UInt32) -> [UInt16] { [UInt16(value >> 16), UInt16(value & 0xFFFF)] }
    /// `radians` as i32 µrad.
    static func microradians(_ radians: Double) -> Int32 { Int32((radians * 1e6).rounded()) }
    /// Six i32 from twelve registers.
    static func int32s(_ registers: ArraySlice<UInt16>) -> [Int32] {
        let base = registers.startIndex
        return (0..<(registers.count / 2)).map { int32(registers[base + 2 * $0], registers[base + 2 * $0 + 1]) }
    }
}

/// Streams one RA-610 from a dedicated thread, as a cell controller does: every `periodNanoseconds` (4 ms) one
/// 0x17 writes holding 0..27 (command, a changing heartbeat, tool registers 0, watchdog_ms, stream_period_us,
/// target[]) and reads the status mirror 256..295.
///
/// target[] follows the datasheet's rule: while the arm is not STREAMING it equals the last actual_position[]
/// read; while streaming, each joint moves towards `Control.goalMicroradians` by at most
/// `Control.maximumStepMicroradians` per period (one setpoint per 0x17).
/// Thread: `update`, `latest`, `history`, `waitFor` and `stop` from any thread; the client belongs to the streamer.
final class ArmStreamer: @unchecked Sendable {
    /// What the test asks for; read by the streamer at the start of every period.
    struct Control {
        var command: UInt16 = 0
        /// Stop changing the heartbeat (the same value is still written every period).
        var heartbeatFrozen = false
        var goalMicroradians: [Int32]?
        var maximumStepMicroradians: Int32 = 0
        var watchdogMilliseconds: UInt16
        var streamPeriodMicroseconds: UInt16
    }

    /// One period's exchange.
    struct Sample {
        var period: Int
        /// When the request was sent and when the reply arrived (CLOCK_MONOTONIC).
        var sentNanoseconds: UInt64
        var receivedNanoseconds: UInt64
        var heartbeat: UInt16
        /// target[] written in this period's 0x17, µrad.
        var targetsMicroradians: [Int32]
        /// The status mirror (input registers 0..39) read in the same 0x17.
        var mirror: [UInt16]

        var status: UInt16 { mirror[RA610Register.status] }
        var faultCode: UInt16 { mirror[RA610Register.faultCode] }
        var heartbeatEcho: UInt16 { mirror[RA610Register.heartbeatEcho] }
        var isStreaming: Bool { status & RA610StatusBit.streaming != 0 }
        var positionsMicroradians: [Int32] { Words.int32s(mirror[RA610Register.actualPosition..<(RA610Register.actualPosition + 12)]) }
    }

    private struct State {
        var control: Control
        var history: [Sample] = []
        var error: ModbusError?
        var stopRequested = false
        var started = false
        var finished = false
    }

    static let periodNanoseconds: UInt64 = 4_000_000
    /// History is kept for at most this many periods (a minute).
    static let historyLimit = 15_000

    private let client: ModbusClient
    private let state: Mutex<State>
    private let initialTargets: [Int32]

    /// Reads the arm's actual position (so the first target[] written equals it); does not start streaming.
    init(client: ModbusClient, watchdogMilliseconds: UInt16, streamPeriodMicroseconds: UInt16 = 4_000) throws {
        self.client = client
        initialTargets = Words.int32s(try client.input(RA610Register.actualPosition, 12)[...])
        state = Mutex(
            State(
                control: Control(
                    watchdogMilliseconds: watchdogMilliseconds, streamPeriodMicroseconds: streamPeriodMicroseconds)))
    }

    /// Starts the streaming thread.
    func start() {
        state.withLock { $0.started = true }
        let thread = Thread { [self] in run() }
        thread.name = "arm-streamer"
        thread.start()
    }

    /// Changes what is streamed from the next period on.
    func update(_ body: (inout Control) -> Void) { state.withLock { body(&$0.control) } }

    /// The latest exchange, if any.
    var latest: Sample? { state.withLock { $0.history.last } }
    /// Every exchange so far.
    var history: [Sample] { state.withLock { $0.history } }
    /// The error that ended streaming, if any.
    var error: ModbusError? { state.withLock { $0.error } }

    /// Waits until the latest exchange satisfies `condition`; returns it, or nil after `limitMilliseconds` or when
    /// the streamer ended.
    func waitFor(withinMilliseconds limitMilliseconds: UInt64 = 3_000, _ condition: (Sample) -> Bool) -> Sample? {
        var found: Sample?
        _ = eventually(withinMilliseconds: limitMilliseconds) {
            let (sample, finished) = state.withLock { ($0.history.last, $0.finished) }
            if let sample, condition(sample) { found = sample }
            return found != nil || finished
        }
        return found
    }

    /// Stops the thread (waits up to 2 s for it) and closes the client.
    func stop() {
        let started = state.withLock { state -> Bool in
            state.stopRequested = true
            return state.started
        }
        let finished = !started || eventually(withinMilliseconds: 2_000) { state.withLock { $0.finished } }
        if finished { client.close() }  // else the thread still owns it
    }

    private func run() {
        var block = [UInt16](repeating: 0, count: RA610Register.holdingCount)
        var mirror = [UInt16](repeating: 0, count: RA610Register.statusMirrorCount)
        var targets = initialTargets
        var heartbeat: UInt16 = 0
        var streaming = false
        var deadline = lampcell_monotonic_ns()
        var period = 0
        while true {
            guard let control = state.withLock({ $0.stopRequested ? nil : $0.control }) else { break }
            if !control.heartbeatFrozen { heartbeat &+= 1 }
            if !streaming {
                if period > 0 {
                    targets = Words.int32s(mirror[RA610Register.actualPosition..<(RA610Register.actualPosition + 12)])
                }
            } else if let goal = control.goalMicroradians {
                let limit = Int64(control.maximumStepMicroradians)
                for joint in 0..<6 {
                    let difference = Int64(goal[joint]) - Int64(targets[joint])
                    targets[joint] = Int32(Int64(targets[joint]) + min(max(difference, -limit), limit))
                }
            }
            block[RA610Register.command] = control.command
            block[RA610Register.heartbeat] = heartbeat
            block[RA610Register.watchdogMilliseconds] = control.watchdogMilliseconds
            block[RA610Register.streamPeriodMicroseconds] = control.streamPeriodMicroseconds
            for joint in 0..<6 {
                let words = Words.words(targets[joint])
                block[RA610Register.target + 2 * joint] = words[0]
                block[RA610Register.target + 2 * joint + 1] = words[1]
            }
            let sent = lampcell_monotonic_ns()
            do {
                try client.writeAndReadRegisters(
                    writeAddress: 0, values: block, readAddress: RA610Register.statusMirror, into: &mirror)
            } catch {
                state.withLock { $0.error = error }
                break
            }
            period += 1
            streaming = mirror[RA610Register.status] & RA610StatusBit.streaming != 0
            let sample = Sample(
                period: period, sentNanoseconds: sent, receivedNanoseconds: lampcell_monotonic_ns(), heartbeat: heartbeat,
                targetsMicroradians: targets, mirror: mirror)
            state.withLock {
                if $0.history.count < Self.historyLimit { $0.history.append(sample) }
            }
            deadline += Self.periodNanoseconds
            let now = lampcell_monotonic_ns()
            if deadline < now { deadline = now }  // late: no burst of catch-up periods
            _ = lampcell_sleep_until_ns(deadline)
        }
        state.withLock { $0.finished = true }
    }
}

/// One Modbus TCP request over a plain socket, for frames `ModbusClient` cannot send (a bad 0x05 value).
/// Returns the reply PDU (function code onwards). Thread: any.
func rawModbusRequest(port: Int, pdu: [UInt8], transactionID: UInt16 = 0x4242) throws -> [UInt8] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSetupError(description: "socket(): errno \(errno)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw TestSetupError(description: "connect to \(port): errno \(errno)") }
    let length = pdu.count + 1
    let frame: [UInt8] =
        [UInt8(transactionID >> 8), UInt8(transactionID & 0xFF), 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), 1]
        + pdu
    guard send(fd, frame, frame.count, 0) == frame.count else {
        throw TestSetupError(description: "send to \(port): errno \(errno)")
    }
    var reply = [UInt8](repeating: 0, count: 260)
    var filled = 0
    while filled < 7 || filled < 6 + (Int(reply[4]) << 8 | Int(reply[5])) {
        let received = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, 260 - filled, 0) }
        guard received > 0 else {
            throw TestSetupError(description: "no complete reply from \(port) (got \(filled) bytes, errno \(errno))")
        }
        filled += received
    }
    guard reply[0] == frame[0], reply[1] == frame[1] else {
        throw TestSetupError(description: "reply with another transaction id: \(reply[0..<filled])")
    }
    return Array(reply[7..<filled])
}

// MARK: - Conformance tests

private let enable = RA610CommandBit.enable
private let reset = RA610CommandBit.reset
private let stream = RA610CommandBit.stream

@Suite("Simulated cell conformance: datasheet behaviour through ModbusClient over loopback", .serialized)
struct SimulatedCellConformanceTests {
    // MARK: Registers

    @Test("every register of both datasheets reads at its address with the datasheet's encoding")
    func everyRegister() throws {
        let cell = try ServedCell()
        defer { cell.stop() }

        // TS-200 at power-up: coils 0..7, discrete inputs 0..11, holding 0, input 0..15.
        let station = try cell.client(cell.stationName)
        #expect(try station.coils(0, 8) == [0, 0, 0, 0, 0, 0, 0, 0])
        let expectedInputs: [UInt8] = [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0]  // outfeed clear, safety ok, feeders full
        #expect(try station.discreteInputs(0, 12) == expectedInputs)
        for address in 0..<8 { #expect(try station.coils(address) == [0], "coil \(address)") }
        for address in 0..<12 {
            #expect(try station.discreteInputs(address) == [expectedInputs[address]], "discrete input \(address)")
        }
        #expect(try station.holding(0, 1) == [1], "variant LEFT at power-up")
        let (ledLot, lensLot) = cell.server.cell.withModels {
            ($0.world.ledModuleLotAtPickPoint ?? 0, $0.world.lensLotAtPickPoint ?? 0)
        }
        #expect(ledLot > 0xFFFF && lensLot > 0xFFFF, "lots with a non-zero high word make the word order visible")
        let stationInput = try station.input(0, 16)
        #expect(Array(stationInput[0..<14]) == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0] + Words.words(ledLot) + Words.words(lensLot))
        for address in 0..<14 { #expect(try station.input(address) == [stationInput[address]], "input \(address)") }
        let stationUptime = Words.uint32(stationInput[14], stationInput[15])
        let laterUptime = try station.input(14, 2)
        #expect(Words.uint32(laterUptime[0], laterUptime[1]) >= stationUptime)
        // Index the infeed now; the housing's lot is checked at the end.
        try station.writeSingleCoil(address: TS200Model.Coil.infeedAdvance.rawValue, value: true)

        // RA-610s at power-up, standing at their `home` teach point.
        for (index, arm) in cell.definition.arms.enumerated() {
            let client = try cell.client(arm.name)
            var expectedHolding = [UInt16](repeating: 0, count: RA610Register.holdingCount)
            expectedHolding[RA610Register.watchdogMilliseconds] = 100
            expectedHolding[RA610Register.streamPeriodMicroseconds] = 4_000
            #expect(try client.holding(0, 28) == expectedHolding, "\(arm.name) holding 0..27")
            for address in 0..<28 {
                #expect(try client.holding(address) == [expectedHolding[address]], "\(arm.name) holding \(address)")
            }

            let input = try client.input(0, 40)
            let ready = RA610StatusBit.powered | RA610StatusBit.inPosition | RA610StatusBit.remoteReady
            #expect(input[RA610Register.status] == ready, "\(arm.name) status")
            #expect(Array(input[1...5]) == [0, 0, 0, 0, 0], "\(arm.name) fault, heartbeat echo, tool")
            #expect(input[RA610Register.toolKind] == arm.tool.registerValue, "\(arm.name) tool_kind")
            #expect(Array(input[9..<16]) == [UInt16](repeating: 0, count: 7), "\(arm.name) reserved")
            let home = try #require(arm.teachPoint(named: "home")).jointsRadians
            #expect(Words.int32s(input[16..<28]) == home.map(Words.microradians), "\(arm.name) actual_position")
            #expect(Array(input[28..<40]) == [UInt16](repeating: 0, count: 12), "\(arm.name) actual_velocity")
            for address in 0..<40 where address != 6 && address != 7 {
                #expect(try client.input(address) == [input[address]], "\(arm.name) input \(address)")
            }

            // The status mirror equals the input registers (uptime moves on between the reads).
            let mirror = try client.holding(RA610Register.statusMirror, 40)
            let after = try client.input(0, 40)
            for address in 0..<40 where address != 6 && address != 7 {
                #expect(mirror[address] == input[address], "\(arm.name) mirror \(256 + address)")
            }
            let uptimes = [input, mirror, after].map { Words.uint32($0[6], $0[7]) }
            #expect(uptimes == uptimes.sorted(), "\(arm.name) uptime_ms u32 high word first: \(uptimes)")

            let serial = UInt32(610_000_001 + index)
            let identity: [UInt16] = [610, 0x0203] + Words.words(serial)
            #expect(try client.input(100, 4) == identity, "\(arm.name) identity")
            for address in 100..<104 {
                #expect(try client.input(address) == [identity[address - 100]], "\(arm.name) input \(address)")
            }
        }

        // The housing arrived (about 1.5 s): its lot, high word first; the station wrote the coil back to 0.
        #expect(eventually { (try? station.discreteInputs(0)) == [1] })
        #expect(try station.coils(1) == [0])
        let housingLot = cell.server.cell.withModels { $0.world.housingAtInfeed?.housingLot ?? 0 }
        #expect(housingLot == 100_001)
        #expect(try station.input(8, 2) == [0x0001, 0x86A1])
    }

    @Test("32-bit values are high word first: a negative target reads back raw, as do positions and serials")
    func highWordFirst() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arm = try cell.client(cell.armNames[0])
        try arm.writeRegisters(address: RA610Register.target, values: Words.words(Int32(-1_234_567)))
        try arm.writeRegisters(address: RA610Register.target + 2, values: [0x1234, 0x5678])
        #expect(try arm.holding(RA610Register.target, 4) == [0xFFED, 0x2979, 0x1234, 0x5678])
        // Every home pose has J2 = -0.300 rad = -300000 µrad = 0xFFFB6C20.
        #expect(try arm.input(RA610Register.actualPosition + 2, 2) == [0xFFFB, 0x6C20])
        // serial_number 610000001 = 0x245BDC81.
        #expect(try arm.input(RA610Register.serialNumber, 2) == [0x245B, 0xDC81])
    }

    // MARK: Exceptions

    @Test("exception 0x01: an unsupported function, nothing written")
    func illegalFunction() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arm = try cell.client(cell.armNames[0])
        let before = try arm.holding(0, 28)
        #expect(throws: ModbusError.exception(.illegalFunction)) { try arm.coils(0) }
        #expect(throws: ModbusError.exception(.illegalFunction)) { try arm.discreteInputs(0) }
        #expect(throws: ModbusError.exception(.illegalFunction)) { try arm.writeSingleCoil(address: 0, value: true) }
        #expect(throws: ModbusError.exception(.illegalFunction)) { try arm.writeCoils(address: 0, values: [1, 1]) }
        #expect(try arm.holding(0, 28) == before)

        let station = try cell.client(cell.stationName)
        #expect(throws: ModbusError.exception(.illegalFunction)) { try station.writeThenRead(0, [2], 0, 1) }
        #expect(try station.holding(0) == [1], "variant not written by the refused 0x17")
    }

    @Test("exception 0x02: every gap and every address beyond the tables, nothing written")
    func illegalAddress() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arm = try cell.client(cell.armNames[0])
        let illegal = ModbusError.exception(.illegalDataAddress)
        for address in 28...255 { #expect(throws: illegal, "holding \(address)") { try arm.holding(address) } }
        for address in 40...99 { #expect(throws: illegal, "input \(address)") { try arm.input(address) } }
        for (address, count) in [(27, 2), (255, 2), (295, 2), (296, 1), (1_000, 1), (65_535, 1)] {
            #expect(throws: illegal, "holding \(address)+\(count)") { try arm.holding(address, count) }
        }
        for (address, count) in [(39, 2), (99, 2), (103, 2), (104, 1), (65_535, 1)] {
            #expect(throws: illegal, "input \(address)+\(count)") { try arm.input(address, count) }
        }
        let before = try arm.holding(0, 28)
        #expect(throws: illegal) { try arm.writeRegisters(address: 28, values: [1]) }
        #expect(throws: illegal) { try arm.writeRegisters(address: 26, values: [1, 2, 3, 4]) }
        #expect(throws: illegal) { try arm.writeSingleRegister(address: RA610Register.statusMirror, value: 1) }
        #expect(throws: illegal) { try arm.writeRegisters(address: RA610Register.statusMirror + 2, values: [7]) }
        // 0x17 checks both ranges before writing anything.
        #expect(throws: illegal) { try arm.writeThenRead(RA610Register.heartbeat, [0x1234], 28, 1) }
        #expect(throws: illegal) { try arm.writeThenRead(27, [5, 6], RA610Register.statusMirror, 1) }
        #expect(try arm.holding(0, 28) == before, "nothing written")
        #expect(try arm.input(RA610Register.heartbeatEcho) == [0])

        let station = try cell.client(cell.stationName)
        #expect(throws: illegal) { try station.coils(8) }
        #expect(throws: illegal) { try station.coils(7, 2) }
        #expect(throws: illegal) { try station.discreteInputs(12) }
        #expect(throws: illegal) { try station.discreteInputs(11, 2) }
        #expect(throws: illegal) { try station.holding(1) }
        #expect(throws: illegal) { try station.holding(0, 2) }
        #expect(throws: illegal) { try station.input(16) }
        #expect(throws: illegal) { try station.input(15, 2) }
        #expect(throws: illegal) { try station.writeSingleCoil(address: 8, value: true) }
        #expect(throws: illegal) { try station.writeCoils(address: 6, values: [1, 1, 1]) }
        #expect(throws: illegal) { try station.writeSingleRegister(address: 1, value: 2) }
        #expect(throws: illegal) { try station.writeRegisters(address: 0, values: [2, 2]) }
        #expect(try station.coils(0, 8) == [0, 0, 0, 0, 0, 0, 0, 0], "no lamp coil written")
        #expect(try station.holding(0) == [1], "variant not written")
    }

    @Test("exception 0x03: values out of range, nothing written")
    func illegalValue() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let illegal = ModbusError.exception(.illegalDataValue)
        for name in cell.armNames {
            let arm = try cell.client(name)
            let before = try arm.holding(0, 28)
            #expect(throws: illegal) { try arm.writeSingleRegister(address: RA610Register.toolCommand, value: 7) }
            #expect(throws: illegal) { try arm.writeSingleRegister(address: RA610Register.watchdogMilliseconds, value: 19) }
            #expect(throws: illegal) {
                try arm.writeSingleRegister(address: RA610Register.watchdogMilliseconds, value: 1_001)
            }
            #expect(throws: illegal) {
                try arm.writeSingleRegister(address: RA610Register.streamPeriodMicroseconds, value: 249)
            }
            // One bad value spoils the whole multiple write (command and heartbeat stay as they were).
            #expect(throws: illegal) { try arm.writeRegisters(address: 0, values: [enable, 0x5555, 0xFFFF]) }
            #expect(throws: illegal) { try arm.writeThenRead(0, [enable, 0x6666, 0, 0, 0, 5], 0, 1) }
            // SCREW below 0.50 N·m with a new request id.
            #expect(throws: illegal) { try arm.writeRegisters(address: RA610Register.toolCommand, values: [3, 1, 49]) }
            #expect(try arm.holding(0, 28) == before, "\(name): nothing written")
            #expect(try arm.input(RA610Register.heartbeatEcho, 3) == [0, 0, 0], "\(name): no heartbeat, no tool request")
        }

        let station = try cell.client(cell.stationName)
        #expect(throws: illegal) { try station.writeSingleRegister(address: 0, value: 3) }
        #expect(throws: illegal) { try station.writeSingleRegister(address: 0, value: 0) }
        #expect(throws: illegal) { try station.writeRegisters(address: 0, values: [0xFFFF]) }
        #expect(try station.holding(0) == [1], "variant not written")
        // A coil value other than 0x0000/0xFF00 (libmodbus cannot send one): raw 0x05 frames.
        let stationPort = try cell.port(cell.stationName)
        for value: UInt16 in [0x1234, 0x0001, 0xFFFF] {
            let reply = try rawModbusRequest(
                port: stationPort, pdu: [0x05, 0x00, 0x05, UInt8(value >> 8), UInt8(value & 0xFF)])
            #expect(reply == [0x85, 0x03], "0x05 with value \(String(value, radix: 16))")
        }
        #expect(try station.coils(5) == [0], "LAMP_GREEN not written")
        // The same frame with 0xFF00 is accepted (so the raw frames above were well formed).
        #expect(try rawModbusRequest(port: stationPort, pdu: [0x05, 0x00, 0x05, 0xFF, 0x00]) == [0x05, 0x00, 0x05, 0xFF, 0x00])
        #expect(try station.coils(5) == [1])
    }

    // MARK: Connections

    @Test("unit id filtering: unit 2 gets no reply (timeout), unit 1 then works")
    func unitIDFiltering() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        for name in [cell.armNames[0], cell.stationName] {
            let server = try cell.modbusServer(name)
            let ignoredBefore = server.statistics.requestsIgnored
            let client = try cell.client(name, unitID: 2, responseTimeoutMilliseconds: 200)
            #expect(throws: ModbusError.timeout, "\(name) answered unit 2") { try client.holding(0) }
            #expect(eventually { server.statistics.requestsIgnored == ignoredBefore + 1 })
            try client.setUnitID(1)
            try client.connect()  // the timed-out connection was closed (resync)
            #expect(try client.holding(0) == (name == cell.stationName ? [1] : [0]))
            #expect(client.timeoutCount == 1)
        }
    }

    @Test("a third connection to one device is accepted and closed at once; two stay served")
    func thirdConnectionRefused() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        for name in [cell.armNames[1], cell.stationName] {
            let server = try cell.modbusServer(name)
            let first = try cell.client(name)
            let second = try cell.client(name)
            _ = try first.holding(0)
            _ = try second.holding(0)
            let third = try cell.client(name)  // TCP accepts...
            let refusal = #expect(throws: ModbusError.self, "\(name) served a third client") { try third.holding(0) }
            if case .connectionLost = refusal {} else { Issue.record("\(name): third connection got \(String(describing: refusal))") }
            #expect(server.statistics.connectionsRefused == 1)
            #expect(server.statistics.clientsConnected == 2)
            _ = try first.holding(0)
            _ = try second.holding(0)
            // A freed slot is served again.
            first.close()
            #expect(eventually { server.statistics.clientsConnected == 1 })
            try third.connect()
            _ = try third.holding(0)
        }
    }

    @Test("0x17 writes first, then reads: the heartbeat written is echoed in the same reply")
    func writeThenReadOrder() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arm = try cell.client(cell.armNames[2])
        let mirrorEcho = RA610Register.statusMirror + RA610Register.heartbeatEcho
        for heartbeat: UInt16 in [0x1111, 0xBEEF, 0x0001] {
            #expect(try arm.writeThenRead(RA610Register.heartbeat, [heartbeat], mirrorEcho, 1) == [heartbeat])
        }
        // Overlapping ranges: the read sees the values just written.
        let targets = Words.words(Int32(-42)) + Words.words(Int32(42))
        #expect(try arm.writeThenRead(RA610Register.target, targets, RA610Register.target, 4) == targets)
    }

    // MARK: Streaming and faults (real time)

    @Test("watchdog: a heartbeat that stops changing while streaming trips COMM_WATCHDOG 0x0101")
    func watchdogTrip() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let watchdogMilliseconds: UInt64 = 150
        let streamer = try ArmStreamer(
            client: cell.client(cell.armNames[0]), watchdogMilliseconds: UInt16(watchdogMilliseconds))
        defer { streamer.stop() }
        streamer.update { $0.command = enable | stream }
        streamer.start()
        let started = try #require(streamer.waitFor { $0.isStreaming }, "streaming did not begin: \(String(describing: streamer.error))")
        // A changing heartbeat keeps the arm streaming for well over watchdog_ms.
        let alive = try #require(streamer.waitFor { $0.period >= started.period + 75 })
        #expect(alive.faultCode == 0 && alive.isStreaming)
        #expect(alive.heartbeatEcho == alive.heartbeat)

        streamer.update { $0.heartbeatFrozen = true }
        let tripped = try #require(streamer.waitFor { $0.faultCode != 0 }, "no watchdog trip")
        #expect(tripped.faultCode == RA610FaultCode.commWatchdog)
        #expect(tripped.status & RA610StatusBit.fault != 0 && !tripped.isStreaming)
        #expect(tripped.heartbeatEcho == tripped.heartbeat, "the same value was still being written")
        // Not before watchdog_ms after the last change: the 0x17 that first wrote the frozen value (model time
        // follows CLOCK_MONOTONIC in 250 µs steps).
        let lastChange = try #require(streamer.history.first { $0.heartbeat == tripped.heartbeat })
        let elapsed = tripped.receivedNanoseconds - lastChange.sentNanoseconds
        #expect(elapsed >= nanoseconds(milliseconds: watchdogMilliseconds) - 250_000, "tripped after \(elapsed) ns")
        #expect(elapsed < nanoseconds(milliseconds: 2_000), "tripped after \(elapsed) ns")
        #expect(streamer.error == nil)
    }

    @Test("setpoint jump: a step beyond 1.5 × v_max × period latches 0x0201 in the same 0x17")
    func setpointJumpTrip() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let streamer = try ArmStreamer(client: cell.client(cell.armNames[0]), watchdogMilliseconds: 500)
        defer { streamer.stop() }
        streamer.update { $0.command = enable | stream }
        streamer.start()
        let started = try #require(streamer.waitFor { $0.isStreaming }, "streaming did not begin")
        let steady = try #require(streamer.waitFor { $0.period >= started.period + 10 })
        #expect(steady.faultCode == 0)
        // J1: 1.5 × 3.14 rad/s × 4 ms = 18 840 µrad allowed; ask for 50 000 µrad in one setpoint.
        var goal = steady.targetsMicroradians
        goal[0] += 50_000
        streamer.update {
            $0.goalMicroradians = goal
            $0.maximumStepMicroradians = 1_000_000
        }
        let tripped = try #require(streamer.waitFor { $0.faultCode != 0 }, "no trip")
        #expect(tripped.faultCode == RA610FaultCode.setpointJump)
        let jump = try #require(streamer.history.first { $0.targetsMicroradians[0] == goal[0] })
        #expect(jump.faultCode == RA610FaultCode.setpointJump, "the 0x17 that sent the jump reads the fault")
        #expect(jump.status & RA610StatusBit.fault != 0)
    }

    @Test("position limit: a setpoint beyond J3's 1.309 rad (within the jump limit) latches 0x0203")
    func positionLimitTrip() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let streamer = try ArmStreamer(client: cell.client(cell.armNames[0]), watchdogMilliseconds: 500)
        defer { streamer.stop() }
        streamer.update { $0.command = enable | stream }
        streamer.start()
        let started = try #require(streamer.waitFor { $0.isStreaming }, "streaming did not begin")
        // Move J3 from 0.6 rad up to 1.300 rad at 1.5 rad/s, then settle.
        var goal = started.targetsMicroradians
        goal[2] = 1_300_000
        streamer.update {
            $0.goalMicroradians = goal
            $0.maximumStepMicroradians = 6_000
        }
        let arrived = try #require(
            streamer.waitFor(withinMilliseconds: 5_000) {
                ($0.targetsMicroradians[2] == 1_300_000 && $0.status & RA610StatusBit.inPosition != 0)
                    || $0.faultCode != 0
            }, "J3 did not reach 1.3 rad")
        #expect(arrived.faultCode == 0)
        // 1.315 rad: 15 000 µrad step (allowed: 18 840), but beyond the 1.309 rad limit.
        goal[2] = 1_315_000
        streamer.update {
            $0.goalMicroradians = goal
            $0.maximumStepMicroradians = 15_000
        }
        let tripped = try #require(streamer.waitFor { $0.faultCode != 0 }, "no trip")
        #expect(tripped.faultCode == RA610FaultCode.positionLimit)
        let beyond = try #require(streamer.history.first { $0.targetsMicroradians[2] == 1_315_000 })
        #expect(beyond.faultCode == RA610FaultCode.positionLimit, "the 0x17 that sent it reads the fault")
        let highest = streamer.history.map { $0.positionsMicroradians[2] }.max() ?? 0
        #expect(highest <= 1_309_000, "J3 reached \(highest) µrad")
    }

    @Test("following error: setpoints each within the jump limit but faster than the servo latch 0x0202")
    func followingErrorTrip() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        // stream_period_us 20 000: J1 may step 1.5 × 3.14 × 0.02 = 94 200 µrad per setpoint; the streamer sends
        // 90 000 µrad every 4 ms, five times faster than the servo's reference ramps.
        let streamer = try ArmStreamer(
            client: cell.client(cell.armNames[0]), watchdogMilliseconds: 500, streamPeriodMicroseconds: 20_000)
        defer { streamer.stop() }
        streamer.update { $0.command = enable | stream }
        streamer.start()
        let started = try #require(streamer.waitFor { $0.isStreaming }, "streaming did not begin")
        var goal = started.targetsMicroradians
        goal[0] = 1_500_000
        streamer.update {
            $0.goalMicroradians = goal
            $0.maximumStepMicroradians = 90_000
        }
        let tripped = try #require(streamer.waitFor { $0.faultCode != 0 }, "no trip")
        #expect(tripped.faultCode == RA610FaultCode.followingError)
        // Every setpoint sent was within the jump limit.
        let sent = streamer.history.map { $0.targetsMicroradians[0] }
        let steps = zip(sent, sent.dropFirst()).map { abs(Int64($1) - Int64($0)) }
        #expect((steps.max() ?? 0) <= 90_000)
    }

    @Test("e-stop latches ESTOP + 0x0601 on every arm; RESET refused while the chain is open; ENABLE seen clear first")
    func estopLatchAndReset() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arms = try cell.armNames.map { try cell.client($0) }
        let station = try cell.client(cell.stationName)
        let loader = arms[0]
        try loader.writeSingleRegister(address: RA610Register.command, value: enable)
        #expect(eventually { ((try? loader.input(0)[0]) ?? 0) & RA610StatusBit.enabled != 0 }, "servos did not come on")

        cell.server.cell.withModels { $0.world.pressEstop() }
        #expect(try station.discreteInputs(TS200Model.DiscreteInput.safetyOK.rawValue, 3) == [0, 1, 0])
        for (index, arm) in arms.enumerated() {
            let latched = eventually {
                guard let status = try? arm.input(0, 2) else { return false }
                return status[0] & RA610StatusBit.estop != 0 && status[1] == RA610FaultCode.emergencyStop
                    && status[0] & (RA610StatusBit.enabled | RA610StatusBit.inMotion) == 0
            }
            #expect(latched, "\(cell.armNames[index]): no ESTOP/0x0601 with servos off")
            #expect(try arm.input(0)[0] & RA610StatusBit.remoteReady == 0)
        }

        // RESET while the chain is open: nothing clears.
        #expect(try loader.writeThenRead(0, [enable | reset], RA610Register.statusMirror, 2)[1] == RA610FaultCode.emergencyStop)
        try loader.writeSingleRegister(address: RA610Register.command, value: enable)
        #expect(try loader.input(0, 2)[1] == RA610FaultCode.emergencyStop)

        // Chain closed: still latched until a RESET edge.
        cell.server.cell.withModels { $0.world.releaseEstop() }
        #expect(try station.discreteInputs(TS200Model.DiscreteInput.safetyOK.rawValue, 3) == [1, 0, 0])
        let stillLatched = try loader.input(0, 2)
        #expect(stillLatched[0] & RA610StatusBit.estop != 0 && stillLatched[1] == RA610FaultCode.emergencyStop)
        let afterReset = try loader.writeThenRead(0, [enable | reset], RA610Register.statusMirror, 2)
        #expect(afterReset[1] == 0)
        #expect(afterReset[0] & (RA610StatusBit.estop | RA610StatusBit.fault) == 0)
        #expect(afterReset[0] & RA610StatusBit.remoteReady != 0)

        // ENABLE was never seen clear since the e-stop: the servos stay off (3 × the 50 ms enable time).
        try loader.writeSingleRegister(address: RA610Register.command, value: enable)
        let cameOn = eventually(withinMilliseconds: 150) {
            ((try? loader.input(0)[0]) ?? 0) & RA610StatusBit.enabled != 0
        }
        #expect(!cameOn, "servos came on without ENABLE seen clear")
        try loader.writeSingleRegister(address: RA610Register.command, value: 0)
        try loader.writeSingleRegister(address: RA610Register.command, value: enable)
        #expect(eventually { ((try? loader.input(0)[0]) ?? 0) & RA610StatusBit.enabled != 0 }, "servos did not come on")

        // Another arm resets with ENABLE clear all along.
        let other = arms[1]
        #expect(try other.writeThenRead(0, [reset], RA610Register.statusMirror, 2)[1] == 0)
    }

    @Test("tool requests are idempotent: the same tool_request_id twice runs once")
    func toolRequestIdempotence() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let arm = try cell.client(cell.gripperArm)
        try arm.writeSingleRegister(address: RA610Register.command, value: enable)
        #expect(eventually { ((try? arm.input(0)[0]) ?? 0) & RA610StatusBit.enabled != 0 }, "servos did not come on")
        let toolMirror = RA610Register.statusMirror + RA610Register.toolState  // tool_state, tool_ack_id, tool_result
        let grip = ToolCommand.grip.rawValue
        let busy = RA610ToolStateBit.busy
        let done = RA610ToolStateBit.done

        // Request 7 starts at once (BUSY in the same 0x17) and ends DONE (GRIP 150 ms, nothing at home: result 0).
        #expect(try arm.writeThenRead(RA610Register.toolCommand, [grip, 7, 0], toolMirror, 3)[0] & busy != 0)
        #expect(eventually { (try? arm.input(RA610Register.toolState, 2)) == [done, 7] })

        // The same id again, as a retried write would: a new request would clear DONE and set BUSY at once.
        #expect(try arm.writeThenRead(RA610Register.toolCommand, [grip, 7, 0], toolMirror, 3) == [done, 7, 0])
        try arm.writeSingleRegister(address: RA610Register.toolRequestID, value: 7)
        try arm.writeRegisters(address: RA610Register.toolCommand, values: [grip, 7, 0])
        #expect(try arm.input(RA610Register.toolState, 2) == [done, 7])

        // A new id runs; another one while it is busy is 0x06 and writes nothing.
        #expect(try arm.writeThenRead(RA610Register.toolCommand, [grip, 8, 0], toolMirror, 3)[0] & busy != 0)
        #expect(throws: ModbusError.exception(.serverDeviceBusy)) {
            try arm.writeRegisters(address: RA610Register.toolCommand, values: [ToolCommand.release.rawValue, 9, 0])
        }
        #expect(try arm.holding(RA610Register.toolCommand, 2) == [grip, 8])
        #expect(eventually { (try? arm.input(RA610Register.toolState, 2)) == [done, 8] })
    }

    @Test("station tests: count and result change together, once; the start coil must go 0 before the next edge")
    func stationTestCount() throws {
        let cell = try ServedCell()
        defer { cell.stop() }
        let station = try cell.client(cell.stationName)
        let leakStart = TS200Model.Coil.leakTestStart.rawValue
        let leakBusy = TS200Model.DiscreteInput.leakTestBusy.rawValue
        #expect(try station.input(2, 2) == [0, 0])
        try station.writeSingleCoil(address: leakStart, value: true)
        #expect(try station.discreteInputs(leakBusy) == [1])

        // Count and leak_rate are read in one request all along: they never change one without the other.
        // No part is clamped, so the test head reads saturated (0xFFFF).
        var samples: [[UInt16]] = []
        let finished = try eventually(withinMilliseconds: 6_000) {
            let sample = try station.input(2, 2)
            samples.append(sample)
            return sample[0] != 0
        }
        #expect(finished, "the leak test did not finish")
        #expect(samples.allSatisfy { $0 == [0, 0] || $0 == [1, 0xFFFF] }, "\(Set(samples.map { "\($0)" }))")
        #expect(try station.discreteInputs(leakBusy) == [0])
        #expect(try station.coils(leakStart) == [1], "the station never clears a start coil")

        // Writing 1 over 1 is no edge: no new test.
        try station.writeSingleCoil(address: leakStart, value: true)
        try station.writeCoils(address: leakStart, values: [1])
        #expect(try station.discreteInputs(leakBusy) == [0])
        #expect(try station.input(2, 2) == [1, 0xFFFF])
        // 0 then 1 is an edge: the next test starts, and counts once more when it ends.
        try station.writeSingleCoil(address: leakStart, value: false)
        try station.writeSingleCoil(address: leakStart, value: true)
        #expect(try station.discreteInputs(leakBusy) == [1])
        #expect(try station.input(2, 2) == [1, 0xFFFF])
        #expect(eventually(withinMilliseconds: 6_000) { (try? station.input(2, 2)) == [2, 0xFFFF] })
        #expect(try station.discreteInputs(leakBusy) == [0])
    }
}
