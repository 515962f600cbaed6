import CRealtime
import CellCore
import CellService
import CellTestSupport
import CellSimulator
import Foundation
import Glibc
import Ledger
import Testing

/// A small tmpfs mounted for one test (needs root and permission to mount, as in the Ledger's own tests).
struct TmpfsMount {
    let path: String

    /// True when this process may mount a tmpfs.
    static let isAvailable: Bool = {
        guard getuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-mount-probe-\(UUID().uuidString)").path
        guard (try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)) != nil else {
            return false
        }
        defer { try? FileManager.default.removeItem(atPath: probe) }
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]) else { return false }
        return run("/bin/umount", [probe])
    }()

    /// Mounts a tmpfs of `sizeKilobytes` on a fresh temporary directory.
    init(sizeKilobytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-tmpfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(sizeKilobytes)k", "tmpfs", path]) else {
            try? FileManager.default.removeItem(atPath: path)
            throw CocoaError(.fileWriteNoPermission)
        }
    }

    /// Unmounts (lazily if something still holds a file open) and removes the mount point.
    func unmount() {
        if !Self.run("/bin/umount", [path]) { _ = Self.run("/bin/umount", ["-l", path]) }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes zeros to `name` until the filesystem is full; returns the file's path.
    func fill(_ name: String = "filler") throws -> String {
        let filler = path + "/" + name
        let descriptor = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { close(descriptor) }
        let chunk = [UInt8](repeating: 0, count: 65_536)
        while chunk.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) > 0 {}
        while chunk.withUnsafeBytes({ write(descriptor, $0.baseAddress, 1) }) > 0 {}
        return filler
    }

    /// Free bytes on the filesystem.
    var freeBytes: UInt64 {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return 0 }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return false
        }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}

@Suite("Ledger disk full in production", .serialized)
struct LedgerDiskFullTests {
    /// The tmpfs: room for the ledger, its WAL and shared memory, the serial file and the lamp-in-cell file.
    static let filesystemKilobytes = 2048

    @Test(
        "The ledger's filesystem fills up under way: Held (ledgerUnavailable) at the lamp's end; space freed → committed, Execute again, nothing lost",
        .enabled(if: TmpfsMount.isAvailable, "needs permission to mount a tmpfs"))
    func diskFullHoldsAndResumes() throws {
        let filesystem = try TmpfsMount(sizeKilobytes: Self.filesystemKilobytes)
        defer { filesystem.unmount() }
        let state = filesystem.path + "/state"
        do {
            let cell = try CellFixture(seed: 5, stateDirectory: state)
            defer { cell.shutdown() }
            let ledgerPath = state + "/ledger.sqlite"
            #expect(cell.produce(lamps: 2) == nil)

            // The first lamp is in the cell (its housing picked, the lamp-in-cell file written): fill the disk.
            let inCell = state + "/lamp-in-cell"
            let deadline = lampcell_monotonic_ns() + 60_000_000_000
            while !FileManager.default.fileExists(atPath: inCell) && lampcell_monotonic_ns() < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
            try #require(FileManager.default.fileExists(atPath: inCell), "no lamp entered the cell")
            let filler = try filesystem.fill()
            var fillerRemoved = false
            // On any failure below: free the space first, or the shutdown waits for the ledger for ever.
            defer { if !fillerRemoved { try? FileManager.default.removeItem(atPath: filler) } }
            #expect(filesystem.freeBytes == 0)

            // The lamp leaves the cell; its commit fails: the cell holds for the ledger.
            let held = cell.waitFor(seconds: 90) { snapshot in
                snapshot.unit.state == .held
                    && snapshot.unit.machine.stopReason?.cause.code == .ledgerUnavailable
            }
            let snapshot = cell.daemon.snapshot()
            try #require(
                held,
                "state \(snapshot.unit.state), stop reason \(String(describing: snapshot.unit.machine.stopReason)), last fault \(String(describing: snapshot.lastFault)), arm faults \(cell.armFaults())")
            #expect(cell.models { $0.world.exits.count } == 1, "the lamp left the cell")
            #expect(try Ledger.openReadOnly(path: ledgerPath).count() == 0, "nothing committed on a full disk")
            // It keeps trying, and stays held meanwhile (no new lamp starts).
            let failures = cell.daemon.ledger.failedAttempts
            let retried = cell.waitFor(seconds: 10) { _ in cell.daemon.ledger.failedAttempts >= failures + 2 }
            #expect(retried, "the sink retries the append")
            #expect(cell.daemon.snapshot().unit.state == .held)
            #expect(cell.daemon.drain.lampsDrained == 0, "the lamp is not handed over before it is committed")

            // Space again: the lamp is committed and the cell unholds by itself.
            try FileManager.default.removeItem(atPath: filler)
            fillerRemoved = true
            let resumed = cell.waitFor(seconds: 30) { $0.unit.state == .execute }
            let after = cell.daemon.snapshot()
            #expect(
                resumed,
                "state \(after.unit.state), stop reason \(String(describing: after.unit.machine.stopReason)), last fault \(String(describing: after.lastFault)), arm faults \(cell.armFaults())")
            #expect(try Ledger.openReadOnly(path: ledgerPath).count() == 1)

