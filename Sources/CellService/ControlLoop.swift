import CRealtime
import CellConfig
import CellControl
import CellCore
import CellModbus
import CellRuntime
import Modbus
import Synchronization

/// Where each device is reached, and the timeouts of its driver.
public struct DeviceConnection: Sendable {
    public var name: String
    public var host: String
    public var port: Int
    public var unitID: UInt8

    public init(name: String, host: String, port: Int, unitID: UInt8) {
        self.name = name
        self.host = host
        self.port = port
        self.unitID = unitID
    }
}

/// Settings of the control loop itself.
public struct ControlLoopSettings: Sendable {
    /// SCHED_FIFO priority, nil for SCHED_OTHER.
    public var fifoPriority: Int32? = 80
    public var lockMemory = true
    /// Response timeout of one Modbus transaction, ns (a late reply is a failed exchange, not a late period).
    public var responseTimeoutNanoseconds: UInt64 = 2_000_000
    /// Bound on one connect attempt from the control thread, ns.
    public var connectTimeoutNanoseconds: UInt64 = 2_000_000
    /// Connections to the TS-200 (1 or 2; its datasheet allows 2). With 2 its two reads of a period run side by
    /// side (one round trip instead of two), and the station refuses any third client while the cell runs.
    public var stationConnections = DaemonConfiguration.defaultStationConnections
    /// Reconnect backoff of the drivers: first retry after 10 ms (a device that dropped one connection is usually
    /// back at once), doubling up to 1 s, with 20 % jitter.
    public var reconnect = ReconnectPolicy(
        initialDelayNanoseconds: 10_000_000, maximumDelayNanoseconds: 1_000_000_000, multiplier: 2, jitterFraction: 0.2)
    /// Called on the control thread around each period's work (tests: allocation counting). Must not allocate.
    public var periodHooks: PeriodHooks?

    public init() {}
}

/// Calls made on the control thread at the start and end of each period's work (after the wake-up).
public struct PeriodHooks: Sendable {
    public var begin: @Sendable () -> Void
    public var end: @Sendable (_ periodIndex: UInt64) -> Void

    public init(begin: @escaping @Sendable () -> Void, end: @escaping @Sendable (_ periodIndex: UInt64) -> Void) {
        self.begin = begin
        self.end = end
    }
}

/// The control loop: the device drivers over libmodbus, the controller, and the periodic real-time thread that runs
/// the cell's period (`CellPeriod`: exchange with every device at once, step, dispatch) and publishes a snapshot.
///
/// Each arm is exchanged with exactly one 0x17 transaction per period (writing the setpoints the previous step
/// computed and reading the state for this one); the station is read in the same exchange, and its writes are
/// dispatched after the step, their replies completed by the next exchange. Other
/// threads see the cell through `snapshot()` (published every period through a try-lock: the control thread never
/// waits) and talk to it through `submit(_:)`; finished lamps leave through `controller.lamps`.
public final class ControlLoop: @unchecked Sendable {
    public let controller: CellController
    public let thread: PeriodicThread
    /// The period's code, the same as in virtual time.
    public let cellPeriod: CellPeriod
    private let published: Mutex<CellSnapshot>
    private var staging: CellSnapshot
    private let nextTicket = Atomic<UInt64>(1)
    private let stallNanoseconds = Atomic<UInt64>(0)
    private let hooks: PeriodHooks?

    /// - Parameters:
    ///   - arms: connections of the arms, in the order of `controller.cell.arms`.
    public init(
        controller: CellController, arms: [DeviceConnection], station: DeviceConnection,
        settings: ControlLoopSettings
    ) throws(ModbusError) {
        precondition(arms.count == controller.cell.arms.count, "one connection per arm")
        precondition(arms.count <= maximumArmCount, "at most \(maximumArmCount) arms")
        self.controller = controller
        hooks = settings.periodHooks
        var drivers: [RA610Driver] = []
        for arm in arms {
            drivers.append(
                try RA610Driver(
                    name: arm.name, host: arm.host, port: arm.port, unitID: arm.unitID,
                    responseTimeoutNanoseconds: settings.responseTimeoutNanoseconds,
                    connectTimeoutNanoseconds: settings.connectTimeoutNanoseconds, reconnect: settings.reconnect))
        }
        let stationDriver = try TS200Driver(
            name: station.name, host: station.host, port: station.port, unitID: station.unitID,
            responseTimeoutNanoseconds: settings.responseTimeoutNanoseconds,
            connectTimeoutNanoseconds: settings.connectTimeoutNanoseconds, reconnect: settings.reconnect,
            connections: settings.stationConnections)
        cellPeriod = CellPeriod(
            controller: controller,
            devices: CellExchange(arms: drivers, station: stationDriver, clock: MonotonicClock.shared))
        staging = CellSnapshot(unit: controller.unit)
        published = Mutex(CellSnapshot(unit: controller.unit))
        let box = UnownedBox()
        thread = PeriodicThread(
            name: "lampcell-control", periodNanoseconds: controller.settings.periodNanoseconds,
            fifoPriority: settings.fifoPriority, lockMemory: settings.lockMemory
        ) { timing in
            box.loop?.period(timing)
        }
        box.loop = self
    }

    /// Starts the control thread. Any thread, once.
    public func start() { thread.start() }

    /// Stops the control thread after its current period and closes the connections. Any thread.
    public func stop() {
        thread.requestStop()
        thread.join()
        cellPeriod.devices.close()
    }

    /// The latest published state. Any thread but the control thread.
    public func snapshot() -> CellSnapshot { published.withLock { $0 } }

    /// Queues a request for the controller; returns its ticket, or nil when the request queue is full.
    /// The reply appears in `controller.replies`. Any thread (one submitter at a time: the queue is SPSC).
    public func submit(_ request: ControllerRequest) -> UInt64? {
        let ticket = nextTicket.add(1, ordering: .relaxed).oldValue
        return controller.requests.push((ticket, request)) ? ticket : nil
    }

    /// Test hook: makes the next period busy-wait this long (a stalled control loop, for the watchdog tests).
    /// Any thread.
    public func injectStall(nanoseconds: UInt64) { stallNanoseconds.store(nanoseconds, ordering: .relaxed) }

    private func period(_ timing: PeriodTiming) {
        hooks?.begin()
        defer { hooks?.end(timing.periodIndex) }
        let stats = thread.statistics
        let start = lampcell_monotonic_ns()
        let wall = lampcell_realtime_ns()
        let phases = cellPeriod.run(nowNanoseconds: start, wallNanoseconds: wall)
        stats.record(.read, nanoseconds: phases.exchangeNanoseconds)
        stats.record(.step, nanoseconds: phases.stepNanoseconds)

        let publishStart = lampcell_monotonic_ns()
        let stepStart = start &+ phases.exchangeNanoseconds
        staging.capture(
            controller, image: cellPeriod.image, periodIndex: timing.periodIndex, now: stepStart,
            wall: wall &+ phases.exchangeNanoseconds)
        let stage = staging
        _ = published.withLockIfAvailable { $0 = stage }
        stats.record(.write, nanoseconds: phases.dispatchNanoseconds &+ (lampcell_monotonic_ns() - publishStart))

        let stall = stallNanoseconds.exchange(0, ordering: .relaxed)
        if stall > 0 {
            let until = lampcell_monotonic_ns() + stall
            while lampcell_monotonic_ns() < until {}
        }
    }
}

/// Breaks the init-time cycle between the loop and its thread's closure.
private final class UnownedBox: @unchecked Sendable {
    weak var loop: ControlLoop?
}
