import CellCore
import Modbus

/// The TS-200 register map as the driver uses it (datasheet "TS-200 cell station controller — Modbus TCP interface").
public enum TS200Registers {
    public static let coilCount = StationCoils.count
    public static let discreteInputCount = StationSignals.count
    /// Input registers 0..15: status … uptime_ms.
    public static let inputRegisterCount = 16
    /// Holding register 0: variant.
    public static let variantAddress = 0
}

/// What the driver accepts from a TS-200 as a plausible reply, from the datasheet alone (as `RA610Plausibility` for
/// the arms): Modbus TCP has no checksum, so a well-framed reply with corrupted values can only be told by values the
/// datasheet says a station never reports. Such a reply fails the exchange like bad data (`DeviceLink.state ==
/// .badData`, `detail == implausibleReplyDetail`) and the last good values stay. Counts, results, lots and uptime may
/// take any value and are not checked. Thread: any (constants).
public enum TS200Plausibility {
    /// `status` bits 0 (READY) and 1 (FAULT) are defined; the others are never set. (How READY and FAULT combine,
    /// and whether FAULT always comes with a code, the datasheet leaves open: not checked.)
    public static let definedStatusBits: UInt16 = 0x0003
    /// `fault_code`: 0 none, or one of the datasheet's three codes (consecutive, so a range: no set to build on the
    /// heap at first use on the control thread).
    public static let faultCodes: ClosedRange<UInt16> = StationFaultCode.infeedJam...StationFaultCode.testerFault
    /// Input register 7 is reserved: "reserved addresses inside a table read as 0".
    public static let reservedRegister = 7
    /// SAFETY_OK means "e-stop chain closed and guard door closed": never together with ESTOP_PRESSED or GUARD_OPEN.
    public static let contradictsSafetyOK = StationSignals.estopPressed.union(.guardOpen)
    /// `DeviceLink.detail` of an exchange whose reply was rejected as implausible (the arms' value).
    public static let implausibleReplyDetail = RA610Plausibility.implausibleReplyDetail

    /// True when `signals` (the discrete inputs) hold no contradiction: SAFETY_OK with a pressed e-stop or an open
    /// guard, or FIXTURE_CLAMPED ("clamp closed on a part") without PART_IN_FIXTURE.
    public static func plausible(_ signals: StationSignals) -> Bool {
        if signals.contains(.safetyOK) && !signals.isDisjoint(with: contradictsSafetyOK) { return false }
        if signals.contains(.fixtureClamped) && !signals.contains(.partInFixture) { return false }
        return true
    }

    /// True when input registers 0..15 in `r` hold values a TS-200 reports: defined status bits only, a known
    /// fault code, the reserved register 0.
    public static func plausible(registers r: UnsafeMutableBufferPointer<UInt16>) -> Bool {
        let faultCode = r[1]
        return r[0] & ~definedStatusBits == 0 && (faultCode == 0 || faultCodes.contains(faultCode))
            && r[reservedRegister] == 0
    }
}

/// Driver for the TS-200 station controller over Modbus, whatever the transport (libmodbus TCP in the plant, in
/// memory in virtual time: the same code).
///
/// **What a period does.** Two phases, so that the read phase costs one round trip per connection:
/// - **the exchange** (`beginExchange` … `endExchange`, before the step) reads the discrete inputs (0x02: SAFETY_OK,
///   parts present, …) and the input registers (0x04: test counts and results, the lots at the pick points), every
///   period, one on each connection. It first completes what the previous dispatch sent, whose reply has had the
///   rest of the previous period to arrive.
/// - **the dispatch** (`dispatch`, after the step) sends at most one transaction on each connection and does not
///   wait for its reply: the writes the step asked for, in order, or else a read-back that is due. The writes are
///   each level coil whose wanted value differs from the known one (0x05, one coil at a time: the station writes
///   INFEED_ADVANCE/OUTFEED_ADVANCE back to 0 itself, so a multi-coil write could undo its write-back), one
///   INFEED/OUTFEED_ADVANCE per change of `StationOutputs.infeedRequests`/`outfeedRequests`, and the variant (0x06)
///   when it differs. Writes that find no free connection are planned again at the next dispatch (they still
///   differ), so none is lost or sent twice.
///
/// The coils (0x01) and the variant (0x03) are only ever changed by this driver (the station never clears the start
/// coils and writes back only the ADVANCE coils, which are not level coils), so it knows them from its own
/// acknowledged writes and reads each back only every `verifyEveryPeriods` periods, to catch a change made by someone
/// else; a dispatch that writes postpones its read-back. After a connect or a failed exchange the state of the station
/// is unknown: the next exchange reads everything, and nothing is written until it succeeded.
///
/// **Connections.** The datasheet allows two concurrent connections. With `connections: 2` the two reads go side by
/// side and cost one round trip, not two, and the dispatch sends two transactions (a third client, such as a
/// commissioning tool, is then refused by the station while the cell runs). With 1, every transaction goes in turn
/// over one connection. A transaction whose connection is down is taken by the other one.
///
/// Thread: owned by the control thread after start-up; not for concurrent use. No method allocates.
public final class TS200Driver: @unchecked Sendable {
    /// The device name from the cell definition (`station`).
    public let name: String
    /// The connections to the station (one or two), fixed at init.
    public let clients: [ModbusClient]

