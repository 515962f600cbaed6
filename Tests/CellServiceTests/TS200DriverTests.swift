import CRealtime
import CellConfig
import CellCore
import CellModbus
import CellSimulator
import Foundation
import LampCellTestSupport
import Modbus
import Testing

/// The TS-200 driver's schedule against the simulated station over Modbus TCP on loopback: two reads per period in
/// steady state (discrete inputs, input registers), the writes dispatched after the step without waiting, the coils
/// and the variant known from the driver's own acknowledged writes and read back on their turn, so that a change
/// made by someone else is still seen; over two connections, the period's transactions run side by side.
@Suite("TS-200 driver read schedule")
struct TS200DriverTests {
    /// The simulated cell served on loopback, and a driver connected to its station.
    final class Rig {
        let server: SimulatedCellServer
        let driver: TS200Driver
        let stationServer: ModbusTCPServer
        let port: Int

        init(connections: Int = 1) throws {
            let definition = try CellDefinition.load(from: Repository.cellDefinition)
            let cell = SimulatedCell(
                configuration: try SimulatedCellConfiguration(cell: definition, options: SimulationOptions(seed: 5)))
            server = SimulatedCellServer(cell: cell)
            let ports = try server.start()
            let stationName = try #require(cell.deviceNames.last)
            port = try #require(ports[stationName])
            stationServer = try #require(server.server(named: stationName))
            driver = try TS200Driver(
                name: stationName, host: "127.0.0.1", port: port, unitID: 1,
                responseTimeoutNanoseconds: 200_000_000, connectTimeoutNanoseconds: 1_000_000_000,
                connections: connections)
        }

        deinit { server.stop() }

        /// One period's exchange as the control loop runs it: the writes `outputs` needs, then the reads. Returns the
        /// requests the station served during the period.
        func period(_ inputs: inout StationInputs, _ outputs: StationOutputs) -> UInt64 {
            let before = stationServer.statistics.requestsServed
            driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
            return stationServer.statistics.requestsServed - before
        }
    }

    @Test("steady state: two requests per period; coils and variant read back every verifyEveryPeriods")
    func requestsPerPeriod() throws {
        let rig = try Rig()
        var inputs = StationInputs()
        let outputs = StationOutputs()
        // The first period after the connect reads all four tables.
        #expect(rig.period(&inputs, outputs) == 4)
        #expect(inputs.link.state == .ok)
        let periods = 2 * Int(TS200Driver.verifyEveryPeriods)
        var served: [UInt64] = []
        for _ in 0..<periods { served.append(rig.period(&inputs, outputs)) }
        #expect(served.allSatisfy { $0 == 2 || $0 == 3 }, "requests per period: \(served)")
        // One coil read-back and one variant read-back per verifyEveryPeriods periods.
        #expect(served.reduce(0, +) == UInt64(2 * periods + 4), "requests per period: \(served)")
    }

    @Test("an acknowledged write is seen at once, without waiting for a read-back; one write per connection per period")
    func writesAreKnownAtOnce() throws {
        let rig = try Rig()
        var inputs = StationInputs()
        _ = rig.period(&inputs, StationOutputs())
        var outputs = StationOutputs()
        outputs.coils.insert(.lampAmber)
        let otherVariant: UInt16 = inputs.variant == 1 ? 2 : 1
        outputs.variant = otherVariant
        // One connection: the coil write + the reads (2); the variant waits for the next period's dispatch.
        #expect(rig.period(&inputs, outputs) == 3)
        #expect(inputs.coils.contains(.lampAmber))
        #expect(inputs.variant != otherVariant)
        #expect(rig.server.cell.withModels { $0.station.coil(.lampAmber) })
        #expect(rig.period(&inputs, outputs) == 3)
        #expect(inputs.variant == otherVariant)
        // Nothing left to write: the reads, and a read-back when one is due.
        let next = rig.period(&inputs, outputs)
        #expect(next == 2 || next == 3)
        #expect(inputs.coils.contains(.lampAmber))
    }

