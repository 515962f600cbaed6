import CModbus
import Glibc

/// Request limits of the Modbus Application Protocol (V1.1b3) that both the client and the server enforce.
public enum ModbusLimits {
    /// 0x01/0x02: bits per read.
    public static let maximumReadBits = 2000
    /// 0x0F: coils per write.
    public static let maximumWriteBits = 1968
    /// 0x03/0x04: registers per read.
    public static let maximumReadRegisters = 125
    /// 0x10: registers per write.
    public static let maximumWriteRegisters = 123
    /// 0x17: registers written.
    public static let maximumReadWriteWriteRegisters = 121
    /// 0x17: registers read.
    public static let maximumReadWriteReadRegisters = 125
    /// Size of the address space of each table.
    public static let addressSpace = 65_536
    /// Largest PDU (function code + data).
    public static let maximumPDUBytes = 253
    /// MBAP header bytes (transaction id, protocol id, length, unit id).
    public static let mbapHeaderBytes = 7
    /// Largest Modbus TCP ADU.
    public static let maximumADUBytes = 260
}

/// One Modbus request, with the caller's buffers for what it reads or writes (no allocation). The buffers must
/// stay valid until the request is complete (`ModbusClient.receive()` returned or threw).
public enum ModbusRequest {
    /// 0x01: `into.count` (1...2000) coils from `address`, one bit per byte (0 or 1).
    case readCoils(address: Int, into: UnsafeMutableBufferPointer<UInt8>)
    /// 0x02: `into.count` (1...2000) discrete inputs from `address`, one bit per byte.
    case readDiscreteInputs(address: Int, into: UnsafeMutableBufferPointer<UInt8>)
    /// 0x03: `into.count` (1...125) holding registers from `address`.
    case readHoldingRegisters(address: Int, into: UnsafeMutableBufferPointer<UInt16>)
    /// 0x04: `into.count` (1...125) input registers from `address`.
    case readInputRegisters(address: Int, into: UnsafeMutableBufferPointer<UInt16>)
    /// 0x05: one coil (sent as 0xFF00 or 0x0000).
    case writeSingleCoil(address: Int, value: Bool)
    /// 0x06: one holding register.
    case writeSingleRegister(address: Int, value: UInt16)
    /// 0x0F: `values.count` (1...1968) coils from `address`, one bit per byte (non-zero = on).
    case writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>)
    /// 0x10: `values.count` (1...123) holding registers from `address`.
    case writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>)
    /// 0x17: writes `values` (1...121) at `writeAddress`, then reads `into.count` (1...125) holding registers from
    /// `readAddress`, in one transaction (the device applies the write first).
    case writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>, readAddress: Int, into: UnsafeMutableBufferPointer<UInt16>)
}

