import CModbus
import CRealtime
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

/// A Modbus TCP client for one device (one unit id), over libmodbus 3.1.6.
///
/// **Thread:** owned by one thread at a time; not safe for concurrent use. It may be created on one thread and
/// handed over to the thread that uses it (hence `@unchecked Sendable`); the owner then makes every call,
/// including reading the counters.
///
/// **Requests** use caller-owned buffers and do not allocate. Each blocks for at most the response timeout, plus
/// the connect timeout when the request has to (re)connect first.
///
/// **Resync policy.** After a `.timeout`, `.badData` or `.connectionLost` the client closes the socket at once.
/// A late reply to a timed-out request therefore lands on a dead socket and can never be read as the answer to
/// a later request (libmodbus issue #255: a stale reply sitting in the socket makes the next request fail with a
/// transaction-id mismatch, or worse, be answered with stale data). The next request reconnects first (about
/// 100 µs on loopback). libmodbus' own error recovery is set to NONE (no endless LINK recovery, no flush sleeps).
///
/// **Reconnect and backoff.** When not connected, a request (or `maintainConnection(nowNanoseconds:)`) attempts
/// to connect only once `nextAttemptNanoseconds` has passed; before that it throws `.notConnected` immediately,
/// never waiting. A failed attempt schedules the next one after `ReconnectPolicy`'s delay. A connection counts
/// as established only once a reply (normal or exception) came back on it: a device that accepts and closes
/// at once (a device that is down, or one at its connection limit) keeps counting as failed attempts, so it is
/// not hammered. The first reply on a new connection resets the backoff. A connection that had worked and then
/// failed is retried immediately (the resync reconnect); if that fails too, the backoff starts.
public final class ModbusClient: @unchecked Sendable {
    /// Host (IPv4 literal or a name resolved at each connect) and TCP port of the device.
    public let host: String
    /// TCP port of the device.
    public let port: Int
    /// Unit id sent in every request (change it with `setUnitID(_:)`).
    public private(set) var unitID: UInt8
    /// Timeout for a complete reply.
    public let responseTimeoutNanoseconds: UInt64
    /// Timeout for a TCP connection attempt.
    public let connectTimeoutNanoseconds: UInt64
    /// Backoff between failed connection attempts.
    public let reconnectPolicy: ReconnectPolicy

    /// True while a socket is open.
    public private(set) var isConnected = false
    /// Requests sent (successful or not; not those refused before sending).
    public private(set) var requestCount: UInt64 = 0
    /// Requests that timed out.
    public private(set) var timeoutCount: UInt64 = 0
    /// Requests that failed for any reason after being sent (timeouts and exceptions included).
    public private(set) var errorCount: UInt64 = 0
    /// Exception replies received.
    public private(set) var exceptionCount: UInt64 = 0
    /// Connection attempts made (successful or not).
    public private(set) var connectAttemptCount: UInt64 = 0
    /// Successful connections after the first one.
    public private(set) var reconnectCount: UInt64 = 0
    /// Failed attempts since the last connection that answered a request; drives the backoff.
    public private(set) var consecutiveFailures = 0
    /// CLOCK_MONOTONIC time before which no connection attempt is made (0: immediately).
    public private(set) var nextAttemptNanoseconds: UInt64 = 0
    /// CLOCK_MONOTONIC time at which the last connection attempt started (0 before any).
    public private(set) var lastAttemptNanoseconds: UInt64 = 0
    /// The backoff delay chosen after the last failed attempt (0 before any failure).
    public private(set) var lastBackoffDelayNanoseconds: UInt64 = 0

    /// Shortest accepted timeout (libmodbus' resolution is 1 µs).
    public static let minimumTimeoutNanoseconds: UInt64 = 1_000
    /// Longest accepted timeout.
    public static let maximumTimeoutNanoseconds: UInt64 = 60_000_000_000
    /// Largest unit id libmodbus sends over TCP besides 0xFF (it rejects 248...254).
    public static let maximumUnitID: UInt8 = 247

