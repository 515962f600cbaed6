// A hostile Modbus TCP device for the drivers (issue 7, item 6): a plain-socket TCP server that takes the
// driver's connection, forwards each request to a correct device (the simulator's RA-610 or TS-200 over its real
// Modbus TCP server) and then answers with the correct reply, or with random bytes, a short or oversized frame, a
// wrong transaction id, unit id, protocol id, function code or byte count, an exception, a late reply, nothing, or a
// closed connection — chosen by a seeded generator at the rate `hostilePercent`. At rate 0 it behaves.
//
// It also sees every request the driver sends, so a test can check the setpoints an arm was commanded.

import CRealtime
import Foundation
import Glibc
import LampCellTestSupport

/// The fuzz seed (`FuzzSeed`: LAMPCELL_FUZZ_SEED, or a fresh one), the same for every test of this process; the
/// tests print it with their replay line.
enum HostileSettings {
    static let seed: UInt64 = FuzzSeed.value(default: FuzzSeed.fresh())
}

/// How the hostile device answers one request.
enum HostileBehaviour: String, CaseIterable, Sendable {
    /// The correct reply.
    case correct
    /// 1…300 random bytes instead of the reply.
    case randomBytes
    /// The reply cut short (the client waits for the rest until its timeout).
    case shortFrame
    /// A byte count larger than asked, with that much data (up to the 255-byte maximum: beyond the ADU size).
    case oversizedFrame
    /// The correct reply followed by junk (this exchange succeeds; the junk poisons the next one).
    case trailingGarbage
    case wrongTransaction
    case wrongUnit
    case wrongProtocol
    case wrongFunction
    /// The byte count field of a read reply changed (data left as it is).
    case wrongByteCount
    /// An exception reply with a random (known or unknown) code.
    case exception
    /// The correct reply, but after the client's response timeout.
    case lateReply
    /// No reply at all.
    case silence
    /// The connection closed instead of a reply.
    case close
    /// A well-framed reply whose register values are random (nothing in Modbus TCP can tell: only the datasheet's
    /// ranges can).
    case corruptPayload

    /// Whether a reply so mangled to a request of `function` must fail the exchange (it cannot be taken as
    /// valid). A changed echo of a write (`wrongByteCount` on 0x05/0x06/0x0F/0x10) is only a wrong echo.
    func mustFail(function: UInt8) -> Bool {
        switch self {
        case .correct, .trailingGarbage, .corruptPayload: false
        case .wrongByteCount: [0x01, 0x02, 0x03, 0x04, 0x17].contains(function)
        default: true
        }
    }
}

/// One request seen by the proxy and what it answered.
struct HostileRecord: Sendable {
    var function: UInt8
    var behaviour: HostileBehaviour
    /// The request PDU (function code first).
    var requestPDU: [UInt8]
    /// The correct reply PDU from the real device (empty when it did not answer).
    var correctReplyPDU: [UInt8]
}

/// The proxy. Thread: `start`/`stop` from the owner; the settings and the log from any thread.
final class HostileModbusProxy: @unchecked Sendable {
    let upstreamPort: Int
    private(set) var port = 0
    /// The unit id the device answers.
    let unitID: UInt8
    /// A late reply comes this long after the request.
    let lateReplyNanoseconds: UInt64

    private let lock = NSLock()
    private var random: SplitMix64
    private var hostilePercentValue = 0
    private var behaviours: [HostileBehaviour] = HostileBehaviour.allCases.filter { $0 != .correct }
    private var records: [HostileRecord] = []
    private var counts: [HostileBehaviour: Int] = [:]
    private var listenDescriptor: Int32 = -1
    private var clientDescriptor: Int32 = -1
    private var generation = 0
    private var stopping = false
    private var acceptThread: Thread?
    private let stopped = DispatchSemaphore(value: 0)
    private var servingThreads = 0

    /// SCHED_FIFO priority of the serving threads (nil: SCHED_OTHER), so that a device beside a real-time
    /// controller answers in time on a loaded box (refused silently without the privilege).
    let fifoPriority: Int32?

    init(
        upstreamPort: Int, unitID: UInt8 = 1, seed: UInt64, lateReplyNanoseconds: UInt64 = 60_000_000,
        fifoPriority: Int32? = nil
    ) {
        self.upstreamPort = upstreamPort
        self.fifoPriority = fifoPriority
        self.unitID = unitID
        self.lateReplyNanoseconds = lateReplyNanoseconds
        random = SplitMix64(seed: seed)
    }

