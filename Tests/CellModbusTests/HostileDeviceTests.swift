// The drivers and the controller against a hostile Modbus device (issue 7, item 6 "Bad input"): the device
// answers with random, short, oversized or wrong frames, exceptions, late replies or nothing; the drivers must mark
// the link faulted (and never hand such a reply's values on as valid), never crash, and recover once the device
// behaves; the controller must never command a setpoint far from where the arm really is.
//
// Seeded: LAMPCELL_FUZZ_SEED replays a run; LAMPCELL_FUZZ_ITERATIONS sets the driver exchanges per test.

import CRealtime
import CellConfig
import CellCore
import CellModbus
import CellService
import CellSimulator
import Foundation
import LampCellTestSupport
import Logging
import Modbus
import Testing

/// The simulated cell's devices over real Modbus TCP on loopback (no controller).
func startSimulatedDevices(seed: UInt64) throws -> (SimulatedCellServer, [String: Int], CellDefinition) {
    let configuration = try DaemonConfiguration.load(from: Repository.developmentConfiguration)
    let definition = try CellDefinition.load(from: configuration.cellPath)
    let simulated = SimulatedCell(
        configuration: try SimulatedCellConfiguration(
            cell: definition, options: SimulationOptions(seed: seed, defectRate: 0)))
    let server = SimulatedCellServer(cell: simulated)
    let ports = try server.start()
    return (server, ports, definition)
}

/// Register `index` of a read reply PDU (function, byte count, data…).
func register(_ pdu: [UInt8], _ index: Int) -> UInt16 {
    UInt16(pdu[2 + 2 * index]) << 8 | UInt16(pdu[3 + 2 * index])
}

/// The i32 at registers `index`, `index + 1` (high word first).
func int32Register(_ pdu: [UInt8], _ index: Int) -> Int32 {
    Int32(bitPattern: UInt32(register(pdu, index)) << 16 | UInt32(register(pdu, index + 1)))
}

/// Whether `inputs` lies inside the RA-610 datasheet's ranges (what any value handed on as valid must satisfy).
func withinDatasheet(_ inputs: ArmInputs) -> Bool {
    let limits = JointLimits.ra610
    guard inputs.status.contains(.powered), inputs.status.rawValue >> 9 == 0 else { return false }
    for joint in 0..<JointLimits.jointCount {
        let position = inputs.actualPositionsRadians[joint]
        guard position >= limits.positionMinimumRadians[joint] - 0.01, position <= limits.positionMaximumRadians[joint] + 0.01
        else { return false }
    }
    return true
}

/// Failures found while a test runs, recorded as issues at the end (bounded).
final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: [String] = []
    private(set) var count = 0
    static let keptFailures = 30
    func fail(_ message: String) {
        lock.withLock {
            count += 1
            if kept.count < Self.keptFailures { kept.append(message) }
        }
    }
    func expect(_ condition: Bool, _ message: @autoclosure () -> String) { if !condition { fail(message()) } }
    func record(seed: UInt64) {
        let (failures, total) = lock.withLock { (kept, count) }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
        #expect(total == 0, "seed \(seed): \(total) failures (first \(Self.keptFailures) above)")
    }
}

@Suite("hostile Modbus device", .serialized)
struct HostileDeviceTests {
    /// The drivers' bound on one transaction in these tests (a silent device costs this much per exchange).
    static let responseTimeoutNanoseconds: UInt64 = 20_000_000
    /// Fast reconnects, so thousands of failing exchanges take seconds.
    static let fastReconnect = ReconnectPolicy(
        initialDelayNanoseconds: 1_000_000, maximumDelayNanoseconds: 10_000_000, multiplier: 2, jitterFraction: 0)
    /// The pause between two exchanges of the driver tests, µs.
    static let periodMicroseconds: UInt32 = 1000
    /// A device that behaves again must be answered as ok within this long.
    static let recoveryNanoseconds: UInt64 = 3_000_000_000

