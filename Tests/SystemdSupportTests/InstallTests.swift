import CellConfig
import CellCore
import Foundation
import Testing

/// `make install` into a DESTDIR tree (with the binaries this test run was built with: BIN_DIR, no second swift
/// build while `swift test` holds the build directory), then systemd's own checks of the installed units.
@Suite("Installed units", .serialized)
struct InstallTests {
    /// Highest exposure `systemd-analyze security` may rate lampcelld.service (issue 6).
    static let maximumExposure = 2.5

    final class InstalledTree {
        let directory: TemporaryDirectory
        let root: String
        let installOutput: String
        init() throws {
            directory = try TemporaryDirectory()
            root = directory.file("root")
            let result = try run(
                "/usr/bin/make", ["-C", packageRoot, "install", "DESTDIR=\(root)", "PREFIX=/usr/local", "BIN_DIR=\(binDirectory)"],
                timeoutSeconds: 120)
            installOutput = result.output
            guard result.status == 0 else {
                Issue.record("make install failed (\(result.status)): \(result.output)")
                throw CancellationError()
            }
        }
        var unitDirectory: String { root + "/usr/local/lib/systemd/system" }
        deinit { directory.remove() }
    }

    @Test("make install puts binaries, units, snippets, Hardware and a config whose paths exist in the tree")
    func installedLayout() throws {
        let tree = try InstalledTree()
        let manager = FileManager.default
        for path in [
            "/usr/local/bin/lampcelld", "/usr/local/bin/lampsim",
        ] {
            #expect(manager.isExecutableFile(atPath: tree.root + path), "\(path)")
        }
        for path in [
            "/usr/local/lib/systemd/system/lampcelld.service", "/usr/local/lib/systemd/system/lampcelld.socket",
            "/usr/local/lib/sysusers.d/lampcell.conf", "/usr/local/lib/tmpfiles.d/lampcell.conf",
            "/usr/local/share/doc/lampcell/SYSTEMD.md", "/etc/lampcelld/lampcelld.toml",
        ] {
            #expect(manager.fileExists(atPath: tree.root + path), "\(path)")
        }
        // Every absolute file the installed config names under the prefix was installed there.
        let config = try String(contentsOfFile: tree.root + "/etc/lampcelld/lampcelld.toml", encoding: .utf8)
        let named = config.split(separator: "\"").map(String.init).filter { $0.hasPrefix("/usr/local/") }
        #expect(named.count == 3, "cell and two recipes: \(named)")
        for path in named { #expect(manager.fileExists(atPath: tree.root + path), "config names \(path)") }
        let service = try String(contentsOfFile: tree.unitDirectory + "/lampcelld.service", encoding: .utf8)
        #expect(service.contains("ExecStart=/usr/local/bin/lampcelld --config /etc/lampcelld/lampcelld.toml"))
    }

    @Test("the installed config loads, names the installed Hardware, and agrees with the units")
    func configAgreesWithUnits() throws {
        let tree = try InstalledTree()
        let configuration = try DaemonConfiguration.load(from: tree.root + "/etc/lampcelld/lampcelld.toml")
        let definition = try CellDefinition.load(from: tree.root + configuration.cellPath)
        #expect(configuration.recipePaths.count == 2)
        for path in configuration.recipePaths { _ = try Recipe.load(from: tree.root + path, cell: definition) }

        func settings(_ unit: String) throws -> [String: [String]] {
            let text = try String(contentsOfFile: tree.unitDirectory + "/" + unit, encoding: .utf8)
            var result: [String: [String]] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                result[String(line[..<equals]), default: []].append(String(line[line.index(after: equals)...]))
            }
            return result
        }
        let service = try settings("lampcelld.service")
        let socket = try settings("lampcelld.socket")
        // The socket unit listens where the daemon would bind by itself, under the service's RuntimeDirectory.
        #expect(socket["ListenStream"] == [configuration.apiSocketPath])
        #expect(service["RuntimeDirectory"].map { ["/run/" + $0[0] + "/api.sock"] } == [configuration.apiSocketPath])
        #expect(socket["SocketGroup"] == [configuration.commandGroup])
        #expect(service["StateDirectory"].map { "/var/lib/" + $0[0] } == configuration.stateDirectory)
        // The control thread's SCHED_FIFO priority is allowed by LimitRTPRIO (no CAP_SYS_NICE), mlockall by
        // LimitMEMLOCK (no CAP_IPC_LOCK).
        let rtprio = try #require(service["LimitRTPRIO"]?.first.flatMap { Int32($0) })
        #expect((configuration.fifoPriority ?? 0) <= rtprio)
        if configuration.lockMemory { #expect(service["LimitMEMLOCK"] == ["infinity"]) }
        #expect(service["CapabilityBoundingSet"] == [""])
        #expect(service["Type"] == ["notify"])
    }

    @Test("PREFIX=/usr rewrites the paths in units and config")
    func prefixRewrites() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let root = directory.file("root")
        let result = try run(
            "/usr/bin/make", ["-C", packageRoot, "install", "DESTDIR=\(root)", "PREFIX=/usr", "BIN_DIR=\(binDirectory)"],
            timeoutSeconds: 120)
        try #require(result.status == 0, "\(result.output)")
        let service = try String(contentsOfFile: root + "/usr/lib/systemd/system/lampcelld.service", encoding: .utf8)
        #expect(service.contains("ExecStart=/usr/bin/lampcelld "))
        #expect(!service.contains("/usr/local"))
        let config = try String(contentsOfFile: root + "/etc/lampcelld/lampcelld.toml", encoding: .utf8)
        #expect(config.contains("\"/usr/share/lampcell/Hardware/cell.toml\""))
        #expect(FileManager.default.fileExists(atPath: root + "/usr/share/lampcell/Hardware/recipes/left.toml"))
    }

    @Test("systemd-analyze verify on the installed units prints nothing and exits 0")
    func verify() throws {
        let tree = try InstalledTree()
        // The tree is the installed system: give it systemd's own units (sysinit.target, sockets.target, …) as a
        // real system has them, so that the dependencies resolve inside --root.
        try FileManager.default.createDirectory(atPath: tree.root + "/usr/lib/systemd", withIntermediateDirectories: true)
        let copied = try run("/bin/cp", ["-a", "/usr/lib/systemd/system", tree.root + "/usr/lib/systemd/"])
        try #require(copied.status == 0, "\(copied.output)")
        let result = try run(
            "/usr/bin/systemd-analyze",
            ["verify", "--root=\(tree.root)", "--man=no", "--generators=no",
             tree.unitDirectory + "/lampcelld.service", tree.unitDirectory + "/lampcelld.socket"],
            timeoutSeconds: 120)
        print("systemd-analyze verify: exit \(result.status), output: \(result.output.isEmpty ? "(none)" : result.output)")
        #expect(result.status == 0)
        #expect(result.output.isEmpty, "\(result.output)")
    }

    @Test("systemd-analyze security --offline=true rates lampcelld.service at 2.5 or lower")
    func security() throws {
        let tree = try InstalledTree()
        let result = try run(
            "/usr/bin/systemd-analyze",
            ["security", "--offline=true", "--root=\(tree.root)", "--no-pager", tree.unitDirectory + "/lampcelld.service"],
            timeoutSeconds: 120)
        let line = result.output.split(separator: "\n").first { $0.contains("Overall exposure level") }
        let figure = line.flatMap { line in
            line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        }
        print("systemd-analyze security: \(line.map(String.init) ?? "no exposure line")")
        let exposure = try #require(figure, "no exposure figure in: \(result.output)")
        #expect(exposure <= Self.maximumExposure, "\(result.output)")
    }
}
