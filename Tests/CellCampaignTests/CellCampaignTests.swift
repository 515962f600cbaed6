import CellCore
import CellSimulator
import Foundation
import LampCellTestSupport
import Ledger
import Testing

@testable import CellCampaign

/// Paths of the repository: LampCellTestSupport's, for every file of this target.
typealias Repository = LampCellTestSupport.Repository

/// A configuration of `minutes` virtual minutes for `seed`, with a compressed fault schedule (episodes start
/// early and follow each other closely) so that a short run sees many faults.
func configuration(seed: UInt64, minutes: Double, faults: Set<FaultKind>? = nil) throws -> ShiftConfiguration {
    var configuration = try ShiftConfiguration.load(
        cellPath: Repository.cell, recipePaths: [Repository.leftRecipe], seed: seed,
        durationNanoseconds: UInt64(minutes * 60e9))
    configuration.faults.firstEpisodeNanoseconds = 15_000_000_000
    configuration.faults.quietRangeNanoseconds = 1_000_000_000...4_000_000_000
    configuration.faults.awaitLampFraction = 0.3
    if let faults { configuration.faults.kinds = faults }
    return configuration
}

@Suite("Virtual-time shifts")
struct VirtualShiftTests {
    @Test("The same seed twice gives the same report and the same ledger; another seed differs")
    func determinism() throws {
        let first = try VirtualShift(configuration: configuration(seed: 11, minutes: 1.5)).run()
        let again = try VirtualShift(configuration: configuration(seed: 11, minutes: 1.5)).run()
        let other = try VirtualShift(configuration: configuration(seed: 12, minutes: 1.5)).run()
        #expect(first.injected.total > 0)
        #expect(first == again)
        #expect(first.text(includeWallTime: false) == again.text(includeWallTime: false))
        #expect(first.ledgerHead == again.ledgerHead)
        #expect(first.ledgerHead.count > 0)
        #expect(other.ledgerHead.headHash != first.ledgerHead.headHash)
        #expect(other != first)
    }

    @Test("The exact models and the 4 kHz stepped reference give the same shift: the same report and the same ledger")
    func exactEqualsStepped() throws {
        let exact = try VirtualShift(configuration: configuration(seed: 21, minutes: 3)).run()
        var stepped = try configuration(seed: 21, minutes: 3)
        stepped.steppedModels = true
        let reference = try VirtualShift(configuration: stepped).run()
        #expect(exact.injected.total > 0 && exact.lampsOK > 0)
        #expect(exact == reference)
        #expect(exact.ledgerHead == reference.ledgerHead)
        #expect(reference.modelStepsSkipped == 0)
        #expect(exact.modelStepsSkipped > 4 * exact.modelStepsRun)
        #expect(exact.modelStepsSkipped + exact.modelStepsRun == reference.modelStepsRun)
    }

    @Test("A shift without faults makes lamps at about the recipe's cycle time, OEE near 1")
    func cleanShift() throws {
        let minutes = 5.0
        var clean = try configuration(seed: 3, minutes: minutes)
        clean.faults = .none
        clean.defectRate = 0
        let shift = try VirtualShift(configuration: clean)
        let report = try shift.run()
        let ideal = shift.cell.compiledRecipes[0].idealCycleTimeSeconds
        #expect(report.injected.total == 0)
        #expect(report.lampsNG == 0 && report.lampsScrapped == 0)
        // Each lamp takes about the ideal cycle from housing pick to release; lamps follow each other at the
        // recipe's takt (~30 s, a little above its 26 s ideal cycle: the loader's return to the infeed does not
        // overlap), and the first one includes the start-up: at least 70 % of the ideal count.
        #expect(Double(report.lampsOK) >= 0.7 * minutes * 60 / ideal)
        #expect(abs(report.meanCycleSeconds - ideal) / ideal < 0.05)
        #expect((report.oee.availability ?? 0) > 0.99)
        #expect((report.oee.quality ?? 0) == 1)
        #expect((report.oee.oee ?? 0) > 0.75)
        #expect(report.ledgerHead.count == Int64(report.lampsOK))
    }

    @Test("A short campaign with every fault kind passes every invariant")
    func shortCampaign() throws {
        // Four seeds: the episode deck's first round starts 7 kinds further on for each seed, so 4 × 7 ≥ 22 covers
        // every episode kind when each seed sees at least 7 episodes.
        let seeds = 4
        let summary = Campaign.run(
            firstSeed: 100, seeds: seeds, jobs: 2,
            configure: { try configuration(seed: $0, minutes: 4) },
            replay: { "lampsim shift --seed \($0)" })
        #expect(summary.breach == nil, "\(summary.breach?.description ?? "")")
        #expect(summary.error == nil, "\(summary.error ?? "")")
        #expect(summary.seedsPassed == seeds)
        let missing = FaultKind.allCases.filter { summary.survived[$0] == 0 }
        #expect(missing.isEmpty, "fault kinds never injected: \(missing.map(\.rawValue))")
        #expect(summary.lampsOK > 0)
    }
}

