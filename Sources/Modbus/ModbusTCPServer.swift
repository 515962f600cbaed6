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
/// Fault injection setters take effect promptly from any thread. A slow device: each reply is written
/// `replyDelayNanoseconds` ± `replyJitterNanoseconds` after its request arrived, while the server goes on serving
/// its other connections (a connection's next request waits for its previous reply, as on a real device).
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

    /// Delay from a request's arrival to its reply (0: none). Thread: any.
    public var replyDelayNanoseconds: UInt64 {
        get { core.control.withLock { $0.replyDelayNanoseconds } }
        set {
            core.control.withLock { $0.replyDelayNanoseconds = newValue }
            core.wake()
        }
    }

    /// Each reply's delay lies uniformly in `replyDelayNanoseconds` ± this (clamped at 0). Thread: any.
    public var replyJitterNanoseconds: UInt64 {
        get { core.control.withLock { $0.replyJitterNanoseconds } }
        set { core.control.withLock { $0.replyJitterNanoseconds = newValue } }
    }

    /// Largest accepted `replyDelayNanoseconds` and `replyJitterNanoseconds` (a device that never answers is
    /// `isSilent`).
    public static let maximumReplyDelayNanoseconds: UInt64 = 10_000_000_000

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
    var replyJitterNanoseconds: UInt64 = 0
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
    /// When the reply waiting in this slot's reply buffer is due (0: none waits). Until it is written, the slot's
    /// further requests stay in its receive buffer.
    var replyDueNanoseconds: UInt64 = 0
    var replyLength = 0
    var replyIsException = false
}

/// The server's state and loop. Retained by the server thread while it runs.
final class ServerCore: @unchecked Sendable {
    let host: String
    let requestedPort: Int
    let unitID: UInt8
    let maxClients: Int
    let partialFrameTimeoutNanoseconds: UInt64
    /// Answers each framed request (shared with `InMemoryModbusTransport`); used on the server thread only.
    let processor: ModbusRequestProcessor

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
    /// One reply buffer per slot, `ModbusLimits.maximumADUBytes` bytes each (a delayed reply waits there).
    private let replies: UnsafeMutableBufferPointer<UInt8>
    /// Jitter of the reply delay (server thread only).
    private var jitter = SplitMix64(seed: 0x51_0D_E1A7)

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
        self.partialFrameTimeoutNanoseconds = partialFrameTimeoutNanoseconds
        processor = ModbusRequestProcessor(unitID: unitID, device: device)
        slots = [ClientSlot](repeating: ClientSlot(), count: maxClients)
        receiveBuffers = .allocate(capacity: maxClients * 2 * ModbusLimits.maximumADUBytes)
        receiveBuffers.initialize(repeating: 0)
        pollFDs = .allocate(capacity: maxClients + 2)
        pollFDs.initialize(repeating: pollfd())
        replies = .allocate(capacity: maxClients * ModbusLimits.maximumADUBytes)
        replies.initialize(repeating: 0)
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
        replies.deallocate()
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
            let ready = lampcell_poll_ns(pollFDs.baseAddress, UInt(pollCount), pollTimeoutNanoseconds())
            if ready < 0 && ready != -EINTR { break }
            if pollFDs[0].revents != 0 { drainWakePipe() }
            if !applyControlRequests() { break }
            if !writeDueReplies() { return }
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

    /// Until the next half-frame expiry or delayed reply, at most `idlePollNanoseconds`.
    private func pollTimeoutNanoseconds() -> UInt64 {
        var earliest = UInt64.max
        for slot in slots where slot.fd >= 0 {
            if slot.partialSinceNanoseconds != 0 {
                earliest = min(earliest, slot.partialSinceNanoseconds &+ partialFrameTimeoutNanoseconds)
            }
            if slot.replyDueNanoseconds != 0 { earliest = min(earliest, slot.replyDueNanoseconds) }
        }
        let now = lampcell_monotonic_ns()
        if earliest <= now { return 0 }
        return min(earliest - now, Self.idlePollNanoseconds)
    }