    private let context: OpaquePointer
    /// The request ADU being built (MBAP header and PDU), `ModbusLimits.maximumADUBytes` bytes.
    private let requestFrame: UnsafeMutablePointer<UInt8>
    /// The reply ADU as libmodbus framed it, `ModbusLimits.maximumADUBytes` bytes.
    private let replyFrame: UnsafeMutablePointer<UInt8>
    /// Transaction id of the last request (incremented, wrapping, per request).
    private var transactionID: UInt16 = 0
    private var jitter: SplitMix64
    /// True once the current connection answered a request (normal or exception reply).
    private var connectionProven = false
    private var everConnected = false
    /// The owner called `close()`: no automatic reconnection until `connect()`.
    private var closedByOwner = false

    /// Creates a client; does not connect (the first request, `connect()` or `maintainConnection` does).
    ///
    /// - Parameters:
    ///   - host: an IPv4 literal (connects without name resolution), or a host name resolved at each connect.
    ///   - unitID: 0...247 or 255.
    ///   - jitterSeed: seed of the backoff jitter, so tests are reproducible.
    /// - Throws: `.invalidArgument` for a bad port, unit id or timeout, or when libmodbus refuses the host.
    /// Thread: any; the client then belongs to one thread at a time.
    public init(
        host: String, port: Int, unitID: UInt8 = 1, responseTimeoutNanoseconds: UInt64,
        connectTimeoutNanoseconds: UInt64, reconnect: ReconnectPolicy = .default, jitterSeed: UInt64 = 0x5EED_5EED
    ) throws(ModbusError) {
        guard (1...65_535).contains(port) else {
            throw .invalidArgument("port \(port) of \(host) is outside 1...65535")
        }
        let timeouts = Self.minimumTimeoutNanoseconds...Self.maximumTimeoutNanoseconds
        guard timeouts.contains(responseTimeoutNanoseconds) else {
            throw .invalidArgument("responseTimeoutNanoseconds \(responseTimeoutNanoseconds) outside \(timeouts)")
        }
        guard timeouts.contains(connectTimeoutNanoseconds) else {
            throw .invalidArgument("connectTimeoutNanoseconds \(connectTimeoutNanoseconds) outside \(timeouts)")
        }
        guard unitID <= Self.maximumUnitID || unitID == 0xFF else {
            throw .invalidArgument("unit id \(unitID) for \(host):\(port): libmodbus accepts 0...247 and 255")
        }
        let created: OpaquePointer?
        if lampcell_is_ipv4_literal(host) == 1 {
            created = modbus_new_tcp(host, Int32(port))
        } else {
            created = modbus_new_tcp_pi(host, String(port))
        }
        guard let created else {
            throw .invalidArgument(
                "libmodbus cannot create a context for \(host):\(port) (errno \(lampcell_modbus_errno()))")
        }
        context = created
        requestFrame = .allocate(capacity: ModbusLimits.maximumADUBytes)
        requestFrame.initialize(repeating: 0, count: ModbusLimits.maximumADUBytes)
        replyFrame = .allocate(capacity: ModbusLimits.maximumADUBytes)
        replyFrame.initialize(repeating: 0, count: ModbusLimits.maximumADUBytes)
        self.host = host
        self.port = port
        self.unitID = unitID
        self.responseTimeoutNanoseconds = responseTimeoutNanoseconds
        self.connectTimeoutNanoseconds = connectTimeoutNanoseconds
        self.reconnectPolicy = reconnect
        self.jitter = SplitMix64(seed: jitterSeed)
        modbus_set_error_recovery(context, MODBUS_ERROR_RECOVERY_NONE)
        modbus_set_slave(context, Int32(unitID))
        // No byte timeout: the whole reply must arrive within the response timeout (Linux select() counts the
        // remaining time down across libmodbus' successive reads).
        modbus_set_byte_timeout(context, 0, 0)
        Self.setResponseTimeout(context, responseTimeoutNanoseconds)
    }

