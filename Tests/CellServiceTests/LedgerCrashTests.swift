import CellCore
import Foundation
import Glibc
import LampCellTestSupport
import Ledger
import Testing

// The crash test, real time (issue 7, item 5): `lampsim` serves the simulated cell as its own process, so the
// simulator survives the controller and counts the lamps that leave the cell independently; `lampcelld --auto-start`
// drives it over Modbus TCP and is killed with SIGKILL at seeded random moments across the whole life of the
// process, then restarted on the same state directory. The rig is in CrashRig.swift.

/// Where in the life of the daemon a kill falls. Each kill draws one, with a fraction in [0, 1) that places it
/// inside the moment's window.
enum KillMoment: String, CaseIterable, Sendable {
    /// Spawn + fraction × the last start-up time: loading, opening and verifying the ledger, recovering the lamp
    /// left in the cell (its append), connecting the devices.
    case startUp = "start-up"
    /// "started" + fraction × the last started→Execute time: Clear, Resetting (unclamp, purge, homing), Starting.
    case towardExecute = "toward Execute"
    /// Execute + fraction × 3 s: the first moves, the housing grip, the lamp-in-cell write.
    case executeEarly = "early Execute"
    /// Execute + 3 s + fraction × 20 s: mid-motion, screws, glue, press, tests.
    case midLamp = "mid-lamp"
    /// The simulator counts a lamp out (its release ended) + fraction × 40 ms: the controller finishes the lamp,
    /// the drain commits its row, the log line.
    case lampLeaving = "lamp leaving"
    /// The first change of the ledger's WAL file after a lamp left + fraction × 2 ms: inside the commit (frames
    /// written, fsync, the lamp-in-cell file removed, the log line not yet printed).
    case walWrite = "WAL write"
    /// The lamp's acknowledgement in the log + fraction × 2.5 s: right after a lamp finished, the next housing.
    case afterLamp = "after a lamp"

    /// The run must finish a lamp before this kill: it proves that the cell resumed production.
    var finishesALamp: Bool { self == .lampLeaving || self == .walWrite || self == .afterLamp }
    /// The run must reach Execute before this kill.
    var reachesExecute: Bool { self != .startUp && self != .towardExecute }
}

/// The seeded plan of a run: one (moment, fraction) per kill. Every `lampEvery`-th kill (and the final run) comes
/// after a lamp finished in that run; those moments cycle through the three lamp moments, the other kills through
/// the cheap moments (weights 2 start-up, 3 toward Execute, 3 early Execute, 1 mid-lamp: a mid-lamp kill costs
/// ~15 s, the others 0.5–4 s), each list shuffled.
struct CrashPlan {
    struct Kill {
        var moment: KillMoment
        var fraction: Double
    }

    static let lampMoments: [KillMoment] = [.lampLeaving, .walWrite, .afterLamp]
    static let cheapMoments: [KillMoment] = [
        .startUp, .startUp, .towardExecute, .towardExecute, .towardExecute, .executeEarly, .executeEarly, .executeEarly,
        .midLamp,
    ]

    var kills: [Kill]

    init(kills count: Int, lampEvery: Int, using random: inout SplitMix64) {
        let lampSlots = count / lampEvery
        var lamps = (0..<lampSlots).map { Self.lampMoments[$0 % Self.lampMoments.count] }
        lamps.shuffle(using: &random)
        var cheap = (0..<(count - lampSlots)).map { Self.cheapMoments[$0 % Self.cheapMoments.count] }
        cheap.shuffle(using: &random)
        let moments = (0..<count).map { ($0 + 1) % lampEvery == 0 ? lamps.removeLast() : cheap.removeLast() }
        kills = moments.map { Kill(moment: $0, fraction: Double.random(in: 0..<1, using: &random)) }
    }
}