    @Test("the dispatch sends without waiting; the next exchange completes it before its own reads")
    func dispatchIsNotAwaited() throws {
        let rig = try Rig(connections: 2)
        var inputs = StationInputs()
        _ = rig.period(&inputs, StationOutputs())  // connects, reads everything
        _ = rig.period(&inputs, StationOutputs())  // in step from here
        let delay: UInt64 = 20_000_000
        rig.stationServer.replyDelayNanoseconds = delay
        var outputs = StationOutputs()
        outputs.coils.insert(.lampRed)
        outputs.coils.insert(.fixtureClamp)
        let start = lampcell_monotonic_ns()
        rig.driver.dispatch(outputs, current: inputs)
        #expect(lampcell_monotonic_ns() - start < delay / 2, "the dispatch waited for a reply")
        let inFlight = rig.driver.clients.filter { $0.hasPendingRequest }.count
        #expect(inFlight == 2, "two writes, one on each connection")
        // The next exchange: the two writes' replies, then the two reads, one on each connection.
        rig.driver.beginExchange(current: inputs, nowNanoseconds: lampcell_monotonic_ns())
        while rig.driver.clients.contains(where: \.hasPendingRequest) {
            for index in rig.driver.clients.indices where rig.driver.clients[index].hasPendingRequest {
                rig.driver.continueExchange(connection: index)
            }
        }
        rig.driver.endExchange(into: &inputs)
        #expect(inputs.link.state == .ok)
        #expect(inputs.coils.contains(.lampRed) && inputs.coils.contains(.fixtureClamp))
        #expect(rig.server.cell.withModels { $0.station.coil(.lampRed) && $0.station.coil(.fixtureClamp) })
    }

    @Test("a coil changed by another client is seen within verifyEveryPeriods periods, and then written back")
    func foreignChangeIsSeen() throws {
        let rig = try Rig()
        var inputs = StationInputs()
        var outputs = StationOutputs()
        outputs.coils.insert(.lampGreen)
        // The first period after the connect only reads (the station's coils are unknown); the second writes.
        _ = rig.period(&inputs, outputs)
        _ = rig.period(&inputs, outputs)
        #expect(inputs.coils.contains(.lampGreen))

        // An HMI (another Modbus client) switches the green lamp off behind the driver's back.
        let hmi = try ModbusClient(
            host: "127.0.0.1", port: rig.port, unitID: 1, responseTimeoutNanoseconds: 200_000_000,
            connectTimeoutNanoseconds: 1_000_000_000)
        defer { hmi.close() }
        try hmi.writeSingleCoil(address: TS200Model.Coil.lampGreen.rawValue, value: false)

        var periodsToNotice = 0
        for period in 1...Int(TS200Driver.verifyEveryPeriods) {
            _ = rig.period(&inputs, outputs)
            if rig.server.cell.withModels({ $0.station.coil(.lampGreen) }) {
                periodsToNotice = period
                break
            }
        }
        #expect(periodsToNotice > 0, "the driver never noticed the foreign write")
        #expect(inputs.coils.contains(.lampGreen))
    }

    @Test("over two connections the two reads of a period cost one round trip of a slow station, not two")
    func twoConnectionsOverlap() throws {
        let delay: UInt64 = 20_000_000
        func periodNanoseconds(connections: Int) throws -> UInt64 {
            let rig = try Rig(connections: connections)
            var inputs = StationInputs()
            _ = rig.period(&inputs, StationOutputs())  // connects, reads everything
            rig.stationServer.replyDelayNanoseconds = delay
            var shortest = UInt64.max
            // Steady-state periods without a read-back (the 1st and 2nd after the first): the two reads only.
            for _ in 0..<2 {
                let start = lampcell_monotonic_ns()
                #expect(rig.period(&inputs, StationOutputs()) == 2)
                shortest = min(shortest, lampcell_monotonic_ns() - start)
                #expect(inputs.link.state == .ok)
            }
            return shortest
        }
        let one = try periodNanoseconds(connections: 1)
        let two = try periodNanoseconds(connections: 2)
        #expect(one >= 2 * delay, "one connection: \(one) ns")
        #expect(two >= delay && two < delay * 3 / 2, "two connections: \(two) ns")
    }
}
