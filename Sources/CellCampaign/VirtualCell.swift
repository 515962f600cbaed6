// The virtual cell: the device models, the real drivers over in-memory Modbus transports, the real controller and the
// real period function (`CellPeriod`), on a virtual clock. What is not real, and why:
// - the clock (`VirtualClock`): a shift runs hundreds of times faster than real time;
// - the wire (`InMemoryModbusTransport`): the request's and the reply's real ADU bytes, handed over in memory; link
//   faults are its behaviours;
// - the threads: one thread runs the models, the period and whatever drives the run.
// Everything else (Modbus client policy and reply checks, drivers, their plausibility checks, the exchange with all
// devices at once, the controller) is the code the plant runs.

import CellControl
import CellCore
import CellModbus
import CellService
import CellSimulator
import Modbus

/// A whole cell on virtual time, for behaviour tests and campaigns. Thread: one thread owns it (any thread).
public final class VirtualCell {
    /// The clock of the run; models, clients and controller all read it. Starts at 0.
    public let clock = VirtualClock()
    /// The devices' models (and the world between them).
    public let models: CellModels
    public let compiledCell: CompiledCell
    public let compiledRecipes: [CompiledRecipe]
    public let settings: ControllerSettings
    /// The drivers' reconnect policy.
    public let reconnect: ReconnectPolicy
    /// Connections of the station driver (1 or 2).
    public let stationConnections: Int
    /// The controller's monotonic clock reads this much more than virtual time (a process never starts at 0).
    public static let monotonicBaseNanoseconds: UInt64 = 1_000_000_000

    /// The running process: its period (controller, drivers, process image) and its links; replaced by
    /// `startProcess`.
    private var process: Process
    /// The running process's period (controller, drivers, process image).
    public var period: CellPeriod { process.period }
    /// The in-memory links of the current process: one per arm, and the station's connections.
    public var armTransports: [InMemoryModbusTransport] { process.armTransports }
    public var stationTransports: [InMemoryModbusTransport] { process.stationTransports }
    /// Called for every 0x17 an arm applied (its index, the words written, whether it was streaming when the request
    /// arrived): lets a campaign watch the setpoint stream the arms received.
    public var onArmWrite: ((_ arm: Int, _ words: UnsafeBufferPointer<UInt16>, _ armWasStreaming: Bool) -> Void)?

    /// Seeds of the drivers' backoff jitter, one per connection of each process.
    private var jitterRandom: SimulationRandom

    /// What one process of the cell controller is made of.
    private struct Process {
        var period: CellPeriod
        var armTransports: [InMemoryModbusTransport]
        var stationTransports: [InMemoryModbusTransport]
        /// The arms as their transports see them (observing the 0x17s they apply).
        var observedArms: [ObservedArm]
    }

    /// Builds the models and a first process (controller + drivers).
    /// - Parameters:
    ///   - seed: seeds the models (parts, defects, lots) and the drivers' jitter.
    ///   - serials: the serial allocator of the first process.
    public init(
        cell: CellDefinition, recipes: [Recipe], settings: ControllerSettings = ControllerSettings(), seed: UInt64,
        defectRate: Double = 0.02, reconnect: ReconnectPolicy = ReconnectPolicy.default,
        stationConnections: Int = 2, serials: @escaping @Sendable () -> UInt64? = { nil }
    ) throws {
        compiledCell = try CompiledCell.compile(cell)
        var compiled: [CompiledRecipe] = []
        for recipe in recipes { compiled.append(try CompiledRecipe.compile(recipe, cell: compiledCell)) }
        compiledRecipes = compiled
        self.settings = settings
        self.reconnect = reconnect
        self.stationConnections = stationConnections
        var master = SimulationRandom(seed: seed)
        let modelSeed = master.next()
        jitterRandom = master.split()
        models = CellModels(
            configuration: try SimulatedCellConfiguration(
                cell: cell, options: SimulationOptions(seed: modelSeed, defectRate: defectRate)))
        process = Self.makeProcess(
            models: models, clock: clock, cell: compiledCell, recipes: compiled, settings: settings,
            reconnect: reconnect, stationConnections: stationConnections, jitter: &jitterRandom, serials: serials)
        for arm in process.observedArms { arm.cell = self }
    }

    /// The current process's controller.
    public var controller: CellController { period.controller }
    /// The current process's image.
    public var image: ProcessImage {
        get { period.image }
        set { period.image = newValue }
    }

    /// Virtual time now, ns since the run began.
    public var nowNanoseconds: UInt64 { clock.nowNanoseconds }
    /// What the controller's monotonic clock reads now.
    public var monotonicNanoseconds: UInt64 { Self.monotonicBaseNanoseconds + clock.nowNanoseconds }

    /// Starts a new process: a new controller, new drivers and new connections (the old ones die with the old
    /// process). The models keep running.
    public func startProcess(serials: @escaping @Sendable () -> UInt64?) {
        process = Self.makeProcess(
            models: models, clock: clock, cell: compiledCell, recipes: compiledRecipes, settings: settings,
            reconnect: reconnect, stationConnections: stationConnections, jitter: &jitterRandom, serials: serials)
        for arm in process.observedArms { arm.cell = self }
    }

