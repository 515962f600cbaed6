import CRealtime
import Foundation
import Glibc
import Modbus

// Item 3: the Swift driver's round trip (ModbusClient over libmodbus) beside a small C libmodbus client built by the
// bench, against the same RA-610 served by `lampsim serve` (a separate process), interleaved in blocks in the same
// run; one 0x17 (write 28 holding registers + read the 40-register status mirror) against a 0x10 write followed by a
// 0x03 read of the same registers.

enum ModbusBenchmark {
    static let writeCount = 28
    static let readAddress = 256
    static let readCount = 40

    /// Starts `lampsim serve` and returns it with the loader's port.
    static func startSimulator(binDirectory: String, repository: String, scratch: String) throws -> (ChildProcess, [String: Int]) {
        let child = try ChildProcess(
            binDirectory + "/lampsim", ["serve", "--cell", repository + "/Hardware/cell.toml", "--seed", "3"],
            errorLog: scratch + "/lampsim-serve.err")
        guard child.waitForLine(seconds: 30, { $0.hasPrefix("ready") }) else {
            child.stop()
            throw BenchError("lampsim serve did not print ready within 30 s (see \(scratch)/lampsim-serve.err)")
        }
        var ports: [String: Int] = [:]
        for line in child.output {
            let fields = line.split(separator: " ")
            if fields.count == 2, let port = fields[1].split(separator: ":").last.flatMap({ Int($0) }) {
                ports[String(fields[0])] = port
            }
        }
        return (child, ports)
    }

    /// Swift round trips, ns each.
    static func swiftBlock(port: Int, split: Bool, count: Int, warmup: Int) throws -> [UInt64] {
        let client = try ModbusClient(
            host: "127.0.0.1", port: port, unitID: 1, responseTimeoutNanoseconds: 1_000_000_000,
            connectTimeoutNanoseconds: 1_000_000_000)
        try client.connect()
        defer { client.close() }
        let output = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: writeCount)
        output.initialize(repeating: 0)
        output[5] = 100
        output[6] = 4000
        let input = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: readCount)
        input.initialize(repeating: 0)
        defer {
            output.deallocate()
            input.deallocate()
        }
        var samples = [UInt64](repeating: 0, count: count)
        for index in 0..<(warmup + count) {
            output[1] = UInt16(truncatingIfNeeded: index)
            let start = lampcell_monotonic_ns()
            if split {
                try client.writeRegisters(address: 0, values: UnsafeBufferPointer(output))
                try client.readHoldingRegisters(address: readAddress, into: input)
            } else {
                try client.writeAndReadRegisters(
                    writeAddress: 0, values: UnsafeBufferPointer(output), readAddress: readAddress, into: input)
            }
            let end = lampcell_monotonic_ns()
            if index >= warmup { samples[index - warmup] = end - start }
        }
        return samples
    }

    /// C round trips, ns each (the bench-built client, a separate process).
    static func cBlock(client: String, port: Int, split: Bool, count: Int, warmup: Int) throws -> [UInt64] {
        let result = Subprocess.capture(
            client, ["127.0.0.1", "\(port)", split ? "split" : "rw17", "\(count)", "\(warmup)"], mergeError: true)
        guard result.status == 0 else { throw BenchError("C client: \(result.output.prefix(300))") }
        return result.output.split(separator: "\n").compactMap { UInt64($0) }
    }

    /// Builds the C client with cc and pkg-config; returns its path.
    static func buildClient(repository: String, scratch: String) throws -> String {
        let source = repository + "/Benchmarks/modbus-rtt/modbus_rtt.c"
        let binary = scratch + "/modbus_rtt"
        let flags = Subprocess.capture("/usr/bin/pkg-config", ["--cflags", "--libs", "libmodbus"])
        guard flags.status == 0 else { throw BenchError("pkg-config libmodbus failed (make deps)") }
        let cc = Subprocess.which("cc") ?? "/usr/bin/cc"
        let arguments = ["-O2", "-o", binary, source] + flags.output.split(whereSeparator: \.isWhitespace).map(String.init)
        let result = Subprocess.capture(cc, arguments, mergeError: true)
        guard result.status == 0 else { throw BenchError("cc \(arguments.joined(separator: " ")): \(result.output)") }
        return binary
    }

    static func run(binDirectory: String, repository: String, scratch: String, scale: Double, table: ResultTable) {
        do {
            let client = try buildClient(repository: repository, scratch: scratch)
            let (simulator, ports) = try startSimulator(binDirectory: binDirectory, repository: repository, scratch: scratch)
            defer { simulator.stop() }
            guard let port = ports["loader"] ?? ports.values.min() else { throw BenchError("lampsim printed no ports") }
            let rounds = max(2, Int(10 * scale))
            let block = 2000
            let warmup = 200
            var samples: [String: [UInt64]] = ["swift17": [], "c17": [], "swiftSplit": [], "cSplit": []]
            for round in 0..<rounds {
                // Interleaved, order alternating per round so neither side always goes first.
                var steps: [(String, () throws -> [UInt64])] = [
                    ("swift17", { try swiftBlock(port: port, split: false, count: block, warmup: warmup) }),
                    ("c17", { try cBlock(client: client, port: port, split: false, count: block, warmup: warmup) }),
                    ("swiftSplit", { try swiftBlock(port: port, split: true, count: block, warmup: warmup) }),
                    ("cSplit", { try cBlock(client: client, port: port, split: true, count: block, warmup: warmup) }),
                ]
                if round % 2 == 1 { steps.reverse() }
                for (key, body) in steps { samples[key, default: []] += try body() }
            }
            let swift17 = Distribution(samples["swift17"] ?? [])
            let c17 = Distribution(samples["c17"] ?? [])
            let swiftSplit = Distribution(samples["swiftSplit"] ?? [])
            let cSplit = Distribution(samples["cSplit"] ?? [])
            func row(_ d: Distribution) -> String {
                "\(micro(d.percentile(50))) / \(micro(d.percentile(99))) / \(micro(d.max)) (mean \(micro(d.mean)), n \(d.count))"
            }
            table.add(
                ResultRow(
                    item: "3", what: "Modbus 0x17 round trip, Swift driver, p50/p99/max µs", figure: row(swift17),
                    reference: "C libmodbus client: " + row(c17),
                    ratio: String(format: "p50 Swift/C = %.2f", swift17.percentile(50) / max(1, c17.percentile(50)))))
            table.add(
                ResultRow(
                    item: "3", what: "Modbus 0x10 write + 0x03 read, Swift driver, p50/p99/max µs", figure: row(swiftSplit),
                    reference: "C libmodbus client: " + row(cSplit),
                    ratio: String(format: "p50 Swift/C = %.2f", swiftSplit.percentile(50) / max(1, cSplit.percentile(50)))))
            table.add(
                ResultRow(
                    item: "3", what: "one 0x17 vs separate write + read (Swift), p50 µs",
                    figure: micro(swift17.percentile(50)), reference: "write + read: " + micro(swiftSplit.percentile(50)),
                    ratio: String(format: "0x17/(write+read) = %.2f", swift17.percentile(50) / max(1, swiftSplit.percentile(50)))))
        } catch {
            table.note("Modbus: \(error)")
        }
    }
}

/// An error of the bench itself, with its message.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