/// A Modbus TCP client for one device (one unit id): the client's policy, over any `ModbusTransport`.
///
/// **Thread:** owned by one thread at a time; not safe for concurrent use. It may be created on one thread and
/// handed over to the thread that uses it (hence `@unchecked Sendable`); the owner then makes every call,
/// including reading the counters.
///
/// **Transports and clocks.** The plant uses `LibmodbusTCPTransport` with `MonotonicClock` (`init(host:port:…)`);
/// virtual-time runs use `InMemoryModbusTransport` with a `VirtualClock`. Everything below is the same code for
/// both.
///
/// **Requests** use caller-owned buffers and do not allocate. A request is either made whole (`readCoils`, …,
/// which block for at most the response timeout, plus the connect timeout when they have to (re)connect first) or
/// split (`send(_:)`, then `receive()`): a control period sends one request to every device first and then collects
/// the replies, so the period waits for the slowest device once rather than for every device in turn.
///
/// **Reply checks.** Every field of a reply is checked here: transaction id, protocol id 0, the MBAP length against
/// the frame, unit id, function code (or its exception), byte count or echo. Any mismatch is `.badData`.
///
/// **Resync policy.** After a `.timeout`, `.badData` or `.connectionLost` the client closes the connection at once.
/// A late reply to a timed-out request therefore lands on a dead socket and can never be read as the answer to
/// a later request (libmodbus issue #255: a stale reply sitting in the socket makes the next request fail with a
/// transaction-id mismatch, or worse, be answered with stale data). The next request reconnects first.
///
/// **Reconnect and backoff.** When not connected, a request (or `maintainConnection(nowNanoseconds:)`) attempts
/// to connect only once `nextAttemptNanoseconds` has passed; before that it throws `.notConnected` immediately,
/// never waiting. A failed attempt schedules the next one after `ReconnectPolicy`'s delay (jitter from a seeded
/// generator). A connection counts as established only once a reply (normal or exception) came back on it: a
/// device that accepts and closes at once (a device that is down, or one at its connection limit) keeps counting
/// as failed attempts, so it is not hammered. The first reply on a new connection resets the backoff. A connection
/// that had worked and then failed is retried immediately (the resync reconnect); if that fails too, the backoff
/// starts.
public final class ModbusClient: @unchecked Sendable {
    /// What moves the bytes.
    public let transport: any ModbusTransport
    /// The clock of every deadline and of the backoff.
    public let clock: any ModbusClock
    /// Unit id sent in every request (change it with `setUnitID(_:)`).
    public private(set) var unitID: UInt8
    /// Timeout for a complete reply, from the request's send.
    public let responseTimeoutNanoseconds: UInt64
    /// Timeout for a connection attempt.
    public let connectTimeoutNanoseconds: UInt64
    /// Backoff between failed connection attempts.
    public let reconnectPolicy: ReconnectPolicy

    /// Requests sent (successful or not; not those refused before sending).
    public private(set) var requestCount: UInt64 = 0
    /// Requests that timed out.
    public private(set) var timeoutCount: UInt64 = 0
    /// Requests that failed for any reason after being sent (timeouts and exceptions included).
    public private(set) var errorCount: UInt64 = 0
    /// Exception replies received.
    public private(set) var exceptionCount: UInt64 = 0
    /// Replies rejected by the checks (`.badData`).
    public private(set) var badReplyCount: UInt64 = 0
    /// Connection attempts made (successful or not).
    public private(set) var connectAttemptCount: UInt64 = 0
    /// Successful connections after the first one.
    public private(set) var reconnectCount: UInt64 = 0
    /// Failed attempts since the last connection that answered a request; drives the backoff.
    public private(set) var consecutiveFailures = 0
    /// Clock time before which no connection attempt is made (0: immediately).
    public private(set) var nextAttemptNanoseconds: UInt64 = 0
    /// Clock time at which the last connection attempt started (0 before any).
    public private(set) var lastAttemptNanoseconds: UInt64 = 0
    /// The backoff delay chosen after the last failed attempt (0 before any failure).
    public private(set) var lastBackoffDelayNanoseconds: UInt64 = 0

    /// Shortest accepted timeout (libmodbus' resolution is 1 µs).
    public static let minimumTimeoutNanoseconds: UInt64 = 1_000
    /// Longest accepted timeout.
    public static let maximumTimeoutNanoseconds: UInt64 = 60_000_000_000
    /// Largest unit id libmodbus sends over TCP besides 0xFF (it rejects 248...254).
    public static let maximumUnitID: UInt8 = 247

    /// The request ADU being built (MBAP header and PDU), `ModbusLimits.maximumADUBytes` bytes.
    private let requestFrame: UnsafeMutablePointer<UInt8>
    /// The reply ADU as the transport framed it, `ModbusLimits.maximumADUBytes` bytes.
    private let replyFrame: UnsafeMutablePointer<UInt8>
    /// Transaction id of the last request (incremented, wrapping, per request).
    private var transactionID: UInt16 = 0
    private var jitter: SplitMix64
    /// True once the current connection answered a request (normal or exception reply).
    private var connectionProven = false
    private var everConnected = false
    /// The owner called `close()`: no automatic reconnection until `connect()`.
    private var closedByOwner = false
    /// The request sent and not yet received, and when its reply is due at the latest.
    private var pending: ModbusRequest?
    public private(set) var pendingDeadlineNanoseconds: UInt64 = 0

