/// Modbus exception codes (Modbus Application Protocol Specification V1.1b3, §7).
public enum ModbusExceptionCode: UInt8, Sendable, CustomStringConvertible {
    case illegalFunction = 0x01
    case illegalDataAddress = 0x02
    case illegalDataValue = 0x03
    case serverDeviceFailure = 0x04
    case acknowledge = 0x05
    case serverDeviceBusy = 0x06
    case memoryParityError = 0x08
    case gatewayPathUnavailable = 0x0A
    case gatewayTargetFailedToRespond = 0x0B

    public var description: String {
        switch self {
        case .illegalFunction: "illegal function (0x01)"
        case .illegalDataAddress: "illegal data address (0x02)"
        case .illegalDataValue: "illegal data value (0x03)"
        case .serverDeviceFailure: "server device failure (0x04)"
        case .acknowledge: "acknowledge (0x05)"
        case .serverDeviceBusy: "server device busy (0x06)"
        case .memoryParityError: "memory parity error (0x08)"
        case .gatewayPathUnavailable: "gateway path unavailable (0x0A)"
        case .gatewayTargetFailedToRespond: "gateway target failed to respond (0x0B)"
        }
    }
}

/// Modbus function codes LampCell's devices use.
public enum ModbusFunction: UInt8, Sendable, CaseIterable {
    case readCoils = 0x01
    case readDiscreteInputs = 0x02
    case readHoldingRegisters = 0x03
    case readInputRegisters = 0x04
    case writeSingleCoil = 0x05
    case writeSingleRegister = 0x06
    case writeMultipleCoils = 0x0F
    case writeMultipleRegisters = 0x10
    case readWriteMultipleRegisters = 0x17
}

/// The four Modbus data tables.
public enum ModbusTable: Sendable {
    case coils, discreteInputs, holdingRegisters, inputRegisters
}

/// A Modbus device as a server sees it: tables of bits and registers with the device's own rules.
///
/// `ModbusTCPServer` does the transport (MBAP framing, unit-id filtering, connection limits) and checks,
/// in the order the Modbus specification sets, that the function is in `supportedFunctions` (else 0x01)
/// and that quantities and formats are valid (else 0x03). It then calls one method here, which checks the
/// addresses (0x02), the values (0x03) and whether the device is busy (0x06), in that order, and either
/// applies the whole request or nothing of it.
///
/// Thread: whoever owns the device. `ModbusTCPServer` calls these methods from its own thread, so a device it
/// serves is `Sendable` and synchronises inside (the simulator wraps its models in a locked adapter).
/// Methods must not keep the buffers. `ModbusTCPServer` reads `supportedFunctions` once, when it is created.
public protocol ModbusDevice: AnyObject {
    /// Function codes this device answers; any other is answered with exception 0x01.
    var supportedFunctions: Set<ModbusFunction> { get }

    /// Reads `values.count` bits of `table` (coils or discrete inputs) from `address`, one bit per byte (0 or 1).
    func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode?

    /// Reads `values.count` registers of `table` (holding or input) from `address`.
    func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode?

    /// Writes coils from `address`, one bit per byte (0 or 1); all or nothing.
    func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode?

    /// Writes holding registers from `address`; all or nothing.
    func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode?

    /// 0x17: checks both ranges first, then applies the write, then reads holding registers.
    func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode?
}
