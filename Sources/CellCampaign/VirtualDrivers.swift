// The device drivers in virtual time: the same requests, in the same order, with the same encoding and the same
// link bookkeeping as `RA610Driver` and `TS200Driver` (CellModbus), against the models' `ModbusDevice` methods.

import CellCore
import CellModbus
import CellSimulator
import Modbus

/// `RA610Driver` in virtual time: one 0x17 per period (write holding 0..27, read the status mirror 256..295), the
/// identity (input registers 100..103) after every (re)connect. Encoding: `RA610Driver.encode`/`decode` (shared).
/// Thread: the engine's thread only.
final class VirtualRA610Driver {
    let link: VirtualLink
    let device: RA610Model
    private var needsIdentity = true
    private let writeBuffer: UnsafeMutableBufferPointer<UInt16>
    private let readBuffer: UnsafeMutableBufferPointer<UInt16>
    private let identityBuffer: UnsafeMutableBufferPointer<UInt16>
    /// Called with the targets (µrad-exact, as decoded from the words written) of every 0x17 the arm applied, and
    /// whether the arm was streaming when it arrived: the invariant checker watches the stream the arm received.
    var onAppliedWrite: ((_ words: UnsafeBufferPointer<UInt16>, _ armWasStreaming: Bool) -> Void)?

    init(device: RA610Model, link: VirtualLink) {
        self.device = device
        self.link = link
        writeBuffer = .allocate(capacity: RA610Registers.writeCount)
        writeBuffer.initialize(repeating: 0)
        readBuffer = .allocate(capacity: RA610Registers.statusMirrorCount)
        readBuffer.initialize(repeating: 0)
        identityBuffer = .allocate(capacity: RA610Registers.identityCount)
        identityBuffer.initialize(repeating: 0)
    }

    deinit {
        writeBuffer.deallocate()
        readBuffer.deallocate()
        identityBuffer.deallocate()
    }

    private func readIdentity(_ now: UInt64) throws(ModbusError) {
        let device = self.device
        let identity = identityBuffer
        try link.perform(nowNanoseconds: now) {
            device.readRegisters(.inputRegisters, address: RA610Registers.identityAddress, into: identity)
        }
    }

    private func writeAndRead(_ now: UInt64) throws(ModbusError) {
        let device = self.device
        let write = UnsafeBufferPointer(writeBuffer)
        let read = readBuffer
        let observer = onAppliedWrite
        try link.perform(nowNanoseconds: now) {
            let streaming = device.statusWord & ArmStatus.streaming.rawValue != 0
            let exception = device.writeAndReadRegisters(
                writeAddress: RA610Registers.writeAddress, values: write,
                readAddress: RA610Registers.statusMirrorAddress, into: read)
            if exception == nil { observer?(write, streaming) }
            return exception
        }
    }

    /// `RA610Driver.exchange`. The caller has advanced the models to `nowNanoseconds`.
    func exchange(_ outputs: ArmOutputs, into inputs: inout ArmInputs, nowNanoseconds now: UInt64) {
        if !link.isConnected {
            guard link.maintainConnection(nowNanoseconds: now) else {
                inputs.link.state = .disconnected
                inputs.link.consecutiveFailures &+= 1
                return
            }
            needsIdentity = true
        }
        do throws(ModbusError) {
            if needsIdentity {
                try readIdentity(now)
                RA610Driver.decodeIdentity(UnsafeBufferPointer(identityBuffer), into: &inputs.link)
                needsIdentity = false
            }
            RA610Driver.encode(outputs, into: writeBuffer)
            try writeAndRead(now)
            RA610Driver.decode(UnsafeBufferPointer(readBuffer), into: &inputs)
            inputs.link.state = .ok
            inputs.link.detail = 0
            inputs.link.consecutiveFailures = 0
        } catch {
            inputs.link.record(error)
        }
    }
}

/// `TS200Driver` in virtual time: reads discrete inputs (0x02) and input registers (0x04) every period, the coils
/// (0x01) and the variant (0x03) on their turn (every `TS200Driver.verifyEveryPeriods` periods, and all of them in
/// the first period after a connect or a failed exchange), knowing them in between from its own acknowledged
/// writes; writes each level coil that differs (0x05), INFEED/OUTFEED_ADVANCE once per request change (0x05), the
/// variant when it differs (0x06). The semantics of `TS200Driver.swift`, mirrored (that file is not shared code).
/// Thread: the engine's thread only.
final class VirtualTS200Driver {
    let link: VirtualLink
    let device: TS200Model
    private let bits: UnsafeMutableBufferPointer<UInt8>
    private let registers: UnsafeMutableBufferPointer<UInt16>
    private let single: UnsafeMutableBufferPointer<UInt16>
    private let coilByte: UnsafeMutableBufferPointer<UInt8>
    private var lastInfeedRequest: UInt32 = 0
    private var lastOutfeedRequest: UInt32 = 0
    /// Periods read since the last connect (`TS200Driver`'s read-back schedule).
    private var periodsSinceConnect: UInt64 = 0
    /// Advance coils written (for reports).
    private(set) var infeedIndexesWritten = 0

    private static let levelCoils = StationCoils.fixtureClamp.union(.leakTestStart).union(.lightTestStart)
        .union(.lampGreen).union(.lampAmber).union(.lampRed)