    /// Creates a client over `transport`; does not connect (the first request, `connect()` or
    /// `maintainConnection` does).
    ///
    /// - Parameters:
    ///   - unitID: 0...247 or 255.
    ///   - jitterSeed: seed of the backoff jitter, so runs are reproducible.
    ///   - clock: the clock of the deadlines; `MonotonicClock.shared` for a transport over real sockets.
    /// - Throws: `.invalidArgument` for a bad unit id or timeout.
    /// Thread: any; the client then belongs to one thread at a time.
    public init(
        transport: any ModbusTransport, unitID: UInt8 = 1, responseTimeoutNanoseconds: UInt64,
        connectTimeoutNanoseconds: UInt64, reconnect: ReconnectPolicy = .default, jitterSeed: UInt64 = 0x5EED_5EED,
        clock: any ModbusClock = MonotonicClock.shared
    ) throws(ModbusError) {
        let timeouts = Self.minimumTimeoutNanoseconds...Self.maximumTimeoutNanoseconds
        guard timeouts.contains(responseTimeoutNanoseconds) else {
            throw .invalidArgument("responseTimeoutNanoseconds \(responseTimeoutNanoseconds) outside \(timeouts)")
        }
        guard timeouts.contains(connectTimeoutNanoseconds) else {
            throw .invalidArgument("connectTimeoutNanoseconds \(connectTimeoutNanoseconds) outside \(timeouts)")
        }
        guard unitID <= Self.maximumUnitID || unitID == 0xFF else {
            throw .invalidArgument(
                "unit id \(unitID) for \(transport.peerDescription): libmodbus accepts 0...247 and 255")
        }
        self.transport = transport
        self.clock = clock
        requestFrame = .allocate(capacity: ModbusLimits.maximumADUBytes)
        requestFrame.initialize(repeating: 0, count: ModbusLimits.maximumADUBytes)
        replyFrame = .allocate(capacity: ModbusLimits.maximumADUBytes)
        replyFrame.initialize(repeating: 0, count: ModbusLimits.maximumADUBytes)
        self.unitID = unitID
        self.responseTimeoutNanoseconds = responseTimeoutNanoseconds
        self.connectTimeoutNanoseconds = connectTimeoutNanoseconds
        self.reconnectPolicy = reconnect
        self.jitter = SplitMix64(seed: jitterSeed)
    }

    /// A client of the device at `host`:`port` over libmodbus TCP, on CLOCK_MONOTONIC (the plant).
    ///
    /// - Parameters:
    ///   - host: an IPv4 literal (connects without name resolution), or a host name resolved at each connect.
    /// - Throws: `.invalidArgument` for a bad port, unit id or timeout, or when libmodbus refuses the host.
    /// Thread: any.
    public convenience init(
        host: String, port: Int, unitID: UInt8 = 1, responseTimeoutNanoseconds: UInt64,
        connectTimeoutNanoseconds: UInt64, reconnect: ReconnectPolicy = .default, jitterSeed: UInt64 = 0x5EED_5EED
    ) throws(ModbusError) {
        try self.init(
            transport: try LibmodbusTCPTransport(host: host, port: port), unitID: unitID,
            responseTimeoutNanoseconds: responseTimeoutNanoseconds,
            connectTimeoutNanoseconds: connectTimeoutNanoseconds, reconnect: reconnect, jitterSeed: jitterSeed)
    }

    deinit {
        transport.close()
        requestFrame.deallocate()
        replyFrame.deallocate()
    }

    /// What the client talks to, for messages.
    public var peerDescription: String { transport.peerDescription }

    /// True while a connection is open.
    public var isConnected: Bool { transport.isOpen }

    /// True between `send(_:)` and `receive()`.
    public var hasPendingRequest: Bool { pending != nil }

