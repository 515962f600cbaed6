// The Modbus path in virtual time: the connection state machine of `ModbusClient` (connect, resync after a transport
// failure, capped exponential backoff with jitter), with injectable link faults, in front of a device model's
// `ModbusDevice` methods (what `ModbusTCPServer` calls). No sockets, no clocks: the engine passes virtual time.

import CellCore
import CellSimulator
import Modbus

/// A fault that the next request on a link suffers (one-shot), as the driver would experience it.
public enum LinkFault: Sendable, Equatable {
    /// The request never reaches the device (nothing applied) and no reply comes: `.timeout`.
    case timeout
    /// The device applies the request but its reply is lost: `.timeout` (the driver cannot tell it from `timeout`).
    case lateReply
    /// The device answers with this Modbus exception and applies nothing (e.g. 0x06 busy).
    case exception(ModbusExceptionCode)
}

/// One driver's client connection to one simulated device, in virtual time.
///
/// Mirrors `ModbusClient`'s policy exactly: after `.timeout`, `.badData` or `.connectionLost` the connection is
/// closed; a connection that had answered is retried at once (resync), one that never answered counts as a failed
/// attempt; failed attempts schedule the next one after `ReconnectPolicy`'s delay (jitter from a seeded source).
/// A device that is *unreachable* refuses connections, and a connected request to it fails with `.connectionLost`.
///
/// Thread: the engine's thread only.
public final class VirtualLink {
    /// Device name (for reports).
    public let name: String
    let policy: ReconnectPolicy
    private var jitter: SimulationRandom
    /// True while a (virtual) socket is open.
    public private(set) var isConnected = false
    private var connectionProven = false
    private var consecutiveFailures = 0
    private var nextAttemptNanoseconds: UInt64 = 0
    /// The device refuses connections until this virtual time (0: reachable).
    public var unreachableUntilNanoseconds: UInt64 = 0
    /// Applied to the next request, then cleared.
    public var pendingFault: LinkFault?
    /// Requests that failed because of an injected fault, by kind (timeouts, late replies, exceptions, drops).
    public private(set) var injectedTimeouts = 0
    public private(set) var injectedLateReplies = 0
    public private(set) var injectedExceptions = 0
    public private(set) var refusedConnects = 0
    public private(set) var connectionsLost = 0
    /// Requests performed (successful or not).
    public private(set) var requestCount: UInt64 = 0

    init(name: String, policy: ReconnectPolicy, jitter: SimulationRandom) {
        self.name = name
        self.policy = policy
        self.jitter = jitter
    }

    private func isUnreachable(_ now: UInt64) -> Bool { now < unreachableUntilNanoseconds }

    /// `ModbusClient.maintainConnection`: when disconnected and the backoff has passed, one connection attempt.
    /// Returns whether connected afterwards.
    func maintainConnection(nowNanoseconds now: UInt64) -> Bool {
        if isConnected { return true }
        if now < nextAttemptNanoseconds { return false }
        if isUnreachable(now) {
            refusedConnects += 1
            // A device that is down: the attempt fails (the real client sees ECONNREFUSED / a timeout).
            recordFailedAttempt(now)
            return false
        }
        isConnected = true
        connectionProven = false
        return true
    }

    private func recordFailedAttempt(_ attemptNanoseconds: UInt64) {
        consecutiveFailures += 1
        let unit = Double(jitter.next() >> 11) * 0x1.0p-53
        let delay = policy.delayNanoseconds(consecutiveFailures: consecutiveFailures, unitRandom: unit)
        nextAttemptNanoseconds = attemptNanoseconds &+ delay
    }

    private func proveConnection() {
        if !connectionProven {
            connectionProven = true
            consecutiveFailures = 0
        }
    }

    private func dropConnection(_ now: UInt64) {
        isConnected = false
        if connectionProven {
            nextAttemptNanoseconds = 0
        } else {
            recordFailedAttempt(now)
        }
    }

    /// One request: `body` performs it on the device (returning its exception, if any) — it is called only when
    /// the request reaches the device and is to be applied. Throws what `ModbusClient` would throw.
    func perform(nowNanoseconds now: UInt64, _ body: () -> ModbusExceptionCode?) throws(ModbusError) {
        guard isConnected else { throw .notConnected }
        requestCount += 1
        if isUnreachable(now) {
            connectionsLost += 1
            dropConnection(now)
            throw .connectionLost(errno: 104)  // ECONNRESET
        }
        if let fault = pendingFault {
            pendingFault = nil
            switch fault {
            case .timeout:
                injectedTimeouts += 1
                dropConnection(now)
                throw .timeout
            case .lateReply:
                injectedLateReplies += 1
                _ = body()
                dropConnection(now)
                throw .timeout
            case .exception(let code):
                injectedExceptions += 1
                proveConnection()
                throw .exception(code)
            }
        }
        if let exception = body() {
            proveConnection()
            throw .exception(exception)
        }
        proveConnection()
    }
}
