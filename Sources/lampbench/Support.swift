import CRealtime
import Foundation
import Glibc

// Shared helpers of lampbench: distributions, the result table, child processes, the machine.

/// A distribution of samples (nanoseconds or any unit), nearest-rank percentiles. Thread: the caller's.
struct Distribution {
    private(set) var sorted: [Double]

    init(_ values: [Double]) { sorted = values.sorted() }
    init(_ values: [UInt64]) { sorted = values.map { Double($0) }.sorted() }

    var count: Int { sorted.count }
    var mean: Double { sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count) }
    var max: Double { sorted.last ?? 0 }
    var min: Double { sorted.first ?? 0 }

    /// Nearest-rank percentile, `percentile` in 0...100.
    func percentile(_ percentile: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = Int((percentile / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
    }
}

/// One row of the table: a figure and, where there is one, the reference it is compared with in the same run.
struct ResultRow {
    var item: String
    var what: String
    var figure: String
    var reference: String = ""
    var ratio: String = ""
    /// The 1-minute load average when the row was taken.
    var load: Double = Machine.loadAverage()
}

/// The collected rows; printed at the end and written to `.build/bench/latest.md`.
final class ResultTable: @unchecked Sendable {
    private(set) var rows: [ResultRow] = []
    private(set) var notes: [String] = []

    func add(_ row: ResultRow) {
        rows.append(row)
        let line = "[\(row.item)] \(row.what): \(row.figure)"
            + (row.reference.isEmpty ? "" : " | ref: \(row.reference)") + (row.ratio.isEmpty ? "" : " | \(row.ratio)")
        print(line)
        fflush(nil)
    }

    func note(_ text: String) {
        notes.append(text)
        print("note: \(text)")
        fflush(nil)
    }

    /// The table as GitHub-flavoured Markdown.
    func markdown(header: [String]) -> String {
        var lines = header
        lines.append("")
        lines.append("| # | benchmark | figure | reference (same run) | ratio | load |")
        lines.append("|-|-|-|-|-|-|")
        for row in rows {
            let cells = [row.item, row.what, row.figure, row.reference, row.ratio, String(format: "%.1f", row.load)]
            lines.append("| " + cells.map { $0.replacingOccurrences(of: "|", with: "/") }.joined(separator: " | ") + " |")
        }
        if !notes.isEmpty {
            lines.append("")
            for note in notes { lines.append("- " + note) }
        }
        return lines.joined(separator: "\n")
    }
}

/// Facts about the machine for the table's header.
enum Machine {
    /// 1-minute load average from /proc/loadavg.
    static func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return -1 }
        return Double(text.split(separator: " ").first ?? "") ?? -1
    }

    static var cpuModel: String {
        let text = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?"
        }
        return "?"
    }

    static var kernel: String {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return release
    }

    /// What systemd-detect-virt says (container and VM), and whether the CPU reports a hypervisor.
    static var virtualisation: String {
        let container = Subprocess.capture("/usr/bin/systemd-detect-virt", ["--container"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let vm = Subprocess.capture("/usr/bin/systemd-detect-virt", ["--vm"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let hypervisor = flags.contains(" hypervisor") ? "CPU flag hypervisor set" : "no hypervisor flag"
        return "container \(container.isEmpty ? "?" : container), VM \(vm.isEmpty ? "?" : vm) (\(hypervisor))"
    }

    static var processorCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// Child processes: run to completion and capture, or start and keep.
enum Subprocess {
    /// Runs `path` with `arguments`, returns its exit status and standard output (standard error appended when
    /// `mergeError`). Blocks the calling thread.
    static func capture(_ path: String, _ arguments: [String], mergeError: Bool = false, directory: String? = nil)
        -> (status: Int32, output: String)
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = mergeError ? pipe : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Finds an executable on the PATH.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// A long-running child whose standard output is read line by line on a helper thread.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private let input = Pipe()

    /// Starts `path arguments`; standard error goes to `errorLog` (a file) or is discarded.
    init(_ path: String, _ arguments: [String], errorLog: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        if let errorLog, FileManager.default.createFile(atPath: errorLog, contents: nil),
            let handle = FileHandle(forWritingAtPath: errorLog)
        {
            process.standardError = handle
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        let reader = output.fileHandleForReading
        let thread = Thread { [self] in
            var buffer = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    lock.withLock { lines.append(line) }
                }
            }
        }
        thread.start()
    }

    var pid: Int32 { process.processIdentifier }

    /// Lines printed so far.
    var output: [String] { lock.withLock { lines } }

    /// Waits until a printed line satisfies `condition`, up to `seconds`.
    func waitForLine(seconds: Double, _ condition: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if output.contains(where: condition) { return true }
            if !process.isRunning { return output.contains(where: condition) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    /// Writes a line to the child's standard input.
    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// SIGTERM, then SIGKILL after `graceSeconds`; waits for the exit. Only this child (by its pid).
    func stop(graceSeconds: Double = 15) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(graceSeconds)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Monotonic seconds.
func nowSeconds() -> Double { Double(lampcell_monotonic_ns()) / 1e9 }

/// Formats nanoseconds as µs with a sensible number of digits.
func micro(_ nanoseconds: Double) -> String {
    let us = nanoseconds / 1000
    if us >= 100 { return String(format: "%.0f", us) }
    if us >= 10 { return String(format: "%.1f", us) }
    return String(format: "%.2f", us)
}

/// "p50/p99/p99.9/max" in µs of a distribution of nanoseconds.
func percentiles(_ d: Distribution, p999: Bool = true) -> String {
    var parts = [micro(d.percentile(50)), micro(d.percentile(99))]
    if p999 { parts.append(micro(d.percentile(99.9))) }
    parts.append(micro(d.max))
    return parts.joined(separator: " / ")
}
