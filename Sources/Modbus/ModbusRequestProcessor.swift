/// Answers one Modbus TCP request ADU for one `ModbusDevice`: the server side of the protocol, without sockets.
///
/// `ModbusTCPServer` frames requests off its sockets and hands each to this; `InMemoryModbusTransport` hands it
/// the bytes a `ModbusClient` sent. So a device model answers the same bytes the same way over both.
///
/// Per request: protocol id not 0, or unit id not `unitID` (broadcast 0 included) → no reply at all. Then, in the
/// datasheets' precedence: function not supported by the device → 0x01; quantity or format invalid per the
/// Modbus specification → 0x03; then one device call, which checks address (0x02), value (0x03) and busy (0x06).
/// Replies echo the transaction id; bits are packed LSB first.
///
/// Thread: one caller at a time (its scratch buffers are reused); the device's methods are called on it.
/// Does not allocate after `init`.
public final class ModbusRequestProcessor: @unchecked Sendable {
    /// What became of one request.
    public enum Outcome: Equatable, Sendable {
        /// A normal reply of `length` bytes is in the reply buffer.
        case reply(length: Int)
        /// An exception reply of `length` bytes is in the reply buffer.
        case exception(length: Int)
        /// No reply: another unit id, broadcast, or protocol id not 0.
        case ignored
    }