    deinit {
        modbus_close(context)
        modbus_free(context)
        requestFrame.deallocate()
        replyFrame.deallocate()
    }

    // MARK: Connection

    /// Connects now, ignoring the backoff, and re-enables automatic reconnection after `close()`.
    /// Returns at once when already connected. Blocks at most the connect timeout. Thread: the owner.
    public func connect() throws(ModbusError) {
        closedByOwner = false
        if isConnected { return }
        try attemptConnect(nowNanoseconds: lampcell_monotonic_ns())
    }

    /// Closes the connection and stops automatic reconnection until `connect()`. Thread: the owner.
    public func close() {
        closedByOwner = true
        if isConnected {
            modbus_close(context)
            isConnected = false
        }
    }

    /// Keeps the connection up without sending a request: when disconnected and `nowNanoseconds` (CLOCK_MONOTONIC)
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
            throw .invalidArgument("unit id \(newUnitID) for \(host):\(port): libmodbus accepts 0...247 and 255")
        }
        guard modbus_set_slave(context, Int32(newUnitID)) == 0 else {
            throw .invalidArgument("libmodbus rejected unit id \(newUnitID)")
        }
        unitID = newUnitID
    }

    private func attemptConnect(nowNanoseconds: UInt64) throws(ModbusError) {
        connectAttemptCount += 1
        lastAttemptNanoseconds = nowNanoseconds
        // libmodbus' TCP connect is non-blocking connect() + select() bounded by the *response* timeout.
        Self.setResponseTimeout(context, connectTimeoutNanoseconds)
        let rc = modbus_connect(context)
        let code = lampcell_modbus_errno()
        Self.setResponseTimeout(context, responseTimeoutNanoseconds)
        guard rc == 0 else {
            recordFailedAttempt()
            // A select() timeout leaves errno at EINPROGRESS from the non-blocking connect().
            throw .connectFailed(errno: code == EINPROGRESS ? ETIMEDOUT : code)
        }
        isConnected = true
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
        let now = lampcell_monotonic_ns()
        if now < nextAttemptNanoseconds { throw .notConnected }
        try attemptConnect(nowNanoseconds: now)
    }

    /// One transaction: the PDU already in `requestFrame[7..<7 + pduLength]` goes out with a fresh MBAP header
    /// (transaction id, protocol 0, length, unit id); libmodbus receives and frames the reply (its response
    /// timeout; no byte timeout); then the reply is checked here in full and its PDU length returned (function code
    /// at `replyFrame[7]`). Applies the error and resync policy.
    ///
    /// Why not libmodbus' own request functions: over TCP, libmodbus 3.1.6 checks neither the reply's unit id nor
    /// its protocol id (found by the hostile-device fuzzer, CellModbusTests: a reply with a wrong unit id was taken
    /// as the device's). Here every field is checked: transaction id, protocol id 0, the MBAP length against the
    /// frame, unit id, function code (or its exception), byte count or echo. Any mismatch is `.badData` and the
    /// connection is dropped (the stream cannot be trusted to be in step any more). Does not allocate.
    private func transact(pduLength: Int) throws(ModbusError) -> Int {
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
        let replyLength: Int32
        if let failure = sendRequest(length: ModbusLimits.mbapHeaderBytes + pduLength) {
            replyLength = -1
            lampcell_modbus_set_errno(failure)
        } else {
            replyLength = modbus_receive_confirmation(context, replyFrame)
        }
        var error: ModbusError
        if replyLength >= 0 {
            guard let problem = checkReply(length: Int(replyLength)) else {
                proveConnection()
                return Int(replyLength) - ModbusLimits.mbapHeaderBytes
            }
            error = problem
        } else {
            error = ModbusError(requestErrno: lampcell_modbus_errno())
        }
        errorCount += 1
        switch error {
        case .exception, .unknownException:
            exceptionCount += 1
            proveConnection()
        case .timeout, .badData, .connectionLost:
            if case .timeout = error { timeoutCount += 1 }
            dropConnection()
        case .notConnected, .connectFailed, .invalidArgument:
            error = .connectionLost(errno: EIO)
            dropConnection()
        }
        throw error
    }

    /// Writes the request on libmodbus' socket, waiting at most the response timeout for room. Returns nil or an
    /// errno.
    private func sendRequest(length: Int) -> Int32? {
        let socket = modbus_get_socket(context)
        guard socket >= 0 else { return ENOTCONN }
        let deadline = lampcell_monotonic_ns() &+ responseTimeoutNanoseconds
        var offset = 0
        while offset < length {
            let sent = send(socket, requestFrame + offset, length - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
                continue
            }
            let code = sent < 0 ? lampcell_modbus_errno() : EPIPE
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { return code }
            let now = lampcell_monotonic_ns()
            guard now < deadline else { return ETIMEDOUT }
            var poller = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
            _ = poll(&poller, 1, Int32(max(1, (deadline - now) / 1_000_000)))
        }
        return nil
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

    /// Registers of a checked reply (0x03, 0x04, 0x17) into `values`.
    private func decodeRegisters(into values: UnsafeMutablePointer<UInt16>, count: Int) {
        for index in 0..<count {
            values[index] = UInt16(replyFrame[9 + 2 * index]) << 8 | UInt16(replyFrame[10 + 2 * index])
        }
    }

    /// Bits of a checked reply (0x01, 0x02) into `values`, one per byte (0 or 1), LSB first.
    private func decodeBits(into values: UnsafeMutablePointer<UInt8>, count: Int) {
        for index in 0..<count {
            values[index] = (replyFrame[9 + index / 8] >> UInt8(index % 8)) & 1
        }
    }

    private func proveConnection() {
        if !connectionProven {
            connectionProven = true
            consecutiveFailures = 0
        }
    }

    /// Closes the socket after a transport failure. A proven connection is retried at once (resync); one that
    /// never answered counts as a failed attempt of the backoff.
    private func dropConnection() {
        modbus_close(context)
        isConnected = false
        if connectionProven {
            nextAttemptNanoseconds = 0
        } else {
            recordFailedAttempt()
        }
    }

    private static func setResponseTimeout(_ context: OpaquePointer, _ nanoseconds: UInt64) {
        let seconds = UInt32(nanoseconds / 1_000_000_000)
        let microseconds = UInt32((nanoseconds % 1_000_000_000) / 1_000)
        modbus_set_response_timeout(context, seconds, max(microseconds, seconds == 0 ? 1 : 0))
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

    // MARK: Requests (primary API: caller-owned buffers, no allocation)

    /// 0x03: reads `values.count` (1...125) holding registers from `address`. Thread: the owner.
    public func readHoldingRegisters(address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        throws(ModbusError)
    {
        try checkRange("read holding registers", address: address, count: values.count,
            limit: ModbusLimits.maximumReadRegisters)
        guard let base = values.baseAddress else { return }
        _ = try transact(pduLength: readRequest(0x03, address: address, count: values.count))
        decodeRegisters(into: base, count: values.count)
    }

    /// 0x04: reads `values.count` (1...125) input registers from `address`. Thread: the owner.
    public func readInputRegisters(address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        throws(ModbusError)
    {
        try checkRange("read input registers", address: address, count: values.count,
            limit: ModbusLimits.maximumReadRegisters)
        guard let base = values.baseAddress else { return }
        _ = try transact(pduLength: readRequest(0x04, address: address, count: values.count))
        decodeRegisters(into: base, count: values.count)
    }

    /// 0x01: reads `values.count` (1...2000) coils from `address`, one bit per byte (0 or 1). Thread: the owner.
    public func readCoils(address: Int, into values: UnsafeMutableBufferPointer<UInt8>) throws(ModbusError) {
        try checkRange("read coils", address: address, count: values.count, limit: ModbusLimits.maximumReadBits)
        guard let base = values.baseAddress else { return }
        _ = try transact(pduLength: readRequest(0x01, address: address, count: values.count))
        decodeBits(into: base, count: values.count)
    }

    /// 0x02: reads `values.count` (1...2000) discrete inputs from `address`, one bit per byte. Thread: the owner.
    public func readDiscreteInputs(address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        throws(ModbusError)
    {
        try checkRange("read discrete inputs", address: address, count: values.count,
            limit: ModbusLimits.maximumReadBits)
        guard let base = values.baseAddress else { return }
        _ = try transact(pduLength: readRequest(0x02, address: address, count: values.count))
        decodeBits(into: base, count: values.count)
    }

    /// 0x06: writes one holding register. Thread: the owner.
    public func writeSingleRegister(address: Int, value: UInt16) throws(ModbusError) {
        try checkRange("write single register", address: address, count: 1, limit: 1)
        requestFrame[7] = 0x06
        put(address, at: 8)
        put(Int(value), at: 10)
        _ = try transact(pduLength: 5)
    }

    /// 0x10: writes `values.count` (1...123) holding registers from `address`. Thread: the owner.
    public func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) throws(ModbusError) {
        try checkRange("write registers", address: address, count: values.count,
            limit: ModbusLimits.maximumWriteRegisters)
        guard let base = values.baseAddress else { return }
        requestFrame[7] = 0x10
        put(address, at: 8)
        put(values.count, at: 10)
        requestFrame[12] = UInt8(2 * values.count)
        for index in 0..<values.count { put(Int(base[index]), at: 13 + 2 * index) }
        _ = try transact(pduLength: 6 + 2 * values.count)
    }

    /// 0x05: writes one coil (sent as 0xFF00 or 0x0000). Thread: the owner.
    public func writeSingleCoil(address: Int, value: Bool) throws(ModbusError) {
        try checkRange("write single coil", address: address, count: 1, limit: 1)
        requestFrame[7] = 0x05
        put(address, at: 8)
        put(value ? 0xFF00 : 0x0000, at: 10)
        _ = try transact(pduLength: 5)
    }

    /// 0x0F: writes `values.count` (1...1968) coils from `address`, one bit per byte (non-zero = on).
    /// Thread: the owner.
    public func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) throws(ModbusError) {
        try checkRange("write coils", address: address, count: values.count, limit: ModbusLimits.maximumWriteBits)
        guard let base = values.baseAddress else { return }
        requestFrame[7] = 0x0F
        put(address, at: 8)
        put(values.count, at: 10)
        let byteCount = (values.count + 7) / 8
        requestFrame[12] = UInt8(byteCount)
        for index in 0..<byteCount { requestFrame[13 + index] = 0 }
        for index in 0..<values.count where base[index] != 0 { requestFrame[13 + index / 8] |= 1 << UInt8(index % 8) }
        _ = try transact(pduLength: 6 + byteCount)
    }

    /// 0x17: writes `values` (1...121 registers) at `writeAddress`, then reads `readValues.count` (1...125)
    /// holding registers from `readAddress`, in one transaction (the device applies the write first).
    /// Thread: the owner.
    public func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>,
        readAddress: Int, into readValues: UnsafeMutableBufferPointer<UInt16>
    ) throws(ModbusError) {
        try checkRange("write/read registers (write part)", address: writeAddress, count: values.count,
            limit: ModbusLimits.maximumReadWriteWriteRegisters)
        try checkRange("write/read registers (read part)", address: readAddress, count: readValues.count,
            limit: ModbusLimits.maximumReadWriteReadRegisters)
        guard let source = values.baseAddress, let destination = readValues.baseAddress else { return }
        requestFrame[7] = 0x17
        put(readAddress, at: 8)
        put(readValues.count, at: 10)
        put(writeAddress, at: 12)
        put(values.count, at: 14)
        requestFrame[16] = UInt8(2 * values.count)
        for index in 0..<values.count { put(Int(source[index]), at: 17 + 2 * index) }
        _ = try transact(pduLength: 10 + 2 * values.count)
        decodeRegisters(into: destination, count: readValues.count)
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
