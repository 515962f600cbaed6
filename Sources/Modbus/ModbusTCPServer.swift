import CModbus
import CRealtime
import Glibc
import Synchronization

/// Counters of a `ModbusTCPServer` (a snapshot).
public struct ModbusServerStatistics: Sendable, Equatable {
    /// Connections accepted and kept.
    public var connectionsAccepted: UInt64 = 0
    /// Connections accepted and closed at once (connection limit reached, or `refusesConnections`).
    public var connectionsRefused: UInt64 = 0
    /// Client connections closed by the server or the peer.
    public var connectionsClosed: UInt64 = 0
    /// Clients connected now.
    public var clientsConnected = 0
    /// Requests answered with a normal reply (counted just before the reply is written, so a client that has
    /// its reply always sees the count; a write that then fails also counts in `repliesFailed`).
    public var requestsServed: UInt64 = 0
    /// Requests answered with an exception reply.
    public var exceptionsSent: UInt64 = 0
    /// Requests not answered: another unit id, broadcast, protocol id not 0, or `isSilent`.
    public var requestsIgnored: UInt64 = 0
    /// Replies that could not be written (client gone or not reading).
    public var repliesFailed: UInt64 = 0
    /// Connections closed because of an impossible MBAP length or a half frame older than the frame timeout.
    public var framingErrors: UInt64 = 0
}

/// Errors of `ModbusTCPServer.start()`.
public enum ModbusServerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The listening socket could not be created, bound or put in listening state.
    case listenFailed(host: String, port: Int, errno: Int32)
    /// The server thread could not be created.
    case threadFailed(errno: Int32)
    /// `start()` was called twice.
    case alreadyStarted

    public var description: String {
        switch self {
        case .listenFailed(let host, let port, let code):
            "Modbus server cannot listen on \(host):\(port): \(String(cString: strerror(code))) (errno \(code))"
        case .threadFailed(let code): "Modbus server thread cannot start (errno \(code))"
        case .alreadyStarted: "Modbus server already started"
        }
    }
}

/// A Modbus TCP server for one `ModbusDevice`, serving up to `maxClients` connections on its own thread.
///
/// The thread runs a `poll()` loop over a wakeup pipe, the listening socket and the client sockets. Sockets are
/// non-blocking and each client has its own receive buffer framed by the MBAP length field, so a client that
/// sends half a frame never stalls the others; a half frame older than `partialFrameTimeoutNanoseconds` closes
/// that connection. (libmodbus' `modbus_receive` is not used: it blocks on the one socket of its context and
/// frames by function code, so an unknown function code leaves bytes behind.)
///
/// Per request: protocol id not 0, unit id not `unitID` (broadcast 0 included) → no reply at all. Then, in the
/// datasheets' precedence: function not supported by the device → 0x01; quantity or format invalid per the
/// Modbus specification → 0x03; then one device call, which checks address (0x02), value (0x03) and busy (0x06).
/// Replies echo the transaction id; bits are packed LSB first.
///
/// Fault injection setters take effect promptly from any thread. `replyDelayNanoseconds` is slept in the server
/// thread before a reply is written, so it delays every client of this device (as a slow device would).
///
/// Thread: `start()`/`stop()` from the owner; the fault setters and `statistics` from any thread.
/// The device's methods are called on the server thread.
public final class ModbusTCPServer: @unchecked Sendable {
    /// Address the server listens on (IPv4 literal).
    public var host: String { core.host }
    /// Unit id the server answers.
    public var unitID: UInt8 { core.unitID }
    /// Maximum simultaneous client connections.
    public var maxClients: Int { core.maxClients }

    /// Default for `partialFrameTimeoutNanoseconds`.
    public static let defaultPartialFrameTimeoutNanoseconds: UInt64 = 1_000_000_000
    /// Listen backlog.
    static let listenBacklog: Int32 = 16

    private let core: ServerCore

