import CRealtime
import Foundation
import Modbus

/// One simulated RA-610 of a cell.
public struct SimulatedArmSpec: Sendable {
    /// Device name from the cell definition (`loader`, `assembler`, `lens`).
    public var name: String
    public var toolKind: ToolKind
    public var serialNumber: UInt32
    /// major × 256 + minor.
    public var firmware: UInt16
    /// Where the arm stands at power-up (6 joints, radians).
    public var initialPositionsRadians: [Double]

    public init(
        name: String, toolKind: ToolKind, serialNumber: UInt32, firmware: UInt16, initialPositionsRadians: [Double]
    ) {
        self.name = name
        self.toolKind = toolKind
        self.serialNumber = serialNumber
        self.firmware = firmware
        self.initialPositionsRadians = initialPositionsRadians
    }
}

/// Everything a simulated cell is made of.
public struct SimulatedCellConfiguration: Sendable {
    public var arms: [SimulatedArmSpec]
    /// Name of the TS-200 device (`station`).
    public var stationName: String
    public var world: CellWorldConfiguration
    /// Seed of every random choice of the run.
    public var seed: UInt64

    public init(arms: [SimulatedArmSpec], stationName: String, world: CellWorldConfiguration, seed: UInt64) {
        self.arms = arms
        self.stationName = stationName
        self.world = world
        self.seed = seed
    }
}

/// The models of a whole cell, stepped in lockstep: three RA-610s, the TS-200 and the world between them.
///
/// Not thread-safe: in virtual time one thread owns it; in real time `SimulatedCell` guards it with its lock.
public final class CellModels {
    public let world: CellWorld
    public let arms: [RA610Model]
    public let station: TS200Model
    public let armNames: [String]
    public let stationName: String
    /// Model time; every model has stepped to it.
    public private(set) var timeNanoseconds: UInt64 = 0
    /// Fixed model step (the RA-610's 4 kHz servo loop).
    public static let stepNanoseconds: UInt64 = RA610Model.stepNanoseconds

    public init(configuration: SimulatedCellConfiguration) {
        var random = SimulationRandom(seed: configuration.seed)
        world = CellWorld(configuration: configuration.world, random: random.split())
        var arms: [RA610Model] = []
        for spec in configuration.arms {
            arms.append(
                RA610Model(
                    name: spec.name, serialNumber: spec.serialNumber, firmware: spec.firmware, toolKind: spec.toolKind,
                    world: world, random: random.split(), initialPositionsRadians: spec.initialPositionsRadians))
        }
        self.arms = arms
        armNames = configuration.arms.map(\.name)
        station = TS200Model(world: world, random: random.split())
        stationName = configuration.stationName
    }

    /// The arm called `name`, if any.
    public func arm(named name: String) -> RA610Model? {
        armNames.firstIndex(of: name).map { arms[$0] }
    }

    /// Steps every model once.
    public func step() {
        for arm in arms { arm.step() }
        station.step()
        timeNanoseconds += Self.stepNanoseconds
    }

    /// The reference model: every model is stepped at 4 kHz (`step()`), no quiet step is skipped. The exact model
    /// (false, the default) must agree with it (the exact-vs-stepped test); `lampsim shift --stepped` and `make bench`
    /// time it. Set before the first advance. Thread: the owner.
    public var stepsEveryTick = false

    /// Steps of quiet skipped and steps run, since the start (how much work the exact model saved). Thread: the owner.
    public private(set) var skippedSteps: UInt64 = 0
    public private(set) var runSteps: UInt64 = 0

    /// Steps that no model has an event in, from now (at most `limit`): every model may skip them at once.
    public func quietSteps(limit: Int) -> Int {
        var quiet = station.quietSteps(limit: limit)
        for arm in arms where quiet > 0 { quiet = arm.quietSteps(limit: quiet) }
        return quiet
    }

    /// Advances every model until model time reaches `nanoseconds` (whole steps): the steps in which no model has an
    /// event at once (`quietSteps`/`skip`, in closed form), each step holding an event by `step()`, so every event
    /// happens at the 4 kHz step it happens at in the reference. Does not allocate. Thread: the owner.
    public func advance(toNanoseconds nanoseconds: UInt64) {
        while timeNanoseconds + Self.stepNanoseconds <= nanoseconds {
            let remaining = Int((nanoseconds - timeNanoseconds) / Self.stepNanoseconds)
            let quiet = stepsEveryTick ? 0 : quietSteps(limit: remaining)
            if quiet > 0 {
                for arm in arms { arm.skip(steps: quiet) }
                station.skip(steps: quiet)
                timeNanoseconds += UInt64(quiet) * Self.stepNanoseconds
                skippedSteps += UInt64(quiet)
            } else {
                step()
                runSteps += 1
            }
        }
    }
}

/// A simulated cell running in real time: the models advance to the monotonic clock whenever anyone looks.
///
/// Thread-safe: every access goes through one lock, and before each access the models are stepped to "now", so a
/// Modbus request sees the cell exactly as it is at the moment it is served. A ticker keeps time moving while
/// nobody asks (see `SimulatedCellServer`).
public final class SimulatedCell: @unchecked Sendable {
    private let lock = NSLock()
    private let models: CellModels
    private let startNanoseconds: UInt64

    public init(configuration: SimulatedCellConfiguration) {
        models = CellModels(configuration: configuration)
        startNanoseconds = lampcell_monotonic_ns()
    }