    private static func makeProcess(
        models: CellModels, clock: VirtualClock, cell: CompiledCell, recipes: [CompiledRecipe],
        settings: ControllerSettings, reconnect: ReconnectPolicy, stationConnections: Int,
        jitter: inout SimulationRandom, serials: @escaping @Sendable () -> UInt64?
    ) -> Process {
        let controller = CellController(
            cell: cell, recipes: recipes, settings: settings,
            nowNanoseconds: monotonicBaseNanoseconds + clock.nowNanoseconds, serials: serials)
        // The daemon's timeouts: they bound real waits; in memory no time passes within a period.
        let daemon = ControlLoopSettings()
        func client(_ transport: InMemoryModbusTransport, seed: UInt64) -> ModbusClient {
            do {
                return try ModbusClient(
                    transport: transport, unitID: 1, responseTimeoutNanoseconds: daemon.responseTimeoutNanoseconds,
                    connectTimeoutNanoseconds: daemon.connectTimeoutNanoseconds, reconnect: reconnect,
                    jitterSeed: seed, clock: clock)
            } catch {
                preconditionFailure("the daemon's Modbus settings are valid: \(error)")
            }
        }
        var observedArms: [ObservedArm] = []
        var armTransports: [InMemoryModbusTransport] = []
        var arms: [RA610Driver] = []
        for (index, model) in models.arms.enumerated() {
            let observed = ObservedArm(model: model, index: index)
            observedArms.append(observed)
            let transport = InMemoryModbusTransport(device: observed, clock: clock, name: models.armNames[index])
            armTransports.append(transport)
            arms.append(RA610Driver(name: models.armNames[index], client: client(transport, seed: jitter.next())))
        }
        var stationTransports: [InMemoryModbusTransport] = []
        var stationClients: [ModbusClient] = []
        for _ in 0..<stationConnections {
            let transport = InMemoryModbusTransport(device: models.station, clock: clock, name: models.stationName)
            stationTransports.append(transport)
            stationClients.append(client(transport, seed: jitter.next()))
        }
        let station = TS200Driver(name: models.stationName, clients: stationClients)
        return Process(
            period: CellPeriod(controller: controller, devices: CellExchange(arms: arms, station: station, clock: clock)),
            armTransports: armTransports, stationTransports: stationTransports, observedArms: observedArms)
    }

    /// Moves virtual time to `nanoseconds` and the models with it.
    public func advance(toNanoseconds nanoseconds: UInt64) {
        clock.advance(toNanoseconds: nanoseconds)
        models.advance(toNanoseconds: nanoseconds)
    }

    /// The link of device `index`: arms first, then the station (its first connection).
    public func transport(ofDevice index: Int) -> InMemoryModbusTransport {
        index < armTransports.count ? armTransports[index] : stationTransports[0]
    }

    /// Makes device `index` unreachable (every connection to it) until `untilNanoseconds` of virtual time.
    public func makeUnreachable(device index: Int, untilNanoseconds: UInt64) {
        if index < armTransports.count {
            armTransports[index].unreachableUntilNanoseconds = untilNanoseconds
        } else {
            for transport in stationTransports { transport.unreachableUntilNanoseconds = untilNanoseconds }
        }
    }

    /// Number of devices (arms + the station).
    public var deviceCount: Int { models.arms.count + 1 }

    /// Runs `periods` whole periods (advance, exchange, step), the controller's wall clock at `wallBase` + virtual time.
    public func run(periods: Int, wallBaseNanoseconds: UInt64 = ShiftConfiguration.defaultStartWallNanoseconds) {
        for _ in 0..<periods { runPeriod(wallBaseNanoseconds: wallBaseNanoseconds) }
    }

    /// One period at the current virtual time, then the clock moves on by one period.
    public func runPeriod(wallBaseNanoseconds: UInt64 = ShiftConfiguration.defaultStartWallNanoseconds) {
        let now = clock.nowNanoseconds
        models.advance(toNanoseconds: now)
        period.run(nowNanoseconds: monotonicNanoseconds, wallNanoseconds: wallBaseNanoseconds + now)
        advance(toNanoseconds: now + settings.periodNanoseconds)
    }

    /// Forwards to the arm's model and reports every applied 0x17 to `onArmWrite`.
    final class ObservedArm: ModbusDevice {
        let model: RA610Model
        let index: Int
        weak var cell: VirtualCell?

        init(model: RA610Model, index: Int) {
            self.model = model
            self.index = index
        }

        var supportedFunctions: Set<ModbusFunction> { model.supportedFunctions }

        func readBits(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt8>)
            -> ModbusExceptionCode?
        { model.readBits(table, address: address, into: values) }

        func readRegisters(_ table: ModbusTable, address: Int, into values: UnsafeMutableBufferPointer<UInt16>)
            -> ModbusExceptionCode?
        { model.readRegisters(table, address: address, into: values) }

        func writeCoils(address: Int, values: UnsafeBufferPointer<UInt8>) -> ModbusExceptionCode? {
            model.writeCoils(address: address, values: values)
        }

        func writeRegisters(address: Int, values: UnsafeBufferPointer<UInt16>) -> ModbusExceptionCode? {
            model.writeRegisters(address: address, values: values)
        }

        func writeAndReadRegisters(
            writeAddress: Int, values: UnsafeBufferPointer<UInt16>, readAddress: Int,
            into readValues: UnsafeMutableBufferPointer<UInt16>
        ) -> ModbusExceptionCode? {
            let streaming = model.statusWord & ArmStatus.streaming.rawValue != 0
            let exception = model.writeAndReadRegisters(
                writeAddress: writeAddress, values: values, readAddress: readAddress, into: readValues)
            if exception == nil, writeAddress == RA610Registers.writeAddress, let observer = cell?.onArmWrite {
                observer(index, values, streaming)
            }
            return exception
        }
    }
}
