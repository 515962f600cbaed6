import CellCore
import Foundation
import Glibc

// Items 5 (measured side) and 8: the real `lampcelld` process, production configuration (default 4 ms period,
// SCHED_FIFO 80, mlockall), driving `lampsim serve` (a separate process, SCHED_FIFO 70 via chrt when permitted, as
// the in-process simulator of `lampcelld --simulate`) over Modbus TCP on loopback. RSS and CPU time come from
// /proc/PID; cycle times and loop counters from the daemon's API (`GET /v1/status` on its Unix socket).

struct DaemonRunResult {
    var cycleMeanSeconds: Double?
    var cycleSamples: Int
    var state: String
}

enum DaemonBenchmark {
    /// CPU ticks (utime + stime) of a process.
    static func cpuTicks(pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state(0) ppid(1) … utime(11) stime(12).
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// A field of /proc/PID/status in kB (VmRSS, VmHWM, Threads).
    static func statusField(pid: Int32, _ name: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { UInt64($0) }
        }
        return nil
    }

    /// `GET path` on the daemon's Unix socket, through curl.
    static func get(_ socket: String, _ path: String) -> [String: Any]? {
        let result = Subprocess.capture("/usr/bin/curl", ["-s", "--max-time", "5", "--unix-socket", socket, "http://lampcell" + path])
        guard result.status == 0, let data = result.output.data(using: .utf8) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// The cell definition with every device's host and port replaced by the simulator's.
    static func rewriteCell(_ text: String, ports: [String: Int]) -> String {
        var section = ""
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("[") { section = trimmed }
            if section.hasPrefix("[devices."), let name = section.dropFirst("[devices.".count).split(separator: "]").first,
                let port = ports[String(name)]
            {
                if trimmed.hasPrefix("host") && trimmed.contains("=") { lines.append("host = \"127.0.0.1\""); continue }
                if trimmed.hasPrefix("port") && trimmed.contains("=") { lines.append("port = \(port)"); continue }
            }
            lines.append(String(line))
        }
        return lines.joined(separator: "\n")
    }

