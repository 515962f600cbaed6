import ArgumentParser
import CellConfig
import CellCore
import ControlAPIClient
import Foundation
import Glibc
import Ledger
import Reports

/// `lampctl report`: the shift report of a window as printable HTML and PDF (docs/HMI.md), from the daemon's
/// ledger and alarm and event history (read-only; the daemon may run meanwhile).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write the shift report of a time window: HTML, and a PDF printed by Chromium.",
        discussion: """
            Output per hour, OEE and its losses, the stop-reason Pareto, NG and scrap reasons, the cycle-time
            distribution and the alarms, as charts. Reads the ledger and events.sqlite of the configuration's state
            directory. The PDF is printed by headless Chromium (Debian: apt install chromium).
            """)

    /// Longest a PDF print may take, and how long Chromium then has to end after SIGTERM before SIGKILL.
    static let printTimeoutSeconds = 60.0
    static let stopGraceSeconds = 5.0

    @Option(help: "The daemon's configuration (its state directory, cell and recipes).")
    var config = "/etc/lampcelld/lampcelld.toml"
    @Option(help: "Start of the window, ISO-8601 (2026-11-28T06:00:00Z).")
    var from: String
    @Option(help: "End of the window, ISO-8601.")
    var to: String
    @Option(help: "Where to write: PREFIX.html and PREFIX.pdf.")
    var output = "shift-report"
    @Flag(help: "Write the HTML only.")
    var noPDF = false
    @Option(help: "The Chromium executable (default: chromium, chromium-browser or google-chrome from PATH).")
    var chromium: String?

    func run() throws {
        let fromNanoseconds = try LedgerCommand.Filters.nanoseconds(from, option: "--from")
        let toNanoseconds = try LedgerCommand.Filters.nanoseconds(to, option: "--to")
        guard fromNanoseconds < toNanoseconds else { throw ValidationError("--from must be before --to") }
        let configuration: DaemonConfiguration
        let definition: CellDefinition
        var ideal: [String: Double] = [:]
        do {
            configuration = try DaemonConfiguration.load(from: config)
            definition = try CellDefinition.load(from: configuration.cellPath)
            for path in configuration.recipePaths {
                let recipe = try Recipe.load(from: path, cell: definition)
                ideal[recipe.id] = recipe.idealCycleTimeSeconds
            }
        } catch {
            throw ValidationError("\(error)")
        }
        guard FileManager.default.fileExists(atPath: configuration.ledgerPath) else {
            throw ValidationError("no ledger at \(configuration.ledgerPath) (state_directory of \(config))")
        }
        let html: String
        do {
            let ledger = try Ledger.openReadOnly(path: configuration.ledgerPath)
            let events =
                FileManager.default.fileExists(atPath: configuration.eventsPath)
                ? try EventHistory(path: configuration.eventsPath, readOnly: true) : nil
            if events == nil {
                FileHandle.standardError.write(
                    Data("lampctl report: no event history at \(configuration.eventsPath): no availability or stops\n".utf8))
            }
            html = try ShiftReport.make(
                cellID: definition.cellID, ledger: ledger, events: events, fromWallNanoseconds: fromNanoseconds,
                toWallNanoseconds: toNanoseconds, idealCycleSeconds: ideal,
                nowWallNanoseconds: Int64(Date().timeIntervalSince1970 * 1e9)
            ).html()
        } catch {
            throw ValidationError("\(error)")
        }
        let htmlPath = output + ".html"
        do {
            try Data(html.utf8).write(to: URL(fileURLWithPath: htmlPath))
        } catch {
            throw ValidationError("\(htmlPath): cannot write: \(error.localizedDescription)")
        }
        print(htmlPath)
        guard !noPDF else { return }
        let pdfPath = output + ".pdf"
        try printPDF(html: htmlPath, pdf: pdfPath)
        print(pdfPath)
    }

    /// Prints `html` to `pdf` with headless Chromium (its print-to-PDF; no PDF code of ours).
    private func printPDF(html: String, pdf: String) throws {
        guard let executable = chromium ?? Self.findChromium() else {
            throw ValidationError(
                "no Chromium found (chromium, chromium-browser, google-chrome) for the PDF: install it, give --chromium, or use --no-pdf")
        }
        let absolute = html.hasPrefix("/") ? html : FileManager.default.currentDirectoryPath + "/" + html
        // A fresh private profile folder (mkdtemp: no other user can make it first).
        var template = Array((FileManager.default.temporaryDirectory.path + "/lampctl-chromium-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ValidationError("cannot make a temporary folder for Chromium") }
        let profile = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: profile) }
        try? FileManager.default.removeItem(atPath: pdf)
        var arguments = [
            "--headless", "--disable-gpu", "--no-pdf-header-footer", "--user-data-dir=\(profile)",
            "--print-to-pdf=\(pdf)", URL(fileURLWithPath: absolute).absoluteString,
        ]
        // Chromium's sandbox refuses to run as root; the page is our own file, with no script.
        if geteuid() == 0 { arguments.insert("--no-sandbox", at: 0) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ValidationError("\(executable): cannot start: \(error.localizedDescription)")
        }
        let deadline = Date().addingTimeInterval(Self.printTimeoutSeconds)
        while process.isRunning, Date() < deadline { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            let grace = Date().addingTimeInterval(Self.stopGraceSeconds)
            while process.isRunning, Date() < grace { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            throw ValidationError("\(executable) did not print \(pdf) within \(Int(Self.printTimeoutSeconds)) s")
        }
        guard process.terminationStatus == 0, FileManager.default.fileExists(atPath: pdf) else {
            throw ValidationError("\(executable) failed to print \(pdf) (exit \(process.terminationStatus))")
        }
    }

    static func findChromium() -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }
}

