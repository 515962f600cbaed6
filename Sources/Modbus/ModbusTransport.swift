import CRealtime
import Glibc

// The seam between the Modbus client's policy and what moves the bytes (ARCHITECTURE.md, "One code path"):
//
//   ModbusClient (transaction ids, reply checks, resync, reconnect backoff with jitter, counters)
//        │ ModbusTransport: open / send one ADU / receive one ADU, against absolute deadlines of a ModbusClock
//   ┌────┴──────────────────────┐
//   LibmodbusTCPTransport       InMemoryModbusTransport ── ModbusRequestProcessor ── ModbusDevice (a model)
//   (the plant: real sockets)   (virtual time: the request's real bytes, link faults as behaviours)

/// A source of monotonic time in nanoseconds for the Modbus client's deadlines and backoff.
///
/// The plant uses `MonotonicClock` (CLOCK_MONOTONIC); virtual-time runs use `VirtualClock`, which only moves when
/// its owner moves it. Thread: the client's owner.
public protocol ModbusClock: AnyObject {
    /// Now, in nanoseconds of this clock. Must not allocate or block.
    var nowNanoseconds: UInt64 { get }
}

/// CLOCK_MONOTONIC. One shared instance; stateless, so any thread may read it.
public final class MonotonicClock: ModbusClock, @unchecked Sendable {
    /// The process's monotonic clock.
    public static let shared = MonotonicClock()
    private init() {}
    @inline(__always) public var nowNanoseconds: UInt64 { lampcell_monotonic_ns() }
}

/// A clock that stands still until its owner advances it (the one fake of a virtual-time run: no real clock can
/// run 700 times faster than real time). Thread: the owner of the virtual run.
public final class VirtualClock: ModbusClock, @unchecked Sendable {
    /// Now, ns of virtual time.
    public var nowNanoseconds: UInt64

    public init(nowNanoseconds: UInt64 = 0) { self.nowNanoseconds = nowNanoseconds }

    /// Moves the clock to `nanoseconds`; time never goes backwards.
    public func advance(toNanoseconds nanoseconds: UInt64) {
        assert(nanoseconds >= nowNanoseconds, "virtual time goes backwards: \(nowNanoseconds) → \(nanoseconds)")
        nowNanoseconds = max(nowNanoseconds, nanoseconds)
    }
}

/// Moves whole Modbus TCP ADUs (MBAP header + PDU) between a client and one device. It knows nothing of
/// transaction ids, unit ids or reply checks: that is `ModbusClient`'s policy, the same over every transport.
///
/// Errors are errno values: `ETIMEDOUT` when a deadline passes, `ECONNREFUSED`/`ECONNRESET`/`EPIPE`… when the
/// connection cannot be made or is gone. Deadlines are absolute times of the client's `ModbusClock`.
///
/// Thread: owned by one client, called on its owner's thread only. No method may allocate once open.
public protocol ModbusTransport: AnyObject {
    /// What the transport connects to, for messages (`127.0.0.1:1502`, `in-memory station`).
    var peerDescription: String { get }
    /// True while a connection is open.
    var isOpen: Bool { get }
    /// Opens a connection; nil on success, else the errno. Blocks until `deadlineNanoseconds` at most.
    func open(deadlineNanoseconds: UInt64) -> Int32?
    /// Closes the connection and discards every byte in flight (a late reply can never be read after this).
    func close()
    /// Sends one request ADU whole; nil on success, else the errno. Blocks until `deadlineNanoseconds` at most.
    func send(_ frame: UnsafeBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int32?
    /// Receives one reply ADU into `buffer` (`ModbusLimits.maximumADUBytes` bytes); returns its length, or
    /// −errno. Blocks until `deadlineNanoseconds` at most.
    func receive(into buffer: UnsafeMutableBufferPointer<UInt8>, deadlineNanoseconds: UInt64) -> Int
    /// A descriptor that becomes readable when reply bytes arrive, for `poll`; −1 when a reply, if any, is
    /// already there (an in-memory transport): `receive` never waits then.
    var readinessDescriptor: Int32 { get }
}
