import ArgumentParser
import CellCore
import ControlAPIClient
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `lampctl`: status and control of lampcelld over its API socket (docs/API.md).
struct LampCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lampctl",
        abstract: "Status and control of the LampCell daemon over its Unix socket.",
        discussion: """
            Reading (status, watch) is open to every local user. Commands and orders need root or membership in \
            the daemon's command group (lampcell by default). Exit codes: 0 done, 1 refused by the cell (409) or \
            a bad request, 69 the daemon is not running, 77 not allowed (403), 70 anything else.
            """,
        version: LampCellVersion.current,
        subcommands: [
            Status.self, Watch.self, Reset.self, Start.self, Stop.self, Hold.self, Unhold.self, Suspend.self,
            Unsuspend.self, Abort.self, Clear.self, Mode.self, Order.self, CancelOrder.self, LedgerCommand.self,
            PlantCommand.self, ReportCommand.self, OperatorCommand.self,
        ])
}

/// The environment variable that names the API socket when `--socket` is not given.
let socketEnvironmentVariable = "LAMPCELL_SOCKET"

/// Options every subcommand takes.
struct Connection: ParsableArguments {
    @Option(help: "The API socket of lampcelld (default: $LAMPCELL_SOCKET, else \(APIClient.defaultSocketPath)).")
    var socket = ProcessInfo.processInfo.environment[socketEnvironmentVariable] ?? APIClient.defaultSocketPath

    var client: APIClient { APIClient(socketPath: socket) }
}

/// Exit codes (sysexits.h where one fits).
enum Exit {
    static let refused: Int32 = 1
    static let unavailable: Int32 = 69
    static let software: Int32 = 70
    static let forbidden: Int32 = 77
}

/// Prints one line to standard error and exits with `code`.
func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("lampctl: \(message)\n".utf8))
    exit(code)
}

/// Runs a call; turns a socket failure into one line and the right exit code.
func call<T>(_ body: () throws -> T) -> T {
    do {
        return try body()
    } catch let error as APIClientError {
        switch error {
        case .daemonNotRunning: fail(error.description, code: Exit.unavailable)
        case .permissionDenied: fail(error.description, code: Exit.forbidden)
        default: fail(error.description, code: Exit.software)
        }
    } catch {
        fail("\(error)", code: Exit.software)
    }
}

/// Prints an accepted answer, or the error body's message with the matching exit code.
func finish(_ response: APIClientResponse) {
    if (200..<300).contains(response.status) {
        if let accepted = try? response.decode(AcceptedBody.self) {
            print("\(accepted.request): accepted; the cell is \(accepted.state)")
        } else {
            print(response.text, terminator: "")
        }
        return
    }
    let message = response.errorBody?.message ?? response.text
    switch response.status {
    case 403: fail("not allowed: \(message)", code: Exit.forbidden)
    case 409: fail("refused: \(message)", code: Exit.refused)
    case 400..<500: fail("\(response.status): \(message)", code: Exit.refused)
    default: fail("\(response.status): \(message)", code: Exit.software)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the cell's state as a table (or JSON).")
    @OptionGroup var connection: Connection
    @Flag(help: "Print the status document as JSON (as GET /v1/status returns it).")
    var json = false

    func run() {
        let response = call { try connection.client.send("GET", "/v1/status") }
        guard response.status == 200 else { finish(response); return }
        if json {
            print(response.text, terminator: response.text.hasSuffix("\n") ? "" : "\n")
            return
        }
        let document = call { try response.decode(StatusDocument.self) }
        print(StatusTable.render(document))
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow the cell live: redraws in place on a terminal, one line per change when piped.")
    @OptionGroup var connection: Connection
    @Option(help: "At most one update every this many ms (100…10000).")
    var intervalMs = 500
    @Flag(help: "Print each status event as JSON, one per line.")
    var json = false

    func run() {
        let terminal = isatty(STDOUT_FILENO) == 1 && !json
        var client = connection.client
        client.timeoutMilliseconds = 60_000
        let response = call {
            try client.watch(intervalMilliseconds: intervalMs) { data in
                if json {
                    print(data)
                } else if let document = try? JSONDecoder().decode(StatusDocument.self, from: Data(data.utf8)) {
                    if terminal {
                        // Home, clear to the end of the screen, draw.
                        print("\u{1B}[H\u{1B}[2J" + StatusTable.render(document))
                    } else {
                        print(StatusTable.line(document))
                    }
                }
                fflush(nil)
                return true
            }
        }
        if response.status != 200 { finish(response) }
        fail("the daemon closed the stream", code: Exit.unavailable)
    }
}

/// A PackML command subcommand.
protocol PackMLVerb: ParsableCommand {
    static var word: String { get }
    var connection: Connection { get }
}

extension PackMLVerb {
    func run() {
        finish(call { try connection.client.send("POST", "/v1/commands/\(Self.word)") })
    }
}

struct Reset: PackMLVerb {
    static let word = "reset"
    static let configuration = CommandConfiguration(abstract: "PackML Reset (Stopped/Complete → Idle).")
    @OptionGroup var connection: Connection
}

struct Start: PackMLVerb {
    static let word = "start"
    static let configuration = CommandConfiguration(abstract: "PackML Start (Idle → Execute; needs an order in Production).")
    @OptionGroup var connection: Connection
}

struct Stop: PackMLVerb {
    static let word = "stop"
    static let configuration = CommandConfiguration(abstract: "PackML Stop (controlled stop).")
    @OptionGroup var connection: Connection
}

struct Hold: PackMLVerb {
    static let word = "hold"
    static let configuration = CommandConfiguration(abstract: "PackML Hold (Execute → Held).")
    @OptionGroup var connection: Connection
}

struct Unhold: PackMLVerb {
    static let word = "unhold"
    static let configuration = CommandConfiguration(abstract: "PackML Unhold (Held → Execute).")
    @OptionGroup var connection: Connection
}

struct Suspend: PackMLVerb {
    static let word = "suspend"
    static let configuration = CommandConfiguration(abstract: "PackML Suspend (Execute → Suspended).")
    @OptionGroup var connection: Connection
}

struct Unsuspend: PackMLVerb {
    static let word = "unsuspend"
    static let configuration = CommandConfiguration(abstract: "PackML Unsuspend (Suspended → Execute).")
    @OptionGroup var connection: Connection
}

struct Abort: PackMLVerb {
    static let word = "abort"
    static let configuration = CommandConfiguration(abstract: "PackML Abort (immediate stop).")
    @OptionGroup var connection: Connection
}

struct Clear: PackMLVerb {
    static let word = "clear"
    static let configuration = CommandConfiguration(abstract: "PackML Clear (Aborted → Stopped).")
    @OptionGroup var connection: Connection
}

struct Mode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change the unit mode: production, maintenance or manual (in Stopped, Idle or Aborted only).",
        discussion: """
            Production runs orders and counts toward them and OEE. Maintenance runs the recipe without an order; its \
            lamps go to the ledger and the totals, not to the order's counts or OEE. Manual is reserved for the \
            commissioning tools and refuses Start.
            """)
    @OptionGroup var connection: Connection
    @Argument(help: "production, maintenance or manual.")
    var mode: String

    func run() {
        finish(call { try connection.client.send("POST", "/v1/mode/\(mode.lowercased())") })
    }
}