/// `lampctl operator …`: the operators who may command the cell from the web panel.
struct OperatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator",
        abstract: "Manage the panel's operator logins (the [panel] operators_file).",
        subcommands: [Add.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an operator, or set a new password: the password is read from standard input (one line).",
            discussion: "Example: echo 'long secret' | lampctl operator add alice --file /etc/lampcelld/operators")

        @Argument(help: "The operator's name (letters, digits, '.', '_', '-').")
        var name: String
        @Option(help: "The operators file (created with mode 0600 when missing).")
        var file = "/etc/lampcelld/operators"

        func run() throws {
            if let problem = OperatorAccounts.nameProblem(name) { throw ValidationError(problem) }
            guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                throw ValidationError("no password on standard input")
            }
            let hash: String
            do {
                hash = try OperatorAccounts.hash(password: password)
            } catch {
                throw ValidationError(error.description)
            }
            var lines: [String] = []
            if let data = FileManager.default.contents(atPath: file) {
                guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("\(file): not UTF-8") }
                do {
                    _ = try OperatorAccounts.parse(text, path: file)  // refuse to add to a broken file
                } catch {
                    throw ValidationError(error.description)
                }
                lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                // The parser trims each line: so does the match, or an indented old line would stay as a duplicate.
                lines.removeAll { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name + ":") }
                while lines.last == "" { lines.removeLast() }
            }
            lines.append(OperatorAccounts.line(name: name, hash: hash))
            // Written beside, flushed to disk, then renamed over the file: a crash leaves the old file or the new.
            let temporary = file + ".new"
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw ValidationError("\(temporary): cannot write (errno \(errno))") }
            let bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            let synced = fsync(descriptor)
            close(descriptor)
            guard written == bytes.count, synced == 0 else {
                unlink(temporary)
                throw ValidationError("\(temporary): cannot write (errno \(errno))")
            }
            guard rename(temporary, file) == 0 else { throw ValidationError("\(file): cannot replace (errno \(errno))") }
            print("operator \(name) written to \(file)")
        }
    }
}
