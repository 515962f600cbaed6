import CRealtime
import ControlAPIClient
import CellCore
import CellService
import Foundation
import Glibc
import Ledger
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// What every connection's handler shares: the cell, the status cache, metrics, the ledger, the access policy,
/// the thread pool for blocking jobs and the server's counters. Any thread.
final class APIShared: Sendable {
    let configuration: APIServerConfiguration
    let cell: any ControlledCell
    let status: StatusSource
    let metrics = MetricsExporter()
    let lamps: (any LampQuerying)?
    let policy: CommandPolicy
    let threadPool: NIOThreadPool
    let logger: Logger
    let recipeVariants: [Variant]
    /// The alarm and event history (`GET /v1/alarms`, commands and logins recorded); nil: not kept.
    let events: EventHistory?
    /// `GET /v1/cell`.
    let cellDescription: CellDescription?
    /// `GET /v1/report`: the shift report of a window, as HTML.
    let reports: ShiftReportSource?
    private let pendingJobs = Atomic<Int>(0)
    private let connections = Atomic<Int>(0)
    private let panelConnections = Atomic<Int>(0)
    private let answers = Mutex<[UInt: UInt64]>([:])
    private let watchEvents = Atomic<UInt64>(0)

    init(
        configuration: APIServerConfiguration, cell: any ControlledCell, lamps: (any LampQuerying)?,
        plant: (any PlantReporting)?, policy: CommandPolicy, threadPool: NIOThreadPool, logger: Logger,
        extras: APIExtras
    ) {
        events = extras.events
        cellDescription = extras.cellDescription
        reports = extras.reports
        self.configuration = configuration
        self.cell = cell
        status = StatusSource(cell: cell, configuration: configuration, plant: plant)
        self.lamps = lamps
        self.policy = policy
        self.threadPool = threadPool
        self.logger = logger
        recipeVariants = cell.recipeVariants
    }

    var openConnections: Int { connections.load(ordering: .relaxed) }

    /// Records `event` in the history, if one is kept; a failure is logged, never answered. Blocking-job threads.
    func recordEvent(_ event: CellEvent) {
        guard let events else { return }
        do {
            try events.record(event)
        } catch {
            logger.error("events: could not record '\(event.message)': \(error)")
        }
    }

    /// Counts a connection in if the cap allows it.
    func admitConnection() -> Bool {
        while true {
            let current = connections.load(ordering: .relaxed)
            guard current < configuration.maximumConnections else { return false }
            if connections.compareExchange(expected: current, desired: current + 1, ordering: .relaxed).exchanged {
                return true
            }
        }
    }

    func connectionClosed() { connections.subtract(1, ordering: .relaxed) }