    static func run(
        binDirectory: String, repository: String, scratch: String, windowSeconds: Double, table: ResultTable,
        includeFootprint: Bool
    ) -> DaemonRunResult? {
        let directory = scratch + "/daemon"
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
            // The simulator, one process, real-time just below the daemon's control thread when permitted.
            let lampsim = binDirectory + "/lampsim"
            let serveArguments = ["serve", "--cell", repository + "/Hardware/cell.toml", "--seed", "5"]
            let useChrt = getuid() == 0 && access("/usr/bin/chrt", X_OK) == 0
            let simulator = try ChildProcess(
                useChrt ? "/usr/bin/chrt" : lampsim, useChrt ? ["-f", "70", lampsim] + serveArguments : serveArguments,
                errorLog: directory + "/lampsim.err")
            defer { simulator.stop() }
            guard simulator.waitForLine(seconds: 30, { $0.hasPrefix("ready") }) else {
                throw BenchError("lampsim serve did not start (\(directory)/lampsim.err)")
            }
            var ports: [String: Int] = [:]
            for line in simulator.output {
                let fields = line.split(separator: " ")
                if fields.count == 2, let port = fields[1].split(separator: ":").last.flatMap({ Int($0) }) {
                    ports[String(fields[0])] = port
                }
            }
            let cellText = try String(contentsOfFile: repository + "/Hardware/cell.toml", encoding: .utf8)
            try rewriteCell(cellText, ports: ports).write(toFile: directory + "/cell.toml", atomically: true, encoding: .utf8)
            // A short path: a Unix socket's path is limited to 107 bytes, and a clone may sit deep.
            let socket = "/tmp/lampbench-\(getpid())-api.sock"
            // Production's [control] (Systemd/lampcelld.toml) but the development arm watchdog (300 ms): this 2-core
            // VM is shared, and a 100 ms watchdog trips on its stalls.
            let config = """
                cell = "\(directory)/cell.toml"
                recipes = ["\(repository)/Hardware/recipes/left.toml", "\(repository)/Hardware/recipes/right.toml"]
                state_directory = "\(directory)/state"
                api_socket = "\(socket)"
                command_group = "lampcell"

                [control]
                period_microseconds = 4000
                fifo_priority = 80
                lock_memory = true
                arm_watchdog_milliseconds = 300
                response_timeout_microseconds = 2000

                """
            try config.write(toFile: directory + "/lampcelld.toml", atomically: true, encoding: .utf8)
            let daemon = try ChildProcess(
                binDirectory + "/lampcelld", ["--config", directory + "/lampcelld.toml", "--auto-start", "--variant", "LEFT"],
                errorLog: directory + "/lampcelld.log")
            defer { daemon.stop(graceSeconds: 30) }

            // Wait for Execute.
            var executing = false
            let startDeadline = nowSeconds() + 90
            while nowSeconds() < startDeadline, daemon.process.isRunning {
                if let status = get(socket, "/v1/status"), let packml = status["packml"] as? [String: Any],
                    packml["state"] as? String == "Execute"
                {
                    executing = true
                    break
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
            guard executing else { throw BenchError("lampcelld did not reach Execute in 90 s (\(directory)/lampcelld.log)") }

            let pid = daemon.pid
            let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
            let startTicks = cpuTicks(pid: pid) ?? 0
            let simulatorStartTicks = cpuTicks(pid: simulator.pid) ?? 0
            let start = nowSeconds()
            // The control thread's faults at the window's start (memory locked, Execute reached).
            let loopAtStart = get(socket, "/v1/status")?["controlLoop"] as? [String: Any]
            var rssSamples: [Double] = []
            while nowSeconds() - start < windowSeconds, daemon.process.isRunning {
                if let rss = statusField(pid: pid, "VmRSS") { rssSamples.append(Double(rss)) }
                Thread.sleep(forTimeInterval: 2)
            }
            let elapsed = nowSeconds() - start
            let cpuSeconds = Double((cpuTicks(pid: pid) ?? startTicks) - startTicks) / ticksPerSecond
            let simulatorSeconds = Double((cpuTicks(pid: simulator.pid) ?? simulatorStartTicks) - simulatorStartTicks) / ticksPerSecond
            let hwm = statusField(pid: pid, "VmHWM") ?? 0
            let threads = statusField(pid: pid, "Threads") ?? 0
            let status = get(socket, "/v1/status") ?? [:]
            let packml = status["packml"] as? [String: Any]
            let state = packml?["state"] as? String ?? "unknown"
            let cycle = status["cycleTime"] as? [String: Any]
            let loop = status["controlLoop"] as? [String: Any]
            let mean = cycle?["meanSeconds"] as? Double
            let samples = cycle?["samples"] as? Int ?? 0
            if includeFootprint {
                let rss = Distribution(rssSamples)
                let share = 100 * cpuSeconds / elapsed
                table.add(
                    ResultRow(
                        item: "8", what: "lampcelld RSS at 4 ms in production (mlockall), mean / max MiB",
                        figure: String(format: "%.1f / %.1f MiB (VmHWM %.1f MiB, %d threads)", rss.mean / 1024, rss.max / 1024, Double(hwm) / 1024, Int(threads)),
                        reference: String(format: "%.0f s window, state %@, %d lamps seen by the API", elapsed, state, samples),
                        ratio: String(format: "%.1f MB of the 40 MB goal", rss.max * 1024 / 1e6)))
                func faults(_ loop: [String: Any]?, _ kind: String) -> Int { loop?[kind] as? Int ?? -1 }
                table.add(
                    ResultRow(
                        item: "8", what: "control thread page faults in the window, minor / major (getrusage RUSAGE_THREAD)",
                        figure: "\(faults(loop, "minorPageFaults") - faults(loopAtStart, "minorPageFaults")) / \(faults(loop, "majorPageFaults") - faults(loopAtStart, "majorPageFaults"))",
                        reference: "since the thread started: \(faults(loop, "minorPageFaults")) / \(faults(loop, "majorPageFaults"))",
                        ratio: "must be 0 / 0"))
                table.add(
                    ResultRow(
                        item: "8", what: "lampcelld CPU share at 4 ms in production",
                        figure: String(format: "%.1f %% of one CPU (%.1f %% of the machine's %d)", share, share / Double(Machine.processorCount), Machine.processorCount),
                        reference: String(format: "lampsim serve (the simulated cell) beside it: %.1f %% of one CPU", 100 * simulatorSeconds / elapsed),
                        ratio: "overruns \(loop?["overruns"] as? Int ?? -1) in \(loop?["periodsRun"] as? Int ?? -1) periods since start"))
            }
            return DaemonRunResult(cycleMeanSeconds: mean, cycleSamples: samples, state: state)
        } catch {
            table.note("lampcelld run: \(error)")
            return nil
        }
    }
}

enum ShiftBenchmark {
    static let hours = 8
    /// The issue's goal for the exact models: an 8-hour shift in at most this much wall time, s.
    static let goalSeconds = 10.0
    /// The budget of one shift run (the stepped reference takes about a minute).
    static let timeoutSeconds = 600.0

