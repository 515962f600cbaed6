// A private PostgreSQL 15 server for the plant tests and benchmarks: `initdb` in a temporary folder, listening only
// on a Unix socket in that folder, stopped and removed at the end. As root the server runs as the `postgres` user
// (PostgreSQL refuses to run as root); `make test` installs the Debian package when it is missing. Not used by the
// daemon: a plant runs its own server (docs/PLANT.md).

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One private server. Thread: the owner's (start, stop, restart); connections are per thread.
public final class LocalPostgresServer: @unchecked Sendable {
    /// The superuser made by `initdb`.
    public static let superuser = "postgres"
    /// The database the tests use.
    public static let database = "plant"
    /// The socket's port number (it only names the socket file, `.s.PGSQL.<port>`).
    public static let port = 5432
    /// How long `pg_ctl` waits for a start or a stop, s.
    public static let pgCtlTimeoutSeconds = 60

    public let directory: String
    public var dataDirectory: String { directory + "/data" }
    public var socketDirectory: String { directory }
    private let binaries: String
    private let runAs: [String]

    /// The TCP port it listens on with TLS (loopback only), when made with one.
    public let tlsPort: Int?
    /// The port: `tlsPort`, else `LocalPostgresServer.port` (which then only names the Unix socket's file).
    public var port: Int { tlsPort ?? Self.port }
    /// With `tlsPort`: the server's self-signed certificate (for `localhost`), which clients take as their CA.
    public var certificatePath: String { directory + "/server.crt" }

    /// Makes the cluster, starts it and creates the `plant` database with the schema migrated. With `tlsPort` it
    /// also listens on 127.0.0.1:`tlsPort` with TLS, a certificate for `localhost` made by `openssl`.
    public init(migrate: Bool = true, tlsPort: Int? = nil) throws {
        self.tlsPort = tlsPort
        binaries = try Self.findBinaries()
        var template = Array((FileManager.default.temporaryDirectory.path + "/lampcell-pg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw LocalServerError("mkdtemp failed: errno \(errno)") }
        directory = String(cString: made)
        if geteuid() == 0 {
            guard let user = getpwnam("postgres") else {
                throw LocalServerError("running as root and there is no postgres user (apt install postgresql-15)")
            }
            chown(directory, user.pointee.pw_uid, user.pointee.pw_gid)
            runAs = ["/usr/sbin/runuser", "-u", "postgres", "--"]
        } else {
            runAs = []
        }
        try run(
            binaries + "/initdb", "-D", dataDirectory, "-U", Self.superuser, "-A", "trust", "--no-sync",
            "-E", "UTF8", "--locale=C.UTF-8")
        if tlsPort != nil {
            try run(
                "/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost", "-keyout", directory + "/server.key", "-out", certificatePath)
            try run("/bin/chmod", "600", directory + "/server.key")
        }
        try start()
        let admin = try connect()
        try admin.execute("CREATE DATABASE \(Self.database)")
        if migrate { try PlantSchema.migrate(try connect(database: Self.database)) }
    }

    deinit {
        try? stop(mode: "immediate")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts the server (after `stop`).
    public func start() throws {
        try run(
            binaries + "/pg_ctl", "-D", dataDirectory, "-w", "-t", String(Self.pgCtlTimeoutSeconds), "-l",
            directory + "/server.log", "-o",
            "-k \(socketDirectory) -p \(port) -c max_connections=120 -c log_min_messages=warning "
                + (tlsPort == nil
                    ? "-c listen_addresses=''"
                    : "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=\(certificatePath) -c ssl_key_file=\(directory)/server.key"),
            "start")
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or `immediate` (like a crash).
    public func stop(mode: String = "fast") throws {
        try run(binaries + "/pg_ctl", "-D", dataDirectory, "-w", "-m", mode, "stop")
    }

    /// libpq parameters for `user` on `database`.
    public func parameters(user: String = superuser, database: String = database) -> [(String, String)] {
        [("host", socketDirectory), ("port", String(port)), ("dbname", database), ("user", user)]
    }

    /// A connection as `user` (the superuser by default) to `database`.
    public func connect(user: String = superuser, database: String = "postgres") throws -> PostgresConnection {
        try PostgresConnection(parameters: parameters(user: user, database: database), applicationName: "lampcell-test")
    }

    /// Runs a command to its end with posix_spawn and waitpid (Foundation's `Process` did not see `runuser` exit
    /// once `pg_ctl start` had left the server running), its output in a file. Throws with the output on failure.
    private func run(_ arguments: String...) throws {
        let command = runAs + arguments
        let outputPath = directory + "/command.out"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw LocalServerError("\(command[0]): posix_spawn failed: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED and WEXITSTATUS by hand (macros, not in the Swift Glibc module).
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw LocalServerError("\(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
    }

    /// The server binaries of PostgreSQL 15 (Debian's layout), or `pg_config --bindir`'s.
    private static func findBinaries() throws -> String {
        for candidate in ["/usr/lib/postgresql/15/bin"] where FileManager.default.isExecutableFile(atPath: candidate + "/initdb") {
            return candidate
        }
        throw LocalServerError("no PostgreSQL 15 server binaries in /usr/lib/postgresql/15/bin (apt install postgresql-15)")
    }

    /// A command of the server that failed, with its output.
    public struct LocalServerError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
