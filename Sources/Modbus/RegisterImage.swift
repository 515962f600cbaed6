import Synchronization

/// A simple `ModbusDevice`: four fixed-size tables starting at address 0, with optional hooks.
///
/// Every request runs under one lock, hooks included, so a request is atomic with respect to other requests
/// and to `withTables`. Hooks get the tables `inout` (they must not call back into this image: the lock is not
/// reentrant). For each write: address check (0x02) → `validateWrite` (its code, typically 0x03 or 0x06, and
/// nothing is written) → write → `afterWrite`. For each read: address check (0x02) → `beforeRead` → read.
/// 0x17 checks both ranges first, then runs the write steps, then the read steps.
///
/// Thread: any (locked inside). Hooks run on the calling thread (the server's thread) under the lock.
public final class RegisterImage: ModbusDevice, Sendable {
    /// The four tables. Bits are one per byte, 0 or 1.
    public struct Tables: Sendable, Equatable {
        public var coils: [UInt8]
        public var discreteInputs: [UInt8]
        public var holdingRegisters: [UInt16]
        public var inputRegisters: [UInt16]

        /// Number of entries of `table`.
        public func count(of table: ModbusTable) -> Int {
            switch table {
            case .coils: coils.count
            case .discreteInputs: discreteInputs.count
            case .holdingRegisters: holdingRegisters.count
            case .inputRegisters: inputRegisters.count
            }
        }
    }

    /// Checks a write before anything is written: `(tables, table, address, values)` → an exception code to
    /// reject the whole request, or nil. Coil values are given as 0 or 1.
    public typealias WriteValidator =
        @Sendable (_ tables: Tables, _ table: ModbusTable, _ address: Int, _ values: [UInt16])
        -> ModbusExceptionCode?
    /// Side effects after a write was applied: `(tables, table, address, values)`.
    public typealias WriteHook =
        @Sendable (_ tables: inout Tables, _ table: ModbusTable, _ address: Int, _ values: [UInt16]) -> Void
    /// Refreshes values before a read: `(tables, table, address, count)`.
    public typealias ReadHook =
        @Sendable (_ tables: inout Tables, _ table: ModbusTable, _ address: Int, _ count: Int) -> Void

    /// Function codes answered (all of `ModbusFunction` unless given at init).
    public let supportedFunctions: Set<ModbusFunction>
    private let validateWrite: WriteValidator?
    private let afterWrite: WriteHook?
    private let beforeRead: ReadHook?
    private let state: Mutex<Tables>

    /// Creates zero-filled tables of the given sizes (each at most 65,536 entries) and the hooks.
    /// Thread: any.
    public init(
        coils: Int = 0, discreteInputs: Int = 0, holdingRegisters: Int = 0, inputRegisters: Int = 0,
        supportedFunctions: Set<ModbusFunction> = Set(ModbusFunction.allCases),
        validateWrite: WriteValidator? = nil, afterWrite: WriteHook? = nil, beforeRead: ReadHook? = nil
    ) {
        func size(_ count: Int) -> Int { min(max(count, 0), ModbusLimits.addressSpace) }
        state = Mutex(
            Tables(
                coils: [UInt8](repeating: 0, count: size(coils)),
                discreteInputs: [UInt8](repeating: 0, count: size(discreteInputs)),
                holdingRegisters: [UInt16](repeating: 0, count: size(holdingRegisters)),
                inputRegisters: [UInt16](repeating: 0, count: size(inputRegisters))))
        self.supportedFunctions = supportedFunctions
        self.validateWrite = validateWrite
        self.afterWrite = afterWrite
        self.beforeRead = beforeRead
    }

    /// Reads or changes the tables atomically (without running the hooks). Thread: any.
    public func withTables<R: Sendable>(_ body: (inout Tables) -> R) -> R {
        state.withLock { tables in body(&tables) }
    }

    /// A copy of the tables. Thread: any.
    public var tables: Tables { state.withLock { $0 } }

    // MARK: ModbusDevice

    /// 0x01/0x02: address check, `beforeRead`, then the bits. Thread: any (the server's).
    public func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode?
    {
        guard table == .coils || table == .discreteInputs else { return .serverDeviceFailure }
        return state.withLock { tables in
            guard Self.inRange(tables, table, address, values.count) else { return .illegalDataAddress }
            beforeRead?(&tables, table, address, values.count)
            let source = table == .coils ? tables.coils : tables.discreteInputs
            for index in 0..<values.count { values[index] = source[address + index] == 0 ? 0 : 1 }
            return nil
        }
    }

    /// 0x03/0x04: address check, `beforeRead`, then the registers. Thread: any (the server's).
    public func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode?
    {
        guard table == .holdingRegisters || table == .inputRegisters else { return .serverDeviceFailure }
        return state.withLock { tables in
            guard Self.inRange(tables, table, address, values.count) else { return .illegalDataAddress }
            beforeRead?(&tables, table, address, values.count)
            let source = table == .holdingRegisters ? tables.holdingRegisters : tables.inputRegisters
            for index in 0..<values.count { values[index] = source[address + index] }
            return nil
        }
    }

    /// 0x05/0x0F: address check, `validateWrite`, write, `afterWrite`. Thread: any (the server's).
    public func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        let asWords = values.map { UInt16($0 == 0 ? 0 : 1) }
        return state.withLock { tables in
            guard Self.inRange(tables, .coils, address, values.count) else { return .illegalDataAddress }
            if let rejection = validateWrite?(tables, .coils, address, asWords) { return rejection }
            for (index, value) in asWords.enumerated() { tables.coils[address + index] = UInt8(value) }
            afterWrite?(&tables, .coils, address, asWords)
            return nil
        }
    }

    /// 0x06/0x10: address check, `validateWrite`, write, `afterWrite`. Thread: any (the server's).
    public func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        let words = Array(values)
        return state.withLock { tables in
            guard Self.inRange(tables, .holdingRegisters, address, words.count) else { return .illegalDataAddress }
            return Self.applyRegisterWrite(&tables, address, words, validateWrite, afterWrite)
        }
    }

    /// 0x17: both address checks, then the write steps, then the read steps. Thread: any (the server's).
    public func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        let words = Array(values)
        return state.withLock { tables in
            guard Self.inRange(tables, .holdingRegisters, writeAddress, words.count),
                Self.inRange(tables, .holdingRegisters, readAddress, readValues.count)
            else { return .illegalDataAddress }
            if let rejection = Self.applyRegisterWrite(&tables, writeAddress, words, validateWrite, afterWrite) {
                return rejection
            }
            beforeRead?(&tables, .holdingRegisters, readAddress, readValues.count)
            for index in 0..<readValues.count { readValues[index] = tables.holdingRegisters[readAddress + index] }
            return nil
        }
    }

    // MARK: Helpers

    private static func inRange(_ tables: Tables, _ table: ModbusTable, _ address: Int, _ count: Int) -> Bool {
        address >= 0 && count >= 0 && address + count <= tables.count(of: table)
    }

    private static func applyRegisterWrite(
        _ tables: inout Tables, _ address: Int, _ words: [UInt16],
        _ validate: WriteValidator?, _ after: WriteHook?
    ) -> ModbusExceptionCode? {
        if let rejection = validate?(tables, .holdingRegisters, address, words) { return rejection }
        for (index, value) in words.enumerated() { tables.holdingRegisters[address + index] = value }
        after?(&tables, .holdingRegisters, address, words)
        return nil
    }
}
