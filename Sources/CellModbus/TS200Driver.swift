import CellCore
import Modbus

/// The TS-200 register map as the driver uses it (datasheet "TS-200 cell station controller — Modbus TCP interface").
public enum TS200Registers {
    public static let coilCount = StationCoils.count
    public static let discreteInputCount = StationSignals.count
    /// Input registers 0..15: status … uptime_ms.
    public static let inputRegisterCount = 16
    /// Holding register 0: variant.
    public static let variantAddress = 0
}

/// Driver for the TS-200 station controller over Modbus TCP.
///
/// Each period it reads the discrete inputs (0x02), the input registers (0x04), the coils (0x01) and the variant
/// (0x03); after the controller's step it writes
/// each level coil whose wanted value differs from what it read (0x05, one coil at a time: the station writes
/// INFEED_ADVANCE/OUTFEED_ADVANCE back to 0 itself, so a multi-coil write could undo its write-back), and the variant
/// register when it differs. The conveyors are indexed by *requests*: one index each time
/// `StationOutputs.infeedRequests`/`outfeedRequests` changes.
///
/// Thread: owned by the control thread after start-up; not for concurrent use. `exchange` does not allocate.
public final class TS200Driver: @unchecked Sendable {
    /// The device name from the cell definition (`station`).
    public let name: String
    private let client: ModbusClient
    private let bits: UnsafeMutableBufferPointer<UInt8>
    private let registers: UnsafeMutableBufferPointer<UInt16>
    private var lastInfeedRequest: UInt32 = 0
    private var lastOutfeedRequest: UInt32 = 0

    public init(
        name: String, host: String, port: Int, unitID: UInt8,
        responseTimeoutNanoseconds: UInt64, connectTimeoutNanoseconds: UInt64,
        reconnect: ReconnectPolicy = .default
    ) throws(ModbusError) {
        self.name = name
        client = try ModbusClient(
            host: host, port: port, unitID: unitID,
            responseTimeoutNanoseconds: responseTimeoutNanoseconds,
            connectTimeoutNanoseconds: connectTimeoutNanoseconds, reconnect: reconnect)
        bits = .allocate(capacity: max(TS200Registers.coilCount, TS200Registers.discreteInputCount))
        bits.initialize(repeating: 0)
        registers = .allocate(capacity: TS200Registers.inputRegisterCount)
        registers.initialize(repeating: 0)
    }

    deinit {
        client.close()
        bits.deallocate()
        registers.deallocate()
    }

    /// Closes the connection (shutdown). Thread: the owner.
    public func close() { client.close() }

    /// Reads the station into `inputs` (discrete inputs, input registers, coils, variant).
    /// Thread: the control thread, in the period's read phase. Does not allocate; each request blocks at most the
    /// response timeout.
    public func read(into inputs: inout StationInputs, nowNanoseconds: UInt64) {
        if !client.isConnected {
            guard client.maintainConnection(nowNanoseconds: nowNanoseconds) else {
                inputs.link.state = .disconnected
                inputs.link.consecutiveFailures &+= 1
                return
            }
        }
        do throws(ModbusError) {
            try read(into: &inputs)
            inputs.link.state = .ok
            inputs.link.detail = 0
            inputs.link.consecutiveFailures = 0
        } catch {
            inputs.link.record(error)
        }
    }

    /// Writes what `outputs` wants changed, judged against what `read` saw this period.
    /// Thread: the control thread, in the period's write phase. Does not allocate.
    public func write(_ outputs: StationOutputs, current inputs: inout StationInputs) {
        guard client.isConnected, inputs.link.state == .ok else { return }
        do throws(ModbusError) {
            try write(outputs, current: inputs)
        } catch {
            inputs.link.record(error)
        }
    }

    private func read(into inputs: inout StationInputs) throws(ModbusError) {
        let inputBits = UnsafeMutableBufferPointer(rebasing: bits[0..<TS200Registers.discreteInputCount])
        try client.readDiscreteInputs(address: 0, into: inputBits)
        var signals: UInt16 = 0
        for index in 0..<TS200Registers.discreteInputCount where inputBits[index] != 0 { signals |= 1 << index }
        inputs.signals = StationSignals(rawValue: signals)

        try client.readInputRegisters(address: 0, into: registers)
        let r = registers
        inputs.statusWord = r[0]
        inputs.faultCode = r[1]
        inputs.leakTestCount = r[2]
        inputs.leakRateHundredths = r[3]
        inputs.lightTestCount = r[4]
        inputs.luminousIntensityCandela = r[5]
        inputs.cutoffAngleHundredthsDegree = Int16(bitPattern: r[6])
        inputs.housingLot = uint32(high: r[8], low: r[9])
        inputs.ledModuleLot = uint32(high: r[10], low: r[11])
        inputs.lensLot = uint32(high: r[12], low: r[13])
        inputs.uptimeMilliseconds = uint32(high: r[14], low: r[15])

        let coilBits = UnsafeMutableBufferPointer(rebasing: bits[0..<TS200Registers.coilCount])
        try client.readCoils(address: 0, into: coilBits)
        var coils: UInt16 = 0
        for index in 0..<TS200Registers.coilCount where coilBits[index] != 0 { coils |= 1 << index }
        inputs.coils = StationCoils(rawValue: coils)

        let variant = UnsafeMutableBufferPointer(rebasing: registers[0..<1])
        try client.readHoldingRegisters(address: TS200Registers.variantAddress, into: variant)
        inputs.variant = variant[0]
    }

    /// Level coils: written when the wanted level differs from the read one. Coil `n` is bit `n` of `StationCoils`
    /// (as `read` builds it), so the coil address is the bit index. A mask rather than an array of (coil, address):
    /// a static array is built lazily on the heap, at its first use on the control thread.
    private static let levelCoils = StationCoils.fixtureClamp.union(.leakTestStart).union(.lightTestStart)
        .union(.lampGreen).union(.lampAmber).union(.lampRed)

    private func write(_ outputs: StationOutputs, current: StationInputs) throws(ModbusError) {
        for address in 0..<TS200Registers.coilCount {
            let coil = StationCoils(rawValue: 1 << address)
            guard Self.levelCoils.contains(coil) else { continue }
            let wanted = outputs.coils.contains(coil)
            if wanted != current.coils.contains(coil) {
                try client.writeSingleCoil(address: address, value: wanted)
            }
        }
        if outputs.infeedRequests != lastInfeedRequest {
            try client.writeSingleCoil(address: 1, value: true)
            lastInfeedRequest = outputs.infeedRequests
        }
        if outputs.outfeedRequests != lastOutfeedRequest {
            try client.writeSingleCoil(address: 4, value: true)
            lastOutfeedRequest = outputs.outfeedRequests
        }
        if outputs.variant != current.variant {
            try client.writeSingleRegister(address: TS200Registers.variantAddress, value: outputs.variant)
        }
    }
}