    /// One `lampsim shift` run: its wall time, exit status and the report's last lines.
    private static func runShift(_ lampsim: String, repository: String, stepped: Bool) throws
        -> (wallSeconds: Double, status: Int32, summary: String)
    {
        let start = nowSeconds()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: lampsim)
        process.arguments = ["shift", "--hours", "\(hours)", "--seed", "1"] + (stepped ? ["--stepped"] : [])
        process.currentDirectoryURL = URL(fileURLWithPath: repository)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let watchdog = Thread {
            Thread.sleep(forTimeInterval: timeoutSeconds)
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        }
        watchdog.start()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let wall = nowSeconds() - start
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        return (wall, process.terminationStatus, lines.suffix(2).joined(separator: "; "))
    }

    static func run(binDirectory: String, repository: String, table: ResultTable) {
        let what = "simulation speed: \(hours)-hour shift on virtual time (`lampsim shift --seed 1`, exact models), wall time"
        let lampsim = binDirectory + "/lampsim"
        let help = Subprocess.capture(lampsim, ["shift", "--help"], mergeError: true)
        guard help.status == 0, help.output.contains("--stepped") else {
            table.add(ResultRow(item: "6", what: what, figure: "not available",
                reference: "`lampsim shift --stepped` is not in this build"))
            return
        }
        do {
            let exact = try runShift(lampsim, repository: repository, stepped: false)
            let stepped = try runShift(lampsim, repository: repository, stepped: true)
            guard exact.status == 0, stepped.status == 0 else {
                table.add(ResultRow(item: "6", what: what,
                    figure: "failed (exit \(exact.status), stepped \(stepped.status))",
                    reference: String((exact.status != 0 ? exact.summary : stepped.summary).prefix(200))))
                return
            }
            table.add(
                ResultRow(
                    item: "6", what: what,
                    figure: String(format: "%.1f s (speed-up %.0f× real time; goal ≤ %.0f s)", exact.wallSeconds,
                                   Double(hours * 3600) / exact.wallSeconds, goalSeconds),
                    reference: String(format: "the same shift with every model stepped at 4 kHz (`--stepped`): %.1f s", stepped.wallSeconds),
                    ratio: String(format: "%.2f× the stepped time; ", exact.wallSeconds / stepped.wallSeconds)
                        + String(exact.summary.prefix(120))))
        } catch {
            table.note("shift: \(error)")
        }
    }
}