    /// Creates a server; `start()` binds and runs it.
    /// - Parameters:
    ///   - port: 0 for an ephemeral port (see `start()`'s result).
    ///   - maxClients: at least 1; a further connection is accepted and closed at once.
    ///   - device: called on the server thread; its `supportedFunctions` is read once, here.
    ///   - partialFrameTimeoutNanoseconds: a connection whose half-received frame is older is closed.
    ///   - fifoPriority: SCHED_FIFO priority of the server thread (nil: SCHED_OTHER; refused silently without the
    ///     privilege). A simulated device beside a real-time controller on a small box answers in time only if it is
    ///     scheduled like one.
    /// Thread: any.
    public init(
        host: String = "127.0.0.1", port: Int = 0, unitID: UInt8 = 1, maxClients: Int = 2,
        device: any ModbusDevice & Sendable,
        partialFrameTimeoutNanoseconds: UInt64 = ModbusTCPServer.defaultPartialFrameTimeoutNanoseconds,
        fifoPriority: Int32? = nil
    ) {
        core = ServerCore(
            host: host, port: port, unitID: unitID, maxClients: max(1, maxClients), device: device,
            partialFrameTimeoutNanoseconds: partialFrameTimeoutNanoseconds, fifoPriority: fifoPriority)
    }

    deinit { core.stop() }

    /// Binds, listens and starts the server thread; returns the bound port. Thread: the owner.
    @discardableResult
    public func start() throws(ModbusServerError) -> Int { try core.start() }

    /// Stops the thread (joins it) and closes every socket. Idempotent. Thread: the owner.
    public func stop() { core.stop() }

    /// The bound port once started (0 before).
    public var port: Int { core.control.withLock { $0.boundPort } }

    /// A snapshot of the counters. Thread: any.
    public var statistics: ModbusServerStatistics { core.control.withLock { $0.statistics } }

    /// Delay before every reply (0: none). Thread: any.
    public var replyDelayNanoseconds: UInt64 {
        get { core.control.withLock { $0.replyDelayNanoseconds } }
        set {
            core.control.withLock { $0.replyDelayNanoseconds = newValue }
            core.wake()
        }
    }

    /// When true, requests are received but never answered. Thread: any.
    public var isSilent: Bool {
        get { core.control.withLock { $0.isSilent } }
        set { core.control.withLock { $0.isSilent = newValue } }
    }

    /// When true, every new connection is accepted and closed at once (a device that is down).
    /// Existing connections are kept (combine with `dropAllConnections()`). Thread: any.
    public var refusesConnections: Bool {
        get { core.control.withLock { $0.refusesConnections } }
        set { core.control.withLock { $0.refusesConnections = newValue } }
    }

    /// Closes every client connection now (before any further reply is written). Thread: any.
    public func dropAllConnections() {
        core.control.withLock { $0.dropAllRequested = true }
        core.wake()
    }
}

/// Settings and counters shared between the server thread and other threads.
struct ServerControl {
    var boundPort = 0
    var statistics = ModbusServerStatistics()
    var replyDelayNanoseconds: UInt64 = 0
    var isSilent = false
    var refusesConnections = false
    var dropAllRequested = false
    var stopRequested = false
}

/// One client connection slot (server thread only).
struct ClientSlot {
    var fd: Int32 = -1
    var filled = 0
    /// When the bytes of the incomplete frame now in the buffer started arriving (0: none).
    var partialSinceNanoseconds: UInt64 = 0
}

/// The server's state and loop. Retained by the server thread while it runs.
final class ServerCore: @unchecked Sendable {
    let host: String
    let requestedPort: Int
    let unitID: UInt8
    let maxClients: Int
    let device: any ModbusDevice & Sendable
    let partialFrameTimeoutNanoseconds: UInt64
    /// Bit n set: function code n is supported (read once at init).
    let supportedFunctionMask: UInt64

    let control = Mutex(ServerControl())

    /// Lifecycle, touched only by the owner's `start()`/`stop()`.
    private let lifecycle = Mutex<(started: Bool, thread: pthread_t?)>((false, nil))