/// Figures of a run, printed at the end (docs/RELIABILITY.md quotes those of the documented run).
struct CrashFigures {
    var killsByMoment: [KillMoment: Int] = [:]
    var verifySeconds: [Double] = []
    var startedToExecuteSeconds: [Double] = []
    var spawnToStartedSeconds: [Double] = []
    var spawnToExecuteSeconds: [Double] = []
    var lampsFinishedInRuns = 0
    /// Kills after which the ledger or the lamp-in-cell file held a record of a housing that never entered the cell
    /// (a grip the kill cut short, or a cell that aborted or stopped between the record and the grip).
    var recordsWithoutHousing: [Int] = []
    /// Kills between a commit and its acknowledgement in the log (the row is there, the line is not).
    var committedNotAcknowledged: [Int] = []
    /// Kills between a commit and the removal of the lamp-in-cell file (the restart must not record it again).
    var committedFileLeft: [Int] = []
    /// Kills after the simulator counted a lamp out and before its row committed (recorded as scrapped at restart).
    var leftNotCommitted: [Int] = []
    /// Aborts the test did not cause (a device not answering for a moment on the loaded machine), each recovered
    /// by the test as the operator through lampctl.
    var operatorRecoveries: [String] = []

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }

    static func summary(_ values: [Double], scale: Double = 1, unit: String = "s") -> String {
        String(
            format: "p50 %.2f %@, max %.2f %@ (n %d)", percentile(values, 0.5) * scale, unit, (values.max() ?? .nan) * scale,
            unit, values.count)
    }
}

@Suite("Ledger crash test", .serialized)
struct LedgerCrashTests {
    /// Kills per run in CI (the issue asks for at least 50); `LAMPCELL_CRASH_KILLS` overrides.
    static let defaultKills = 50
    /// One kill in every this many finishes a lamp first; `LAMPCELL_CRASH_LAMP_EVERY` overrides.
    static let defaultLampEvery = 7
    /// How long a started daemon may take to open the ledger, recover and log that it started.
    static let startTimeoutSeconds = 60.0
    /// How long a restarted daemon may take from "started" to Execute (Clear, Reset with the purge and homing, Start).
    static let executeTimeoutSeconds = 90.0
    /// How long a lamp may take from Execute until it leaves the cell (the ideal cycle is 26 s).
    static let lampTimeoutSeconds = 120.0
    /// Window of the early-Execute kills, seconds after Execute.
    static let executeEarlySeconds = 3.0
    /// Window of the mid-lamp kills: this long after Execute, for `midLampSpanSeconds`.
    static let midLampStartSeconds = 3.0
    static let midLampSpanSeconds = 20.0
    /// Window of the lamp-leaving kills after the simulator counted the lamp out.
    static let lampLeavingSpanSeconds = 0.04
    /// How long to wait for the WAL to change once a lamp left, and the window of the kill after that change.
    static let walChangeTimeoutSeconds = 2.0
    static let walWriteSpanSeconds = 0.002
    /// Window of the after-a-lamp kills after its acknowledgement.
    static let afterLampSpanSeconds = 2.5
    /// How often the simulator's lamp count is polled while waiting for a lamp to leave.
    static let lampPollSeconds = 0.005
    /// How often one run may recover the cell from an abort it did not cause before it gives up.
    static let maximumOperatorRecoveries = 3
    static let cellID = "HL-CELL-01"

    /// The mutable state of one crash run, and every check made on it.
    final class Run {
        let rig: CrashRig
        /// Every lamp the daemon acknowledged in its log, in order, over all runs.
        var acknowledged: [AcknowledgedLamp] = []
        /// The ledger as last seen (read-only): every later look must start with these entries, unchanged.
        var lastLook = LedgerLook(entries: [], verification: nil, verifySeconds: 0)
        /// Every lamp a start found in the lamp-in-cell file and not in the ledger: each must be recorded as scrapped
        /// (controller restart) by the first start that gets through its recovery, and by no other.
        var pendingAtStart: Set<String> = []
        /// Records of housings that never entered the cell so far (see `checkBalance`).
        var recordsWithoutHousing = 0
        /// Ledger entries the last balance check saw, and the lamp-in-cell serial it found pending: the SCRAPPED
        /// entries after them are the records that may name a housing that never entered the cell.
        var balancedEntries = 0
        var balancedPending: String?
        var figures = CrashFigures()
        var summary: [String] = []

        init(rig: CrashRig) { self.rig = rig }