    /// The transport's readiness descriptor (see `ModbusTransport.readinessDescriptor`).
    public var readinessDescriptor: Int32 { transport.readinessDescriptor }

    // MARK: Connection

    /// Connects now, ignoring the backoff, and re-enables automatic reconnection after `close()`.
    /// Returns at once when already connected. Blocks at most the connect timeout. Thread: the owner.
    public func connect() throws(ModbusError) {
        closedByOwner = false
        if isConnected { return }
        try attemptConnect(nowNanoseconds: clock.nowNanoseconds)
    }

    /// Closes the connection and stops automatic reconnection until `connect()`. Thread: the owner.
    public func close() {
        closedByOwner = true
        pending = nil
        transport.close()
    }

    /// Keeps the connection up without sending a request: when disconnected and `nowNanoseconds` (of `clock`)
    /// has reached `nextAttemptNanoseconds`, attempts one connection (blocking at most the connect timeout).
    /// Never waits for the backoff. Returns whether the client is connected afterwards. Thread: the owner.
    @discardableResult
    public func maintainConnection(nowNanoseconds: UInt64) -> Bool {
        if isConnected { return true }
        if closedByOwner || nowNanoseconds < nextAttemptNanoseconds { return false }
        do {
            try attemptConnect(nowNanoseconds: nowNanoseconds)
        } catch {
            return false
        }
        return true
    }

    /// Changes the unit id of the following requests. Thread: the owner.
    public func setUnitID(_ newUnitID: UInt8) throws(ModbusError) {
        guard newUnitID <= Self.maximumUnitID || newUnitID == 0xFF else {
            throw .invalidArgument(
                "unit id \(newUnitID) for \(peerDescription): libmodbus accepts 0...247 and 255")
        }
        unitID = newUnitID
    }

    private func attemptConnect(nowNanoseconds: UInt64) throws(ModbusError) {
        connectAttemptCount += 1
        lastAttemptNanoseconds = nowNanoseconds
        if let code = transport.open(deadlineNanoseconds: nowNanoseconds &+ connectTimeoutNanoseconds) {
            recordFailedAttempt()
            throw .connectFailed(errno: code)
        }
        connectionProven = false
        if everConnected { reconnectCount += 1 }
        everConnected = true
    }

    private func recordFailedAttempt() {
        consecutiveFailures += 1
        let delay = reconnectPolicy.delayNanoseconds(
            consecutiveFailures: consecutiveFailures, unitRandom: jitter.nextUnit())
        lastBackoffDelayNanoseconds = delay
        nextAttemptNanoseconds = lastAttemptNanoseconds &+ delay
    }

    /// Ensures a connection before a request, honouring the backoff.
    private func ensureConnected() throws(ModbusError) {
        if isConnected { return }
        if closedByOwner { throw .notConnected }
        let now = clock.nowNanoseconds
        if now < nextAttemptNanoseconds { throw .notConnected }
        try attemptConnect(nowNanoseconds: now)
    }

    // MARK: Split transactions

    /// Checks `request`, (re)connects when needed and allowed, and sends it with a fresh MBAP header (transaction
    /// id, protocol 0, length, unit id). Its reply is collected by `receive()`, which must come before the next
    /// `send`. Throws what the request would throw before a reply (`.invalidArgument`, `.notConnected`,
    /// `.connectFailed`, `.connectionLost`, `.timeout`); nothing is pending then.
    /// Thread: the owner. Does not allocate.
    public func send(_ request: ModbusRequest) throws(ModbusError) {
        precondition(pending == nil, "send() with a request pending on \(peerDescription): receive() first")
        let pduLength = try encode(request)
        try ensureConnected()
        requestCount += 1
        transactionID &+= 1
        let frame = requestFrame
        frame[0] = UInt8(truncatingIfNeeded: transactionID >> 8)
        frame[1] = UInt8(truncatingIfNeeded: transactionID)
        frame[2] = 0
        frame[3] = 0
        frame[4] = UInt8(truncatingIfNeeded: (pduLength + 1) >> 8)
        frame[5] = UInt8(truncatingIfNeeded: pduLength + 1)
        frame[6] = unitID
        let now = clock.nowNanoseconds
        let deadline = now &+ responseTimeoutNanoseconds
        let length = ModbusLimits.mbapHeaderBytes + pduLength
        if let code = transport.send(UnsafeBufferPointer(start: frame, count: length), deadlineNanoseconds: deadline) {
            throw fail(code == ETIMEDOUT ? .timeout : .connectionLost(errno: code))
        }
        pending = request
        pendingDeadlineNanoseconds = deadline
    }

