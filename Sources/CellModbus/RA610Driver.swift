import CellCore
import Modbus

/// The RA-610 register map as the driver uses it (datasheet "RA-610 arm controller — Modbus TCP interface").
public enum RA610Registers {
    /// Holding registers 0..27: command, heartbeat, tool_command, tool_request_id, tool_param, watchdog_ms,
    /// stream_period_us, reserved 7..15, target[6] (i32 µrad, high word first) at 16..27.
    public static let writeAddress = 0
    public static let writeCount = 28
    /// Holding registers 256..295 mirror input registers 0..39 (status … actual_velocity).
    public static let statusMirrorAddress = 256
    public static let statusMirrorCount = 40
    /// Input registers 100..103: model, firmware, serial_number (u32).
    public static let identityAddress = 100
    public static let identityCount = 4
    /// Offsets inside the holding block.
    public static let targetOffset = 16
    /// Offsets inside the status mirror.
    public static let actualPositionOffset = 16
    public static let actualVelocityOffset = 28
    /// Model number an RA-610 reports.
    public static let model: UInt16 = 610
}

/// What the driver accepts from an RA-610 as a plausible reply, from the datasheet alone. Modbus TCP has no checksum:
/// a well-framed reply with corrupted register values (a faulty gateway, a device that is not an RA-610, a bug in
/// its firmware) can only be told by values the datasheet says a real RA-610 never reports. Such a reply fails the
/// exchange like bad data (`DeviceLink.state == .badData`, `detail == implausibleReplyDetail`) and the last good
/// values stay in place. Thread: any (constants).
public enum RA610Plausibility {
    /// `status` bits 0..8 are defined; bits 9..15 are never set.
    public static let definedStatusBits: UInt16 = 0x01FF
    /// `status` bit 0 POWERED: "always set while it answers".
    public static let poweredBit: UInt16 = 0x0001
    /// `tool_state` bits 0..3 are defined.
    public static let definedToolStateBits: UInt16 = 0x000F
    /// `tool_kind` is 1, 2 or 3.
    public static let toolKinds: ClosedRange<UInt16> = 1...3
    /// The joint ranges are hard travel stops ("a joint never moves beyond them"); this much beyond is allowed for
    /// the µrad encoding, rad.
    public static let positionToleranceRadians = 0.001
    /// A measured joint velocity above this multiple of the joint's maximum velocity is not physical (streaming
    /// allows 1.5 × max velocity per period; the servo is critically damped and does not overshoot it).
    public static let velocityFactor = 2.0
    /// `DeviceLink.detail` of an exchange whose reply was rejected as implausible.
    public static let implausibleReplyDetail: Int32 = -1
}

/// Encodes radians as the datasheet's i32 micro-radians, saturating at the i32 range.
@inline(__always)
func microradians(_ radians: Double) -> Int32 {
    let value = (radians * 1_000_000).rounded()
    if !(value > Double(Int32.min)) { return Int32.min }
    if !(value < Double(Int32.max)) { return Int32.max }
    return Int32(value)
}

/// Reads a big-endian-word i32 (high word first) from two registers.
@inline(__always)
func int32(high: UInt16, low: UInt16) -> Int32 {
    Int32(bitPattern: UInt32(high) << 16 | UInt32(low))
}

/// Reads a u32 (high word first) from two registers.
@inline(__always)
func uint32(high: UInt16, low: UInt16) -> UInt32 { UInt32(high) << 16 | UInt32(low) }