    /// Longest poll() while nothing is due (the wakeup pipe ends it earlier).
    static let idlePollNanoseconds: UInt64 = 60_000_000_000

    /// Writes every delayed reply that is due, then serves the requests that waited behind it. Returns false when
    /// the server is stopping.
    private func writeDueReplies() -> Bool {
        let now = lampcell_monotonic_ns()
        for index in slots.indices where slots[index].fd >= 0 && slots[index].replyDueNanoseconds != 0 {
            guard slots[index].replyDueNanoseconds <= now else { continue }
            slots[index].replyDueNanoseconds = 0
            guard writeReply(slot: index) else { continue }
            processFrames(slot: index)
            if !applyControlRequests() { return false }
        }
        return true
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
        processFrames(slot: index)
    }

    /// Answers the complete frames in the slot's receive buffer, in order, until one reply has to wait.
    private func processFrames(slot index: Int) {
        let storage = buffer(of: index)
        var consumedFrame = false

        let header = ModbusLimits.mbapHeaderBytes
        while slots[index].filled >= header && slots[index].replyDueNanoseconds == 0 {
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
        // The half-frame clock starts with the first byte of the frame, not with the latest byte; bytes waiting
        // behind a delayed reply are not a half frame yet.
        if slots[index].filled == 0 || slots[index].replyDueNanoseconds != 0 {
            slots[index].partialSinceNanoseconds = 0
        } else if consumedFrame || slots[index].partialSinceNanoseconds == 0 {
            slots[index].partialSinceNanoseconds = lampcell_monotonic_ns()
        }
    }

    /// Answers one complete frame. Returns false when the slot was closed or the server is stopping.
    private func handleFrame(slot index: Int, frame: UnsafeBufferPointer<UInt8>) -> Bool {
        let (silent, delay, delayJitter) = control.withLock {
            ($0.isSilent, $0.replyDelayNanoseconds, $0.replyJitterNanoseconds)
        }
        let outcome: ModbusRequestProcessor.Outcome =
            silent ? .ignored : processor.process(frame, into: replyBuffer(of: index))
        let total: Int
        let isException: Bool
        switch outcome {
        case .ignored:
            control.withLock { $0.statistics.requestsIgnored += 1 }
            return true
        case .reply(let length):
            (total, isException) = (length, false)
        case .exception(let length):
            (total, isException) = (length, true)
        }
        slots[index].replyLength = total
        slots[index].replyIsException = isException
        // A slow device: the delay, ± up to the jitter, uniformly; the reply waits in the slot meanwhile.
        var delayNanoseconds = delay
        if delayJitter > 0 {
            let offset = UInt64(jitter.nextUnit() * Double(2 * delayJitter))
            delayNanoseconds = delay &+ offset >= delayJitter ? delay &+ offset &- delayJitter : 0
        }
        if delayNanoseconds > 0 {
            slots[index].replyDueNanoseconds = lampcell_monotonic_ns() &+ delayNanoseconds
            return true
        }
        return writeReply(slot: index)
    }

    /// Writes the reply waiting in the slot's reply buffer. Returns false when the slot was closed.
    private func writeReply(slot index: Int) -> Bool {
        let total = slots[index].replyLength
        let isException = slots[index].replyIsException
        control.withLock {
            if isException { $0.statistics.exceptionsSent += 1 } else { $0.statistics.requestsServed += 1 }
        }
        let sent = lampcell_send(slots[index].fd, replyBuffer(of: index).baseAddress, UInt(total))
        if sent != total {
            control.withLock { $0.statistics.repliesFailed += 1 }
            closeClient(index)  // gone, or not reading its replies (a full send buffer)
            return false
        }
        return true
    }

    private func replyBuffer(of index: Int) -> UnsafeMutableBufferPointer<UInt8> {
        let size = ModbusLimits.maximumADUBytes
        return UnsafeMutableBufferPointer(rebasing: replies[index * size..<(index + 1) * size])
    }
}