    /// The wakeup pipe lives as long as the core, so `wake()` is safe from any thread at any time.
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32
    private let wakePipeErrno: Int32
    // Server-thread state: set up by start() before the thread exists, torn down by stop() after it is joined.
    private var listenFD: Int32 = -1
    private var slots: [ClientSlot]
    /// One receive buffer per slot, `receiveCapacity` bytes each.
    private let receiveBuffers: UnsafeMutableBufferPointer<UInt8>
    private let receiveCapacity = 2 * ModbusLimits.maximumADUBytes
    private let pollFDs: UnsafeMutableBufferPointer<pollfd>
    private let reply = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: ModbusLimits.maximumADUBytes)
    private let bitScratch = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: ModbusLimits.maximumReadBits)
    private let registerScratch = UnsafeMutableBufferPointer<UInt16>.allocate(
        capacity: ModbusLimits.maximumReadRegisters)
    private let writeScratch = UnsafeMutableBufferPointer<UInt16>.allocate(
        capacity: ModbusLimits.maximumWriteRegisters)

    /// SCHED_FIFO priority of the server thread, nil for SCHED_OTHER.
    let fifoPriority: Int32?

    init(
        host: String, port: Int, unitID: UInt8, maxClients: Int, device: any ModbusDevice & Sendable,
        partialFrameTimeoutNanoseconds: UInt64, fifoPriority: Int32?
    ) {
        self.fifoPriority = fifoPriority
        self.host = host
        self.requestedPort = port
        self.unitID = unitID
        self.maxClients = maxClients
        self.device = device
        self.partialFrameTimeoutNanoseconds = partialFrameTimeoutNanoseconds
        var mask: UInt64 = 0
        for function in device.supportedFunctions { mask |= 1 << UInt64(function.rawValue) }
        supportedFunctionMask = mask
        slots = [ClientSlot](repeating: ClientSlot(), count: maxClients)
        receiveBuffers = .allocate(capacity: maxClients * 2 * ModbusLimits.maximumADUBytes)
        receiveBuffers.initialize(repeating: 0)
        pollFDs = .allocate(capacity: maxClients + 2)
        pollFDs.initialize(repeating: pollfd())
        reply.initialize(repeating: 0)
        bitScratch.initialize(repeating: 0)
        registerScratch.initialize(repeating: 0)
        writeScratch.initialize(repeating: 0)
        var pipeFDs: [Int32] = [-1, -1]
        wakePipeErrno = -lampcell_pipe_nonblocking(&pipeFDs)
        wakeReadFD = pipeFDs[0]
        wakeWriteFD = pipeFDs[1]
    }

    deinit {
        if wakeReadFD >= 0 { Glibc.close(wakeReadFD) }
        if wakeWriteFD >= 0 { Glibc.close(wakeWriteFD) }
        receiveBuffers.deallocate()
        pollFDs.deallocate()
        reply.deallocate()
        bitScratch.deallocate()
        registerScratch.deallocate()
        writeScratch.deallocate()
    }

    // MARK: Lifecycle (owner thread)

    func start() throws(ModbusServerError) -> Int {
        let alreadyStarted = lifecycle.withLock { state -> Bool in
            if state.started { return true }
            state.started = true
            return false
        }
        if alreadyStarted { throw .alreadyStarted }

        let fd = lampcell_tcp_listen(host, Int32(clamping: requestedPort), ModbusTCPServer.listenBacklog)
        guard fd >= 0 else {
            lifecycle.withLock { $0.started = false }
            throw .listenFailed(host: host, port: requestedPort, errno: -fd)
        }
        let boundPort = Int(lampcell_tcp_local_port(fd))
        guard wakePipeErrno == 0 else {
            Glibc.close(fd)
            lifecycle.withLock { $0.started = false }
            throw .listenFailed(host: host, port: boundPort, errno: wakePipeErrno)
        }
        listenFD = fd
        drainWakePipe()
        control.withLock {
            $0.boundPort = boundPort
            $0.stopRequested = false
            $0.dropAllRequested = false
        }

        var thread = pthread_t()
        let retained = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { argument in
                guard let argument else { return nil }
                let core = Unmanaged<ServerCore>.fromOpaque(argument).takeRetainedValue()
                core.run()
                return nil
            }, retained)
        guard rc == 0 else {
            Unmanaged<ServerCore>.fromOpaque(retained).release()
            closeSockets()
            lifecycle.withLock { $0.started = false }
            throw .threadFailed(errno: rc)
        }
        lifecycle.withLock { $0.thread = thread }
        return boundPort
    }

    func stop() {
        guard let thread = lifecycle.withLock({ state -> pthread_t? in
            let thread = state.thread
            state.thread = nil
            return thread
        }) else { return }
        control.withLock { $0.stopRequested = true }
        wake()
        pthread_join(thread, nil)
        closeSockets()
        lifecycle.withLock { $0.started = false }
    }

    /// Interrupts the server thread's poll(). Thread: any.
    func wake() {
        guard wakeWriteFD >= 0 else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWriteFD, &byte, 1)  // EAGAIN when the pipe is full: a wakeup is pending anyway.
    }

    private func closeSockets() {
        for index in slots.indices where slots[index].fd >= 0 { closeClient(index) }
        if listenFD >= 0 { Glibc.close(listenFD) }
        listenFD = -1
    }

    // MARK: Server thread

    private func run() {
        _ = lampcell_set_thread_name("modbus-server")
        if let fifoPriority {
            _ = lampcell_set_fifo_priority(fifoPriority)
            _ = lampcell_set_timer_slack_ns(1)
        }
        while true {
            let pollCount = preparePoll()
            let timeout = pollTimeoutMilliseconds()
            let ready = poll(pollFDs.baseAddress, nfds_t(pollCount), timeout)
            if ready < 0 && errno != EINTR { break }
            if pollFDs[0].revents != 0 { drainWakePipe() }
            if !applyControlRequests() { break }
            // Clients before the listening socket: a client that closed and reconnects frees its slot first.
            for index in 2..<pollCount where pollFDs[index].revents != 0 {
                guard let slot = slots.firstIndex(where: { $0.fd == pollFDs[index].fd }) else { continue }
                serviceClient(slot)
                // A drop-all requested meanwhile takes effect before any other client is answered.
                if !applyControlRequests() { return }
            }
            expirePartialFrames()
            if pollFDs[1].revents != 0 { acceptConnections() }
        }
    }

    private func preparePoll() -> Int {
        pollFDs[0] = pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0)
        pollFDs[1] = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
        var count = 2
        for slot in slots where slot.fd >= 0 {
            pollFDs[count] = pollfd(fd: slot.fd, events: Int16(POLLIN), revents: 0)
            count += 1
        }
        return count
    }

    private func pollTimeoutMilliseconds() -> Int32 {
        var earliest = UInt64.max
        for slot in slots where slot.fd >= 0 && slot.partialSinceNanoseconds != 0 {
            earliest = min(earliest, slot.partialSinceNanoseconds &+ partialFrameTimeoutNanoseconds)
        }
        if earliest == UInt64.max { return -1 }
        let now = lampcell_monotonic_ns()
        if earliest <= now { return 0 }
        return Int32(min((earliest - now) / 1_000_000 + 1, 60_000))
    }

    private func drainWakePipe() {
        var bytes: (UInt64, UInt64) = (0, 0)
        while Glibc.read(wakeReadFD, &bytes, MemoryLayout.size(ofValue: bytes)) > 0 {}
    }

    /// Applies stop and drop-all requests. Returns false when the loop must end.
    private func applyControlRequests() -> Bool {
        let (stop, dropAll) = control.withLock { state -> (Bool, Bool) in
            let dropAll = state.dropAllRequested
            state.dropAllRequested = false
            return (state.stopRequested, dropAll)
        }
        if stop { return false }
        if dropAll {
            for index in slots.indices where slots[index].fd >= 0 { closeClient(index) }
        }
        return true
    }

    private func acceptConnections() {
        while true {
            let fd = lampcell_tcp_accept(listenFD)
            if fd < 0 { return }  // -EAGAIN: none left; other errors (ECONNABORTED, EMFILE): try next time
            let refuses = control.withLock { $0.refusesConnections }
            guard !refuses, let free = slots.firstIndex(where: { $0.fd < 0 }) else {
                // Counters change before the peer can observe the effect, so observers never see them lag.
                control.withLock { $0.statistics.connectionsRefused += 1 }
                Glibc.close(fd)
                continue
            }
            slots[free] = ClientSlot(fd: fd, filled: 0, partialSinceNanoseconds: 0)
            control.withLock {
                $0.statistics.connectionsAccepted += 1
                $0.statistics.clientsConnected += 1
            }
        }
    }

    private func closeClient(_ index: Int) {
        guard slots[index].fd >= 0 else { return }
        control.withLock {
            $0.statistics.connectionsClosed += 1
            $0.statistics.clientsConnected -= 1
        }
        Glibc.close(slots[index].fd)
        slots[index] = ClientSlot()
    }

    private func expirePartialFrames() {
        let now = lampcell_monotonic_ns()
        for index in slots.indices where slots[index].fd >= 0 && slots[index].partialSinceNanoseconds != 0 {
            if now >= slots[index].partialSinceNanoseconds &+ partialFrameTimeoutNanoseconds {
                control.withLock { $0.statistics.framingErrors += 1 }
                closeClient(index)
            }
        }
    }

    private func buffer(of index: Int) -> UnsafeMutablePointer<UInt8> {
        // Force-unwrap-free: the allocation is never empty (maxClients ≥ 1).
        receiveBuffers.baseAddress.unsafelyUnwrapped + index * receiveCapacity
    }

    private func serviceClient(_ index: Int) {
        let fd = slots[index].fd
        let storage = buffer(of: index)
        let received = lampcell_read(
            fd, storage + slots[index].filled, UInt(receiveCapacity - slots[index].filled))
        if received == 0 || (received < 0 && received != -Int(EAGAIN) && received != -Int(EINTR)) {
            closeClient(index)
            return
        }
        if received < 0 { return }
        slots[index].filled += received
        var consumedFrame = false

        let header = ModbusLimits.mbapHeaderBytes
        while slots[index].filled >= header {
            let length = Int(storage[4]) << 8 | Int(storage[5])
            guard length >= 2 && length <= ModbusLimits.maximumPDUBytes + 1 else {
                control.withLock { $0.statistics.framingErrors += 1 }
                closeClient(index)
                return
            }
            let frameBytes = 6 + length
            if slots[index].filled < frameBytes { break }
            if !handleFrame(slot: index, frame: UnsafeBufferPointer(start: storage, count: frameBytes)) {
                return  // the slot was closed or the server is stopping
            }
            let remaining = slots[index].filled - frameBytes
            if remaining > 0 { memmove(storage, storage + frameBytes, remaining) }
            slots[index].filled = remaining
            consumedFrame = true
        }
        // The half-frame clock starts with the first byte of the frame, not with the latest byte.
        if slots[index].filled == 0 {
            slots[index].partialSinceNanoseconds = 0
        } else if consumedFrame || slots[index].partialSinceNanoseconds == 0 {
            slots[index].partialSinceNanoseconds = lampcell_monotonic_ns()
        }
    }

    /// Answers one complete frame. Returns false when the slot was closed or the server is stopping.
    private func handleFrame(slot index: Int, frame: UnsafeBufferPointer<UInt8>) -> Bool {
        let protocolID = UInt16(frame[2]) << 8 | UInt16(frame[3])
        let (silent, delayNanoseconds) = control.withLock { ($0.isSilent, $0.replyDelayNanoseconds) }
        guard protocolID == 0, frame[6] == unitID, !silent else {
            control.withLock { $0.statistics.requestsIgnored += 1 }
            return true
        }
        let header = ModbusLimits.mbapHeaderBytes
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

        if delayNanoseconds > 0 {
            waitInterruptibly(untilNanoseconds: lampcell_monotonic_ns() &+ delayNanoseconds)
            let (stop, dropAll) = control.withLock { ($0.stopRequested, $0.dropAllRequested) }
            if stop || dropAll { return false }  // the main loop applies them before anything else is written
        }
        let total = header + pduLength
        control.withLock {
            if isException { $0.statistics.exceptionsSent += 1 } else { $0.statistics.requestsServed += 1 }
        }
        let sent = lampcell_send(slots[index].fd, reply.baseAddress, UInt(total))
        if sent != total {
            control.withLock { $0.statistics.repliesFailed += 1 }
            closeClient(index)  // gone, or not reading its replies (a full send buffer)
            return false
        }
        return true
    }

    /// Sleeps until the deadline on the wakeup pipe, returning early when a stop or drop-all is requested.
    private func waitInterruptibly(untilNanoseconds deadline: UInt64) {
        while true {
            let now = lampcell_monotonic_ns()
            if now >= deadline { return }
            var wakeup = pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
            if poll(&wakeup, 1, milliseconds) > 0 {
                drainWakePipe()
                if control.withLock({ $0.stopRequested || $0.dropAllRequested }) { return }
            }
        }
    }

    // MARK: PDU processing

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
