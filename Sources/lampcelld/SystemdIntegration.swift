import CellCore
import CellService
import Logging
import SystemdSupport

/// lampcelld's side of the systemd integration (docs/SYSTEMD.md): `READY=1` with a first status once the daemon
/// started, a `STATUS=` line that follows the cell (PackML state, lamps made, last fault), `WATCHDOG=1` only while
/// the control loop's period counter advances, `STOPPING=1` at shutdown. Every part is a no-op when the process was
/// not started by systemd (`NOTIFY_SOCKET` / `WATCHDOG_USEC` unset).
///
/// Thread: the main thread (start, stopping, finish); its two helper threads only read snapshots and counters.
final class SystemdIntegration {
    let notifier: Notifier
    let watchdog: Watchdog?
    let statusPublisher: StatusPublisher
    private let logger: Logger

    /// Sends READY=1 and starts the status and watchdog threads. Call after `daemon.start()` (the control loop runs
    /// and connects the devices) and, once the API exists, after its sockets listen.
    init(daemon: CellDaemon, stationName: String, logger: Logger) {
        self.logger = logger
        notifier = Notifier.fromEnvironment()
        let deviceNames = daemon.cell.arms.map(\.name) + [stationName]
        statusPublisher = StatusPublisher(notifier: notifier) {
            Self.statusLine(daemon.snapshot(), deviceNames: deviceNames)
        }
        let loop = daemon.loop
        let watchdogLogger = logger
        watchdog = Watchdog.fromEnvironment(notifier: notifier, heartbeat: { loop.thread.periodsRun }) { event in
            switch event {
            case .stalled(let heartbeat):
                watchdogLogger.error(
                    "control loop stalled at period \(heartbeat): systemd watchdog pings withheld",
                    metadata: ["WATCHDOG": "stalled"])
            case .resumed(let heartbeat, let microseconds):
                watchdogLogger.warning(
                    "control loop running again at period \(heartbeat) after about \(microseconds / 1000) ms: watchdog pings resume",
                    metadata: ["WATCHDOG": "resumed"])
            }
        }
        guard notifier.isEnabled else { return }
        notifier.ready()
        statusPublisher.publishNow()
        statusPublisher.start()
        if let watchdog {
            watchdog.start()
            logger.info("systemd watchdog: \(watchdog.timeoutMicroseconds / 1000) ms, pinged every \(watchdog.pingIntervalMicroseconds / 1000) ms while the control loop runs")
        }
    }

    /// STOPPING=1: the controlled stop begins. The status and watchdog threads go on (the control loop still runs
    /// the stop), so `systemctl status` shows Stopping → Stopped.
    func stopping() {
        notifier.stopping(status: "stopping: controlled stop of the arms")
    }

    /// After the daemon shut down: stops the helper threads and sends the last status.
    func finish(lampsThisRun: UInt64) {
        guard notifier.isEnabled else { return }
        watchdog?.stop()
        statusPublisher.stop()
        statusPublisher.publishNow()  // the cell's final state (Stopped), which a poll may have missed
        notifier.status("stopped: \(lampsThisRun) lamps this run")
    }

    /// The `STATUS=` line: `"<PackML state>; <n> lamps made[; last fault: <message> (<device>)]"`.
    static func statusLine(_ snapshot: CellSnapshot, deviceNames: [String]) -> String {
        var line = "\(snapshot.unit.state); \(snapshot.lampsFinished) lamps made"
        if let fault = snapshot.lastFault {
            line += "; last fault: \(fault.message)"
            if let index = fault.deviceIndex.map(Int.init) {
                line += " (\(index < deviceNames.count ? deviceNames[index] : "device \(index)"))"
            }
        }
        return line
    }
}
