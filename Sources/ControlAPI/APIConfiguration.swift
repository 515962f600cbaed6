import CellCore

/// Settings of the status and control API. Plain values; the limits are small, named and documented in
/// docs/API.md. Any thread.
public struct APIServerConfiguration: Sendable {
    /// The Unix socket the API listens on (one socket for everyone: mode 0666; commands are checked per
    /// connection with SO_PEERCRED).
    public var socketPath: String
    /// A listening Unix socket passed by the service manager (socket activation, `lampcelld.socket`): served
    /// instead of binding `socketPath`, and left in place at stop (systemd owns it). nil: bind `socketPath`.
    public var activatedFileDescriptor: Int32?
    /// Group whose members may POST (command the cell); root always may.
    public var commandGroup: String
    /// The station's name in the cell definition (devices are named in status and metrics).
    public var stationName: String = "station"
    /// Version reported in status and metrics: the one the ledger records and `--version` prints.
    public var version: String = LampCellVersion.current

    /// Largest request line plus header block, bytes (URL, every header name and value) → 431 beyond it.
    public var maximumHeaderBytes = 8 * 1024
    /// Most header fields in one request → 431 beyond it.
    public var maximumHeaderCount = 64
    /// Largest request body, bytes → 413 beyond it.
    public var maximumBodyBytes = 16 * 1024
    /// A request (head and body) must arrive within this time from the connection's start or the end of the
    /// previous response, else 408 (when it had begun) or a silent close (idle keep-alive connection).
    public var requestTimeoutMilliseconds: Int64 = 10_000
    /// Open connections at most; the next one gets 503 and is closed.
    public var maximumConnections = 256
    /// Blocking jobs (commands, ledger queries) running or queued at most; beyond it 503.
    public var maximumPendingBlockingJobs = 32
    /// Threads that run blocking jobs (a command waits up to 2 s for the control thread's reply).
    public var blockingThreadCount = 4
    /// A status document is rebuilt at most this often; requests in between share it.
    public var statusMaximumAgeMilliseconds: Int64 = 20
    /// The control loop's timing percentiles (which walk every histogram) are recomputed at most this often.
    public var timingMaximumAgeMilliseconds: Int64 = 1_000
    /// `GET /v1/watch`: the default, smallest and largest interval between two events to one client, ms.
    public var watchDefaultIntervalMilliseconds: Int64 = 250
    public var watchMinimumIntervalMilliseconds: Int64 = 100
    public var watchMaximumIntervalMilliseconds: Int64 = 10_000
    /// `GET /v1/watch`: a comment line is sent after this long without a change (keeps proxies and clients awake).
    public var watchKeepAliveMilliseconds: Int64 = 15_000
    /// `GET /v1/watch`: a client that has not read for this long (its socket buffer stays full) is dropped.
    public var watchStalledClientMilliseconds: Int64 = 10_000
    /// Nice value of the API's threads (event loop, accept, blocking jobs): under CPU load they yield to the
    /// daemon's other SCHED_OTHER threads (the control thread itself runs SCHED_FIFO in production).
    public var threadNice: Int32 = 10
    /// How often the ledger head shown in status is refreshed, ms.
    public var ledgerHeadRefreshMilliseconds: Int64 = 2_000
    /// Cycle-time statistics cover this many of the last lamps.
    public var cycleTimeWindow = 200


    public init(socketPath: String, commandGroup: String = "lampcell") {
        self.socketPath = socketPath
        self.commandGroup = commandGroup
    }
}
