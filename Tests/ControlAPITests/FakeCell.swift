import CellControl
import CellCore
import CellRuntime
import CellService
import ControlAPI
import ControlAPIClient
import Foundation
import Logging
import PackML
import Synchronization

/// A stand-in for the running cell behind the API (`ControlledCell`), for the API tests that exercise HTTP,
/// access control, limits and bad input rather than the control loop: a PackML unit that takes each request at
/// once, its acting states completed in the same request (Reset leaves it Idle, Start in Execute). Every look at
/// the snapshot counts as a period. The end-to-end API tests (`EndpointTests`, lampctl, load) run the real
/// `CellDaemon` over the simulated devices instead. Thread: any.
final class FakeCell: ControlledCell, @unchecked Sendable {
    let cellID = "FAKE-CELL-01"
    let armNames = ["loader", "assembler", "lens"]
    let recipeIDs = ["left", "right"]
    let recipeVariants: [Variant] = [.left, .right]
    let periodNanoseconds: UInt64 = 4_000_000
    let requestTimeoutNanoseconds: UInt64 = 2_000_000_000
    private let state: Mutex<(snapshot: CellSnapshot, requests: [ControllerRequest])>

    init() {
        var snapshot = CellSnapshot(unit: PackMLUnit(idealCycleNanoseconds: 26_000_000_000, nowNanoseconds: 0))
        snapshot.armCount = armNames.count
        state = Mutex((snapshot, []))
    }

    /// The requests the API handed over, in order.
    var requests: [ControllerRequest] { state.withLock { $0.requests } }

    func snapshot() -> CellSnapshot {
        state.withLock { state in
            state.snapshot.periodIndex += 1
            return state.snapshot
        }
    }

    func request(_ request: ControllerRequest) -> ControllerReply? {
        state.withLock { state in
            state.requests.append(request)
            var reply = ControllerReply(ticket: UInt64(state.requests.count))
            var changed = state.snapshot.unit
            switch request {
            case .command(let command):
                if case .failure(let refusal) = changed.command(command, causeGone: true) { reply.refusal = refusal }
                // Acting states finish at once, Execute excepted (it runs until the order is done).
                while changed.state.isActing && changed.state != .execute, case .success = changed.stateComplete() {}
            case .mode(let mode):
                if case .failure(let refusal) = changed.changeMode(to: mode) { reply.refusal = refusal }
            case .order(let order, _):
                if case .failure(let refusal) = changed.assignOrder(order) { reply.refusal = refusal }
            case .cancelOrder:
                if case .failure(let refusal) = changed.cancelOrder() { reply.refusal = refusal }
            }
            state.snapshot.unit = changed
            state.snapshot.periodIndex += 1
            return reply
        }
    }

    func timingFigures() -> [ControlPhase: PhaseFigures] { [:] }

    var loopCounters: LoopCounters {
        LoopCounters(overruns: 0, periodsRun: state.withLock { $0.snapshot.periodIndex }, droppedSamples: 0)
    }
}

/// The API server over a `FakeCell`, on a Unix socket in a fresh directory (mode 0755, so `nobody` can reach
/// the socket). No devices, no control loop: starts in milliseconds.
final class FakeAPIFixture: @unchecked Sendable {
    let fake = FakeCell()
    let api: APIServer
    let directory: String
    let socketPath: String

    init(commandGroup: String = "lampcell", configure: (inout APIServerConfiguration) -> Void = { _ in }) throws {
        // Short: sun_path holds 107 bytes.
        directory = "/tmp/lcfake-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        var configuration = APIServerConfiguration(socketPath: directory + "/api.sock", commandGroup: commandGroup)
        configure(&configuration)
        socketPath = configuration.socketPath
        var logger = Logger(label: "api-fake-test")
        logger.logLevel = .warning
        api = APIServer(cell: fake, configuration: configuration, logger: logger)
        try api.start()
    }

    var client: APIClient { APIClient(socketPath: socketPath) }

    /// Whether `condition` holds for the fake's snapshot within `seconds` (it changes only on requests).
    func waitFor(seconds: Double, _ condition: (CellSnapshot) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition(fake.snapshot()) {
            if Date() >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return true
    }

    /// Stops the API; removes the directory.
    func shutdown() {
        api.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
