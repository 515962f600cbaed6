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
/// Each period it reads the discrete inputs (0x02: SAFETY_OK, parts present, …) and the input registers (0x04: test
/// counts and results, the lots of the parts at the pick points), which must be read together and fresh. The coils
/// (0x01) and the variant (0x03) are only ever changed by this driver (the station never clears the start coils and
/// writes back only the ADVANCE coils, which are not level coils), so the driver keeps them as it last read *or
/// wrote* them: an acknowledged write updates `StationInputs.coils`/`variant` at once, and each is read back only
/// every `verifyEveryPeriods` periods (and on the first read after a connect) to catch a change made by someone else.
/// A period therefore costs two station round trips, sometimes three (issue 3: a 1 ms period against the simulated
/// cell; the station's tables may be read "every few periods").
///
/// After the controller's step it writes each level coil whose wanted value differs from the current one (0x05, one
/// coil at a time: the station writes INFEED_ADVANCE/OUTFEED_ADVANCE back to 0 itself, so a multi-coil write could
/// undo its write-back), and the variant register when it differs. The conveyors are indexed by *requests*: one index
/// each time `StationOutputs.infeedRequests`/`outfeedRequests` changes.
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
    /// Periods read since the last connect; picks which period reads the coils and the variant back.
    private var periodsSinceConnect: UInt64 = 0

    /// How often (in periods) the coils and the variant register are read back; the coils in one period, the
    /// variant `verifyEveryPeriods / 2` periods later. Between read-backs they are known from the driver's own
    /// acknowledged writes.
    public static let verifyEveryPeriods: UInt64 = 8

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

    /// Reads the station into `inputs`: discrete inputs and input registers every period, the coils and the variant
    /// on their turn (see the type's comment) and in full on the first period after a connect or a failed exchange.
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
        if inputs.link.state != .ok { periodsSinceConnect = 0 }
        do throws(ModbusError) {
            try read(into: &inputs, period: periodsSinceConnect)
            periodsSinceConnect &+= 1
            inputs.link.state = .ok
            inputs.link.detail = 0
            inputs.link.consecutiveFailures = 0
        } catch {
            inputs.link.record(error)
        }
    }

    /// Writes what `outputs` wants changed, judged against the coils and variant in `inputs` (as last read or
    /// written); acknowledged writes are applied to `inputs`.
    /// Thread: the control thread, in the period's write phase. Does not allocate.
    public func write(_ outputs: StationOutputs, current inputs: inout StationInputs) {
        guard client.isConnected, inputs.link.state == .ok else { return }
        do throws(ModbusError) {
            try writeChanges(outputs, current: &inputs)
        } catch {
            inputs.link.record(error)
        }
    }

    /// Period `period` since the connect: 0 reads everything; later periods read the coils or the variant back only on
    /// their turn.
    private func read(into inputs: inout StationInputs, period: UInt64) throws(ModbusError) {
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

        let phase = period % Self.verifyEveryPeriods
        if period == 0 || phase == 0 {
            try readCoils(into: &inputs)
        }
        if period == 0 || phase == Self.verifyEveryPeriods / 2 {
            let variant = UnsafeMutableBufferPointer(rebasing: registers[0..<1])
            try client.readHoldingRegisters(address: TS200Registers.variantAddress, into: variant)
            inputs.variant = variant[0]
        }
    }

    private func readCoils(into inputs: inout StationInputs) throws(ModbusError) {
        let coilBits = UnsafeMutableBufferPointer(rebasing: bits[0..<TS200Registers.coilCount])
        try client.readCoils(address: 0, into: coilBits)
        var coils: UInt16 = 0
        for index in 0..<TS200Registers.coilCount where coilBits[index] != 0 { coils |= 1 << index }
        inputs.coils = StationCoils(rawValue: coils)
    }

    /// Level coils: written when the wanted level differs from the read one. Coil `n` is bit `n` of `StationCoils`
    /// (as `read` builds it), so the coil address is the bit index. A mask rather than an array of (coil, address):
    /// a static array is built lazily on the heap, at its first use on the control thread.
    private static let levelCoils = StationCoils.fixtureClamp.union(.leakTestStart).union(.lightTestStart)
        .union(.lampGreen).union(.lampAmber).union(.lampRed)

    /// Writes the differences; each acknowledged write is applied to `current` at once (the station now holds it).
    private func writeChanges(_ outputs: StationOutputs, current: inout StationInputs) throws(ModbusError) {
        for address in 0..<TS200Registers.coilCount {
            let coil = StationCoils(rawValue: 1 << address)
            guard Self.levelCoils.contains(coil) else { continue }
            let wanted = outputs.coils.contains(coil)
            if wanted != current.coils.contains(coil) {
                try client.writeSingleCoil(address: address, value: wanted)
                if wanted { current.coils.insert(coil) } else { current.coils.remove(coil) }
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
            current.variant = outputs.variant
        }
    }
}