    /// How often (in periods) the coils and the variant register are read back; the coils in one period, the
    /// variant `verifyEveryPeriods / 2` periods later. Between read-backs they are known from the driver's own
    /// acknowledged writes.
    public static let verifyEveryPeriods: UInt64 = 8
    /// Most connections the datasheet allows one client ("2; a third connection is accepted and closed at once").
    public static let maximumConnections = 2
    /// Most transactions planned at once: 6 level coils, 2 advance coils and the variant (a dispatch), or 2 reads
    /// and 2 read-backs (an exchange after a connect).
    static let maximumTransactionsPerPeriod = 16

    /// One transaction of a period.
    enum Transaction: Equatable {
        case readSignals, readRegisters, readCoils, readVariant
        /// 0x05 of a level coil (`address` = its bit in `StationCoils`) to `value`.
        case writeLevelCoil(address: Int, value: Bool)
        case advanceInfeed, advanceOutfeed
        case writeVariant(UInt16)
    }

    /// One buffer per connection for what a read returns (bits or registers).
    private let bitBuffers: [UnsafeMutableBufferPointer<UInt8>]
    private let registerBuffers: [UnsafeMutableBufferPointer<UInt16>]
    /// The period's transactions in order, and the next to start.
    private let queue: UnsafeMutableBufferPointer<Transaction>
    private var queued = 0
    private var nextToStart = 0
    /// The transaction in flight on each connection.
    private let inFlight: UnsafeMutableBufferPointer<Transaction?>

    /// Conveyor requests acknowledged so far, and those this period's writes carry.
    private var lastInfeedRequest: UInt32 = 0
    private var lastOutfeedRequest: UInt32 = 0
    private var plannedInfeedRequest: UInt32 = 0
    private var plannedOutfeedRequest: UInt32 = 0
    /// Periods exchanged successfully since the last connect or failure; picks the read-back periods.
    private var periodsInStep: UInt64 = 0
    /// A read-back that a writing period postponed.
    private var coilReadBackDue = false
    private var variantReadBackDue = false

    /// This period's results, applied at `endExchange`.
    private var staged = StationInputs()
    private var failure: ModbusError?
    /// A send of the last dispatch that failed; reported by the next exchange.
    private var dispatchFailure: ModbusError?
    private var anyConnected = false

