import CModbus
import Glibc

/// Why a Modbus client call failed.
///
/// `.exception` means the device answered (the connection is healthy). `.timeout`, `.badData` and
/// `.connectionLost` mean the connection was closed by the client to resynchronise (see `ModbusClient`).
public enum ModbusError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The device answered with a Modbus exception response.
    case exception(ModbusExceptionCode)
    /// The device answered with an exception code `ModbusExceptionCode` does not name (0x07, 0x09, ...).
    case unknownException(rawCode: UInt8)
    /// No complete reply within the response timeout.
    case timeout
    /// The TCP connection failed (reset, closed by the peer, broken pipe, ...); `errno` is the system error.
    case connectionLost(errno: Int32)
    /// A reply that does not match the request (transaction id, function, length) or a malformed one.
    case badData(errno: Int32)
    /// Not connected, and the reconnect backoff has not elapsed yet (or the owner closed the client).
    case notConnected
    /// A connection attempt failed; `errno` is ETIMEDOUT when it did not complete within the connect timeout.
    case connectFailed(errno: Int32)
    /// The call's arguments were rejected before anything was sent.
    case invalidArgument(String)

    /// Maps the errno of a failed libmodbus request. The single place where libmodbus errors are interpreted.
    init(requestErrno code: Int32) {
        let exceptionBase = Int32(LAMPCELL_MODBUS_ENOBASE)
        if code >= exceptionBase && code <= Int32(LAMPCELL_EMBXGTAR) {
            let raw = UInt8(truncatingIfNeeded: code - exceptionBase)
            if let known = ModbusExceptionCode(rawValue: raw) {
                self = .exception(known)
            } else {
                self = .unknownException(rawCode: raw)
            }
            return
        }
        switch code {
        case ETIMEDOUT:
            self = .timeout
        case Int32(LAMPCELL_EMBBADCRC), Int32(LAMPCELL_EMBBADDATA), Int32(LAMPCELL_EMBBADEXC),
            Int32(LAMPCELL_EMBUNKEXC), Int32(LAMPCELL_EMBMDATA), Int32(LAMPCELL_EMBBADSLAVE):
            self = .badData(errno: code)
        case EINVAL:
            self = .invalidArgument("libmodbus rejected the request arguments (EINVAL)")
        default:
            // ECONNRESET (libmodbus reports a peer close as ECONNRESET), EPIPE, ECONNREFUSED, EBADF, ENOTCONN, EIO...
            self = .connectionLost(errno: code)
        }
    }

    /// True when the error leaves the connection in an unknown state: the client closes it before the next request.
    public var requiresResync: Bool {
        switch self {
        case .timeout, .badData, .connectionLost: true
        case .exception, .unknownException, .notConnected, .connectFailed, .invalidArgument: false
        }
    }

    public var description: String {
        switch self {
        case .exception(let code): "Modbus exception \(code)"
        case .unknownException(let raw): "Modbus exception with unknown code \(raw)"
        case .timeout: "Modbus request timed out"
        case .connectionLost(let code): "Modbus connection lost: \(Self.describe(errno: code))"
        case .badData(let code): "Modbus reply rejected: \(Self.describe(errno: code))"
        case .notConnected: "Modbus client not connected (waiting for the reconnect backoff)"
        case .connectFailed(let code): "Modbus connect failed: \(Self.describe(errno: code))"
        case .invalidArgument(let message): "invalid Modbus request: \(message)"
        }
    }

    private static func describe(errno code: Int32) -> String {
        guard let text = modbus_strerror(code) else { return "errno \(code)" }
        return "\(String(cString: text)) (errno \(code))"
    }
}