    init(device: TS200Model, link: VirtualLink) {
        self.device = device
        self.link = link
        bits = .allocate(capacity: max(StationCoils.count, StationSignals.count))
        bits.initialize(repeating: 0)
        registers = .allocate(capacity: 16)
        registers.initialize(repeating: 0)
        single = .allocate(capacity: 1)
        single.initialize(repeating: 0)
        coilByte = .allocate(capacity: 1)
        coilByte.initialize(repeating: 0)
    }

    deinit {
        bits.deallocate()
        registers.deallocate()
        single.deallocate()
        coilByte.deallocate()
    }

    /// `TS200Driver.read`.
    func read(into inputs: inout StationInputs, nowNanoseconds now: UInt64) {
        if !link.isConnected {
            guard link.maintainConnection(nowNanoseconds: now) else {
                inputs.link.state = .disconnected
                inputs.link.consecutiveFailures &+= 1
                return
            }
        }
        if inputs.link.state != .ok { periodsSinceConnect = 0 }
        do throws(ModbusError) {
            try readAll(into: &inputs, period: periodsSinceConnect, now)
            periodsSinceConnect &+= 1
            inputs.link.state = .ok
            inputs.link.detail = 0
            inputs.link.consecutiveFailures = 0
        } catch {
            inputs.link.record(error)
        }
    }

    private func readAll(into inputs: inout StationInputs, period: UInt64, _ now: UInt64) throws(ModbusError) {
        let device = self.device
        let inputBits = UnsafeMutableBufferPointer(rebasing: bits[0..<StationSignals.count])
        try link.perform(nowNanoseconds: now) { device.readBits(.discreteInputs, address: 0, into: inputBits) }
        var signals: UInt16 = 0
        for index in 0..<StationSignals.count where inputBits[index] != 0 { signals |= 1 << index }
        inputs.signals = StationSignals(rawValue: signals)

        let r = registers
        try link.perform(nowNanoseconds: now) { device.readRegisters(.inputRegisters, address: 0, into: r) }
        inputs.statusWord = r[0]
        inputs.faultCode = r[1]
        inputs.leakTestCount = r[2]
        inputs.leakRateHundredths = r[3]
        inputs.lightTestCount = r[4]
        inputs.luminousIntensityCandela = r[5]
        inputs.cutoffAngleHundredthsDegree = Int16(bitPattern: r[6])
        inputs.housingLot = UInt32(r[8]) << 16 | UInt32(r[9])
        inputs.ledModuleLot = UInt32(r[10]) << 16 | UInt32(r[11])
        inputs.lensLot = UInt32(r[12]) << 16 | UInt32(r[13])
        inputs.uptimeMilliseconds = UInt32(r[14]) << 16 | UInt32(r[15])

        let phase = period % TS200Driver.verifyEveryPeriods
        if period == 0 || phase == 0 {
            let coilBits = UnsafeMutableBufferPointer(rebasing: bits[0..<StationCoils.count])
            try link.perform(nowNanoseconds: now) { device.readBits(.coils, address: 0, into: coilBits) }
            var coils: UInt16 = 0
            for index in 0..<StationCoils.count where coilBits[index] != 0 { coils |= 1 << index }
            inputs.coils = StationCoils(rawValue: coils)
        }
        if period == 0 || phase == TS200Driver.verifyEveryPeriods / 2 {
            let variant = single
            try link.perform(nowNanoseconds: now) {
                device.readRegisters(.holdingRegisters, address: TS200Registers.variantAddress, into: variant)
            }
            inputs.variant = variant[0]
        }
    }

    /// `TS200Driver.write`.
    func write(_ outputs: StationOutputs, current inputs: inout StationInputs, nowNanoseconds now: UInt64) {
        guard link.isConnected, inputs.link.state == .ok else { return }
        do throws(ModbusError) {
            for address in 0..<StationCoils.count {
                let coil = StationCoils(rawValue: 1 << address)
                guard Self.levelCoils.contains(coil) else { continue }
                let wanted = outputs.coils.contains(coil)
                if wanted != inputs.coils.contains(coil) {
                    try writeCoil(address, wanted, now)
                    if wanted { inputs.coils.insert(coil) } else { inputs.coils.remove(coil) }
                }
            }
            if outputs.infeedRequests != lastInfeedRequest {
                try writeCoil(1, true, now)
                lastInfeedRequest = outputs.infeedRequests
                infeedIndexesWritten += 1
            }
            if outputs.outfeedRequests != lastOutfeedRequest {
                try writeCoil(4, true, now)
                lastOutfeedRequest = outputs.outfeedRequests
            }
            if outputs.variant != inputs.variant {
                let device = self.device
                single[0] = outputs.variant
                let value = UnsafeBufferPointer(single)
                try link.perform(nowNanoseconds: now) {
                    device.writeRegisters(address: TS200Registers.variantAddress, values: value)
                }
                inputs.variant = outputs.variant
            }
        } catch {
            inputs.link.record(error)
        }
    }

    private func writeCoil(_ address: Int, _ value: Bool, _ now: UInt64) throws(ModbusError) {
        let device = self.device
        coilByte[0] = value ? 1 : 0
        let buffer = UnsafeBufferPointer(coilByte)
        try link.perform(nowNanoseconds: now) { device.writeCoils(address: address, values: buffer) }
    }
}