    /// Collects the reply of the request `send(_:)` sent, waiting until its deadline at most, checks it in full and
    /// decodes what it read into the request's buffers. Applies the error and resync policy.
    /// Thread: the owner. Does not allocate.
    public func receive() throws(ModbusError) {
        guard let request = pending else {
            preconditionFailure("receive() on \(peerDescription) with no request pending")
        }
        pending = nil
        let buffer = UnsafeMutableBufferPointer(start: replyFrame, count: ModbusLimits.maximumADUBytes)
        let length = transport.receive(into: buffer, deadlineNanoseconds: pendingDeadlineNanoseconds)
        guard length >= 0 else { throw fail(ModbusError(requestErrno: Int32(-length))) }
        if let problem = checkReply(length: length) { throw fail(problem) }
        proveConnection()
        decode(request)
    }

    /// Books a failed transaction (after its request was sent) and returns the error to throw.
    private func fail(_ failure: ModbusError) -> ModbusError {
        var error = failure
        errorCount += 1
        switch error {
        case .exception, .unknownException:
            exceptionCount += 1
            proveConnection()
        case .timeout, .badData, .connectionLost:
            if case .timeout = error { timeoutCount += 1 }
            if case .badData = error { badReplyCount += 1 }
            dropConnection()
        case .notConnected, .connectFailed, .invalidArgument:
            error = .connectionLost(errno: EIO)
            dropConnection()
        }
        return error
    }

    /// One whole transaction. Thread: the owner.
    private func transact(_ request: ModbusRequest) throws(ModbusError) {
        try send(request)
        try receive()
    }

    // MARK: Encoding and decoding

