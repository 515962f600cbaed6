import CModbus
import Glibc

/// A fault of the link between a client and its device, as an `InMemoryModbusTransport` plays it for one request
/// (one-shot). Each is what a real network or a real device can do to a Modbus TCP exchange.
public enum ModbusLinkFault: Int, Sendable, Equatable, CaseIterable {
    /// The request is lost on the way: the device applies nothing and no reply comes (`.timeout`).
    case requestLost
    /// The device applies the request but its reply is lost (`.timeout`; the client cannot tell it from
    /// `requestLost`).
    case replyLost
    /// The device applies the request and answers after the client's deadline: `.timeout`, and the late reply waits
    /// in the connection, where the client's resync (it closes the connection) must make sure it is never read.
    case replyLate
    /// The device answers 0x06 SERVER DEVICE BUSY and applies nothing.
    case exceptionReply
    /// The reply's function code is not the request's (`.badData`).
    case malformedReply
    /// The connection ends in the middle of the reply: the client gets fewer bytes than the MBAP header announces
    /// (`.badData`).
    case truncatedReply
    /// The reply carries more data than the request asked for, consistently framed (`.badData`).
    case oversizedReply
    /// The reply carries another request's transaction id (`.badData`).
    case wrongTransactionReply
    /// The reply is well framed but its first data register reads 0xFFFF: values a faulty gateway or firmware could
    /// produce, which only the driver's plausibility check can catch (the Modbus client has nothing to check).
    case corruptedValues
}

/// The link faults an `InMemoryModbusTransport` played, by kind. A value. Thread: any.
public struct ModbusLinkFaultCounts: Sendable, Equatable {
    public var played = [Int](repeating: 0, count: ModbusLinkFault.allCases.count)
    /// Connection attempts refused while unreachable.
    public var refusedConnects = 0
    /// Open connections broken while unreachable.
    public var connectionsReset = 0

    public init() {}

    public subscript(_ fault: ModbusLinkFault) -> Int {
        get { played[fault.rawValue] }
        set { played[fault.rawValue] = newValue }
    }
}

/// A Modbus TCP transport that never leaves the process: the request's real ADU bytes go to a
/// `ModbusRequestProcessor` (the same one `ModbusTCPServer` uses) and its `ModbusDevice`, and the reply's real bytes
/// come back. The one fake is the wire: there are no sockets and no time passes (a virtual-time run moves its
/// `VirtualClock` between periods).
///
/// Link faults are behaviours of this transport (`ModbusLinkFault`, `unreachableUntilNanoseconds`), armed by whoever
/// drives the run from its own seeded random source, so a run is replayable.
///
/// The device is called when the request is *sent* (the device applies a request when it arrives); the reply waits
/// in the connection until `receive`. Closing the connection discards it, and a late reply with it.
///
/// Thread: the virtual run's thread (the client's owner). Does not allocate once created.
public final class InMemoryModbusTransport: ModbusTransport, @unchecked Sendable {
    public let peerDescription: String
    /// The server side: unit-id filtering, the Modbus checks, then the device.
    public let processor: ModbusRequestProcessor
    /// The clock of the run, for `unreachableUntilNanoseconds`.
    public let clock: any ModbusClock
    public private(set) var isOpen = false
    /// The device refuses connections, and breaks an open one at its next request, until this clock time.
    public var unreachableUntilNanoseconds: UInt64 = 0
    /// Played on the next request, then cleared.
    public var pendingFault: ModbusLinkFault?
    /// What was played so far.
    public private(set) var faultCounts = ModbusLinkFaultCounts()
    /// Requests the device received (applied or answered with an exception).
    public private(set) var requestsDelivered: UInt64 = 0

    /// The reply waiting in the connection, and its length (0: none).
    private let replyBuffer: UnsafeMutableBufferPointer<UInt8>
    private var replyLength = 0
    /// The reply arrives after the request's deadline (`replyLate`).
    private var replyIsLate = false
    /// Where the reply to a request sent behind a stale (late) reply goes: the client reads the stale one first.
    private let discardBuffer: UnsafeMutableBufferPointer<UInt8>

