import CRealtime
import CellCore
import CellModbus
import CellService
import CellSimulator
import Foundation
import Logging
import Modbus

// Item 9: the read phase against a cell whose devices are slow (each reply 1 ms ± 0.5 ms after its request, as
// real Modbus TCP devices answer), over Modbus TCP on loopback. Three figures from one run:
// - one device's round trip (a plain client, one request at a time): the reference;
// - the daemon's exchange phase (`CellExchange`: every device's request first, then the replies), over 100,000
//   periods at 4 ms, and the overruns;
// - the same exchange done one device after another (each driver's whole `exchange`, the station over one
//   connection): what the period cost before.

enum SlowDevicesBenchmark {
    /// The devices' reply delay and its jitter (each reply uniformly in delay ± jitter after its request).
    static let replyDelayNanoseconds: UInt64 = 1_000_000
    static let replyJitterNanoseconds: UInt64 = 500_000
    static let periodMicroseconds = 4000
    /// The daemon's and the drivers' response timeout in this item.
    static let responseTimeoutNanoseconds: UInt64 = 3_000_000
    static let fifoPriority: Int32 = 80
    /// Round trips timed for the reference, and periods of the sequential exchange.
    static let referenceRoundTrips = 2000
    static let sequentialPeriods = 2000
    /// The reference client's response timeout (it times, it does not judge).
    static let referenceTimeoutNanoseconds: UInt64 = 100_000_000