/// Driver for one RA-610 arm controller over Modbus, whatever the transport (libmodbus TCP in the plant, in memory
/// in virtual time: the same code).
///
/// Each period performs exactly one 0x17 read/write-multiple transaction: it writes the command block
/// (holding 0..27) and reads the status mirror (holding 256..295). After every (re)connect it reads the identity
/// registers first (that period costs two round trips). Failures never throw: they show in `ArmInputs.link`, the
/// last good values stay in place, and reconnects follow the client's capped exponential backoff.
///
/// The exchange is split so that a period can talk to every device at once (`CellExchange`): `beginExchange`
/// sends, `continueExchange` completes the transaction in flight when its reply is there (and may send the next),
/// `endExchange` publishes the outcome. `exchange` does all three for one device.
///
/// Thread: owned by the control thread after start-up; not for concurrent use. No method allocates.
public final class RA610Driver: @unchecked Sendable {
    /// The device name from the cell definition (`loader`, `assembler`, `lens`).
    public let name: String
    /// The connection to the arm.
    public let client: ModbusClient
    private let writeBuffer: UnsafeMutableBufferPointer<UInt16>
    private let readBuffer: UnsafeMutableBufferPointer<UInt16>
    private let identityBuffer: UnsafeMutableBufferPointer<UInt16>
    private var needsIdentity = true
    /// The datasheet's joint limits, for the plausibility check of every reply.
    private let jointLimits = JointLimits.ra610

    /// Where this period's exchange stands.
    private enum Stage {
        /// Nothing sent (or the exchange ended).
        case idle
        /// The identity read is in flight; the 0x17 follows.
        case identity
        /// The 0x17 is in flight.
        case status
    }

    /// How this period's exchange ended.
    private enum Outcome {
        case ok
        /// Not connected, and the backoff did not allow an attempt (or the attempt failed).
        case disconnected
        case failed(ModbusError)
    }

    private var stage = Stage.idle
    private var outcome = Outcome.disconnected
    /// An identity read in this period succeeded (applied to the link at `endExchange`).
    private var identityRead = false

    /// A driver over `client` (any transport). Thread: any; then the control thread.
    public init(name: String, client: ModbusClient) {
        self.name = name
        self.client = client
        writeBuffer = .allocate(capacity: RA610Registers.writeCount)
        writeBuffer.initialize(repeating: 0)
        readBuffer = .allocate(capacity: RA610Registers.statusMirrorCount)
        readBuffer.initialize(repeating: 0)
        identityBuffer = .allocate(capacity: RA610Registers.identityCount)
        identityBuffer.initialize(repeating: 0)
    }

    /// A driver of the arm at `host`:`port` over libmodbus TCP (the plant).
    /// - Parameters:
    ///   - responseTimeoutNanoseconds: the bound on one transaction; keep it well below the control period.
    ///   - connectTimeoutNanoseconds: the bound on one connect attempt (it runs on the control thread).
    public convenience init(
        name: String, host: String, port: Int, unitID: UInt8,
        responseTimeoutNanoseconds: UInt64, connectTimeoutNanoseconds: UInt64,
        reconnect: ReconnectPolicy = .default
    ) throws(ModbusError) {
        self.init(
            name: name,
            client: try ModbusClient(
                host: host, port: port, unitID: unitID,
                responseTimeoutNanoseconds: responseTimeoutNanoseconds,
                connectTimeoutNanoseconds: connectTimeoutNanoseconds, reconnect: reconnect))
    }

    deinit {
        client.close()
        writeBuffer.deallocate()
        readBuffer.deallocate()
        identityBuffer.deallocate()
    }

    /// Closes the connection (shutdown). Thread: the owner.
    public func close() { client.close() }

    /// Writes `outputs` and reads the arm's state into `inputs` in one 0x17 transaction (two after a connect).
    /// Thread: the control thread. Does not allocate; blocks at most the response timeout per transaction (or the
    /// connect timeout).
    public func exchange(_ outputs: ArmOutputs, into inputs: inout ArmInputs, nowNanoseconds: UInt64) {
        beginExchange(outputs, nowNanoseconds: nowNanoseconds)
        while client.hasPendingRequest { continueExchange() }
        endExchange(into: &inputs)
    }

