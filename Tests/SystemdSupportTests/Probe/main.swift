// lampcell-systemd-probe: a test helper for SystemdSupportTests (not installed).
//
//   lampcell-systemd-probe serve NAME FALLBACK_PATH CLIENTS
//       Takes the listening socket named NAME from socket activation (or binds FALLBACK_PATH itself), prints
//       "listening NAME fd=N activated=BOOL names=a,b", then serves CLIENTS connections with one status line each
//       ("status ok name=NAME fd=N activated=BOOL") and exits 0.
//   lampcell-systemd-probe journal IDENTIFIER
//       Logs two entries through JournalLogHandler (sd_journal_sendv) and exits 0 (a failed send falls back to stderr).
import Logging
import SystemdSupport

#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to stdout at once (unbuffered: the tests read it while the probe runs).
func say(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(STDOUT_FILENO, $0, strlen($0)) }
}

func fail(_ message: String) -> Never {
    let line = "lampcell-systemd-probe: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail("usage: serve NAME FALLBACK_PATH CLIENTS | journal IDENTIFIER") }

switch arguments[1] {
case "serve":
    guard arguments.count == 5, let clients = Int(arguments[4]) else { fail("usage: serve NAME FALLBACK_PATH CLIENTS") }
    let name = arguments[2]
    let listener: ListeningSocket
    let passed: [ListenedFileDescriptor]
    do {
        passed = try SocketActivation.listenFileDescriptors()
        listener = try SocketActivation.unixStreamListener(named: name, in: passed, orBindAt: arguments[3])
    } catch {
        fail("\(error)")
    }
    say("listening \(name) fd=\(listener.fileDescriptor) activated=\(listener.activated) names=\(passed.map(\.name).joined(separator: ","))")
    for _ in 0..<clients {
        let client = accept(listener.fileDescriptor, nil, nil)
        guard client >= 0 else { fail("accept: errno \(errno)") }
        let line = "status ok name=\(name) fd=\(listener.fileDescriptor) activated=\(listener.activated)\n"
        _ = line.withCString { write(client, $0, strlen($0)) }
        close(client)
    }
    exit(0)

case "journal":
    guard arguments.count == 3 else { fail("usage: journal IDENTIFIER") }
    var handler = JournalLogHandler(label: "probe", identifier: arguments[2])
    handler.logLevel = .debug
    handler.metadata = ["cell": "HL-CELL-01"]
    let logger = Logger(label: "probe") { _ in handler }
    logger.warning(
        "lamp rejected",
        metadata: ["lamp_serial": "HL-000042", "DEVICE": "assembler", "fault-code": "0x2a", "packml_state": "Held"])
    logger.debug("two\nlines", metadata: ["message": "collides"])
    exit(0)

default:
    fail("unknown command \(arguments[1])")
}