    /// Runs `body` with the models stepped to now, under the cell's lock. Any thread.
    public func withModels<T>(_ body: (CellModels) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        models.advance(toNanoseconds: lampcell_monotonic_ns() - startNanoseconds)
        return try body(models)
    }

    /// Names of the devices: the arms, then the station.
    public var deviceNames: [String] { models.armNames + [models.stationName] }

    /// A `ModbusDevice` view of device `name` for a Modbus server, or nil for an unknown name.
    public func device(named name: String) -> (any ModbusDevice & Sendable)? {
        if let index = models.armNames.firstIndex(of: name) {
            return LockedDevice(cell: self) { $0.arms[index] }
        }
        if name == models.stationName {
            return LockedDevice(cell: self) { $0.station }
        }
        return nil
    }
}

/// A device model behind the cell's lock, stepped to now before each request.
final class LockedDevice: ModbusDevice, @unchecked Sendable {
    private let cell: SimulatedCell
    private let select: (CellModels) -> any ModbusDevice
    let supportedFunctions: Set<ModbusFunction>

    init(cell: SimulatedCell, select: @escaping (CellModels) -> any ModbusDevice) {
        self.cell = cell
        self.select = select
        supportedFunctions = cell.withModels { select($0).supportedFunctions }
    }

    func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
        -> ModbusExceptionCode?
    {
        cell.withModels { select($0).readBits(table, address: address, into: values) }
    }

    func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
        -> ModbusExceptionCode?
    {
        cell.withModels { select($0).readRegisters(table, address: address, into: values) }
    }

    func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
        cell.withModels { select($0).writeCoils(address: address, values: values) }
    }

    func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
        cell.withModels { select($0).writeRegisters(address: address, values: values) }
    }

    func writeAndReadRegisters(
        writeAddress: Int, values: UnsafeBufferPointer<UInt16>, readAddress: Int,
        into readValues: UnsafeMutableBufferPointer<UInt16>
    ) -> ModbusExceptionCode? {
        cell.withModels {
            select($0).writeAndReadRegisters(
                writeAddress: writeAddress, values: values, readAddress: readAddress, into: readValues)
        }
    }
}

/// Serves every device of a `SimulatedCell` as a Modbus TCP server on loopback (the real driver path).
///
/// A ticker thread steps the models every `tickNanoseconds` even when no client asks, so the world's clocks and
/// counters stay current. Start and stop from any thread; fault injection through `server(named:)` or the cell.
public final class SimulatedCellServer: @unchecked Sendable {
    /// How often the ticker steps the cell while nobody asks.
    public static let tickNanoseconds: UInt64 = 20_000_000

    public let cell: SimulatedCell
    private var servers: [String: ModbusTCPServer] = [:]
    private var order: [String] = []
    private let stopLock = NSCondition()
    private var stopping = false
    /// True until a started ticker has ended (and when none was started), so `stop()` never waits for nothing.
    private var tickerDone = true

    /// SCHED_FIFO priority of the servers and the ticker (nil: SCHED_OTHER).
    public let fifoPriority: Int32?

    /// - Parameters:
    ///   - ports: port per device name; 0 or missing picks an ephemeral port.
    ///   - fifoPriority: run the servers and the ticker SCHED_FIFO at this priority (below a controller's on the
    ///     same box), so that the simulated devices answer in time on a loaded machine; nil: SCHED_OTHER.
    public init(cell: SimulatedCell, host: String = "127.0.0.1", ports: [String: Int] = [:], fifoPriority: Int32? = nil) {
        self.cell = cell
        self.fifoPriority = fifoPriority
        for name in cell.deviceNames {
            guard let device = cell.device(named: name) else { continue }
            servers[name] = ModbusTCPServer(
                host: host, port: ports[name] ?? 0, unitID: 1, maxClients: 2, device: device,
                fifoPriority: fifoPriority)
            order.append(name)
        }
    }

    /// Starts every server and the ticker; returns the bound port per device name. Any thread, once.
    @discardableResult
    public func start() throws -> [String: Int] {
        var ports: [String: Int] = [:]
        for name in order {
            ports[name] = try servers[name]!.start()
        }
        stopLock.lock()
        tickerDone = false
        stopLock.unlock()
        let ticker = Thread { [self] in
            // Same class as the servers: a preempted ticker holding the cell's lock would stall them.
            if let fifoPriority { _ = lampcell_set_fifo_priority(fifoPriority) }
            stopLock.lock()
            while !stopping {
                stopLock.unlock()
                cell.withModels { _ in }
                stopLock.lock()
                _ = stopLock.wait(until: Date(timeIntervalSinceNow: Double(Self.tickNanoseconds) / 1e9))
            }
            tickerDone = true
            stopLock.broadcast()
            stopLock.unlock()
        }
        ticker.name = "lampsim-ticker"
        ticker.start()
        return ports
    }

    /// The server of device `name` (fault injection: delay, silence, dropped connections).
    public func server(named name: String) -> ModbusTCPServer? { servers[name] }

    /// Device names in serving order (arms, then station).
    public var deviceNames: [String] { order }

    /// Stops the ticker and every server. Any thread.
    public func stop() {
        stopLock.lock()
        stopping = true
        stopLock.broadcast()
        while !tickerDone { stopLock.wait() }
        stopLock.unlock()
        for name in order { servers[name]?.stop() }
    }
}
