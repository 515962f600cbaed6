import CModbus
import CRealtime
import Glibc

/// Modbus TCP over a real socket, with libmodbus 3.1.6 on the wire: the plant's transport.
///
/// libmodbus connects (non-blocking connect bounded by the deadline) and frames each reply
/// (`modbus_receive_confirmation`, which reads the MBAP header and the PDU by its function code). The request goes
/// out with a plain `send()` of the ADU the client built, so libmodbus never picks the transaction id and the
/// client can check every field of the reply itself (libmodbus ignores the unit and protocol ids over TCP).
/// libmodbus' own error recovery is off: no endless link recovery, no flush sleeps.
///
/// Thread: owned by one `ModbusClient`. Does not allocate once created.
public final class LibmodbusTCPTransport: ModbusTransport, @unchecked Sendable {
    /// Host (IPv4 literal, or a name resolved at each connect).
    public let host: String
    /// TCP port of the device.
    public let port: Int
    public let peerDescription: String
    public private(set) var isOpen = false
    private let context: OpaquePointer

    /// Creates the libmodbus context; does not connect.
    /// - Throws: `.invalidArgument` for a port outside 1...65535, or when libmodbus refuses the host.
    /// Thread: any.
    public init(host: String, port: Int) throws(ModbusError) {
        guard (1...65_535).contains(port) else {
            throw .invalidArgument("port \(port) of \(host) is outside 1...65535")
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
        self.host = host
        self.port = port
        peerDescription = "\(host):\(port)"
        modbus_set_error_recovery(context, MODBUS_ERROR_RECOVERY_NONE)
        // No byte timeout: the whole reply must arrive before the deadline (Linux select() counts the remaining
        // time down across libmodbus' successive reads).
        modbus_set_byte_timeout(context, 0, 0)
    }

    deinit {
        modbus_close(context)
        modbus_free(context)
    }

    public var readinessDescriptor: Int32 { isOpen ? modbus_get_socket(context) : -1 }

    public func open(deadlineNanoseconds: UInt64) -> Int32? {
        if isOpen { return nil }
        // libmodbus' TCP connect is a non-blocking connect() + select() bounded by the *response* timeout.
        setResponseTimeout(until: deadlineNanoseconds)
        guard modbus_connect(context) == 0 else {
            let code = lampcell_modbus_errno()
            // A select() timeout leaves errno at EINPROGRESS from the non-blocking connect().
            return code == EINPROGRESS ? ETIMEDOUT : code
        }
        isOpen = true
        return nil
    }

    public func close() {
        guard isOpen else { return }
        modbus_close(context)
        isOpen = false
    }

    public func send(_ frame: UnsafeBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int32? {
        let socket = modbus_get_socket(context)
        guard isOpen, socket >= 0, let base = frame.baseAddress else { return ENOTCONN }
        var offset = 0
        while offset < frame.count {
            let sent = Glibc.send(socket, base + offset, frame.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
                continue
            }
            let code = sent < 0 ? lampcell_modbus_errno() : EPIPE
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { return code }
            let now = lampcell_monotonic_ns()
            guard now < deadlineNanoseconds else { return ETIMEDOUT }
            var poller = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
            _ = lampcell_poll_ns(&poller, 1, deadlineNanoseconds - now)
        }
        return nil
    }

    public func receive(into buffer: UnsafeMutableBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int {
        precondition(buffer.count >= ModbusLimits.maximumADUBytes, "a reply buffer holds a whole ADU")
        guard isOpen else { return -Int(ENOTCONN) }
        setResponseTimeout(until: deadlineNanoseconds)
        let length = modbus_receive_confirmation(context, buffer.baseAddress)
        return length >= 0 ? Int(length) : -Int(lampcell_modbus_errno())
    }

    /// Sets libmodbus' response timeout to the time left until `deadline` (at least 1 µs, its resolution: a reply
    /// already in the socket is still read after the deadline, as select() reports it ready at once).
    private func setResponseTimeout(until deadline: UInt64) {
        let now = lampcell_monotonic_ns()
        let left = max(deadline > now ? deadline - now : 0, ModbusClient.minimumTimeoutNanoseconds)
        let seconds = UInt32(left / 1_000_000_000)
        let microseconds = UInt32((left % 1_000_000_000) / 1_000)
        modbus_set_response_timeout(context, seconds, max(microseconds, seconds == 0 ? 1 : 0))
    }
}