    /// Checks the request's arguments and writes its PDU into `requestFrame[7...]`; returns the PDU's length.
    private func encode(_ request: ModbusRequest) throws(ModbusError) -> Int {
        switch request {
        case .readCoils(let address, let values):
            try checkRange("read coils", address: address, count: values.count, limit: ModbusLimits.maximumReadBits)
            return readRequest(0x01, address: address, count: values.count)
        case .readDiscreteInputs(let address, let values):
            try checkRange(
                "read discrete inputs", address: address, count: values.count, limit: ModbusLimits.maximumReadBits)
            return readRequest(0x02, address: address, count: values.count)
        case .readHoldingRegisters(let address, let values):
            try checkRange(
                "read holding registers", address: address, count: values.count,
                limit: ModbusLimits.maximumReadRegisters)
            return readRequest(0x03, address: address, count: values.count)
        case .readInputRegisters(let address, let values):
            try checkRange(
                "read input registers", address: address, count: values.count,
                limit: ModbusLimits.maximumReadRegisters)
            return readRequest(0x04, address: address, count: values.count)
        case .writeSingleCoil(let address, let value):
            try checkRange("write single coil", address: address, count: 1, limit: 1)
            requestFrame[7] = 0x05
            put(address, at: 8)
            put(value ? 0xFF00 : 0x0000, at: 10)
            return 5
        case .writeSingleRegister(let address, let value):
            try checkRange("write single register", address: address, count: 1, limit: 1)
            requestFrame[7] = 0x06
            put(address, at: 8)
            put(Int(value), at: 10)
            return 5
        case .writeCoils(let address, let values):
            try checkRange("write coils", address: address, count: values.count, limit: ModbusLimits.maximumWriteBits)
            requestFrame[7] = 0x0F
            put(address, at: 8)
            put(values.count, at: 10)
            let byteCount = (values.count + 7) / 8
            requestFrame[12] = UInt8(byteCount)
            for index in 0..<byteCount { requestFrame[13 + index] = 0 }
            for index in 0..<values.count where values[index] != 0 {
                requestFrame[13 + index / 8] |= 1 << UInt8(index % 8)
            }
            return 6 + byteCount
        case .writeRegisters(let address, let values):
            try checkRange(
                "write registers", address: address, count: values.count, limit: ModbusLimits.maximumWriteRegisters)
            requestFrame[7] = 0x10
            put(address, at: 8)
            put(values.count, at: 10)
            requestFrame[12] = UInt8(2 * values.count)
            for index in 0..<values.count { put(Int(values[index]), at: 13 + 2 * index) }
            return 6 + 2 * values.count
        case .writeAndReadRegisters(let writeAddress, let values, let readAddress, let readValues):
            try checkRange(
                "write/read registers (write part)", address: writeAddress, count: values.count,
                limit: ModbusLimits.maximumReadWriteWriteRegisters)
            try checkRange(
                "write/read registers (read part)", address: readAddress, count: readValues.count,
                limit: ModbusLimits.maximumReadWriteReadRegisters)
            requestFrame[7] = 0x17
            put(readAddress, at: 8)
            put(readValues.count, at: 10)
            put(writeAddress, at: 12)
            put(values.count, at: 14)
            requestFrame[16] = UInt8(2 * values.count)
            for index in 0..<values.count { put(Int(values[index]), at: 17 + 2 * index) }
            return 10 + 2 * values.count
        }
    }

    /// Decodes a checked reply into the request's buffers.
    private func decode(_ request: ModbusRequest) {
        switch request {
        case .readCoils(_, let values), .readDiscreteInputs(_, let values):
            for index in values.indices { values[index] = (replyFrame[9 + index / 8] >> UInt8(index % 8)) & 1 }
        case .readHoldingRegisters(_, let values), .readInputRegisters(_, let values),
            .writeAndReadRegisters(_, _, _, let values):
            for index in values.indices {
                values[index] = UInt16(replyFrame[9 + 2 * index]) << 8 | UInt16(replyFrame[10 + 2 * index])
            }
        case .writeSingleCoil, .writeSingleRegister, .writeCoils, .writeRegisters:
            break
        }
    }

    /// nil when the reply in `replyFrame` (`length` bytes) answers the request in `requestFrame`; otherwise the
    /// error: the device's exception, or `.badData` for anything malformed.
    private func checkReply(length: Int) -> ModbusError? {
        let request = requestFrame
        let reply = replyFrame
        let header = ModbusLimits.mbapHeaderBytes
        let bad = ModbusError.badData(errno: Int32(LAMPCELL_EMBBADDATA))
        guard length >= header + 2, length <= ModbusLimits.maximumADUBytes else { return bad }
        // MBAP: same transaction id, protocol 0, a length that matches the frame, the unit asked.
        guard reply[0] == request[0], reply[1] == request[1], reply[2] == 0, reply[3] == 0,
            Int(reply[4]) << 8 | Int(reply[5]) == length - 6
        else { return bad }
        guard reply[6] == request[6] else { return .badData(errno: Int32(LAMPCELL_EMBBADSLAVE)) }
        let function = request[7]
        if reply[7] == function | 0x80 {
            guard length == header + 2 else { return bad }
            let code = reply[8]
            return ModbusExceptionCode(rawValue: code).map(ModbusError.exception) ?? .unknownException(rawCode: code)
        }
        guard reply[7] == function else { return bad }
        func word(_ frame: UnsafeMutablePointer<UInt8>, _ offset: Int) -> Int {
            Int(frame[offset]) << 8 | Int(frame[offset + 1])
        }
        switch function {
        case 0x01, 0x02:
            let count = word(request, 10)
            guard Int(reply[8]) == (count + 7) / 8, length == header + 2 + Int(reply[8]) else { return bad }
        case 0x03, 0x04:
            let count = word(request, 10)
            guard Int(reply[8]) == 2 * count, length == header + 2 + Int(reply[8]) else { return bad }
        case 0x17:
            let count = word(request, 10)  // read quantity
            guard Int(reply[8]) == 2 * count, length == header + 2 + Int(reply[8]) else { return bad }
        case 0x05, 0x06, 0x0F, 0x10:
            // The echo: address and value (0x05, 0x06) or address and quantity (0x0F, 0x10).
            guard length == header + 5 else { return bad }
            for offset in 8..<12 where reply[offset] != request[offset] { return bad }
        default:
            return bad
        }
        return nil
    }