    /// A driver over `clients` (one or two connections to the same station, any transport).
    /// Thread: any; then the control thread.
    public init(name: String, clients: [ModbusClient]) {
        precondition(
            (1...Self.maximumConnections).contains(clients.count), "a TS-200 takes 1 or 2 connections, not \(clients.count)")
        self.name = name
        self.clients = clients
        bitBuffers = clients.map { _ in
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(
                capacity: max(TS200Registers.coilCount, TS200Registers.discreteInputCount))
            buffer.initialize(repeating: 0)
            return buffer
        }
        registerBuffers = clients.map { _ in
            let buffer = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: TS200Registers.inputRegisterCount)
            buffer.initialize(repeating: 0)
            return buffer
        }
        queue = .allocate(capacity: Self.maximumTransactionsPerPeriod)
        queue.initialize(repeating: .readSignals)
        inFlight = .allocate(capacity: clients.count)
        inFlight.initialize(repeating: nil)
    }

    /// A driver of the station at `host`:`port` over libmodbus TCP (the plant), over `connections` (1 or 2)
    /// connections.
    public convenience init(
        name: String, host: String, port: Int, unitID: UInt8,
        responseTimeoutNanoseconds: UInt64, connectTimeoutNanoseconds: UInt64,
        reconnect: ReconnectPolicy = .default, connections: Int = 1
    ) throws(ModbusError) {
        var clients: [ModbusClient] = []
        for index in 0..<connections {
            clients.append(
                try ModbusClient(
                    host: host, port: port, unitID: unitID, responseTimeoutNanoseconds: responseTimeoutNanoseconds,
                    connectTimeoutNanoseconds: connectTimeoutNanoseconds, reconnect: reconnect,
                    jitterSeed: 0x5EED_5EED &+ UInt64(index)))
        }
        self.init(name: name, clients: clients)
    }

    deinit {
        for client in clients { client.close() }
        for buffer in bitBuffers { buffer.deallocate() }
        for buffer in registerBuffers { buffer.deallocate() }
        queue.deallocate()
        inFlight.deallocate()
    }

    /// Closes the connections (shutdown); what was in flight is forgotten. Thread: the owner.
    public func close() {
        for index in clients.indices {
            clients[index].close()
            inFlight[index] = nil
        }
    }

    /// Dispatches what `outputs` changed (at most one write per connection; the rest at the next call) and reads the
    /// station into `inputs`, waiting for every reply: a whole period of this device alone (tests, and the
    /// sequential figure of `make bench`).
    /// Thread: the control thread. Does not allocate; blocks at most the response timeout per transaction.
    public func exchange(_ outputs: StationOutputs, into inputs: inout StationInputs, nowNanoseconds: UInt64) {
        dispatch(outputs, current: inputs)
        beginExchange(current: inputs, nowNanoseconds: nowNanoseconds)
        var busy = true
        while busy {
            busy = false
            for index in clients.indices where clients[index].hasPendingRequest {
                continueExchange(connection: index)
                busy = true
            }
        }
        endExchange(into: &inputs)
    }

    /// Starts the period's reads, judged against `current` (the inputs as last exchanged): one on each free
    /// connection; a connection still busy with the last dispatch takes its read once that reply is in.
    /// Thread: the control thread. Does not allocate; may connect (bounded by the connect timeout).
    public func beginExchange(current: StationInputs, nowNanoseconds: UInt64) {
        for index in clients.indices {
            assert(
                inFlight[index] == nil || clients[index].hasPendingRequest,
                "\(name): connection \(index) lost its dispatched transaction without a reply")
        }
        staged = current
        failure = dispatchFailure
        dispatchFailure = nil
        queued = 0
        nextToStart = 0
        anyConnected = false
        // Indices, not `for client in clients`: an unspecialised array iterator allocates in debug builds.
        for index in clients.indices where clients[index].maintainConnection(nowNanoseconds: nowNanoseconds) {
            anyConnected = true
        }
        guard anyConnected else { return }

        enqueue(.readSignals)
        enqueue(.readRegisters)
        if !isInStep(current) {
            // The station's coils and variant are unknown: read them too.
            periodsInStep = 0
            enqueue(.readCoils)
            enqueue(.readVariant)
        }
        for index in clients.indices where inFlight[index] == nil { startNext(on: index) }
    }

    /// Sends, after the step, the writes that `outputs` asks for (judged against `current`, the inputs of this
    /// period's exchange), or else a read-back that is due: at most one transaction on each connection, not awaited.
    /// Their replies are completed by the next exchange. Nothing is sent while the station's state is unknown (after
    /// a connect or a failure, until an exchange succeeded). Thread: the control thread. Does not allocate.
    public func dispatch(_ outputs: StationOutputs, current: StationInputs) {
        assert(!hasRequestInFlight, "\(name): dispatch with a request in flight")
        failure = nil
        queued = 0
        nextToStart = 0
        guard isInStep(current) else { return }
        planWrites(outputs, current: current)
        let phase = periodsInStep % Self.verifyEveryPeriods
        if phase == 0 { coilReadBackDue = true }
        if phase == Self.verifyEveryPeriods / 2 { variantReadBackDue = true }
        // A dispatch that writes postpones its read-back: a read-back beside a write could see the old value.
        if queued == 0 {
            if coilReadBackDue { enqueue(.readCoils) }
            if variantReadBackDue { enqueue(.readVariant) }
        }
        for index in clients.indices {
            startNext(on: index)
            if failure != nil {
                dispatchFailure = failure
                failure = nil
                break
            }
        }
        // What found no connection is planned again by the next dispatch.
        queued = nextToStart
    }

    /// Completes the transaction in flight on connection `connection` (its reply is there, or its deadline passed)
    /// and starts the next one of the period on it. Call while that client `hasPendingRequest`.
    /// Thread: the control thread. Does not allocate.
    public func continueExchange(connection index: Int) {
        let client = clients[index]
        assert(client.hasPendingRequest, "\(name): continueExchange with nothing in flight on connection \(index)")
        guard let transaction = inFlight[index] else { return }
        inFlight[index] = nil
        do throws(ModbusError) {
            try client.receive()
            try apply(transaction, connection: index)
            startNext(on: index)
        } catch {
            // The station's state is unknown now: the rest of the period is dropped, the next reads everything.
            if failure == nil { failure = error }
            nextToStart = queued
        }
    }

    /// Publishes the period: the reads and the acknowledged writes into `inputs`, or the link's failure (the values
    /// read stay as they were, and the next period reads everything). Thread: the control thread. Does not allocate.
    public func endExchange(into inputs: inout StationInputs) {
        assert(!hasRequestInFlight, "\(name): endExchange with a request in flight")
        if let failure {
            let link = inputs.link
            inputs = staged
            inputs.link = link
            inputs.link.record(failure)
            periodsInStep = 0
            return
        }
        guard anyConnected else {
            inputs.link.state = .disconnected
            inputs.link.consecutiveFailures &+= 1
            periodsInStep = 0
            return
        }
        let link = inputs.link
        inputs = staged
        inputs.link = link
        inputs.link.state = .ok
        inputs.link.detail = 0
        inputs.link.consecutiveFailures = 0
        periodsInStep &+= 1
    }

    /// True when the station's coils and variant are known: the last exchange, `current`, succeeded, and so did one
    /// before it since the last connect or failure (which read them).
    private func isInStep(_ current: StationInputs) -> Bool { current.link.state == .ok && periodsInStep > 0 }

    /// True while a connection waits for a reply.
    private var hasRequestInFlight: Bool {
        for index in clients.indices where clients[index].hasPendingRequest { return true }
        return false
    }

    // MARK: The period's transactions

    /// Level coils: written when the wanted level differs from the known one. Coil `n` is bit `n` of
    /// `StationCoils`, so the coil address is the bit index. A mask rather than an array of (coil, address): a static
    /// array is built lazily on the heap, at its first use on the control thread.
    private static let levelCoils = StationCoils.fixtureClamp.union(.leakTestStart).union(.lightTestStart)
        .union(.lampGreen).union(.lampAmber).union(.lampRed)

    private func planWrites(_ outputs: StationOutputs, current: StationInputs) {
        for address in 0..<TS200Registers.coilCount {
            let coil = StationCoils(rawValue: 1 << address)
            guard Self.levelCoils.contains(coil) else { continue }
            let wanted = outputs.coils.contains(coil)
            if wanted != current.coils.contains(coil) { enqueue(.writeLevelCoil(address: address, value: wanted)) }
        }
        if outputs.infeedRequests != lastInfeedRequest {
            enqueue(.advanceInfeed)
            plannedInfeedRequest = outputs.infeedRequests
        }
        if outputs.outfeedRequests != lastOutfeedRequest {
            enqueue(.advanceOutfeed)
            plannedOutfeedRequest = outputs.outfeedRequests
        }
        if outputs.variant != current.variant { enqueue(.writeVariant(outputs.variant)) }
    }

    private func enqueue(_ transaction: Transaction) {
        precondition(queued < Self.maximumTransactionsPerPeriod, "\(name): more transactions than a period holds")
        queue[queued] = transaction
        queued += 1
    }

    /// Sends the next transaction of the period on connection `index`, if any is left, it is connected and nothing
    /// is in flight on it.
    private func startNext(on index: Int) {
        let client = clients[index]
        guard client.isConnected, inFlight[index] == nil, nextToStart < queued else { return }
        let transaction = queue[nextToStart]
        nextToStart += 1
        do throws(ModbusError) {
            try client.send(request(for: transaction, connection: index))
            inFlight[index] = transaction
        } catch {
            if failure == nil { failure = error }
            nextToStart = queued
        }
    }

    private func request(for transaction: Transaction, connection index: Int) -> ModbusRequest {
        let bits = bitBuffers[index]
        let registers = registerBuffers[index]
        switch transaction {
        case .readSignals:
            return .readDiscreteInputs(
                address: 0, into: UnsafeMutableBufferPointer(rebasing: bits[0..<TS200Registers.discreteInputCount]))
        case .readRegisters:
            return .readInputRegisters(address: 0, into: registers)
        case .readCoils:
            return .readCoils(address: 0, into: UnsafeMutableBufferPointer(rebasing: bits[0..<TS200Registers.coilCount]))
        case .readVariant:
            return .readHoldingRegisters(
                address: TS200Registers.variantAddress, into: UnsafeMutableBufferPointer(rebasing: registers[0..<1]))
        case .writeLevelCoil(let address, let value):
            return .writeSingleCoil(address: address, value: value)
        case .advanceInfeed:
            return .writeSingleCoil(address: 1, value: true)
        case .advanceOutfeed:
            return .writeSingleCoil(address: 4, value: true)
        case .writeVariant(let variant):
            return .writeSingleRegister(address: TS200Registers.variantAddress, value: variant)
        }
    }

    /// Applies a completed transaction to the staged inputs; a read whose values no TS-200 reports
    /// (`TS200Plausibility`) throws `.badData` and stages nothing.
    private func apply(_ transaction: Transaction, connection index: Int) throws(ModbusError) {
        let bits = bitBuffers[index]
        let r = registerBuffers[index]
        let implausible = ModbusError.badData(errno: TS200Plausibility.implausibleReplyDetail)
        switch transaction {
        case .readSignals:
            var signals: UInt16 = 0
            for bit in 0..<TS200Registers.discreteInputCount where bits[bit] != 0 { signals |= 1 << bit }
            guard TS200Plausibility.plausible(StationSignals(rawValue: signals)) else { throw implausible }
            staged.signals = StationSignals(rawValue: signals)
        case .readRegisters:
            guard TS200Plausibility.plausible(registers: r) else { throw implausible }
            staged.statusWord = r[0]
            staged.faultCode = r[1]
            staged.leakTestCount = r[2]
            staged.leakRateHundredths = r[3]
            staged.lightTestCount = r[4]
            staged.luminousIntensityCandela = r[5]
            staged.cutoffAngleHundredthsDegree = Int16(bitPattern: r[6])
            staged.housingLot = uint32(high: r[8], low: r[9])
            staged.ledModuleLot = uint32(high: r[10], low: r[11])
            staged.lensLot = uint32(high: r[12], low: r[13])
            staged.uptimeMilliseconds = uint32(high: r[14], low: r[15])
        case .readCoils:
            var coils: UInt16 = 0
            for bit in 0..<TS200Registers.coilCount where bits[bit] != 0 { coils |= 1 << bit }
            staged.coils = StationCoils(rawValue: coils)
            coilReadBackDue = false
        case .readVariant:
            staged.variant = r[0]
            variantReadBackDue = false
        case .writeLevelCoil(let address, let value):
            let coil = StationCoils(rawValue: 1 << address)
            if value { staged.coils.insert(coil) } else { staged.coils.remove(coil) }
        case .advanceInfeed:
            lastInfeedRequest = plannedInfeedRequest
        case .advanceOutfeed:
            lastOutfeedRequest = plannedOutfeedRequest
        case .writeVariant(let variant):
            staged.variant = variant
        }
    }
}
