import CModbus
import CRealtime
import Foundation
import Glibc
import Modbus
import Synchronization

/// Milliseconds as nanoseconds.
func ms(_ milliseconds: UInt64) -> UInt64 { milliseconds * 1_000_000 }

/// Polls `condition` every millisecond until it holds or `timeoutNanoseconds` passed. Returns whether it held.
func waitUntil(timeoutNanoseconds: UInt64 = ms(2_000), _ condition: () -> Bool) -> Bool {
    let deadline = lampcell_monotonic_ns() + timeoutNanoseconds
    while !condition() {
        if lampcell_monotonic_ns() >= deadline { return false }
        usleep(1_000)
    }
    return true
}

/// A started server over a `RegisterImage`, stopped on deinit.
final class ServerFixture {
    let image: RegisterImage
    let server: ModbusTCPServer
    let port: Int

    init(
        image: RegisterImage = RegisterImage(
            coils: 2_000, discreteInputs: 2_000, holdingRegisters: 300, inputRegisters: 200),
        maxClients: Int = 2, partialFrameTimeoutNanoseconds: UInt64 = ModbusTCPServer
            .defaultPartialFrameTimeoutNanoseconds
    ) throws {
        self.image = image
        server = ModbusTCPServer(
            maxClients: maxClients, device: image, partialFrameTimeoutNanoseconds: partialFrameTimeoutNanoseconds)
        port = try server.start()
    }

    deinit { server.stop() }

    func client(
        unitID: UInt8 = 1, responseTimeoutNanoseconds: UInt64 = ms(1_000),
        reconnect: ReconnectPolicy = .default, jitterSeed: UInt64 = 7
    ) throws -> ModbusClient {
        try ModbusClient(
            host: "127.0.0.1", port: port, unitID: unitID, responseTimeoutNanoseconds: responseTimeoutNanoseconds,
            connectTimeoutNanoseconds: ms(500), reconnect: reconnect, jitterSeed: jitterSeed)
    }
}

struct RawSocketError: Error, CustomStringConvertible {
    let description: String
}

/// A plain blocking TCP client for byte-level checks.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        let result = lampcell_tcp_connect_loopback(Int32(port))
        guard result >= 0 else { throw RawSocketError(description: "connect to \(port): errno \(-result)") }
        fd = result
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        let sent = bytes.withUnsafeBytes { lampcell_send(fd, $0.baseAddress, UInt($0.count)) }
        guard sent == bytes.count else { throw RawSocketError(description: "send returned \(sent)") }
    }

    /// Reads until `count` bytes arrived; returns what arrived before EOF, an error or the timeout.
    func receive(count: Int, timeoutMilliseconds: Int32) -> (bytes: [UInt8], endOfStream: Bool) {
        _ = lampcell_set_receive_timeout_ms(fd, timeoutMilliseconds)
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let received = bytes.withUnsafeMutableBytes {
                lampcell_read(fd, $0.baseAddress! + filled, UInt(count - filled))
            }
            if received == 0 { return (Array(bytes[..<filled]), true) }
            if received < 0 {
                // ECONNRESET counts as the end of the stream too.
                return (Array(bytes[..<filled]), received == -Int(ECONNRESET))
            }
            filled += received
        }
        return (bytes, false)
    }

    /// A Modbus TCP request frame.
    static func frame(transactionID: UInt16, unitID: UInt8, pdu: [UInt8]) -> [UInt8] {
        let length = pdu.count + 1
        return [
            UInt8(transactionID >> 8), UInt8(transactionID & 0xFF), 0, 0, UInt8(length >> 8), UInt8(length & 0xFF),
            unitID,
        ] + pdu
    }

    /// Sends one request and reads a reply of `replyPDUBytes` PDU bytes; returns the whole reply ADU.
    func request(transactionID: UInt16, unitID: UInt8 = 1, pdu: [UInt8], replyPDUBytes: Int) throws -> [UInt8] {
        try send(Self.frame(transactionID: transactionID, unitID: unitID, pdu: pdu))
        let reply = receive(count: 7 + replyPDUBytes, timeoutMilliseconds: 2_000)
        guard reply.bytes.count == 7 + replyPDUBytes else {
            throw RawSocketError(description: "short reply \(reply.bytes) to \(pdu)")
        }
        return reply.bytes
    }
}

/// Runs `body` on a dedicated thread; `join()` waits for it.
final class TestThread: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> Void) {
        let done = self.done
        let thread = Thread {
            body()
            done.signal()
        }
        thread.start()
    }

    func join() { done.wait() }
}

/// Messages collected from several threads.
final class FailureLog: Sendable {
    private let storage = Mutex<[String]>([])

    func append(_ message: String) { storage.withLock { $0.append(message) } }

    var entries: [String] { storage.withLock { $0 } }
}