    /// Puts a 16-bit big-endian value into the request PDU at `offset` (from the frame's start).
    @inline(__always)
    private func put(_ value: Int, at offset: Int) {
        requestFrame[offset] = UInt8(truncatingIfNeeded: value >> 8)
        requestFrame[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// A read request (0x01…0x04): function, address, quantity.
    private func readRequest(_ function: UInt8, address: Int, count: Int) -> Int {
        requestFrame[7] = function
        put(address, at: 8)
        put(count, at: 10)
        return 5
    }

    private func proveConnection() {
        if !connectionProven {
            connectionProven = true
            consecutiveFailures = 0
        }
    }

    /// Closes the connection after a transport failure. A proven connection is retried at once (resync); one that
    /// never answered counts as a failed attempt of the backoff.
    private func dropConnection() {
        transport.close()
        if connectionProven {
            nextAttemptNanoseconds = 0
        } else {
            recordFailedAttempt()
        }
    }

    // MARK: Argument checks

    private func checkRange(_ request: StaticString, address: Int, count: Int, limit: Int) throws(ModbusError) {
        guard count >= 1 && count <= limit else {
            throw .invalidArgument("\(request) at \(address): count \(count) outside 1...\(limit)")
        }
        guard address >= 0 && address + count <= ModbusLimits.addressSpace else {
            throw .invalidArgument("\(request): address \(address) + count \(count) outside 0...65536")
        }
    }

    // MARK: Whole requests (caller-owned buffers, no allocation)

    /// 0x03: reads `values.count` (1...125) holding registers from `address`. Thread: the owner.
    public func readHoldingRegisters(address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        throws(ModbusError)
    {
        try transact(.readHoldingRegisters(address: address, into: values))
    }

    /// 0x04: reads `values.count` (1...125) input registers from `address`. Thread: the owner.
    public func readInputRegisters(address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        throws(ModbusError)
    {
        try transact(.readInputRegisters(address: address, into: values))
    }

    /// 0x01: reads `values.count` (1...2000) coils from `address`, one bit per byte (0 or 1). Thread: the owner.
    public func readCoils(address: Int, into values: UnsafeMutableBufferPointer<UInt8>) throws(ModbusError) {
        try transact(.readCoils(address: address, into: values))
    }

    /// 0x02: reads `values.count` (1...2000) discrete inputs from `address`, one bit per byte. Thread: the owner.
    public func readDiscreteInputs(address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        throws(ModbusError)
    {
        try transact(.readDiscreteInputs(address: address, into: values))
    }

    /// 0x06: writes one holding register. Thread: the owner.
    public func writeSingleRegister(address: Int, value: UInt16) throws(ModbusError) {
        try transact(.writeSingleRegister(address: address, value: value))
    }

    /// 0x10: writes `values.count` (1...123) holding registers from `address`. Thread: the owner.
    public func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) throws(ModbusError) {
        try transact(.writeRegisters(address: address, values: values))
    }

    /// 0x05: writes one coil (sent as 0xFF00 or 0x0000). Thread: the owner.
    public func writeSingleCoil(address: Int, value: Bool) throws(ModbusError) {
        try transact(.writeSingleCoil(address: address, value: value))
    }

    /// 0x0F: writes `values.count` (1...1968) coils from `address`, one bit per byte (non-zero = on).
    /// Thread: the owner.
    public func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) throws(ModbusError) {
        try transact(.writeCoils(address: address, values: values))
    }

    /// 0x17: writes `values` (1...121 registers) at `writeAddress`, then reads `readValues.count` (1...125)
    /// holding registers from `readAddress`, in one transaction (the device applies the write first).
    /// Thread: the owner.
    public func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) throws(ModbusError) {
        try transact(
            .writeAndReadRegisters(writeAddress: writeAddress, values: values, readAddress: readAddress, into: readValues))
    }
}

// MARK: Array conveniences (tests and non-real-time callers)

extension ModbusClient {
    /// 0x03 into an array (its count is the quantity). Thread: the owner.
    public func readHoldingRegisters(address: Int, into values: inout [UInt16]) throws(ModbusError) {
        try withMutableBuffer(&values) { (buffer) throws(ModbusError) in
            try readHoldingRegisters(address: address, into: buffer)
        }
    }

    /// 0x04 into an array (its count is the quantity). Thread: the owner.
    public func readInputRegisters(address: Int, into values: inout [UInt16]) throws(ModbusError) {
        try withMutableBuffer(&values) { (buffer) throws(ModbusError) in
            try readInputRegisters(address: address, into: buffer)
        }
    }

    /// 0x01 into an array (its count is the quantity). Thread: the owner.
    public func readCoils(address: Int, into values: inout [UInt8]) throws(ModbusError) {
        try withMutableBuffer(&values) { (buffer) throws(ModbusError) in
            try readCoils(address: address, into: buffer)
        }
    }

    /// 0x02 into an array (its count is the quantity). Thread: the owner.
    public func readDiscreteInputs(address: Int, into values: inout [UInt8]) throws(ModbusError) {
        try withMutableBuffer(&values) { (buffer) throws(ModbusError) in
            try readDiscreteInputs(address: address, into: buffer)
        }
    }

    /// 0x10 from an array. Thread: the owner.
    public func writeRegisters(address: Int, values: [UInt16]) throws(ModbusError) {
        try withBuffer(values) { (buffer) throws(ModbusError) in
            try writeRegisters(address: address, values: buffer)
        }
    }

    /// 0x0F from an array (one bit per element). Thread: the owner.
    public func writeCoils(address: Int, values: [UInt8]) throws(ModbusError) {
        try withBuffer(values) { (buffer) throws(ModbusError) in
            try writeCoils(address: address, values: buffer)
        }
    }

    /// 0x17 with arrays. Thread: the owner.
    public func writeAndReadRegisters(
        writeAddress: Int, values: [UInt16], readAddress: Int, into readValues: inout [UInt16]
    ) throws(ModbusError) {
        try withBuffer(values) { (source) throws(ModbusError) in
            try withMutableBuffer(&readValues) { (destination) throws(ModbusError) in
                try writeAndReadRegisters(
                    writeAddress: writeAddress, values: source, readAddress: readAddress, into: destination)
            }
        }
    }
}

@inline(__always)
private func withBuffer<T>(_ array: [T], _ body: (UnsafeBufferPointer<T>) throws(ModbusError) -> Void)
    throws(ModbusError)
{
    var failure: ModbusError?
    array.withUnsafeBufferPointer { buffer in
        do throws(ModbusError) { try body(buffer) } catch { failure = error }
    }
    if let failure { throw failure }
}

@inline(__always)
private func withMutableBuffer<T>(
    _ array: inout [T], _ body: (UnsafeMutableBufferPointer<T>) throws(ModbusError) -> Void
) throws(ModbusError) {
    var failure: ModbusError?
    array.withUnsafeMutableBufferPointer { buffer in
        do throws(ModbusError) { try body(buffer) } catch { failure = error }
    }
    if let failure { throw failure }
}
