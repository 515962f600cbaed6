import CRealtime
import CellCore
import CellSimulator
import Foundation
import LampCellTestSupport
import Modbus
import Testing

@Suite(.serialized) struct ZZTmpProbeTests {
    func run(fifo: Int32?, spec: [String], device: String) throws {
        let definition = try CellDefinition.load(from: Repository.cellDefinitionPath)
        let configuration = try SimulatedCellConfiguration(cell: definition, options: SimulationOptions(seed: 3, defectRate: 0))
        let cell = SimulatedCellServer(cell: SimulatedCell(configuration: configuration), fifoPriority: fifo)
        try cell.setResponseDelays(DeviceResponseDelay.parse(spec))
        let ports = try cell.start()
        defer { cell.stop() }
        let client = try ModbusClient(host: "127.0.0.1", port: ports[device]!, responseTimeoutNanoseconds: 1_000_000_000, connectTimeoutNanoseconds: 1_000_000_000)
        try client.connect()
        var values = [UInt16](repeating: 0, count: 4)
        var samples: [Double] = []
        for _ in 0..<300 {
            let start = lampcell_monotonic_ns()
            try client.readInputRegisters(address: device == "station" ? 0 : 100, into: &values)
            samples.append(Double(lampcell_monotonic_ns() - start) / 1e6)
        }
        let sorted = samples.sorted()
        let over = samples.enumerated().filter { $0.element > 3.5 }.map { "\($0.offset):\(String(format: "%.2f", $0.element))" }
        print("fifo \(fifo.map(String.init) ?? "-") \(spec) \(device): min \(sorted[0]) med \(sorted[150]) p90 \(sorted[270]) max \(sorted[299]); >3.5: \(over)")
    }
    @Test func probe() throws {
        try run(fifo: nil, spec: ["3ms"], device: "loader")
        try run(fifo: 70, spec: ["3ms"], device: "loader")
        try run(fifo: nil, spec: ["0ms"], device: "loader")
        try run(fifo: nil, spec: ["1ms"], device: "loader")
    }
}