    /// Counts a panel connection in if the panel's own cap (and the server's) allows it: the panel's clients
    /// cannot take the connections the Unix socket's need.
    func admitPanelConnection(maximum: Int) -> Bool {
        if panelConnections.add(1, ordering: .relaxed).newValue > maximum {
            panelConnections.subtract(1, ordering: .relaxed)
            return false
        }
        guard admitConnection() else {
            panelConnections.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func panelConnectionClosed() {
        panelConnections.subtract(1, ordering: .relaxed)
        connectionClosed()
    }

    func beginBlockingJob() -> Bool {
        if pendingJobs.add(1, ordering: .relaxed).newValue > configuration.maximumPendingBlockingJobs {
            pendingJobs.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func endBlockingJob() { pendingJobs.subtract(1, ordering: .relaxed) }

    func countAnswer(_ status: HTTPResponseStatus) { answers.withLock { $0[status.code, default: 0] += 1 } }

    func countWatchEvent() { watchEvents.add(1, ordering: .relaxed) }

    var statistics: APIStatistics {
        APIStatistics(
            openConnections: openConnections, answersByStatus: answers.withLock { $0 },
            watchEvents: watchEvents.load(ordering: .relaxed))
    }
}

/// Makes the shift report of [from, to) (wall-clock ns) as a printable HTML page. Blocking-job threads.
public typealias ShiftReportSource = @Sendable (_ fromWallNanoseconds: UInt64, _ toWallNanoseconds: UInt64) throws -> String

/// What the API serves beyond status and commands, when the daemon has it: the operator panel over TCP, the
/// alarm and event history, the cell's description, the shift report.
public struct APIExtras: Sendable {
    public var panel: PanelServerConfiguration?
    public var events: EventHistory?
    public var cellDescription: CellDescription?
    public var reports: ShiftReportSource?

    public init(
        panel: PanelServerConfiguration? = nil, events: EventHistory? = nil, cellDescription: CellDescription? = nil,
        reports: ShiftReportSource? = nil
    ) {
        self.panel = panel
        self.events = events
        self.cellDescription = cellDescription
        self.reports = reports
    }
}

/// Counters of the API server itself (tests, logs). Any thread.
public struct APIStatistics: Sendable {
    public var openConnections: Int
    /// Answers written, by HTTP status code.
    public var answersByStatus: [UInt: UInt64]
    /// `/v1/watch` events and keep-alives written.
    public var watchEvents: UInt64
}

/// The status and control API of a running cell (`ControlledCell`: the `CellDaemon`, or a test's fake): HTTP/1.1
/// on one Unix socket (see docs/API.md).
///
/// It never touches the control thread: it reads published snapshots and timing figures and submits requests
/// through `ControlledCell.request`, which it calls only on its own blocking-job threads (never on an event loop).
/// Threads: one NIO event loop for all connections, one accept thread, `blockingThreadCount` job threads.
/// Create, `start` and `stop` from one thread (the daemon's main thread); `statistics` from any thread.
public final class APIServer: @unchecked Sendable {
    public let configuration: APIServerConfiguration
    private let shared: APIShared
    private let group: MultiThreadedEventLoopGroup
    private let threadPool: NIOThreadPool
    private var listener: UnixListener?
    private var panelChannel: (any Channel)?
    private var recorder: EventRecorder?
    private let extras: APIExtras
    private let channels = ChannelRegistry()
    private var housekeeping: RepeatedTask?
    private let logger: Logger

    /// Sends the 503 to a connection over the cap (written straight on the socket by the accept thread).
    private static let tooManyConnections: [UInt8] = {
        let body = "{\"error\":\"too_many_connections\",\"message\":\"the API has too many open connections; try again\",\"status\":503}\n"
        return Array(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                .utf8)
    }()

    /// - Parameters:
    ///   - lamps: the ledger's query side (`GET /v1/lamps…`, ledger head in status); nil answers 503 there.
    ///   - plant: the ledger's replication to the plant database (status and metrics); nil when not configured.
    public init(
        cell: any ControlledCell, configuration: APIServerConfiguration, lamps: (any LampQuerying)? = nil,
        plant: (any PlantReporting)? = nil, extras: APIExtras = APIExtras(), logger: Logger
    ) {
        self.configuration = configuration
        self.logger = logger
        self.extras = extras
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        threadPool = NIOThreadPool(numberOfThreads: max(1, configuration.blockingThreadCount))
        let policy = CommandPolicy.resolve(groupName: configuration.commandGroup)
        shared = APIShared(
            configuration: configuration, cell: cell, lamps: lamps, plant: plant, policy: policy, threadPool: threadPool,
            logger: logger, extras: extras)
    }

    /// The API of `daemon` as its configuration says (`api_socket`, `command_group`), started. The daemon's wiring.
    public static func start(
        for daemon: CellDaemon, stationName: String, lamps: (any LampQuerying)? = nil,
        plant: (any PlantReporting)? = nil, activatedFileDescriptor: Int32? = nil, extras: APIExtras = APIExtras(),
        logger: Logger
    ) throws -> APIServer {
        var configuration = APIServerConfiguration(
            socketPath: daemon.configuration.apiSocketPath, commandGroup: daemon.configuration.commandGroup)
        configuration.activatedFileDescriptor = activatedFileDescriptor
        configuration.stationName = stationName
        let server = APIServer(
            cell: daemon, configuration: configuration, lamps: lamps, plant: plant, extras: extras, logger: logger)
        try server.start()
        return server
    }

    /// Binds the socket (removing a stale one) and starts serving. Throws `APIStartError` naming the socket.
    public func start() throws {
        let listener =
            try configuration.activatedFileDescriptor.map { try UnixListener(adopting: $0, path: configuration.socketPath) }
            ?? UnixListener(path: configuration.socketPath)
        self.listener = listener
        threadPool.start()
        if shared.policy.groupID == nil {
            logger.warning(
                "API: command group '\(configuration.commandGroup)' does not exist: only root may command the cell")
        }
        let shared = self.shared
        let loop = group.next()
        let nice = configuration.threadNice
        loop.execute { APIServer.lowerPriority(nice) }
        // Housekeeping: note finished lamps for cycle-time statistics; refresh the ledger head off the loop.
        let ledgerEvery = max(1, configuration.ledgerHeadRefreshMilliseconds / 200)
        let ticks = Atomic<Int64>(0)
        housekeeping = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(200)) { _ in
            shared.status.sampleLamps()
            if let lamps = shared.lamps, ticks.add(1, ordering: .relaxed).oldValue % ledgerEvery == 0 {
                _ = shared.threadPool.runIfActive(eventLoop: loop) {
                    shared.status.setLedgerHead(try? lamps.head())
                }
            }
        }
        listener.start(nice: nice) { [weak self] descriptor, peer in
            guard let self else {
                Glibc.close(descriptor)
                return
            }
            guard shared.admitConnection() else {
                Self.tooManyConnections.withUnsafeBytes { raw in
                    _ = send(descriptor, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                }
                Glibc.close(descriptor)
                return
            }
            self.accept(descriptor, peer: peer)
        }
        logger.info(
            "API listening on \(configuration.socketPath) (mode 0666; commands: root and group '\(configuration.commandGroup)')")
        if let events = extras.events {
            let recorder = EventRecorder(history: events, status: shared.status, nice: nice, logger: logger)
            recorder.start()
            self.recorder = recorder
        }
        // The cell runs without its panel: a port already taken is an error in the log, not a stop.
        if let panel = extras.panel {
            do {
                try startPanel(panel)
            } catch {
                logger.error("\(error)")
            }
        }
    }

    /// The operator panel: HTTP/1.1 on TCP (`[panel]`), the same handler as the socket's with login sessions for
    /// commands. Throws `APIStartError` naming the address when it cannot listen.
    private func startPanel(_ panel: PanelServerConfiguration) throws {
        let access = PanelAccess(configuration: panel)
        let shared = self.shared
        let channels = self.channels
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 64)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self, shared.admitPanelConnection(maximum: panel.maximumConnections) else { return channel.close() }
                let key = ObjectIdentifier(channel)
                channels.withLock { $0[key] = channel }
                channel.closeFuture.whenComplete { _ in
                    channels.withLock { _ = $0.removeValue(forKey: key) }
                    shared.panelConnectionClosed()
                }
                let remote = channel.remoteAddress?.ipAddress ?? "unknown address"
                return channel.eventLoop.makeCompletedFuture {
                    try self.configure(channel, caller: .panel(access, remote: remote))
                }
            }
        do {
            panelChannel = try bootstrap.bind(host: panel.address, port: panel.port).wait()
        } catch {
            throw APIStartError("panel \(panel.address):\(panel.port): cannot listen: \(error)")
        }
        let commanders = panel.operatorsFile.map { "operators of \($0)" } ?? "none, no operators_file"
        logger.info("panel listening on http://\(panel.address):\(panel.port)/ (commands: \(commanders))")
    }

    /// The panel's port (tests bind port 0 and ask). nil when the panel is off.
    public var panelPort: Int? { panelChannel?.localAddress?.port }

    /// Hands an accepted descriptor to the event loop. Thread: the accept thread.
    private func accept(_ descriptor: Int32, peer: PeerCredentials?) {
        let shared = self.shared
        // The peer's credentials travel to the handler through this connection's own channel initializer.
        let connectionBootstrap = ClientBootstrap(group: group).channelInitializer { [weak self] channel in
            channel.eventLoop.makeCompletedFuture {
                try self?.configure(channel, caller: .socket(peer))
            }
        }
        let channels = self.channels
        connectionBootstrap.withConnectedSocket(descriptor).whenComplete { result in
            switch result {
            case .success(let channel):
                let key = ObjectIdentifier(channel)
                channels.withLock { $0[key] = channel }
                channel.closeFuture.whenComplete { _ in
                    channels.withLock { _ = $0.removeValue(forKey: key) }
                    shared.connectionClosed()
                }
            case .failure(let error):
                shared.connectionClosed()
                shared.logger.debug("API: could not take a connection: \(error)")
            }
        }
    }

    private func configure(_ channel: any Channel, caller: APICaller) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = configuration.maximumHeaderBytes
        limits.maxHeaderListSize = configuration.maximumHeaderBytes
        limits.maxHeaderFieldCount = configuration.maximumHeaderCount
        let pipeline = channel.pipeline.syncOperations
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: true, withErrorHandling: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: limits)
        try pipeline.addHandler(APIHandler(shared: shared, caller: caller))
    }

    /// Sets the calling thread's nice value (on Linux `setpriority(PRIO_PROCESS, 0, …)` is per thread).
    static func lowerPriority(_ nice: Int32) {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice)
    }

    /// Counters of the server. Any thread.
    public var statistics: APIStatistics { shared.statistics }

    /// Stops accepting, closes every connection (watchers included), waits for running jobs, removes the
    /// socket file. The thread that called `start`.
    public func stop() {
        listener?.close()
        listener = nil
        try? panelChannel?.close().wait()
        panelChannel = nil
        recorder?.stop()
        recorder = nil
        housekeeping?.cancel()
        let open = channels.withLock { Array($0.values) }
        for channel in open { channel.close(promise: nil) }
        // Jobs first: they complete their futures on the event loop, which must still run then.
        try? threadPool.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }
}

/// The open connections, to close them at stop. Any thread.
final class ChannelRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func withLock<T>(_ body: (inout [ObjectIdentifier: any Channel]) -> T) -> T { channels.withLock { body(&$0) } }
}