struct Order: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Assign a production order (in Stopped, Idle or Complete).")
    @OptionGroup var connection: Connection
    @Option(help: "The order's id (1…64 bytes).")
    var id: String
    @Option(help: "LEFT or RIGHT.")
    var variant: String
    @Option(help: "Good lamps to make.")
    var quantity: Int

    func run() {
        let body = OrderRequestBody(id: id, variant: variant.uppercased(), quantity: quantity)
        let bytes = call { Array(try JSONEncoder().encode(body)) }
        finish(call { try connection.client.send("POST", "/v1/order", json: bytes) })
    }
}

struct CancelOrder: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel-order", abstract: "Cancel the active production order (in Stopped, Idle, Aborted or Complete).")
    @OptionGroup var connection: Connection

    func run() {
        finish(call { try connection.client.send("DELETE", "/v1/order") })
    }
}

/// The arguments with a connection option (`--socket PATH`, `--database CONNINFO`, or their `=` forms) given before
/// the subcommand moved after it, where the subcommand's parser takes it: a user may put it wherever they like
/// (`lampctl --socket S status` and `lampctl status --socket S` are the same, and so are `lampctl plant --database D
/// recall …` and `lampctl plant recall --database D …`).
func connectionOptionsMovedAfterSubcommand(_ arguments: [String]) -> [String] {
    let movable = ["--socket", "--database"]
    /// Options that take a value and may be moved, taken from `index` on; nil when another option comes first.
    func leadingOptions(from index: inout Int) -> [String]? {
        var taken: [String] = []
        while index < arguments.count, arguments[index].hasPrefix("-") {
            let argument = arguments[index]
            if movable.contains(argument), index + 1 < arguments.count {
                taken += [argument, arguments[index + 1]]
                index += 2
            } else if movable.contains(where: { argument.hasPrefix($0 + "=") }) {
                taken.append(argument)
                index += 1
            } else {
                return nil  // --help, --version…: the command's own
            }
        }
        return taken
    }
    var index = 0
    guard var moved = leadingOptions(from: &index), index < arguments.count else { return arguments }
    // The subcommand (and the verb of a command group after it), then the moved options, then the rest.
    var path = [arguments[index]]
    index += 1
    if ["ledger", "plant"].contains(path[0]) {
        guard let more = leadingOptions(from: &index) else { return arguments }
        moved += more
        if index < arguments.count, !arguments[index].hasPrefix("-") {
            path.append(arguments[index])
            index += 1
        }
    }
    guard !moved.isEmpty else { return arguments }
    return path + moved + arguments[index...]
}

LampCtl.main(connectionOptionsMovedAfterSubcommand(Array(CommandLine.arguments.dropFirst())))