    /// Percentage of requests answered with a hostile behaviour (0: the device behaves).
    var hostilePercent: Int {
        get { lock.withLock { hostilePercentValue } }
        set { lock.withLock { hostilePercentValue = newValue } }
    }

    /// The hostile behaviours to choose from.
    var hostileBehaviours: [HostileBehaviour] {
        get { lock.withLock { behaviours } }
        set { lock.withLock { behaviours = newValue } }
    }

    /// Takes the records of every request since the last call.
    func drainRecords() -> [HostileRecord] {
        lock.withLock {
            let taken = records
            records.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// How often each behaviour was used.
    var behaviourCounts: [HostileBehaviour: Int] { lock.withLock { counts } }

    /// Binds 127.0.0.1 on an ephemeral port and starts accepting. Returns the port.
    func start() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            Glibc.close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listenDescriptor = descriptor
        let thread = Thread { [self] in
            // The accept path is on the device's side of the wire: at the serving threads' priority, so that a
            // loaded machine (CI builds beside the tests) does not make a reconnect outlast the response timeout.
            if let fifoPriority { _ = lampcell_set_fifo_priority(fifoPriority) }
            acceptLoop()
        }
        thread.name = "hostile-accept"
        acceptThread = thread
        thread.start()
        return port
    }

    /// Stops accepting, closes the client connection and waits for the threads.
    func stop() {
        let (listening, client) = lock.withLock { () -> (Int32, Int32) in
            stopping = true
            generation += 1
            return (listenDescriptor, clientDescriptor)
        }
        if client >= 0 { shutdown(client, Int32(SHUT_RDWR)) }
        if listening >= 0 { shutdown(listening, Int32(SHUT_RDWR)) }
        if acceptThread != nil { _ = stopped.wait(timeout: .now() + 10) }
        acceptThread = nil
        let deadline = lampcell_monotonic_ns() + 10_000_000_000
        while lock.withLock({ servingThreads }) > 0 && lampcell_monotonic_ns() < deadline { usleep(1000) }
        if listening >= 0 { Glibc.close(listening) }
    }

    /// Closes the current client connection (as a device that drops its link).
    func dropClient() {
        lock.withLock {
            generation += 1
            if clientDescriptor >= 0 { shutdown(clientDescriptor, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop() {
        defer { stopped.signal() }
        while !lock.withLock({ stopping }) {
            var poller = pollfd(fd: listenDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let client = accept(listenDescriptor, nil, nil)
            guard client >= 0 else { continue }
            if lock.withLock({ stopping }) {
                Glibc.close(client)
                break
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // One client at a time, like the real devices' single connection: a new one replaces the old.
            let myGeneration = lock.withLock { () -> Int in
                generation += 1
                if clientDescriptor >= 0 { shutdown(clientDescriptor, Int32(SHUT_RDWR)) }
                clientDescriptor = client
                servingThreads += 1
                return generation
            }
            let thread = Thread { [self] in
                if let fifoPriority { _ = lampcell_set_fifo_priority(fifoPriority) }
                serve(client, generation: myGeneration)
                lock.withLock {
                    if clientDescriptor == client { clientDescriptor = -1 }
                    servingThreads -= 1
                }
                Glibc.close(client)
            }
            thread.name = "hostile-serve"
            thread.start()
        }
    }

    private func isCurrent(_ myGeneration: Int) -> Bool { lock.withLock { !stopping && generation == myGeneration } }

    /// Serves one client: request in, request to the real device, its reply (perhaps mangled) out.
    private func serve(_ client: Int32, generation myGeneration: Int) {
        let upstream = connectLoopback(upstreamPort)
        guard upstream >= 0 else { return }
        defer { Glibc.close(upstream) }
        while isCurrent(myGeneration) {
            guard let request = readFrame(client, timeoutMilliseconds: 100, keepWaiting: { self.isCurrent(myGeneration) }) else { return }
            guard writeAll(upstream, request) else { return }
            guard let reply = readFrame(upstream, timeoutMilliseconds: 2000, keepWaiting: { true }) else { return }
            let requestPDU = Array(request[7...])
            let (behaviour, answer) = lock.withLock { () -> (HostileBehaviour, [UInt8]?) in
                let chosen: HostileBehaviour =
                    hostilePercentValue > 0 && random.chance(hostilePercentValue) ? random.pick(behaviours) : .correct
                counts[chosen, default: 0] += 1
                records.append(
                    HostileRecord(function: request[7], behaviour: chosen, requestPDU: requestPDU, correctReplyPDU: Array(reply[7...])))
                return (chosen, mangle(reply, as: chosen))
            }
            switch behaviour {
            case .silence:
                continue
            case .close:
                return
            case .lateReply:
                usleep(UInt32(lateReplyNanoseconds / 1000))
                _ = writeAll(client, reply)
            default:
                if let answer, !writeAll(client, answer) { return }
            }
        }
    }

    /// The reply as `behaviour` sends it (nil: nothing to send). Called under the lock (uses the generator).
    private func mangle(_ reply: [UInt8], as behaviour: HostileBehaviour) -> [UInt8]? {
        var frame = reply
        let function = reply[7]
        func setLength() {
            let length = frame.count - 6
            frame[4] = UInt8(truncatingIfNeeded: length >> 8)
            frame[5] = UInt8(truncatingIfNeeded: length)
        }
        let isRead = [0x01, 0x02, 0x03, 0x04, 0x17].contains(function) && frame.count > 8
        switch behaviour {
        case .correct, .lateReply: return reply
        case .silence, .close: return nil
        case .randomBytes: return random.bytes(1 + random.below(300))
        case .shortFrame: return Array(reply.prefix(1 + random.below(reply.count - 1)))
        case .oversizedFrame:
            if isRead {
                let byteCount = Int(frame[8])
                let larger = min(255, byteCount + 1 + random.below(255))
                frame[8] = UInt8(larger)
                frame += random.bytes(larger - byteCount)
            } else {
                frame += random.bytes(1 + random.below(300))
            }
            setLength()
            return frame
        case .trailingGarbage: return reply + random.bytes(1 + random.below(40))
        case .wrongTransaction:
            frame[1] = frame[1] &+ UInt8(1 + random.below(255))
            return frame
        case .wrongUnit:
            frame[6] = frame[6] &+ UInt8(1 + random.below(255))
            return frame
        case .wrongProtocol:
            frame[2] = UInt8(1 + random.below(255))
            return frame
        case .wrongFunction:
            let others: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F, 0x10, 0x17, 0x2B, 0x00, 0x7F].filter { $0 != function }
            frame[7] = random.pick(others)
            return frame
        case .wrongByteCount:
            guard isRead else {
                // A write's echo has no byte count: change the echoed address or value instead.
                let at = 8 + random.below(max(1, frame.count - 8))
                frame[at] = frame[at] &+ UInt8(1 + random.below(255))
                return frame
            }
            frame[8] = frame[8] &+ UInt8(1 + random.below(255))
            return frame
        case .exception:
            let code = random.chance(70) ? UInt8(1 + random.below(11)) : UInt8(truncatingIfNeeded: random.next())
            frame = Array(reply[0..<7]) + [function | 0x80, code]
            setLength()
            return frame
        case .corruptPayload:
            guard isRead else { return reply }
            for index in 9..<frame.count { frame[index] = UInt8(truncatingIfNeeded: random.next()) }
            return frame
        }
    }
}

// MARK: - Plain socket helpers

/// A blocking TCP connection to 127.0.0.1:`port`, or -1.
func connectLoopback(_ port: Int) -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { return -1 }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        Glibc.close(descriptor)
        return -1
    }
    var one: Int32 = 1
    setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return descriptor
}

/// Sends everything; false when the peer is gone.
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent <= 0 { return false }
        offset += sent
    }
    return true
}

/// Reads exactly `count` bytes, polling in slices of `timeoutMilliseconds` while `keepWaiting()`; nil on EOF,
/// error or when told to stop.
func readExactly(_ descriptor: Int32, _ count: Int, timeoutMilliseconds: Int32, keepWaiting: () -> Bool) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    var offset = 0
    while offset < count {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&poller, 1, timeoutMilliseconds)
        if ready == 0 {
            if keepWaiting() { continue }
            return nil
        }
        guard ready > 0 else { return nil }
        let received = bytes[offset...].withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard received > 0 else { return nil }
        offset += received
    }
    return bytes
}

/// One MBAP-framed Modbus TCP frame (header and PDU); nil on EOF, error or a length field outside 2…254.
func readFrame(_ descriptor: Int32, timeoutMilliseconds: Int32, keepWaiting: () -> Bool) -> [UInt8]? {
    guard let header = readExactly(descriptor, 7, timeoutMilliseconds: timeoutMilliseconds, keepWaiting: keepWaiting) else { return nil }
    let length = Int(header[4]) << 8 | Int(header[5])
    guard (2...254).contains(length),
        let rest = readExactly(descriptor, length - 1, timeoutMilliseconds: timeoutMilliseconds, keepWaiting: keepWaiting)
    else { return nil }
    return header + rest
}