        /// A fresh look at the ledger with the checks that hold at every moment: the chain verifies, no serial or
        /// serial sequence twice, every entry seen before is still there unchanged (append only), every lamp
        /// acknowledged so far is there with the same verdict.
        func look(_ context: String) throws -> LedgerLook {
            let look = try LedgerLook.read(rig.ledgerPath)
            figures.verifySeconds.append(look.verifySeconds)
            #expect(look.isValid, "\(context): \(String(describing: look.verification))")
            #expect(look.serials.count == look.count, "\(context): a serial twice in the ledger")
            #expect(Set(look.entries.map(\.serialSequence)).count == look.count, "\(context): a serial sequence twice")
            #expect(
                look.count >= lastLook.count && Array(look.entries.prefix(lastLook.count)) == lastLook.entries,
                "\(context): entries recorded earlier changed or vanished (\(lastLook.count) before, \(look.count) now)")
            let bySerial = look.bySerial
            for lamp in acknowledged {
                #expect(
                    bySerial[lamp.serial]?.verdict == lamp.verdict,
                    "\(context): acknowledged lamp \(lamp) is \(bySerial[lamp.serial].map { "\($0.verdict) in the ledger" } ?? "not in the ledger")")
            }
            lastLook = look
            return look
        }

        /// Takes the acknowledgements of an ended daemon's log (complete lines only: each was printed after its
        /// commit). A serial is acknowledged at most once over all runs.
        func collectAcknowledgements(_ daemon: DaemonProcess, _ context: String) {
            let known = Set(acknowledged.map(\.serial))
            let new = daemon.log.lines.compactMap(AcknowledgedLamp.init(logLine:))
            for lamp in new {
                #expect(!known.contains(lamp.serial), "\(context): lamp \(lamp.serial) acknowledged again (\(lamp.verdict))")
            }
            #expect(Set(new.map(\.serial)).count == new.count, "\(context): a lamp acknowledged twice in one run")
            acknowledged += new
        }

        /// After a kill or a stop (no daemon running): every housing that entered the cell is either still in it
        /// (gripper or fixture, read over Modbus), or out of it (the simulator's count), and has exactly one record —
        /// a ledger entry, or the lamp-in-cell file for the one lamp not yet in the ledger:
        ///
        ///     out + in cell − entries − pending file = − records without a housing
        ///
        /// The record is durable before the grip is sent (docs/LEDGER.md, "The lamp in the cell"), so no housing is
        /// ever without one. A record may lack its housing only where the design allows, and only as a scrapped lamp:
        /// a file whose grip the kill cut short (no part in the cell; recorded as scrapped at the restart), or a lamp
        /// the cell scrapped itself because it aborted or stopped between the record and the grip. So the balance may
        /// fall by at most the records of this kind that are new since the last check. Anything else — a lamp that left
        /// without a record, a record twice, a judged lamp without a housing — breaks the balance.
        func checkBalance(_ look: LedgerLook, out: LampSimProcess.LampsOut, run: Int, _ context: String) throws -> String? {
            let parts = try rig.parts.read()
            let pending = lampInCellSerial(stateDirectory: rig.state, cellID: LedgerCrashTests.cellID)
                .flatMap { look.bySerial[$0] == nil ? $0 : nil }
            let balance = out.total + parts.count - look.count - (pending == nil ? 0 : 1)
            let expected = -recordsWithoutHousing
            // A pending serial counted at the last check is the same record once the restart has appended it.
            let scrappedSince = look.entries.dropFirst(balancedEntries)
                .filter { $0.verdict == "SCRAPPED" && $0.serial != balancedPending }.count
            let candidates = scrappedSince + (pending != nil && parts.count == 0 ? 1 : 0)
            balancedEntries = look.count
            balancedPending = pending
            let surplus = expected - balance
            guard surplus != 0 else { return nil }
            #expect(
                surplus > 0 && surplus <= candidates,
                "\(context): \(out.total) out + \(parts.count) in the cell (\(parts)) − \(look.count) entries − \(pending == nil ? 0 : 1) pending = \(balance), expected \(expected) (\(candidates) new scrapped or pending records may lack a housing)")
            guard surplus > 0 && surplus <= candidates else { return nil }
            recordsWithoutHousing += surplus
            figures.recordsWithoutHousing.append(run)
            return "\(surplus) record\(surplus == 1 ? "" : "s") of a housing that never entered the cell"
        }
    }

    @Test("lampcelld killed with SIGKILL at ≥ 50 random moments over its whole life: the ledger verifies, nothing acknowledged is lost, the lamp in the cell is scrapped exactly once, the cell resumes")
    func killAtRandomMoments() throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["LAMPCELL_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...999_999)
        let kills = environment["LAMPCELL_CRASH_KILLS"].flatMap { Int($0) } ?? Self.defaultKills
        let lampEvery = max(1, environment["LAMPCELL_CRASH_LAMP_EVERY"].flatMap { Int($0) } ?? Self.defaultLampEvery)
        print("LedgerCrashTests: seed \(seed) (repeat with LAMPCELL_CRASH_SEED=\(seed)), \(kills) kills, a lamp every \(lampEvery)")
        try Self.crashRun(seed: seed, kills: kills, lampEvery: lampEvery)
    }

    /// Runs `lampctl` with `arguments`; its exit status.
    static func lampctl(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try DaemonExecutableTests.executable("lampctl"))
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    static func crashRun(seed: UInt64, kills: Int, lampEvery: Int) throws {
        var random = SplitMix64(seed: seed)
        let plan = CrashPlan(kills: kills, lampEvery: lampEvery, using: &random)
        let wallStart = monotonicSeconds()
        let rig = try CrashRig(seed: seed)
        defer { rig.remove() }
        let simulator = rig.simulator
        let book = Run(rig: rig)
        // Estimates of the phases, updated from each run, to place the kills of the first two moments.
        var startUpEstimate = 2.0
        var towardExecuteEstimate = 5.0

        var current: DaemonProcess?
        defer { if let current, current.process.isRunning { current.end(with: SIGKILL) } }
        for run in 0...kills {
            let kill = run < kills ? plan.kills[run] : nil
            let context = "run \(run) (seed \(seed), \(kill.map { "\($0.moment.rawValue) \(String(format: "%.2f", $0.fraction))" } ?? "final"))"
            // Before the start: what the dead process left behind.
            let before = try book.look("\(context), before the start")
            let pending = lampInCellSerial(stateDirectory: rig.state, cellID: cellID).flatMap { before.bySerial[$0] == nil ? $0 : nil }
            if let pending { book.pendingAtStart.insert(pending) }
            let daemon = try DaemonProcess(rig.arguments)
            current = daemon
            /// The simulator's count of lamps out when this run reached Execute.
            var outAtExecute: Int?

            /// Kills the daemon, then checks the ledger and the balance of housings; one summary line.
            func killAndCheck(_ what: String) throws {
                daemon.end(with: SIGKILL)
                book.collectAcknowledgements(daemon, context)
                let out = try simulator.lampsOut()
                let look = try book.look("\(context), after the kill")
                var notes = [try book.checkBalance(look, out: out, run: run, context)].compactMap { $0 }
                let acknowledgedSerials = Set(book.acknowledged.map(\.serial))
                if let unacknowledged = look.entries.dropFirst(before.count).first(where: { !acknowledgedSerials.contains($0.serial) }) {
                    book.figures.committedNotAcknowledged.append(run)
                    notes.append("\(unacknowledged.serial) \(unacknowledged.verdict) committed, not acknowledged")
                }
                if let inCell = lampInCellSerial(stateDirectory: rig.state, cellID: cellID) {
                    if look.bySerial[inCell] != nil {
                        book.figures.committedFileLeft.append(run)
                        notes.append("\(inCell) committed, lamp-in-cell not yet removed")
                    } else if let outAtExecute,
                        out.total - outAtExecute > look.entries.dropFirst(before.count).filter({ $0.verdict != "SCRAPPED" }).count
                    {
                        book.figures.leftNotCommitted.append(run)
                        notes.append("\(inCell) left the cell, not committed")
                    }
                }
                let note: String? = notes.isEmpty ? nil : notes.joined(separator: "; ")
                // A lamp recorded with a verdict (OK, NG) was released at the outfeed or the reject bin first.
                #expect(look.judged <= out.total, "\(context): \(look.judged) judged lamps in the ledger, \(out)")
                // Purged parts and NG lamps fill the reject bin; a full bin would hold the cell.
                _ = try simulator.command("reject-bin empty") { $0.hasPrefix("reject bin") }
                let state = daemon.log.lines.last(where: { $0.contains("PackML state") })?.split(separator: " ").last ?? "-"
                book.summary.append(
                    String(format: "kill %d %@ at %.2f s (%@, last state %@): ledger %d (%d judged), sim %d out%@",
                        run + 1, kill?.moment.rawValue ?? "-", daemon.age, what, String(state), look.count, look.judged,
                        out.total, note.map { "; \($0)" } ?? ""))
                print("LedgerCrashTests: \(book.summary[book.summary.count - 1])")
                book.figures.killsByMoment[kill?.moment ?? .startUp, default: 0] += 1
            }

            /// Waits until the daemon is `seconds` old (or exits by itself: a failure).
            func waitUntil(age seconds: Double) -> Bool {
                while daemon.age < seconds && daemon.process.isRunning {
                    Thread.sleep(forTimeInterval: min(0.01, max(0, seconds - daemon.age)))
                }
                if !daemon.process.isRunning {
                    Issue.record("\(context): lampcelld exited by itself (\(daemon.process.terminationStatus)):\n\(daemon.log.tail(30))")
                }
                return daemon.process.isRunning
            }

            if let kill, kill.moment == .startUp {
                guard waitUntil(age: kill.fraction * startUpEstimate * 1.2) else { return }
                try killAndCheck(daemon.log.lines.contains { $0.contains("lampcelld started") } ? "after started" : "before started")
                continue
            }

            // --- The restart: recovery is done before "started".
            guard daemon.log.waitForLine(seconds: startTimeoutSeconds, { $0.contains("lampcelld started") }) != nil else {
                daemon.end(with: SIGKILL)
                Issue.record("\(context): lampcelld did not start:\n\(daemon.log.tail(30))")
                return
            }
            let startedAt = daemon.age
            startUpEstimate = startedAt
            book.figures.spawnToStartedSeconds.append(startedAt)
            let after = try book.look("\(context), after the restart")
            if let pending {
                // The lamp that was in the cell at the kill: recorded exactly once, as scrapped (controller restart).
                #expect(after.count == before.count + 1, "\(context): the lamp in the cell (\(pending)) was not recorded")
                let recorded = after.entries.last
                #expect(
                    recorded?.serial == pending && recorded?.verdict == "SCRAPPED" && recorded?.reasons == "controller restart",
                    "\(context): \(String(describing: recorded))")
            } else {
                #expect(after.count == before.count, "\(context): recovery added \(after.count - before.count) entries, no lamp was pending")
            }
            // (A start killed during its recovery may have recorded the lamp already: counted by serial.)
            #expect(
                Set(after.restartScrapped.map(\.serial)) == book.pendingAtStart,
                "\(context): scrapped at restart \(after.restartScrapped.map(\.serial).sorted()), lamps found pending at a start \(book.pendingAtStart.sorted())")
            #expect(!FileManager.default.fileExists(atPath: rig.state + "/lamp-in-cell"), "\(context): lamp-in-cell left after recovery")
            // The API socket left by the killed process does not keep the new one from listening (the operator's way
            // to command the cell; logged before "started").
            #expect(daemon.log.lines.contains { $0.contains("API listening on") }, "\(context): the API did not start:\n\(daemon.log.tail(20))")

            if let kill, kill.moment == .towardExecute {
                guard waitUntil(age: startedAt + kill.fraction * towardExecuteEstimate) else { return }
                try killAndCheck(daemon.log.lines.contains { $0.hasSuffix("PackML state Execute") } ? "in Execute" : "before Execute")
                continue
            }

            // --- The cell resumes: Execute again.
            let executeLine = daemon.log.waitForLine(seconds: executeTimeoutSeconds) { $0.hasSuffix("PackML state Execute") }
            guard executeLine != nil else {
                daemon.end(with: SIGKILL)
                Issue.record("\(context): the cell did not reach Execute after the restart:\n\(daemon.log.tail(40))")
                return
            }
            let executeAt = daemon.age
            towardExecuteEstimate = executeAt - startedAt
            book.figures.startedToExecuteSeconds.append(executeAt - startedAt)
            book.figures.spawnToExecuteSeconds.append(executeAt)
            outAtExecute = try simulator.lampsOut().total
            let executeMark = daemon.log.count

            /// Waits until the simulator counts a lamp out after Execute; false (a recorded issue) at the deadline.
            /// Waits for a lamp of this run: the simulator counts it out, or (`acknowledged`) the log acknowledges
            /// it with a verdict. If the cell aborts by itself meanwhile (on the loaded machine a device may not
            /// answer for a few periods), the test is the operator: Clear, order, Reset, Start through lampctl, and
            /// it waits on from the new Execute. False (a recorded issue) at the deadline.
            func waitForLamp(acknowledged: Bool) throws -> Bool {
                var mark = executeMark
                var recoveries = 0
                var deadline = monotonicSeconds() + lampTimeoutSeconds
                while monotonicSeconds() < deadline && daemon.process.isRunning {
                    let lines = daemon.log.lines.dropFirst(mark)
                    if acknowledged {
                        if lines.contains(where: { AcknowledgedLamp(logLine: $0).map { $0.verdict != "SCRAPPED" } ?? false }) { return true }
                    } else if try simulator.lampsOut().total > outAtExecute ?? 0 {
                        return true
                    }
                    if let abort = lines.last(where: { $0.hasSuffix("PackML state Aborted") }), recoveries < maximumOperatorRecoveries {
                        recoveries += 1
                        book.figures.operatorRecoveries.append("run \(run): \(abort)")
                        print("LedgerCrashTests: \(context): the cell aborted by itself, the operator recovers it: \(abort)")
                        guard try operatorRestarts() else { return false }
                        mark = daemon.log.count
                        outAtExecute = try simulator.lampsOut().total
                        deadline = monotonicSeconds() + lampTimeoutSeconds
                        continue
                    }
                    Thread.sleep(forTimeInterval: lampPollSeconds)
                }
                Issue.record("\(context): no lamp \(acknowledged ? "acknowledged" : "left the cell") within \(lampTimeoutSeconds) s of Execute:\n\(daemon.log.tail(40))")
                return false
            }

            /// Clear, order, Reset, Start through `lampctl` (the API socket), each awaited in the log.
            func operatorRestarts() throws -> Bool {
                let steps: [([String], String?)] = [
                    (["clear"], "Stopped"),
                    (["order", "--id", "OPERATOR-\(run)", "--variant", "LEFT", "--quantity", "1000000"], nil),
                    (["reset"], "Idle"), (["start"], "Execute"),
                ]
                for (arguments, state) in steps {
                    let mark = daemon.log.count
                    let status = try lampctl(arguments + ["--socket", rig.state + "/api.sock"])
                    guard let state else { continue }  // an order may be refused while the aborted one is active
                    #expect(status == 0, "\(context): lampctl \(arguments[0]) exited \(status)")
                    guard daemon.log.waitForLine(after: mark, seconds: executeTimeoutSeconds, { $0.hasSuffix("PackML state \(state)") }) != nil else {
                        Issue.record("\(context): lampctl \(arguments[0]): the cell did not reach \(state):\n\(daemon.log.tail(30))")
                        return false
                    }
                }
                return true
            }

            guard let kill else {
                // --- The final run: a new lamp, judged and acknowledged; then the controlled stop.
                let finished = try waitForLamp(acknowledged: true)
                #expect(daemon.end(with: SIGTERM) == 0, "\(context): \(daemon.log.tail(30))")
                book.collectAcknowledgements(daemon, context)
                let out = try simulator.lampsOut()
                let final = try book.look("\(context), after the controlled stop")
                _ = try book.checkBalance(final, out: out, run: run, context)
                #expect(final.judged <= out.total)
                // After a controlled stop nothing is pending: a lamp in the cell was recorded (scrapped, cell stopped).
                if let inCell = lampInCellSerial(stateDirectory: rig.state, cellID: cellID) {
                    #expect(final.bySerial[inCell] != nil, "\(context): lamp-in-cell names \(inCell), not in the ledger after a controlled stop")
                }
                if finished { book.figures.lampsFinishedInRuns += 1 }
                book.summary.append(
                    "final: ledger \(final.count) entries (\(final.judged) judged, \(final.restartScrapped.count) scrapped at restart), sim \(out)")
                break
            }

            switch kill.moment {
            case .startUp, .towardExecute:
                break  // handled above
            case .executeEarly:
                guard waitUntil(age: executeAt + kill.fraction * executeEarlySeconds) else { return }
                try killAndCheck("Execute + \(String(format: "%.2f", daemon.age - executeAt)) s")
            case .midLamp:
                guard waitUntil(age: executeAt + midLampStartSeconds + kill.fraction * midLampSpanSeconds) else { return }
                try killAndCheck("Execute + \(String(format: "%.2f", daemon.age - executeAt)) s")
            case .lampLeaving:
                guard try waitForLamp(acknowledged: false) else { daemon.end(with: SIGKILL); return }
                let outAt = daemon.age
                book.figures.lampsFinishedInRuns += 1
                guard waitUntil(age: outAt + kill.fraction * lampLeavingSpanSeconds) else { return }
                try killAndCheck("lamp out + \(String(format: "%.0f", (daemon.age - outAt) * 1000)) ms")
            case .walWrite:
                let stamp = rig.walStamp()
                guard try waitForLamp(acknowledged: false) else { daemon.end(with: SIGKILL); return }
                let outAt = daemon.age
                book.figures.lampsFinishedInRuns += 1
                var changed = rig.walStamp() != stamp
                while !changed && daemon.age < outAt + walChangeTimeoutSeconds {
                    usleep(100)
                    changed = rig.walStamp() != stamp
                }
                let changedAt = daemon.age
                guard waitUntil(age: changedAt + kill.fraction * walWriteSpanSeconds) else { return }
                try killAndCheck(
                    changed ? "WAL changed \(String(format: "%.1f", (changedAt - outAt) * 1000)) ms after the lamp left, + \(String(format: "%.2f", (daemon.age - changedAt) * 1000)) ms"
                        : "WAL unchanged \(walChangeTimeoutSeconds) s after the lamp left")
            case .afterLamp:
                guard try waitForLamp(acknowledged: true) else { daemon.end(with: SIGKILL); return }
                let ackAt = daemon.age
                book.figures.lampsFinishedInRuns += 1
                guard waitUntil(age: ackAt + kill.fraction * afterLampSpanSeconds) else { return }
                try killAndCheck("acknowledged + \(String(format: "%.2f", daemon.age - ackAt)) s")
            }
        }

        let final = book.lastLook
        let figures = book.figures
        let wall = monotonicSeconds() - wallStart
        let scrappedOther = final.entries.filter { $0.verdict == "SCRAPPED" && $0.reasons != "controller restart" }.count
        print(
            """
            LedgerCrashTests (seed \(seed)):
            \(book.summary.joined(separator: "\n"))
            figures: \(kills) kills (\(KillMoment.allCases.map { "\($0.rawValue) \(figures.killsByMoment[$0] ?? 0)" }.joined(separator: ", ")))
              ledger \(final.count) entries: \(final.judged) judged (OK/NG), \(final.restartScrapped.count) scrapped at restart (controller restart), \(scrappedOther) scrapped otherwise
              lamps acknowledged in the log \(book.acknowledged.count); lamps finished in runs that had to finish one \(figures.lampsFinishedInRuns)
              kills in the commit path: lamp left, row not committed \(figures.leftNotCommitted.count); committed, lamp-in-cell not removed \(figures.committedFileLeft.count); committed, not acknowledged \(figures.committedNotAcknowledged.count)
              records of a housing that never entered the cell (a cut grip, or scrapped before the grip) \(figures.recordsWithoutHousing.count) \(figures.recordsWithoutHousing)
              aborts not caused by the test, recovered through lampctl \(figures.operatorRecoveries.count)\(figures.operatorRecoveries.map { "\n    \($0)" }.joined())
              verify \(CrashFigures.summary(figures.verifySeconds, scale: 1000, unit: "ms")) over up to \(final.count) entries
              spawn → started \(CrashFigures.summary(figures.spawnToStartedSeconds)); started → Execute \(CrashFigures.summary(figures.startedToExecuteSeconds)); spawn → Execute \(CrashFigures.summary(figures.spawnToExecuteSeconds))
              wall \(String(format: "%.0f", wall)) s
            """)
    }
}