            // Production goes on; nothing lost or duplicated: the ledger holds exactly the lamps that left.
            #expect(cell.waitForLamps(2, seconds: 120))
            let ledger = try Ledger.openReadOnly(path: ledgerPath)
            let verification = try ledger.verify()
            #expect(verification.isValid, "\(verification)")
            let entries = try ledger.entries(matching: .all)
            let exits = cell.models { $0.world.exits }
            #expect(entries.count == exits.count && exits.count == 2, "\(entries.count) entries, \(exits.count) exits")
            for (entry, exit) in zip(entries, exits) {
                #expect(entry.housingLot == Int64(exit.housingLot), "\(entry.serial)")
                #expect(entry.ledModuleLot == Int64(exit.ledModuleLot ?? 0), "\(entry.serial)")
                #expect(entry.lensLot == Int64(exit.lensLot ?? 0), "\(entry.serial)")
                #expect(entry.verdict == "OK", "\(entry.serial) \(entry.reasons)")
            }
            #expect(Set(entries.map(\.serial)).count == entries.count)
            #expect(cell.daemon.ledger.head?.count == 2)
        }
    }

    @Test(
        "Shutdown (SIGTERM's path) with the ledger's disk full: returns within the systemd stop timeout; after a restart with space, the lamp not committed is recorded once, as scrapped",
        .enabled(if: TmpfsMount.isAvailable, "needs permission to mount a tmpfs"))
    func shutdownWithDiskFull() throws {
        let filesystem = try TmpfsMount(sizeKilobytes: Self.filesystemKilobytes)
        defer { filesystem.unmount() }
        let state = filesystem.path + "/state"
        let ledgerPath = state + "/ledger.sqlite"
        let inCell = state + "/lamp-in-cell"
        var filler: String?
        defer { if let filler { try? FileManager.default.removeItem(atPath: filler) } }
        var pendingSequence: UInt64?
        do {
            let cell = try CellFixture(seed: 5, stateDirectory: state)
            #expect(cell.produce(lamps: 2) == nil)
            let entered = cell.waitFor(seconds: 60) { _ in FileManager.default.fileExists(atPath: inCell) }
            guard entered else {
                cell.shutdown(keepState: true)
                Issue.record("no lamp entered the cell")
                return
            }
            filler = try filesystem.fill()
            let held = cell.waitFor(seconds: 90) { snapshot in
                snapshot.unit.state == .held && snapshot.unit.machine.stopReason?.cause.code == .ledgerUnavailable
            }
            #expect(held, "held for the ledger: \(cell.daemon.snapshot().unit.state)")
            let inCellText = String(decoding: FileManager.default.contents(atPath: inCell) ?? Data(), as: UTF8.self)
            pendingSequence = inCellText.split(separator: "\n").first { $0.hasPrefix("sequence=") }
                .flatMap { UInt64($0.dropFirst("sequence=".count)) }
            // SIGTERM: lampcelld's shutdown. The drain gives up the append after its grace; before, it retried for ever.
            // Run on its own thread and waited for with a bound, so that a regression fails instead of hanging.
            let finished = DispatchSemaphore(value: 0)
            let start = lampcell_monotonic_ns()
            Thread { cell.shutdown(keepState: true); finished.signal() }.start()
            let returned = finished.wait(timeout: .now() + 25) == .success
            let seconds = Double(lampcell_monotonic_ns() - start) / 1e9
            try #require(returned, "shutdown did not return within 25 s (the unit's TimeoutStopSec is 30 s)")
            #expect(seconds < 20, "shutdown took \(seconds) s")
            #expect(try Ledger.openReadOnly(path: ledgerPath).count() == 0, "nothing was committed on the full disk")
            #expect(FileManager.default.fileExists(atPath: inCell), "the lamp-in-cell file still names the lamp")
        }
        // Space again; the next start records the lamp from the lamp-in-cell file, once.
        if let path = filler { try FileManager.default.removeItem(atPath: path) }
        filler = nil
        let restarted = try CellFixture(seed: 5, stateDirectory: state)
        defer { restarted.shutdown() }
        let ledger = try Ledger.openReadOnly(path: ledgerPath)
        let verification = try ledger.verify()
        #expect(verification.isValid, "\(verification)")
        let entries = try ledger.entries(matching: .all)
        #expect(entries.count == 1, "\(entries.map(\.serial))")
        #expect(entries.first?.verdict == "SCRAPPED" && entries.first?.reasons == "controller restart",
                "\(String(describing: entries.first))")
        let sequence = try #require(pendingSequence, "the lamp-in-cell file named no sequence")
        #expect(entries.first?.serial.hasSuffix(String(format: "%08llu", sequence)) == true,
                "the lamp whose append was given up (\(sequence)) is the one recorded: \(String(describing: entries.first?.serial))")
        #expect(!FileManager.default.fileExists(atPath: inCell))
    }
}