    /// Sends this period's first request: the identity read after a (re)connect, else the 0x17 with `outputs`.
    /// Thread: the control thread. Does not allocate; may connect (bounded by the connect timeout).
    public func beginExchange(_ outputs: ArmOutputs, nowNanoseconds: UInt64) {
        assert(stage == .idle, "\(name): beginExchange twice")
        identityRead = false
        if !client.isConnected {
            guard client.maintainConnection(nowNanoseconds: nowNanoseconds) else {
                outcome = .disconnected
                return
            }
            needsIdentity = true
        }
        Self.encode(outputs, into: writeBuffer)
        if needsIdentity {
            send(.readInputRegisters(address: RA610Registers.identityAddress, into: identityBuffer), stage: .identity)
        } else {
            sendStatusExchange()
        }
    }

    /// Completes the request in flight (its reply is there, or its deadline passed): after the identity, sends the
    /// 0x17. Call while `client.hasPendingRequest`. Thread: the control thread. Does not allocate.
    public func continueExchange() {
        assert(client.hasPendingRequest, "\(name): continueExchange with nothing in flight")
        do throws(ModbusError) {
            try client.receive()
            switch stage {
            case .identity:
                guard identityBuffer[0] == RA610Registers.model else {
                    throw .badData(errno: RA610Plausibility.implausibleReplyDetail)
                }
                needsIdentity = false
                identityRead = true
                sendStatusExchange()
            case .status:
                try checkPlausible()
                stage = .idle
                outcome = .ok
            case .idle:
                assertionFailure("\(name): a reply with no stage")
            }
        } catch {
            stage = .idle
            outcome = .failed(error)
        }
    }

    /// Publishes the period's outcome into `inputs`: the decoded state on success, else the link's failure (the last
    /// good values stay). Thread: the control thread. Does not allocate.
    public func endExchange(into inputs: inout ArmInputs) {
        assert(!client.hasPendingRequest, "\(name): endExchange with a request in flight")
        stage = .idle
        if identityRead {
            Self.decodeIdentity(UnsafeBufferPointer(identityBuffer), into: &inputs.link)
        }
        switch outcome {
        case .ok:
            decode(into: &inputs)
            inputs.link.state = .ok
            inputs.link.detail = 0
            inputs.link.consecutiveFailures = 0
        case .disconnected:
            inputs.link.state = .disconnected
            inputs.link.consecutiveFailures &+= 1
        case .failed(let error):
            inputs.link.record(error)
        }
        outcome = .disconnected
    }

    private func sendStatusExchange() {
        send(
            .writeAndReadRegisters(
                writeAddress: RA610Registers.writeAddress, values: UnsafeBufferPointer(writeBuffer),
                readAddress: RA610Registers.statusMirrorAddress, into: readBuffer),
            stage: .status)
    }

    private func send(_ request: ModbusRequest, stage next: Stage) {
        do throws(ModbusError) {
            try client.send(request)
            stage = next
        } catch {
            stage = .idle
            outcome = .failed(error)
        }
    }

    private func decode(into inputs: inout ArmInputs) { Self.decode(UnsafeBufferPointer(readBuffer), into: &inputs) }

    /// Encodes `outputs` as the holding block 0..27 (`RA610Registers.writeCount` words; reserved 7..15 stay as
    /// they are in `buffer`). Thread: any; does not allocate.
    @inline(__always)
    public static func encode(_ outputs: ArmOutputs, into buffer: UnsafeMutableBufferPointer<UInt16>) {
        buffer[0] = outputs.command.rawValue
        buffer[1] = outputs.heartbeat
        buffer[2] = outputs.toolCommand.rawValue
        buffer[3] = outputs.toolRequestID
        buffer[4] = outputs.toolParam
        buffer[5] = outputs.watchdogMilliseconds
        buffer[6] = outputs.streamPeriodMicroseconds
        for joint in 0..<armJointCount {
            let value = UInt32(bitPattern: microradians(outputs.targetsRadians[joint]))
            buffer[RA610Registers.targetOffset + 2 * joint] = UInt16(truncatingIfNeeded: value >> 16)
            buffer[RA610Registers.targetOffset + 2 * joint + 1] = UInt16(truncatingIfNeeded: value)
        }
    }