@Suite("Regressions found by the campaign")
struct CampaignRegressionTests {
    @Test("Seed 101: an abort raised inside the period's run left ENABLE|STREAM in that period's outputs")
    func abortInsideRunPowersOff() throws {
        // Before the fix: `enabled-while-aborted` at period 45 263 (arm assembler commanded ENABLE|STREAM in
        // Aborting after a failed tool request). CellController now turns the servos off on entering Aborting.
        let report = try VirtualShift(configuration: configuration(seed: 101, minutes: 3.1)).run()
        #expect(report.injected.total > 0)
    }
}

@Suite("Invariants are live")
struct InvariantLivenessTests {
    @Test("A setpoint pushed too far in one period breaks the configured-limit invariant")
    func badSetpointStream() throws {
        var bad = try configuration(seed: 5, minutes: 2)
        bad.faults = .none
        bad.afterStep = { image, period in
            // From 40 s on, every streamed target of the assembler is pushed 10 mrad further each period.
            guard period > 10_000, image.armOutputs[1].command.contains(.stream) else { return }
            image.armOutputs[1].targetsRadians[0] += 0.01 * Double(period - 10_000)
        }
        #expect {
            _ = try VirtualShift(configuration: bad).run()
        } throws: { error in
            guard let breach = error as? InvariantBreach else { return false }
            return breach.invariant == "setpoint-limits" && breach.seed == 5 && breach.periodIndex > 10_000
        }
    }

    @Test("A streamed write that jumps more than the datasheet allows is caught on the arm's side")
    func datasheetJumpRule() {
        var checker = StreamChecker(limits: [], periodSeconds: 0.004)
        checker.lastAccepted = [SIMD8<Int64>()]
        checker.hasAccepted = [false]
        var words = [UInt16](repeating: 0, count: 28)
        words[0] = ArmCommand.enable.union(.stream).rawValue
        words[6] = 4000
        func setJoint1(_ microradians: Int32) {
            let bits = UInt32(bitPattern: microradians)
            words[16] = UInt16(truncatingIfNeeded: bits >> 16)
            words[17] = UInt16(truncatingIfNeeded: bits)
        }
        setJoint1(0)
        #expect(words.withUnsafeBufferPointer { checker.checkAccepted(arm: 0, words: $0, armWasStreaming: true) } == nil)
        // J1: 1.5 × 3.14 rad/s × 4 ms = 18 840 µrad allowed.
        setJoint1(18_000)
        #expect(words.withUnsafeBufferPointer { checker.checkAccepted(arm: 0, words: $0, armWasStreaming: true) } == nil)
        setJoint1(18_000 + 20_000)
        #expect(words.withUnsafeBufferPointer { checker.checkAccepted(arm: 0, words: $0, armWasStreaming: true) } != nil)
    }

    @Test("Enabling an arm while the guard is open breaks the safety invariant")
    func enableWithChainOpen() throws {
        var bad = try configuration(seed: 6, minutes: 1.5, faults: [.guardOpen])
        bad.afterStep = { image, _ in
            if !image.stationInputs.signals.contains(.safetyOK) {
                image.armOutputs[0].command = ArmCommand.enable.union(.stream)
            }
        }
        #expect {
            _ = try VirtualShift(configuration: bad).run()
        } throws: { error in
            (error as? InvariantBreach)?.invariant.hasPrefix("enabled-") == true
        }
        // The same run without the hook passes.
        let clean = try VirtualShift(configuration: configuration(seed: 6, minutes: 1.5, faults: [.guardOpen])).run()
        #expect(clean.injected[.guardOpen] > 0 && clean.seen[.guardOpen] > 0)
    }

    @Test("A cell that never gets housings again after starvation breaks liveness")
    func livenessBreach() throws {
        var bad = try configuration(seed: 7, minutes: 5, faults: [.housingStarvation])
        bad.faults.awaitLampFraction = 1
        bad.afterStep = { image, period in
            // After the first episode began, no infeed index is ever asked for again.
            if period > 15_000_000_000 / 4_000_000 { image.stationOutputs.infeedRequests = 0 }
        }
        #expect {
            _ = try VirtualShift(configuration: bad).run()
        } throws: { error in
            (error as? InvariantBreach)?.invariant == "liveness"
        }
    }
}
