import CellConfig
import CellCore
import CellModbus
import CellSimulator
import Modbus
import Glibc
import Testing

@testable import CellCampaign

/// The real drivers and Modbus client in virtual time (`VirtualCell`): faults played by the in-memory transport are
/// caught by the same code that runs in the plant.
@Suite("Virtual cell: the real drivers over the in-memory transport")
struct VirtualCellTests {
    /// A cell on virtual time, connected: every link reported ok once.
    static func connectedCell(seed: UInt64 = 7) throws -> VirtualCell {
        let definition = try CellDefinition.load(from: Repository.cell)
        let recipe = try Recipe.load(from: Repository.leftRecipe, cell: definition)
        let cell = try VirtualCell(cell: definition, recipes: [recipe], seed: seed)
        cell.run(periods: 3)
        for inputs in cell.image.armInputs { try #require(inputs.link.state == .ok) }
        try #require(cell.image.stationInputs.link.state == .ok)
        return cell
    }

    @Test("an arm's reply with values no RA-610 reports is rejected by the driver's plausibility check")
    func plausibilityFailureIsCaught() throws {
        let cell = try Self.connectedCell()
        let before = cell.image.armInputs[1]
        let client = cell.period.devices.arms[1].client
        let badRepliesBefore = client.badReplyCount
        // Well framed, so the Modbus client accepts it; the status word reads 0xFFFF (bits 9..15 are never set).
        cell.armTransports[1].pendingFault = .corruptedValues
        cell.runPeriod()
        let after = cell.image.armInputs[1]
        #expect(after.link.state == .badData)
        #expect(after.link.detail == RA610Plausibility.implausibleReplyDetail)
        #expect(after.status == before.status, "the last good status stays")
        #expect(client.badReplyCount == badRepliesBefore, "the Modbus client had nothing to reject")
        #expect(cell.armTransports[1].faultCounts[.corruptedValues] == 1)
        // The other arms did not notice; the next period is good again.
        #expect(cell.image.armInputs[0].link.state == .ok)
        cell.runPeriod()
        #expect(cell.image.armInputs[1].link.state == .ok)
        #expect(cell.image.armInputs[1].status.rawValue & ~RA610Plausibility.definedStatusBits == 0)
    }

    @Test("a station reply with values no TS-200 reports is rejected by the driver's plausibility check")
    func stationPlausibilityFailureIsCaught() throws {
        let cell = try Self.connectedCell()
        let before = cell.image.stationInputs
        // Connection 0 reads the discrete inputs; corrupted, they read SAFETY_OK with ESTOP_PRESSED and GUARD_OPEN.
        cell.stationTransports[0].pendingFault = .corruptedValues
        cell.runPeriod()
        let after = cell.image.stationInputs
        #expect(after.link.state == .badData)
        #expect(after.link.detail == TS200Plausibility.implausibleReplyDetail)
        #expect(after.signals == before.signals, "the last good signals stay")
        #expect(cell.stationTransports[0].faultCounts[.corruptedValues] == 1)
        cell.runPeriod()
        #expect(cell.image.stationInputs.link.state == .ok)
        #expect(TS200Plausibility.plausible(cell.image.stationInputs.signals))
    }

    @Test("TS-200 plausibility: each datasheet rule rejects its contradiction and accepts what a station reports")
    func stationPlausibilityRules() {
        #expect(TS200Plausibility.plausible(StationSignals.safetyOK.union(.fixtureClamped).union(.partInFixture)))
        #expect(TS200Plausibility.plausible(StationSignals.estopPressed.union(.guardOpen)))
        #expect(!TS200Plausibility.plausible(StationSignals.safetyOK.union(.estopPressed)))
        #expect(!TS200Plausibility.plausible(StationSignals.safetyOK.union(.guardOpen)))
        #expect(!TS200Plausibility.plausible(StationSignals.fixtureClamped))
        func registers(status: UInt16, fault: UInt16, reserved: UInt16 = 0) -> Bool {
            var words = [UInt16](repeating: 0x1234, count: TS200Registers.inputRegisterCount)
            words[0] = status
            words[1] = fault
            words[TS200Plausibility.reservedRegister] = reserved
            return words.withUnsafeMutableBufferPointer { TS200Plausibility.plausible(registers: $0) }
        }
        #expect(registers(status: 1, fault: 0))
        for code in [StationFaultCode.infeedJam, StationFaultCode.clampFault, StationFaultCode.testerFault] {
            #expect(registers(status: 2, fault: code))
        }
        // How READY and FAULT combine, and whether FAULT always has a code, the datasheet leaves open.
        #expect(registers(status: 3, fault: StationFaultCode.clampFault) && registers(status: 2, fault: 0))
        #expect(!registers(status: 0x0101, fault: 0), "an undefined status bit")
        #expect(!registers(status: 2, fault: 0x1004), "an unknown fault code")
        #expect(!registers(status: 1, fault: 0, reserved: 1), "the reserved register not 0")
    }

    @Test("a reply with another transaction id is rejected by the client, which resyncs")
    func wrongTransactionIsCaught() throws {
        let cell = try Self.connectedCell()
        let client = cell.period.devices.arms[0].client
        let reconnects = client.reconnectCount
        cell.armTransports[0].pendingFault = .wrongTransactionReply
        cell.runPeriod()
        #expect(cell.image.armInputs[0].link.state == .badData)
        #expect(client.badReplyCount == 1)
        #expect(!client.isConnected, "the connection is closed to resync")
        cell.runPeriod()
        #expect(cell.image.armInputs[0].link.state == .ok)
        #expect(client.reconnectCount == reconnects + 1)
    }

    @Test("every link fault fails the exchange it hits, on an arm and on the station, and the link recovers")
    func everyLinkFault() throws {
        for fault in ModbusLinkFault.allCases {
            let cell = try Self.connectedCell(seed: 11)
            let targets: [(InMemoryModbusTransport, () -> DeviceLink)] = [
                (cell.armTransports[2], { cell.image.armInputs[2].link }),
                (cell.stationTransports[0], { cell.image.stationInputs.link }),
            ]
            for (transport, link) in targets {
                transport.pendingFault = fault
                cell.runPeriod()
                #expect(link().state != .ok, "\(fault) on \(transport.peerDescription) was taken as a good reply")
                #expect(transport.faultCounts[fault] == 1)
                var periods = 0
                while link().state != .ok && periods < 100 {
                    cell.runPeriod()
                    periods += 1
                }
                #expect(link().state == .ok, "\(fault) on \(transport.peerDescription): no recovery in 100 periods")
            }
        }
    }

    @Test("a late reply stays in the connection: a client that did not resync would read it as the next answer")
    func lateReplyWaitsInTheConnection() throws {
        let clock = VirtualClock()
        let image = RegisterImage(holdingRegisters: 16)
        image.withTables { $0.holdingRegisters[3] = 111 }
        let transport = InMemoryModbusTransport(device: image, clock: clock, name: "image")
        #expect(transport.open(deadlineNanoseconds: 0) == nil)
        let client = try ModbusClient(
            transport: transport, responseTimeoutNanoseconds: 1_000_000, connectTimeoutNanoseconds: 1_000_000,
            clock: clock)
        var value = [UInt16](repeating: 0, count: 1)
        try client.readHoldingRegisters(address: 3, into: &value)  // proves the connection: resync reconnects at once
        #expect(value == [111])
        transport.pendingFault = .replyLate
        #expect(throws: ModbusError.timeout) { try client.readHoldingRegisters(address: 3, into: &value) }
        // The client closed the connection; the stale reply went with it.
        #expect(!transport.isOpen)
        image.withTables { $0.holdingRegisters[3] = 222 }
        try client.readHoldingRegisters(address: 3, into: &value)
        #expect(value == [222])

        // Without the resync, the late reply is what the next receive gets: a frame with the old transaction id.
        transport.pendingFault = .replyLate
        let raw = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: ModbusLimits.maximumADUBytes)
        defer { raw.deallocate() }
        let first: [UInt8] = [0, 7, 0, 0, 0, 6, 1, 0x03, 0, 3, 0, 1]
        let second: [UInt8] = [0, 8, 0, 0, 0, 6, 1, 0x03, 0, 3, 0, 1]
        first.withUnsafeBufferPointer { #expect(transport.send($0, deadlineNanoseconds: 0) == nil) }
        #expect(transport.receive(into: raw, deadlineNanoseconds: 0) == -Int(ETIMEDOUT))
        second.withUnsafeBufferPointer { #expect(transport.send($0, deadlineNanoseconds: 0) == nil) }
        let length = transport.receive(into: raw, deadlineNanoseconds: 0)
        #expect(length == 11)
        #expect(raw[1] == 7, "the stale reply (transaction 7) comes first")
    }

    @Test("the same seed gives the same run, to the last register")
    func deterministic() throws {
        let first = try Self.connectedCell(seed: 21)
        let second = try Self.connectedCell(seed: 21)
        for cell in [first, second] {
            #expect(cell.controller.requests.push((1, .command(.reset))))
            cell.run(periods: 500)
        }
        #expect(first.image.armInputs == second.image.armInputs)
        #expect(first.image.stationInputs == second.image.stationInputs)
    }
}