    @Test("RA-610 driver: every mangled reply marks the link faulted and keeps the last good values; recovers")
    func ra610Driver() throws {
        let seed = HostileSettings.seed
        let total = FuzzIterations.value(default: 3000)
        print("hostile RA-610: seed \(seed), \(total) exchanges (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        let (server, ports, _) = try startSimulatedDevices(seed: seed)
        defer { server.stop() }
        let proxy = HostileModbusProxy(
            upstreamPort: try #require(ports["loader"]), seed: seed,
            lateReplyNanoseconds: 3 * Self.responseTimeoutNanoseconds)
        _ = try proxy.start()
        defer { proxy.stop() }
        let driver = try RA610Driver(
            name: "loader", host: "127.0.0.1", port: proxy.port, unitID: 1,
            responseTimeoutNanoseconds: Self.responseTimeoutNanoseconds, connectTimeoutNanoseconds: 500_000_000,
            reconnect: Self.fastReconnect)
        defer { driver.close() }
        let log = FailureLog()
        var inputs = ArmInputs()
        var outputs = ArmOutputs()
        var random = SplitMix64(seed: seed ^ 0xA5A5)
        var exchanges = 0
        var cycle = 0
        var mangled = 0
        while exchanges < total {
            // A hostile stretch (rate and length by the seed), then the device behaves.
            cycle += 1
            proxy.hostilePercent = random.pick([5, 20, 50, 100])
            let stretch = 20 + random.below(200)
            for _ in 0..<stretch where exchanges < total {
                exchanges += 1
                outputs.heartbeat &+= 1
                let before = inputs
                // A short control period, so that most exchanges reach the device past the reconnect backoff.
                usleep(Self.periodMicroseconds)
                driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
                let records = proxy.drainRecords()
                let context = "seed \(seed) cycle \(cycle) exchange \(exchanges): \(records.map { "0x\(String($0.function, radix: 16)) \($0.behaviour)" })"
                if records.contains(where: { $0.behaviour != .correct }) { mangled += 1 }
                Self.checkArmExchange(before: before, after: inputs, records: records, context: context, log: log)
            }
            proxy.hostilePercent = 0
            let recovered = Self.recoverArm(driver, &inputs, &outputs, proxy: proxy, log: log, context: "seed \(seed) cycle \(cycle)")
            log.expect(recovered, "seed \(seed) cycle \(cycle): the link did not recover within 3 s of the device behaving: \(inputs.link)")
            if !recovered { break }
        }
        log.record(seed: seed)
        print("hostile RA-610: seed \(seed): \(exchanges) exchanges, \(mangled) with mangled replies, \(cycle) recoveries; behaviours \(proxy.behaviourCounts.map { "\($0.key): \($0.value)" }.sorted())")
        let hostile = proxy.behaviourCounts.filter { $0.key != .correct }.values.reduce(0, +)
        #expect(hostile > total / 10, "the hostile device mangled too few replies (\(hostile))")
    }

    /// Checks one RA-610 exchange against what the device answered.
    static func checkArmExchange(before: ArmInputs, after: ArmInputs, records: [HostileRecord], context: String, log: FailureLog) {
        var unchanged = after
        unchanged.link = before.link
        if after.link.state != .ok {
            // Failed: counted, and the last good values stay in place.
            log.expect(after.link.consecutiveFailures == before.link.consecutiveFailures &+ 1 || before.link.state == .ok && after.link.consecutiveFailures == 1,
                "\(context): failures \(before.link.consecutiveFailures) → \(after.link.consecutiveFailures)")
            log.expect(unchanged == before, "\(context): a failed exchange changed the arm's inputs")
            return
        }
        // Ok: no reply that must fail was taken; the values are the device's (or, at the least, within the datasheet).
        // The exchange's own transactions are the last records: its 0x17, after an identity read (0x04) when it
        // reconnected. (Earlier records can be stragglers of a previous exchange that timed out before the proxy
        // had read its request.)
        log.expect(after.link.consecutiveFailures == 0, "\(context): ok with \(after.link.consecutiveFailures) failures")
        var own = Array(records.suffix(1))
        if records.count >= 2, records[records.count - 2].function == 0x04 { own = Array(records.suffix(2)) }
        for record in own where record.behaviour.mustFail(function: record.function) {
            log.fail("\(context): a reply mangled as \(record.behaviour) was taken as valid: \(after.link)")
        }
        log.expect(withinDatasheet(after), "\(context): values outside the datasheet handed on as valid: \(after.status) \(after.actualPositionsRadians)")
        guard let last = records.last(where: { $0.function == 0x17 }) else {
            log.fail("\(context): ok without a 0x17 transaction")
            return
        }
        if last.behaviour == .correct || last.behaviour == .trailingGarbage {
            let pdu = last.correctReplyPDU
            log.expect(after.status.rawValue == register(pdu, 0), "\(context): status \(after.status.rawValue) is not the device's \(register(pdu, 0))")
            for joint in 0..<6 {
                let expected = Double(int32Register(pdu, 16 + 2 * joint)) / 1_000_000
                log.expect(after.actualPositionsRadians[joint] == expected, "\(context): J\(joint + 1) \(after.actualPositionsRadians[joint]) is not the device's \(expected)")
            }
        } else if last.behaviour == .corruptPayload {
            // Random register values pass only if they happen to lie inside the datasheet (checked above).
        }
    }

    /// With the device behaving: the link is ok again within `recoveryNanoseconds`, and 20 exchanges in a row are
    /// ok with the device's values.
    static func recoverArm(
        _ driver: RA610Driver, _ inputs: inout ArmInputs, _ outputs: inout ArmOutputs, proxy: HostileModbusProxy,
        log: FailureLog, context: String
    ) -> Bool {
        let deadline = lampcell_monotonic_ns() + recoveryNanoseconds
        var okInARow = 0
        while lampcell_monotonic_ns() < deadline {
            outputs.heartbeat &+= 1
            let before = inputs
            driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
            let records = proxy.drainRecords()
            checkArmExchange(before: before, after: inputs, records: records, context: context + " (recovering)", log: log)
            if inputs.link.state == .ok {
                okInARow += 1
                if okInARow == 20 { return true }
            } else {
                // A stale reply or junk left over from the hostile stretch may fail the first exchange or two.
                log.expect(okInARow == 0, "\(context): the link failed again after the device behaved: \(inputs.link)")
                okInARow = 0
                usleep(1000)
            }
        }
        return false
    }

    @Test("TS-200 driver: mangled replies mark the link faulted; writes only on an ok link; recovers")
    func ts200Driver() throws {
        let seed = HostileSettings.seed
        let total = FuzzIterations.value(default: 1500)
        print("hostile TS-200: seed \(seed), \(total) periods (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        let (server, ports, definition) = try startSimulatedDevices(seed: seed)
        defer { server.stop() }
        let proxy = HostileModbusProxy(
            upstreamPort: try #require(ports[definition.station.name]), seed: seed,
            lateReplyNanoseconds: 3 * Self.responseTimeoutNanoseconds)
        _ = try proxy.start()
        defer { proxy.stop() }
        let driver = try TS200Driver(
            name: "station", host: "127.0.0.1", port: proxy.port, unitID: 1,
            responseTimeoutNanoseconds: Self.responseTimeoutNanoseconds, connectTimeoutNanoseconds: 500_000_000,
            reconnect: Self.fastReconnect)
        defer { driver.close() }
        let log = FailureLog()
        var inputs = StationInputs()
        var outputs = StationOutputs()
        var random = SplitMix64(seed: seed ^ 0x5A5A)
        var periods = 0
        var cycle = 0
        while periods < total {
            cycle += 1
            proxy.hostilePercent = random.pick([5, 20, 50, 100])
            let stretch = 20 + random.below(150)
            for _ in 0..<stretch where periods < total {
                periods += 1
                // Something to write now and then: a lamp colour, the variant.
                outputs.coils = random.chance(50) ? .lampGreen : .lampAmber
                outputs.variant = UInt16(1 + random.below(2))
                let context = "seed \(seed) cycle \(cycle) period \(periods)"
                usleep(Self.periodMicroseconds)
                Self.stationPeriod(driver, &inputs, outputs, proxy: proxy, log: log, context: context)
            }
            proxy.hostilePercent = 0
            let deadline = lampcell_monotonic_ns() + Self.recoveryNanoseconds
            var okInARow = 0
            while lampcell_monotonic_ns() < deadline && okInARow < 20 {
                Self.stationPeriod(driver, &inputs, outputs, proxy: proxy, log: log, context: "seed \(seed) cycle \(cycle) (recovering)")
                okInARow = inputs.link.state == .ok ? okInARow + 1 : 0
                if okInARow == 0 { usleep(1000) }
            }
            log.expect(okInARow >= 20, "seed \(seed) cycle \(cycle): the station link did not recover within 3 s: \(inputs.link)")
            if okInARow < 20 { break }
            log.expect(inputs.variant == outputs.variant, "seed \(seed) cycle \(cycle): variant \(inputs.variant) after recovery, written \(outputs.variant)")
        }
        log.record(seed: seed)
        print("hostile TS-200: seed \(seed): \(periods) periods, \(cycle) recoveries; behaviours \(proxy.behaviourCounts.map { "\($0.key): \($0.value)" }.sorted())")
    }

    /// One control period of the station: the exchange (the writes of `outputs` that differ, then the reads), checked.
    static func stationPeriod(
        _ driver: TS200Driver, _ inputs: inout StationInputs, _ outputs: StationOutputs, proxy: HostileModbusProxy,
        log: FailureLog, context: String
    ) {
        let failuresBefore = inputs.link.consecutiveFailures
        let wasOK = inputs.link.state == .ok
        let requestsBefore = driver.clients[0].requestCount
        driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
        let sent = Int(driver.clients[0].requestCount - requestsBefore)
        let records = proxy.drainRecords()
        let described = "\(context) exchange \(records.map { "0x\(String($0.function, radix: 16)) \($0.behaviour)" })"
        if inputs.link.state == .ok {
            // The exchange's own transactions are the last records (earlier ones can be stragglers).
            for record in records.suffix(sent) where record.behaviour.mustFail(function: record.function) {
                log.fail("\(described): a reply mangled as \(record.behaviour) was taken as valid")
            }
            log.expect(inputs.link.consecutiveFailures == 0, "\(described): ok with failures")
            if let status = records.last(where: { $0.function == 0x04 }), status.behaviour == .correct {
                log.expect(inputs.statusWord == register(status.correctReplyPDU, 0), "\(described): status word is not the device's")
            }
        } else {
            log.expect(inputs.link.consecutiveFailures == (wasOK ? 1 : failuresBefore &+ 1), "\(described): failures \(failuresBefore) → \(inputs.link.consecutiveFailures)")
        }
    }
}

// MARK: - The controller against a hostile arm

/// The setpoints the controller streams to one arm, checked against where the arm really is (the real device's
/// answer to the same 0x17 transaction, whatever the hostile proxy then sent the driver).
final class SetpointWatch: @unchecked Sendable {
    /// A streamed setpoint farther than this from the arm's true position, in any joint, is wild (the device
    /// allows 0.1 rad of following error plus one period's step of at most 1.5 × 6.28 rad/s × 4 ms).
    static let wildDistanceRadians = 0.25
    private let lock = NSLock()
    private(set) var checked = 0
    private(set) var largestDistanceRadians = 0.0

    /// Checks the 0x17 records; returns a failure message per wild setpoint.
    func check(_ records: [HostileRecord]) -> [String] {
        var failures: [String] = []
        for record in records where record.function == 0x17 && record.requestPDU.count >= 10 + 56 && record.correctReplyPDU.count >= 2 + 80 {
            // Request: function, read address, read count, write address, write count, byte count, values.
            func written(_ index: Int) -> UInt16 { UInt16(record.requestPDU[10 + 2 * index]) << 8 | UInt16(record.requestPDU[11 + 2 * index]) }
            let command = ArmCommand(rawValue: written(0))
            guard command.contains(.enable) && command.contains(.stream) && !command.contains(.stop) else { continue }
            var largest = 0.0
            for joint in 0..<6 {
                let target = Double(Int32(bitPattern: UInt32(written(16 + 2 * joint)) << 16 | UInt32(written(17 + 2 * joint)))) / 1_000_000
                let actual = Double(int32Register(record.correctReplyPDU, 16 + 2 * joint)) / 1_000_000
                largest = max(largest, abs(target - actual))
            }
            lock.withLock {
                checked += 1
                largestDistanceRadians = max(largestDistanceRadians, largest)
            }
            if largest > Self.wildDistanceRadians {
                failures.append("a setpoint \(largest) rad from the arm's true position was streamed (reply status \(register(record.correctReplyPDU, 0)))")
            }
        }
        return failures
    }
}

extension HostileDeviceTests {
    @Test("the controller against a hostile arm: never a wild setpoint, the link recovers, production resumes")
    func controllerAgainstHostileArm() throws {
        let seed = HostileSettings.seed
        let cycles = max(1, FuzzIterations.value(default: 5000) / 1000)
        print("hostile arm under the controller: seed \(seed), \(cycles) hostile stretches (replay: LAMPCELL_FUZZ_SEED=\(seed))")
        var configuration = try DaemonConfiguration.load(from: Repository.developmentConfiguration)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-hostile-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        configuration.stateDirectory = directory
        configuration.ledgerPath = directory + "/ledger.sqlite"
        configuration.periodNanoseconds = 4_000_000
        configuration.responseTimeoutNanoseconds = 2_000_000
        configuration.fifoPriority = 80  // as CellFixture: refused silently without the privilege
        configuration.lockMemory = false
        let definition = try CellDefinition.load(from: configuration.cellPath)
        var recipes: [Recipe] = []
        for path in configuration.recipePaths { recipes.append(try Recipe.load(from: path, cell: definition)) }
        let simulated = SimulatedCell(
            configuration: try SimulatedCellConfiguration(
                cell: definition, options: SimulationOptions(seed: seed, defectRate: 0)))
        let server = SimulatedCellServer(cell: simulated, fifoPriority: 70)
        let ports = try server.start()
        defer { server.stop() }
        let armName = "loader"
        let proxy = HostileModbusProxy(
            upstreamPort: try #require(ports[armName]), seed: seed, lateReplyNanoseconds: 6_000_000, fifoPriority: 75)
        _ = try proxy.start()
        defer { proxy.stop() }
        var endpoints: [String: DeviceConnection] = [:]
        for (name, port) in ports {
            endpoints[name] = DeviceConnection(name: name, host: "127.0.0.1", port: name == armName ? proxy.port : port, unitID: 1)
        }
        var logger = Logger(label: "hostile")
        logger.logLevel = .critical
        let daemon = try CellDaemon(
            configuration: configuration, definition: definition, recipes: recipes, endpoints: endpoints, logger: logger)
        daemon.start()
        defer { daemon.shutdown(timeoutNanoseconds: 10_000_000_000) }
        let armIndex = try #require(daemon.cell.arms.firstIndex { $0.name == armName })

        // Every request to the hostile arm is checked on a watcher thread while the cell runs.
        let log = FailureLog()
        let watch = SetpointWatch()
        let watching = WatcherFlag()
        let watcher = Thread {
            while watching.isOn {
                for failure in watch.check(proxy.drainRecords()) { log.fail("seed \(seed): \(failure)") }
                usleep(10_000)
            }
            for failure in watch.check(proxy.drainRecords()) { log.fail("seed \(seed): \(failure)") }
            watching.finished()
        }
        watcher.start()

        func linkOK() -> Bool {
            daemon.waitFor(timeoutNanoseconds: 0) { $0.armInputs[armIndex].link.state == .ok }
        }
        #expect(
            daemon.waitFor(timeoutNanoseconds: 20_000_000_000) { snapshot in
                (0..<snapshot.armCount).allSatisfy { snapshot.armInputs[$0].link.state == .ok }
                    && snapshot.stationInputs.link.state == .ok
            }, "the devices did not answer")
        var random = SplitMix64(seed: seed ^ 0xC0DE)
        var failuresSeen: UInt32 = 0
        for cycle in 1...cycles {
            let problem = daemon.autoStart(variant: .left, lamps: 1000, orderID: "HOSTILE-\(cycle)", timeoutNanoseconds: 90_000_000_000)
            #expect(problem == nil, "seed \(seed) cycle \(cycle): production does not resume after the device behaved: \(problem ?? "")")
            // Some production with the arm moving, then a hostile stretch.
            usleep(UInt32(1_000_000 + random.below(2_000_000)))
            proxy.hostileBehaviours = HostileBehaviour.allCases.filter { $0 != .correct }
            proxy.hostilePercent = random.pick([2, 10, 30, 100])
            let hostileUntil = lampcell_monotonic_ns() + UInt64(500_000_000 + random.below(1_500_000_000))
            while lampcell_monotonic_ns() < hostileUntil {
                let link = daemon.snapshot().armInputs[armIndex].link
                failuresSeen = max(failuresSeen, link.consecutiveFailures)
                usleep(2000)
            }
            proxy.hostilePercent = 0
            // Behaving again: the link is ok within the recovery time, and stays ok.
            let recovered = daemon.waitFor(timeoutNanoseconds: Self.recoveryNanoseconds) { $0.armInputs[armIndex].link.state == .ok }
            #expect(recovered, "seed \(seed) cycle \(cycle): the arm's link did not recover: \(daemon.snapshot().armInputs[armIndex].link)")
            usleep(200_000)
            #expect(linkOK(), "seed \(seed) cycle \(cycle): the arm's link failed again while the device behaved")
        }
        watching.stop()
        watching.waitFinished()
        log.record(seed: seed)
        let faults = server.cell.withModels { models in
            models.arms[models.armNames.firstIndex(of: armName) ?? 0].faultHistory.map(\.code)
        }
        let wild = faults.filter { [ArmFaultCode.setpointJump, ArmFaultCode.positionLimit, ArmFaultCode.followingError].contains($0) }
        #expect(wild.isEmpty, "seed \(seed): the arm latched \(wild.map { "\(ArmFaultCode.name($0))" }) (all faults: \(faults))")
        #expect(watch.checked > 100, "seed \(seed): only \(watch.checked) streamed setpoints were checked")
        #expect(failuresSeen > 0, "seed \(seed): the hostile stretches never failed the link")
        print("hostile arm under the controller: seed \(seed): \(watch.checked) streamed setpoints checked, largest distance \(watch.largestDistanceRadians) rad; arm faults \(faults.map { "\(ArmFaultCode.name($0))" }); behaviours \(proxy.behaviourCounts.map { "\($0.key): \($0.value)" }.sorted())")
    }
}

/// Start/stop flag of the watcher thread.
final class WatcherFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var on = true
    private let done = DispatchSemaphore(value: 0)
    var isOn: Bool { lock.withLock { on } }
    func stop() { lock.withLock { on = false } }
    func finished() { done.signal() }
    func waitFinished() { _ = done.wait(timeout: .now() + 10) }
}

// MARK: - Regression cases: one mangling at a time

extension HostileDeviceTests {
    /// Every reply mangled the same way: the RA-610 link is never ok. `wrongUnit` and `wrongProtocol` were taken
    /// as valid by libmodbus 3.1.6 (ModbusClient now checks the whole MBAP header); `corruptPayload` (random
    /// register values in a well-formed reply) was handed to the controller as the arm's state (RA610Driver now
    /// checks the reply against the datasheet).
    @Test(
        "each mangling alone: the RA-610 link never reports ok",
        arguments: HostileBehaviour.allCases.filter { $0.mustFail(function: 0x17) || $0 == .corruptPayload })
    func eachManglingAlone(_ behaviour: HostileBehaviour) throws {
        let seed = HostileSettings.seed
        let (server, ports, _) = try startSimulatedDevices(seed: seed)
        defer { server.stop() }
        let proxy = HostileModbusProxy(
            upstreamPort: try #require(ports["loader"]), seed: seed,
            lateReplyNanoseconds: 3 * Self.responseTimeoutNanoseconds)
        proxy.hostileBehaviours = [behaviour]
        proxy.hostilePercent = 100
        _ = try proxy.start()
        defer { proxy.stop() }
        let driver = try RA610Driver(
            name: "loader", host: "127.0.0.1", port: proxy.port, unitID: 1,
            responseTimeoutNanoseconds: Self.responseTimeoutNanoseconds, connectTimeoutNanoseconds: 500_000_000,
            reconnect: Self.fastReconnect)
        defer { driver.close() }
        var inputs = ArmInputs()
        var outputs = ArmOutputs()
        var reached = 0
        for _ in 0..<30 {
            usleep(Self.periodMicroseconds * 3)
            outputs.heartbeat &+= 1
            driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
            reached += proxy.drainRecords().count
            #expect(inputs.link.state != .ok, "seed \(seed): a reply mangled as \(behaviour) was taken as valid")
            #expect(inputs.actualPositionsRadians == ArmInputs().actualPositionsRadians, "\(behaviour): values handed on")
        }
        #expect(reached >= 5, "\(behaviour): only \(reached) requests reached the device")
        // And once the device behaves, the link is ok.
        proxy.hostilePercent = 0
        let deadline = lampcell_monotonic_ns() + Self.recoveryNanoseconds
        while inputs.link.state != .ok && lampcell_monotonic_ns() < deadline {
            usleep(Self.periodMicroseconds)
            driver.exchange(outputs, into: &inputs, nowNanoseconds: lampcell_monotonic_ns())
        }
        #expect(inputs.link.state == .ok, "\(behaviour): no recovery: \(inputs.link)")
        #expect(withinDatasheet(inputs))
    }
}