    /// - Parameters:
    ///   - device: called on the run's thread, when a request is sent.
    ///   - unitID: the unit id the device answers (requests to another get no reply: a timeout).
    /// Thread: any.
    public init(device: any ModbusDevice, unitID: UInt8 = 1, clock: any ModbusClock, name: String) {
        processor = ModbusRequestProcessor(unitID: unitID, device: device)
        self.clock = clock
        peerDescription = "in-memory \(name)"
        replyBuffer = .allocate(capacity: ModbusLimits.maximumADUBytes)
        replyBuffer.initialize(repeating: 0)
        discardBuffer = .allocate(capacity: ModbusLimits.maximumADUBytes)
        discardBuffer.initialize(repeating: 0)
    }

    deinit {
        replyBuffer.deallocate()
        discardBuffer.deallocate()
    }

    /// Always −1: a reply, if one comes, is there as soon as the request was sent.
    public var readinessDescriptor: Int32 { -1 }

    private var isUnreachable: Bool { clock.nowNanoseconds < unreachableUntilNanoseconds }

    public func open(deadlineNanoseconds: UInt64) -> Int32? {
        if isOpen { return nil }
        if isUnreachable {
            faultCounts.refusedConnects += 1
            return ECONNREFUSED
        }
        isOpen = true
        replyLength = 0
        return nil
    }

    public func close() {
        isOpen = false
        replyLength = 0
        replyIsLate = false
    }

    public func send(_ frame: UnsafeBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int32? {
        guard isOpen else { return ENOTCONN }
        if isUnreachable {
            faultCounts.connectionsReset += 1
            close()
            return ECONNRESET
        }
        let header = ModbusLimits.mbapHeaderBytes
        precondition(
            frame.count > header && Int(frame[4]) << 8 | Int(frame[5]) == frame.count - 6,
            "the client sends whole ADUs framed by their MBAP length")
        if replyIsLate && replyLength > 0 {
            // A client that did not resync after a timeout: the late reply arrives now and is what it reads next;
            // the device still applies the new request.
            replyIsLate = false
            requestsDelivered += 1
            _ = processor.process(frame, into: discardBuffer)
            return nil
        }
        replyLength = 0
        replyIsLate = false
        let fault = pendingFault
        pendingFault = nil
        if let fault { faultCounts[fault] += 1 }
        if fault == .requestLost { return nil }
        if fault == .exceptionReply {
            // The device is busy: it answers the exception and applies nothing.
            for index in 0..<header { replyBuffer[index] = frame[index] }
            replyBuffer[5] = 3
            replyBuffer[7] = frame[7] | 0x80
            replyBuffer[8] = ModbusExceptionCode.serverDeviceBusy.rawValue
            replyLength = header + 2
            requestsDelivered += 1
            return nil
        }
        requestsDelivered += 1
        let length: Int
        switch processor.process(frame, into: replyBuffer) {
        case .ignored: return nil
        case .reply(let replied), .exception(let replied): length = replied
        }
        replyLength = length
        switch fault {
        case .replyLost: replyLength = 0
        case .replyLate: replyIsLate = true
        case .malformedReply: replyBuffer[7] ^= 0x40
        case .truncatedReply: replyLength = max(header + 1, length - 2)
        case .oversizedReply:
            if length + 2 <= ModbusLimits.maximumADUBytes {
                replyBuffer[length] = 0
                replyBuffer[length + 1] = 0
                replyLength = length + 2
                let mbapLength = replyLength - 6
                replyBuffer[4] = UInt8(mbapLength >> 8)
                replyBuffer[5] = UInt8(mbapLength & 0xFF)
                if replyBuffer[7] & 0x80 == 0 && length > header + 1 { replyBuffer[8] &+= 2 }
            }
        case .wrongTransactionReply:
            replyBuffer[1] &+= 1
            if replyBuffer[1] == 0 { replyBuffer[0] &+= 1 }
        case .corruptedValues:
            // The first data word of a read reply (after function code and byte count).
            if replyBuffer[7] & 0x80 == 0 && length >= header + 4 {
                replyBuffer[9] = 0xFF
                replyBuffer[10] = 0xFF
            }
        case .requestLost, .exceptionReply, nil: break
        }
        return nil
    }

    public func receive(into buffer: UnsafeMutableBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int {
        precondition(buffer.count >= ModbusLimits.maximumADUBytes, "a reply buffer holds a whole ADU")
        guard isOpen else { return -Int(ENOTCONN) }
        // No reply, or one that comes after the deadline (it stays in the connection until the client closes it).
        guard replyLength > 0, !replyIsLate else { return -Int(ETIMEDOUT) }
        for index in 0..<replyLength { buffer[index] = replyBuffer[index] }
        let length = replyLength
        replyLength = 0
        return length
    }
}