    /// Throws `.badData` when the status mirror in `readBuffer` holds values no RA-610 reports (see
    /// `RA610Plausibility`). Does not allocate.
    private func checkPlausible() throws(ModbusError) {
        let r = readBuffer
        let implausible = ModbusError.badData(errno: RA610Plausibility.implausibleReplyDetail)
        guard r[0] & ~RA610Plausibility.definedStatusBits == 0, r[0] & RA610Plausibility.poweredBit != 0,
            r[3] & ~RA610Plausibility.definedToolStateBits == 0, RA610Plausibility.toolKinds.contains(r[8])
        else { throw implausible }
        let tolerance = RA610Plausibility.positionToleranceRadians
        for joint in 0..<armJointCount {
            let p = RA610Registers.actualPositionOffset + 2 * joint
            let v = RA610Registers.actualVelocityOffset + 2 * joint
            let position = Double(int32(high: r[p], low: r[p + 1])) / 1_000_000
            let velocity = Double(int32(high: r[v], low: r[v + 1])) / 1_000_000
            guard position >= jointLimits.positionMinimumRadians[joint] - tolerance,
                position <= jointLimits.positionMaximumRadians[joint] + tolerance,
                abs(velocity) <= jointLimits.maximumVelocityRadiansPerSecond[joint] * RA610Plausibility.velocityFactor
            else { throw implausible }
        }
    }

    /// Decodes the status mirror (holding 256..295, `RA610Registers.statusMirrorCount` words) into `inputs`
    /// (the link fields are left alone). Thread: any.
    @inline(__always)
    public static func decode(_ r: UnsafeBufferPointer<UInt16>, into inputs: inout ArmInputs) {
        inputs.status = ArmStatus(rawValue: r[0])
        inputs.faultCode = r[1]
        inputs.heartbeatEcho = r[2]
        inputs.toolState = ToolState(rawValue: r[3])
        inputs.toolAckID = r[4]
        inputs.toolResult = r[5]
        inputs.uptimeMilliseconds = uint32(high: r[6], low: r[7])
        inputs.toolKind = r[8]
        for joint in 0..<armJointCount {
            let p = RA610Registers.actualPositionOffset + 2 * joint
            let v = RA610Registers.actualVelocityOffset + 2 * joint
            inputs.actualPositionsRadians[joint] = Double(int32(high: r[p], low: r[p + 1])) / 1_000_000
            inputs.actualVelocitiesRadiansPerSecond[joint] = Double(int32(high: r[v], low: r[v + 1])) / 1_000_000
        }
    }

    /// Decodes the identity input registers 100..103 into `link`. Thread: any.
    @inline(__always)
    public static func decodeIdentity(_ identity: UnsafeBufferPointer<UInt16>, into link: inout DeviceLink) {
        link.model = identity[0]
        link.firmware = identity[1]
        link.serialNumber = uint32(high: identity[2], low: identity[3])
    }
}

extension DeviceLink {
    /// Records a failed exchange, as every driver does. Thread: the control thread; does not allocate.
    public mutating func record(_ error: ModbusError) {
        consecutiveFailures &+= 1
        switch error {
        case .exception(let code):
            state = .exception
            detail = Int32(code.rawValue)
        case .unknownException(let rawCode):
            state = .exception
            detail = Int32(rawCode)
        case .timeout:
            state = .timeout
            detail = 0
        case .badData(let errno):
            state = .badData
            detail = errno
        case .connectionLost(let errno), .connectFailed(let errno):
            state = .disconnected
            detail = errno
        case .notConnected:
            state = .disconnected
            detail = 0
        case .invalidArgument:
            state = .badData
            detail = 0
        }
    }
}