    /// Unit id answered.
    public let unitID: UInt8
    /// The device; called on the caller's thread.
    public let device: any ModbusDevice
    /// Bit n set: function code n is supported (read once at init).
    private let supportedFunctionMask: UInt64
    private let bitScratch = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: ModbusLimits.maximumReadBits)
    private let registerScratch = UnsafeMutableBufferPointer<UInt16>.allocate(
        capacity: ModbusLimits.maximumReadRegisters)
    private let writeScratch = UnsafeMutableBufferPointer<UInt16>.allocate(
        capacity: ModbusLimits.maximumWriteRegisters)

    /// Reads `device.supportedFunctions` once. Thread: any.
    public init(unitID: UInt8, device: any ModbusDevice) {
        self.unitID = unitID
        self.device = device
        var mask: UInt64 = 0
        for function in device.supportedFunctions { mask |= 1 << UInt64(function.rawValue) }
        supportedFunctionMask = mask
        bitScratch.initialize(repeating: 0)
        registerScratch.initialize(repeating: 0)
        writeScratch.initialize(repeating: 0)
    }

    deinit {
        bitScratch.deallocate()
        registerScratch.deallocate()
        writeScratch.deallocate()
    }

    /// Answers the complete request ADU `frame` (MBAP header whose length matches the frame, then the PDU) into
    /// `reply` (`ModbusLimits.maximumADUBytes` bytes). The caller has framed it by the MBAP length.
    public func process(_ frame: UnsafeBufferPointer<UInt8>, into reply: UnsafeMutableBufferPointer<UInt8>)
        -> Outcome
    {
        let header = ModbusLimits.mbapHeaderBytes
        precondition(frame.count > header && frame.count <= ModbusLimits.maximumADUBytes, "a framed request ADU")
        precondition(reply.count >= ModbusLimits.maximumADUBytes, "a reply buffer holds a whole ADU")
        let protocolID = UInt16(frame[2]) << 8 | UInt16(frame[3])
        guard protocolID == 0, frame[6] == unitID else { return .ignored }
        let pdu = UnsafeBufferPointer(rebasing: frame[header...])
        let output = UnsafeMutableBufferPointer(rebasing: reply[header...])
        let (pduLength, isException) = respond(to: pdu, into: output)
        reply[0] = frame[0]
        reply[1] = frame[1]
        reply[2] = 0
        reply[3] = 0
        reply[4] = UInt8((pduLength + 1) >> 8)
        reply[5] = UInt8((pduLength + 1) & 0xFF)
        reply[6] = unitID
        return isException ? .exception(length: header + pduLength) : .reply(length: header + pduLength)
    }

    private func respond(to pdu: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>)
        -> (length: Int, isException: Bool)
    {
        let code = pdu[0]
        func exception(_ exceptionCode: ModbusExceptionCode) -> (Int, Bool) {
            out[0] = code | 0x80
            out[1] = exceptionCode.rawValue
            return (2, true)
        }
        func word(_ offset: Int) -> Int { Int(pdu[offset]) << 8 | Int(pdu[offset + 1]) }
        func putWord(_ value: Int, at offset: Int) {
            out[offset] = UInt8(truncatingIfNeeded: value >> 8)
            out[offset + 1] = UInt8(truncatingIfNeeded: value)
        }

        guard code < 64, supportedFunctionMask & (1 << UInt64(code)) != 0, let function = ModbusFunction(rawValue: code)
        else { return exception(.illegalFunction) }

        switch function {
        case .readCoils, .readDiscreteInputs:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            let quantity = word(3)
            guard (1...ModbusLimits.maximumReadBits).contains(quantity) else { return exception(.illegalDataValue) }
            let bits = UnsafeMutableBufferPointer(rebasing: bitScratch[0..<quantity])
            let table: ModbusTable = function == .readCoils ? .coils : .discreteInputs
            if let failure = device.readBits(table, address: word(1), into: bits) { return exception(failure) }
            let byteCount = (quantity + 7) / 8
            out[0] = code
            out[1] = UInt8(byteCount)
            for index in 0..<byteCount { out[2 + index] = 0 }
            for index in 0..<quantity where bits[index] != 0 { out[2 + index / 8] |= 1 << UInt8(index % 8) }
            return (2 + byteCount, false)

        case .readHoldingRegisters, .readInputRegisters:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            let quantity = word(3)
            guard (1...ModbusLimits.maximumReadRegisters).contains(quantity) else {
                return exception(.illegalDataValue)
            }
            let registers = UnsafeMutableBufferPointer(rebasing: registerScratch[0..<quantity])
            let table: ModbusTable = function == .readHoldingRegisters ? .holdingRegisters : .inputRegisters
            if let failure = device.readRegisters(table, address: word(1), into: registers) {
                return exception(failure)
            }
            out[0] = code
            out[1] = UInt8(2 * quantity)
            for index in 0..<quantity { putWord(Int(registers[index]), at: 2 + 2 * index) }
            return (2 + 2 * quantity, false)

        case .writeSingleCoil:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            let value = word(3)
            guard value == 0x0000 || value == 0xFF00 else { return exception(.illegalDataValue) }
            var bit: UInt8 = value == 0 ? 0 : 1
            let failure = withUnsafePointer(to: &bit) {
                device.writeCoils(address: word(1), values: UnsafeBufferPointer(start: $0, count: 1))
            }
            if let failure { return exception(failure) }
            for index in 0..<5 { out[index] = pdu[index] }
            return (5, false)

        case .writeSingleRegister:
            guard pdu.count == 5 else { return exception(.illegalDataValue) }
            var value = UInt16(word(3))
            let failure = withUnsafePointer(to: &value) {
                device.writeRegisters(address: word(1), values: UnsafeBufferPointer(start: $0, count: 1))
            }
            if let failure { return exception(failure) }
            for index in 0..<5 { out[index] = pdu[index] }
            return (5, false)

        case .writeMultipleCoils:
            guard pdu.count >= 6 else { return exception(.illegalDataValue) }
            let quantity = word(3)
            let byteCount = Int(pdu[5])
            guard (1...ModbusLimits.maximumWriteBits).contains(quantity), byteCount == (quantity + 7) / 8,
                pdu.count == 6 + byteCount
            else { return exception(.illegalDataValue) }
            let bits = UnsafeMutableBufferPointer(rebasing: bitScratch[0..<quantity])
            for index in 0..<quantity { bits[index] = (pdu[6 + index / 8] >> UInt8(index % 8)) & 1 }
            if let failure = device.writeCoils(address: word(1), values: UnsafeBufferPointer(bits)) {
                return exception(failure)
            }
            for index in 0..<5 { out[index] = pdu[index] }
            return (5, false)

        case .writeMultipleRegisters:
            guard pdu.count >= 6 else { return exception(.illegalDataValue) }
            let quantity = word(3)
            let byteCount = Int(pdu[5])
            guard (1...ModbusLimits.maximumWriteRegisters).contains(quantity), byteCount == 2 * quantity,
                pdu.count == 6 + byteCount
            else { return exception(.illegalDataValue) }
            let values = UnsafeMutableBufferPointer(rebasing: writeScratch[0..<quantity])
            for index in 0..<quantity { values[index] = UInt16(word(6 + 2 * index)) }
            if let failure = device.writeRegisters(address: word(1), values: UnsafeBufferPointer(values)) {
                return exception(failure)
            }
            for index in 0..<5 { out[index] = pdu[index] }
            return (5, false)

        case .readWriteMultipleRegisters:
            guard pdu.count >= 10 else { return exception(.illegalDataValue) }
            let readQuantity = word(3)
            let writeQuantity = word(7)
            let byteCount = Int(pdu[9])
            guard (1...ModbusLimits.maximumReadWriteReadRegisters).contains(readQuantity),
                (1...ModbusLimits.maximumReadWriteWriteRegisters).contains(writeQuantity),
                byteCount == 2 * writeQuantity, pdu.count == 10 + byteCount
            else { return exception(.illegalDataValue) }
            let values = UnsafeMutableBufferPointer(rebasing: writeScratch[0..<writeQuantity])
            for index in 0..<writeQuantity { values[index] = UInt16(word(10 + 2 * index)) }
            let registers = UnsafeMutableBufferPointer(rebasing: registerScratch[0..<readQuantity])
            if let failure = device.writeAndReadRegisters(
                writeAddress: word(5), values: UnsafeBufferPointer(values),
                readAddress: word(1), into: registers)
            {
                return exception(failure)
            }
            out[0] = code
            out[1] = UInt8(2 * readQuantity)
            for index in 0..<readQuantity { putWord(Int(registers[index]), at: 2 + 2 * index) }
            return (2 + 2 * readQuantity, false)
        }
    }
}
