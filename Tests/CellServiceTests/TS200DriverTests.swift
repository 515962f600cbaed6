import CRealtime
import CellCore
import CellModbus
import CellSimulator
import Foundation
import Modbus
import Testing

/// The TS-200 driver's read schedule against the simulated station over Modbus TCP on loopback: two requests per
/// period in steady state (discrete inputs, input registers), the coils and the variant known from the driver's own
/// acknowledged writes and read back on their turn, so that a change made by someone else is still seen.
@Suite("TS-200 driver read schedule")
struct TS200DriverTests {
    /// The simulated cell served on loopback, and a driver connected to its station.
    final class Rig {
        let server: SimulatedCellServer
        let driver: TS200Driver
        let stationServer: ModbusTCPServer
        let port: Int

        init() throws {
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
                responseTimeoutNanoseconds: 200_000_000, connectTimeoutNanoseconds: 1_000_000_000)
        }

        deinit { server.stop() }

        /// One period as the control loop runs it: read, then write `outputs`. Returns the requests the station
        /// served during the period.
        func period(_ inputs: inout StationInputs, _ outputs: StationOutputs) -> UInt64 {
            let before = stationServer.statistics.requestsServed
            driver.read(into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
            driver.write(outputs, current: &inputs)
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

    @Test("an acknowledged write is seen at once, without waiting for a read-back")
    func writesAreKnownAtOnce() throws {
        let rig = try Rig()
        var inputs = StationInputs()
        _ = rig.period(&inputs, StationOutputs())
        var outputs = StationOutputs()
        outputs.coils.insert(.lampAmber)
        let otherVariant: UInt16 = inputs.variant == 1 ? 2 : 1
        outputs.variant = otherVariant
        // Read (2) + the coil write + the variant write; the next period writes nothing again.
        #expect(rig.period(&inputs, outputs) == 4)
        #expect(inputs.coils.contains(.lampAmber))
        #expect(inputs.variant == otherVariant)
        #expect(rig.server.cell.withModels { $0.station.coil(.lampAmber) })
        let next = rig.period(&inputs, outputs)
        #expect(next == 2 || next == 3)
        #expect(inputs.coils.contains(.lampAmber))
    }

    @Test("a coil changed by another client is seen within verifyEveryPeriods periods, and then written back")
    func foreignChangeIsSeen() throws {
        let rig = try Rig()
        var inputs = StationInputs()
        var outputs = StationOutputs()
        outputs.coils.insert(.lampGreen)
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
}