    static func run(windowSeconds: Double, scale: Double, repository: String, scratch: String, table: ResultTable) {
        let slow = "devices \(micro(Double(replyDelayNanoseconds))) ± \(micro(Double(replyJitterNanoseconds))) µs"
        do {
            var cell = try BenchCell(
                repository: repository, scratch: scratch, name: "slow-devices", periodMicroseconds: periodMicroseconds,
                fifoPriority: fifoPriority, seed: 9)
            defer { cell.server.stop() }
            // Above the devices' slowest answer (1.5 ms), below the period: what an integrator sets for such devices.
            cell.configuration.responseTimeoutNanoseconds = responseTimeoutNanoseconds
            let (server, ports, definition) = (cell.server, cell.ports, cell.definition)
            for name in ports.keys {
                server.server(named: name)?.replyDelayNanoseconds = replyDelayNanoseconds
                server.server(named: name)?.replyJitterNanoseconds = replyJitterNanoseconds
            }
            let timeout = cell.configuration.responseTimeoutNanoseconds
            let armNames = definition.arms.map(\.name)
            let stationName = definition.station.name

            // The reference: one device's round trip, one request at a time (the status mirror, as the 0x17 reads).
            // A generous timeout: this measures the round trip, it does not judge it.
            let reference = try ModbusClient(
                host: "127.0.0.1", port: ports[armNames[0]] ?? 0, responseTimeoutNanoseconds: referenceTimeoutNanoseconds,
                connectTimeoutNanoseconds: 1_000_000_000)
            let mirror = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: RA610Registers.statusMirrorCount)
            defer { mirror.deallocate() }
            var roundTrips: [UInt64] = []
            for _ in 0..<max(100, Int(Double(referenceRoundTrips) * scale)) {
                let start = lampcell_monotonic_ns()
                try reference.readHoldingRegisters(address: RA610Registers.statusMirrorAddress, into: mirror)
                roundTrips.append(lampcell_monotonic_ns() - start)
            }
            reference.close()
            let roundTrip = Distribution(roundTrips)
            // What the read phase would cost if the exchange added nothing: the slowest of as many independent
            // round trips as it has transactions (3 arms, the station's 2 reads), from consecutive reference samples.
            let transactionsPerRead = armNames.count + 2
            let slowestOfGroups = Distribution(
                stride(from: 0, to: roundTrips.count - transactionsPerRead + 1, by: transactionsPerRead).map {
                    roundTrips[$0..<($0 + transactionsPerRead)].max() ?? 0
                })

            // One device after another: each driver's whole exchange, the station over one connection.
            var arms: [RA610Driver] = []
            for name in armNames {
                arms.append(
                    try RA610Driver(
                        name: name, host: "127.0.0.1", port: ports[name] ?? 0, unitID: 1,
                        responseTimeoutNanoseconds: timeout, connectTimeoutNanoseconds: 1_000_000_000))
            }
            let station = try TS200Driver(
                name: stationName, host: "127.0.0.1", port: ports[stationName] ?? 0, unitID: 1,
                responseTimeoutNanoseconds: timeout, connectTimeoutNanoseconds: 1_000_000_000, connections: 1)
            var image = ProcessImage(armCount: arms.count)
            var sequential: [UInt64] = []
            var sequentialFailures = 0
            for period in 0..<(max(100, Int(Double(sequentialPeriods) * scale)) + 2) {
                let start = lampcell_monotonic_ns()
                for index in arms.indices {
                    arms[index].exchange(image.armOutputs[index], into: &image.armInputs[index], nowNanoseconds: start)
                }
                station.exchange(image.stationOutputs, into: &image.stationInputs, nowNanoseconds: start)
                // The first two periods connect and read the identity and the station's coils; not counted.
                if period >= 2 {
                    sequential.append(lampcell_monotonic_ns() - start)
                    if image.armInputs.contains(where: { $0.link.state != .ok }) || image.stationInputs.link.state != .ok {
                        sequentialFailures += 1
                    }
                }
            }
            for arm in arms { arm.close() }
            station.close()
            let oneByOne = Distribution(sequential)

            // The daemon: all devices at once, 4 ms, producing lamps.
            let daemon = try cell.daemon()
            daemon.start()
            defer { daemon.shutdown(timeoutNanoseconds: 20_000_000_000) }
            if let problem = daemon.autoStart(
                variant: .left, lamps: 100_000, orderID: "BENCH-SLOW", timeoutNanoseconds: 60_000_000_000)
            {
                table.note("slow devices: could not start production: \(problem)")
                return
            }
            let underWay = daemon.waitFor(timeoutNanoseconds: 30_000_000_000) {
                $0.unit.state == .execute && $0.lampInCell != nil
            }
            // cyclictest beside the loop, same period and priority, for the same window: the machine's own stalls.
            let cyclictest = CyclictestResult.start(
                fifoPriority: fifoPriority, periodMicroseconds: periodMicroseconds, windowSeconds: windowSeconds,
                errorLog: scratch + "/cyclictest-slow.err")
            let loop = daemon.loop
            loop.thread.statistics.reset()
            let overrunsBefore = loop.thread.overruns
            let periodsBefore = loop.thread.periodsRun
            let lampsBefore = daemon.snapshot().lampsFinished
            Thread.sleep(forTimeInterval: windowSeconds)
            let figures = loop.thread.statistics.figures()
            let overruns = loop.thread.overruns - overrunsBefore
            let periods = loop.thread.periodsRun - periodsBefore
            let snapshot = daemon.snapshot()
            let lamps = snapshot.lampsFinished - lampsBefore
            let machine = cyclictest.map(CyclictestResult.finish)
            // The clients' counters, read once the loop has stopped (they belong to the control thread).
            daemon.shutdown(timeoutNanoseconds: 20_000_000_000)
            let devices = loop.cellPeriod.devices
            let clients = devices.arms.map(\.client) + devices.station.clients
            let requests = clients.reduce(0) { $0 + $1.requestCount }
            let timeouts = clients.reduce(0) { $0 + $1.timeoutCount }
            let failed = clients.reduce(0) { $0 + $1.errorCount }
            let policy = loop.thread.realtimeReport?.fifoPriority == fifoPriority
                ? "SCHED_FIFO \(fifoPriority)" : "SCHED_OTHER (FIFO refused)"
            let note =
                "\(periods) periods, \(lamps) lamps, state at end \(snapshot.unit.state), \(policy)"
                + (underWay ? "" : ", no lamp was under way at the start")
                + (snapshot.lastFault.map { ", last fault: \($0.message)" } ?? "")

            let referenceText = "one device's round trip (same cell, one request at a time), p50/p99/max: "
                + percentiles(roundTrip, p999: false) + " µs"
            if let read = figures[.read] {
                table.add(
                    ResultRow(
                        item: "9", what: "read phase, all devices at once (3 arms + station over 2 connections), \(slow), 4 ms, p50/p99/p99.9/max µs",
                        figure: "\(micro(Double(read.p50Nanoseconds))) / \(micro(Double(read.p99Nanoseconds))) / \(micro(Double(read.p999Nanoseconds))) / \(micro(Double(read.maxNanoseconds)))",
                        reference: referenceText,
                        ratio: String(
                            format: "p50 read / p50 round trip = %.2f (goal ≤ 1.3)",
                            Double(read.p50Nanoseconds) / max(1, roundTrip.percentile(50)))
                            + "; the slowest of \(transactionsPerRead) independent round trips: p50 "
                            + micro(slowestOfGroups.percentile(50))
                            + String(
                                format: " µs, read / that = %.2f",
                                Double(read.p50Nanoseconds) / max(1, slowestOfGroups.percentile(50)))))
            }
            // The machine's share: wake-ups that cyclictest alone saw so late that a period of median work would
            // overrun after them.
            var machineText = "cyclictest not available (make bench-deps)"
            if let machine, machine.total > 0, let read = figures[.read], let step = figures[.step],
                let write = figures[.write]
            {
                let medianWork = read.p50Nanoseconds + step.p50Nanoseconds + write.p50Nanoseconds
                let threshold = (periodMicroseconds * 1000 - Int(medianWork)) / 1000
                machineText =
                    "cyclictest -p\(fifoPriority) -i\(periodMicroseconds) beside it: \(machine.count(atLeastMicroseconds: threshold)) "
                    + "of \(machine.total) wake-ups ≥ \(threshold) µs late (period − median work), max "
                    + String(format: "%.0f", machine.maximumMicroseconds) + " µs"
            }
            if let wake = figures[.wakeLatency] {
                table.add(
                    ResultRow(
                        item: "9", what: "control wake-up latency at 4 ms, \(slow), p50/p99/p99.9/max µs",
                        figure: "\(micro(Double(wake.p50Nanoseconds))) / \(micro(Double(wake.p99Nanoseconds))) / \(micro(Double(wake.p999Nanoseconds))) / \(micro(Double(wake.maxNanoseconds)))",
                        reference: machine.map {
                            "cyclictest: \($0.text(50)) / \($0.text(99)) / \($0.text(99.9)) / "
                                + String(format: "%.0f", $0.maximumMicroseconds) + " µs"
                        } ?? "cyclictest not available"))
            }
            table.add(
                ResultRow(
                    item: "9", what: "overruns at 4 ms, \(slow)", figure: "\(overruns) in \(periods + overruns) periods",
                    reference: machineText,
                    ratio: "goal 0 over 100,000 periods; \(note); since start \(requests) requests, \(timeouts) timed out, \(failed) failed"))
            table.add(
                ResultRow(
                    item: "9", what: "read phase, one device after another (station over 1 connection), \(slow), p50/p99/max µs",
                    figure: percentiles(oneByOne, p999: false) + " (\(oneByOne.count) periods, \(sequentialFailures) with a failed link)",
                    reference: referenceText,
                    ratio: String(
                        format: "p50 sequential / p50 round trip = %.2f", oneByOne.percentile(50) / max(1, roundTrip.percentile(50)))))
        } catch {
            table.note("slow devices: \(error)")
        }
    }
}
