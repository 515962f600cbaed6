import CellCore
import CellSimulator
import PackML
import Testing

@testable import CellCampaign

/// The controller's behaviour as an operator and a quality engineer see it, in virtual time (`VirtualCell`: the
/// device models, the real drivers over in-memory Modbus, the real controller and control period), deterministic
/// by seed. These are the behaviours the wall-clock end-to-end tests of `CellServiceTests` (ProductionTests,
/// AbortRecoveryTests, InterlockTests) assert over loopback TCP in 20–60 s each (a lamp: ~27 s). Here a lamp costs
/// about 3–4 s of CPU in a debug build (the models' 4 kHz servo loops are most of it) and no waiting. Every wait is
/// bounded in virtual time.
@Suite("Controller behaviour in virtual time")
struct ControllerBehaviourTests {
    // MARK: - Production (the many-lamp run that ProductionTests did in real time)

    /// The measurements a hidden defect of the simulator shows in, by name.
    static func expectedReasons(_ defect: PartDefect) -> Set<String> { Set(defect.measurementsShown.map(\.name)) }

    @Test("9 LEFT lamps with seeded defects of every kind: each defect gives NG with its reason, good parts OK; no arm faults")
    func lampsWithEveryDefect() throws {
        // Seed 8 at a defect rate of 0.75 brings every defect kind and good parts within the first 9 housings
        // (the wall-clock test made 10 lamps of seed 21 at 0.5, whatever kinds they had).
        let lampCount = 9
        let driver = try CellDriver(seed: 8, defectRate: 0.75)
        try driver.produce(lamps: 20)  // the order counts good lamps only
        try driver.run(until: "\(lampCount) lamps left the cell", withinSeconds: Double(lampCount) * 40) {
            $0.finished.count >= lampCount
        }
        let lamps = Array(driver.finished.prefix(lampCount))
        let exits = Array(driver.models.world.exits.prefix(lampCount))
        try #require(lamps.count == lampCount && exits.count == lampCount, "\(driver.models.world.exits.count) exits")
        let kinds = Set(exits.map(\.part.defect))
        try #require(kinds == Set(PartDefect.allCases), "the seed must bring every defect kind and a good part: \(kinds)")
        let recipe = driver.cell.compiledRecipes[0]
        var defective = 0
        for (lamp, exit) in zip(lamps, exits) {
            let context = "lamp \(lamp.line), housing \(exit.partID) with defect \(exit.part.defect)"
            #expect(lamp.variant == Variant.left.rawValue, "\(context)")
            #expect(lamp.housingLot == exit.housingLot, "\(context)")
            #expect(lamp.ledModuleLot == exit.ledModuleLot, "\(context)")
            #expect(lamp.lensLot == exit.lensLot, "\(context)")
            let missing = recipe.windows.requiredMask & ~lamp.measurements.takenMask
            #expect(missing == 0, "\(context): measurements missing (mask 0x\(String(missing, radix: 16)))")
            if exit.part.defect == .none {
                #expect(lamp.verdict == .ok, "\(context)")
                #expect(exit.destination == .outfeed, "\(context)")
            } else {
                defective += 1
                #expect(lamp.verdict == .ng, "\(context)")
                let reasons = lamp.reasons
                #expect(!reasons.isEmpty && reasons.isSubset(of: Self.expectedReasons(exit.part.defect)), "\(context)")
                #expect(exit.destination == .reject, "\(context)")
            }
            // Each lamp takes about the recipe's cycle (housing pick to release).
            #expect(
                abs(lamp.cycleTimeSeconds - recipe.idealCycleTimeSeconds) < 0.1 * recipe.idealCycleTimeSeconds,
                "\(context): cycle \(lamp.cycleTimeSeconds) s, ideal \(recipe.idealCycleTimeSeconds) s")
        }
        // Normal production never trips an arm, nor breaks the datasheet's setpoint rule, nor leaves Execute.
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
        let firstExecute = try #require(driver.trace.firstIndex { $0.state == .execute })
        let left = driver.trace[firstExecute...].first { $0.state != .execute }
        #expect(left == nil, "left Execute at \(left.map { virtualTime($0.nanoseconds) } ?? "")")
        // Serials are unique and increasing; the counters agree with the lamps.
        #expect(zip(lamps, lamps.dropFirst()).allSatisfy { $0.serial.sequence < $1.serial.sequence })
        let counters = driver.controller.unit.counters
        #expect(counters.processed.count == UInt64(lampCount))
        #expect(counters.defective.count == UInt64(defective))
        #expect(driver.controller.unit.oeeResult.quality.map { abs($0 - Double(lampCount - defective) / Double(lampCount)) < 1e-9 } == true)
    }

    @Test("an order of the RIGHT variant makes RIGHT lamps, pressed and tested to the RIGHT recipe")
    func rightVariant() throws {
        let driver = try CellDriver(seed: 41, recipePaths: [Repository.leftRecipe, Repository.rightRecipe])
        let right = driver.cell.compiledRecipes[1]
        try #require(right.variant == .right)
        try driver.produce(lamps: 1, recipeIndex: 1)
        try driver.run(until: "a lamp left the cell", withinSeconds: 60) { $0.finished.count >= 1 }
        let lamp = driver.finished[0]
        #expect(lamp.verdict == .ok, "\(lamp.line)")
        #expect(lamp.variant == Variant.right.rawValue)
        #expect(lamp.recipeIndex == 1)
        // The testers judged against RIGHT (TS-200 `variant` register 2), the press went to RIGHT's target force.
        #expect(driver.models.station.variant == Variant.right.rawValue)
        #expect(!driver.pressParameters.isEmpty)
        #expect(driver.pressParameters.allSatisfy { $0 == right.source.toolParameters.pressForceRegister })
        #expect(driver.pressParameters.allSatisfy { $0 != driver.cell.compiledRecipes[0].source.toolParameters.pressForceRegister })
        let press = try #require(lamp.measurements[.pressForce])
        let window = right.source.processWindows.pressForce
        #expect(press >= window.minimum && press <= window.maximum, "press force \(press) N")
        let exit = try #require(driver.models.world.exits.first)
        #expect(exit.destination == .outfeed)
        #expect(exit.housingLot == lamp.housingLot)
        // One good lamp fulfils the order.
        try driver.run(until: "the order of 1 RIGHT lamp completes", withinSeconds: 30) { $0.state == .complete }
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
    }

    // MARK: - Abort and recovery (replaces AbortRecoveryTests)

    /// The trace's periods from `start` on in which an arm was commanded ENABLE or STREAM, as text.
    static func powered(_ driver: CellDriver, from start: Int, to end: Int? = nil, where condition: (DrivenPeriod) -> Bool = { _ in true }) -> [String] {
        let periods = driver.trace[start..<(end ?? driver.trace.count)]
        return periods.filter(condition).flatMap { period in
            period.armCommands.indices.compactMap { arm -> String? in
                let command = period.armCommands[arm]
                guard command.contains(.enable) || command.contains(.stream) else { return nil }
                return "\(driver.models.armNames[arm]) commanded 0x\(String(command.rawValue, radix: 16)) in \(period.state) at \(virtualTime(period.nanoseconds))"
            }
        }
    }

    static func isAborted(_ state: PackMLState) -> Bool { state == .aborting || state == .aborted }

    @Test("e-stop in mid-motion: Aborted from the period that sees it, nothing enabled until Clear and Reset, lamp scrapped, production resumes without a setpoint jump")
    func estopMidMotion() throws {
        let driver = try CellDriver(seed: 11)
        try driver.produce(lamps: 2)
        try driver.run(until: "an arm moves with a lamp in the cell", withinSeconds: 40) {
            $0.state == .execute && $0.lampInCell != nil && $0.anyArmInMotion
        }
        let inCell = try #require(driver.lampInCell)
        let pressed = driver.trace.count
        driver.models.world.pressEstop()
        try driver.run(until: "Aborted after the e-stop", withinSeconds: 5) { $0.state == .aborted }
        #expect(driver.controller.lastFault?.code == .emergencyStop)
        let scrapped = try #require(driver.finished.first)
        #expect(scrapped.serial == inCell.serial)
        #expect(scrapped.verdict == .scrapped)
        #expect(scrapped.scrapReason == .aborted)

        // Nothing recovers by itself: not while the chain is open, nor after it closes until Clear and Reset.
        driver.run(seconds: 0.5)
        driver.models.world.releaseEstop()
        driver.run(seconds: 0.5)
        #expect(driver.state == .aborted)
        try driver.produce(lamps: 2)  // Clear, Reset (purge, home), Start
        try driver.run(until: "a lamp made after the recovery", withinSeconds: 60) { $0.finished.count >= 2 }

        let periods = driver.trace
        let firstOpen = try #require(periods[pressed...].firstIndex { !$0.safetyOK })
        #expect(Self.isAborted(periods[firstOpen].state), "the period that saw the chain open is \(periods[firstOpen].state)")
        #expect(periods[..<firstOpen].allSatisfy { !Self.isAborted($0.state) })
        let clearing = try #require(periods[firstOpen...].firstIndex { $0.state == .clearing })
        let resetting = try #require(periods[firstOpen...].firstIndex { $0.state == .resetting })
        #expect(clearing < resetting)
        let powered = Self.powered(driver, from: firstOpen, to: resetting)
        #expect(powered.isEmpty, "\(powered.prefix(3))")
        // The only arm faults are the e-stop's; no setpoint jump, following error or watchdog.
        #expect(driver.armFaults.allSatisfy { $0.code == ArmFaultCode.estop }, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
        #expect(driver.finished.last?.verdict == .ok, "\(driver.finished.map(\.line))")
        // Every housing that entered left exactly once: the scrapped one to the reject bin at Reset.
        let exits = driver.models.world.exits
        #expect(exits.count == driver.finished.count)
        #expect(exits.first?.destination == .reject)
        #expect(exits.first?.housingLot == scrapped.housingLot)
    }

    @Test("a lost arm connection aborts; after the arm is back, Clear/Reset/Start resumes production")
    func lostArm() throws {
        let driver = try CellDriver(seed: 12)
        try driver.produce(lamps: 2)
        try driver.run(until: "an arm moves with a lamp in the cell", withinSeconds: 40) {
            $0.state == .execute && $0.lampInCell != nil && $0.anyArmInMotion
        }
        let assembler = try #require(driver.armIndex("assembler"))
        let cut = driver.trace.count
        driver.cell.makeUnreachable(device: assembler, untilNanoseconds: .max)
        try driver.run(until: "Aborted after the assembler's link was cut", withinSeconds: 5) { $0.state == .aborted }
        #expect(driver.controller.lastFault?.code == .deviceLost)
        #expect(driver.controller.lastFault?.deviceIndex == UInt8(assembler))
        // The controller notices before the arm's own watchdog (100 ms) would.
        let aborting = try #require(driver.trace[cut...].firstIndex { Self.isAborted($0.state) })
        let noticed = driver.trace[aborting].nanoseconds - driver.trace[cut].nanoseconds
        #expect(
            noticed <= UInt64(driver.cell.settings.armWatchdogMilliseconds) * 1_000_000,
            "aborted \(virtualTime(noticed)) after the link was cut")
        #expect(driver.finished.first?.verdict == .scrapped)
        #expect(driver.finished.first?.scrapReason == .aborted)

        // Clear is refused while the arm does not answer, naming the reason.
        driver.run(seconds: 1)
        let refusal = try driver.command(.clear)
        #expect(refusal?.contains("arm not answering") == true, "\(refusal ?? "Clear accepted")")
        #expect(driver.state == .aborted)

        driver.cell.makeUnreachable(device: assembler, untilNanoseconds: 0)
        try driver.produce(lamps: 2, withinSeconds: 60)
        try driver.run(until: "a lamp made after the recovery", withinSeconds: 60) {
            $0.finished.count >= 2
        }
        #expect(driver.finished.last?.verdict == .ok, "\(driver.finished.map(\.line))")
        let aborted = Self.powered(driver, from: cut) { Self.isAborted($0.state) }
        #expect(aborted.isEmpty, "\(aborted.prefix(3))")
        // The assembler's own watchdog may trip while it was cut off (0x0101); no arm jumped or lagged.
        #expect(
            driver.armFaults.allSatisfy { $0.code == ArmFaultCode.commWatchdog && $0.arm == "assembler" },
            "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
    }

    @Test("every RA-610 fault code aborts the cell, and Clear/Reset/Start brings it back to Execute")
    func everyFaultCode() throws {
        let codes: [UInt16] = [
            ArmFaultCode.commWatchdog, ArmFaultCode.setpointJump, ArmFaultCode.followingError,
            ArmFaultCode.positionLimit, ArmFaultCode.toolFault, ArmFaultCode.collision, ArmFaultCode.overtemperature,
            ArmFaultCode.estop,
        ]
        let driver = try CellDriver(seed: 13)
        let arms = ["loader", "assembler", "lens"]
        var lastArm = 0
        for (index, code) in codes.enumerated() {
            let name = "0x\(String(code, radix: 16)) (\(ArmFaultCode.name(code)))"
            try driver.produce(lamps: 50)
            if index > 0 {
                #expect(driver.models.arms[lastArm].faultCode == 0, "the previous fault is still latched before \(name)")
            }
            try driver.run(until: "an arm moves in Execute before \(name)", withinSeconds: 20) {
                $0.state == .execute && $0.anyArmInMotion
            }
            let arm = try #require(driver.armIndex(arms[index % arms.count]))
            lastArm = arm
            let injected = driver.trace.count
            driver.models.arms[arm].injectFault(code: code)
            try driver.run(until: "Aborted after \(name) on \(arms[index % arms.count])", withinSeconds: 5) {
                $0.state == .aborted
            }
            #expect(driver.controller.lastFault?.deviceIndex == UInt8(arm), "\(name): \(driver.status)")
            // The operator takes a moment to react: meanwhile nothing is enabled, and every servo goes off.
            driver.run(seconds: 0.5)
            #expect(driver.state == .aborted)
            let powered = Self.powered(driver, from: injected) { Self.isAborted($0.state) }
            #expect(powered.isEmpty, "\(name): \(powered.prefix(3))")
            let enabled = driver.cell.image.armInputs.indices.filter {
                driver.cell.image.armInputs[$0].status.contains(.enabled)
            }
            #expect(enabled.isEmpty, "\(name): servos still on in Aborted: \(enabled.map { driver.models.armNames[$0] })")
        }
        try driver.produce(lamps: 50)
        #expect(driver.state == .execute)
        #expect(driver.models.arms.allSatisfy { $0.faultCode == 0 }, "a fault stayed latched after the last recovery")
        // Only the injected faults were latched: recovery itself never tripped an arm.
        let injected = Set(codes)
        #expect(driver.armFaults.allSatisfy { injected.contains($0.code) }, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
        // Every lamp interrupted by an abort is accounted as scrapped, for that reason.
        #expect(driver.finished.allSatisfy { $0.verdict != .scrapped || $0.scrapReason == .aborted }, "\(driver.finished.map(\.line))")
    }

    @Test("the guard door opened in Execute aborts; Clear is refused while it is open, naming the guard")
    func guardDoorOpen() throws {
        let driver = try CellDriver(seed: 14)
        try driver.produce(lamps: 2)
        try driver.run(until: "a lamp in the cell", withinSeconds: 40) { $0.lampInCell != nil }
        let inCell = try #require(driver.lampInCell)
        try #require(driver.state == .execute)
        let opened = driver.trace.count
        driver.models.world.openGuard()
        try driver.run(until: "Aborted after the guard door opened", withinSeconds: 1) { $0.state == .aborted }
        let firstOpen = try #require(driver.trace[opened...].firstIndex { !$0.safetyOK })
        #expect(Self.isAborted(driver.trace[firstOpen].state), "the period that saw the guard open is \(driver.trace[firstOpen].state)")
        let fault = try #require(driver.controller.lastFault)
        #expect(fault.code == .safetyInterlock)
        #expect("\(fault.message)".contains("guard"), "\(fault.message)")
        #expect(driver.finished.first?.serial == inCell.serial)
        #expect(driver.finished.first?.verdict == .scrapped)
        #expect(driver.finished.first?.scrapReason == .aborted)

        driver.run(seconds: 1)
        let refusal = try #require(try driver.command(.clear), "Clear was accepted with the guard door open")
        #expect(refusal.contains("guard"), "\(refusal)")
        driver.run(seconds: 1)
        #expect(driver.state == .aborted)

        driver.models.world.closeGuard()
        let closed = driver.trace.count
        try driver.produce(lamps: 2)
        try driver.run(until: "a lamp made after the guard closed", withinSeconds: 60) { $0.finished.count >= 2 }
        #expect(driver.finished.last?.verdict == .ok, "\(driver.finished.map(\.line))")
        // No arm was enabled from the guard opening until it was closed, nor while aborted after.
        let whileOpen = Self.powered(driver, from: opened, to: closed)
        #expect(whileOpen.isEmpty, "\(whileOpen.prefix(3))")
        let aborted = Self.powered(driver, from: closed) { Self.isAborted($0.state) }
        #expect(aborted.isEmpty, "\(aborted.prefix(3))")
        // The open guard breaks the safety chain: the arms latch ESTOP, and nothing else.
        #expect(driver.armFaults.allSatisfy { $0.code == ArmFaultCode.estop }, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
    }

    @Test("an e-stop abort, released and cleared, then the guard opened in Stopped: the stop reason and Clear's refusal name the guard")
    func secondAbortNamesTheGuard() throws {
        let driver = try CellDriver(seed: 16)
        try driver.produce(lamps: 2)
        try driver.run(until: "Execute", withinSeconds: 40) { $0.state == .execute }
        driver.models.world.pressEstop()
        try driver.run(until: "Aborted after the e-stop", withinSeconds: 1) { $0.state == .aborted }
        #expect(driver.controller.unit.machine.stopReason?.cause.code == .emergencyStop)
        #expect(driver.controller.unit.machine.stopReason?.state == .execute)
        driver.models.world.releaseEstop()
        driver.run(seconds: 1)
        #expect(try driver.command(.clear) == nil, "Clear refused with the e-stop released")
        try driver.run(until: "Stopped after Clear", withinSeconds: 10) { $0.state == .stopped }
        // The operator is told what stopped the cell last: still the e-stop.
        #expect(driver.controller.unit.machine.stopReason?.cause.code == .emergencyStop)

        driver.models.world.openGuard()
        try driver.run(until: "Aborted after the guard opened in Stopped", withinSeconds: 1) { $0.state == .aborted }
        let reason = try #require(driver.controller.unit.machine.stopReason)
        #expect(reason.cause.code == .safetyInterlock && "\(reason.cause.message)".contains("guard"), "\(reason)")
        #expect(reason.state == .stopped, "\(reason)")
        let refusal = try #require(try driver.command(.clear), "Clear was accepted with the guard door open")
        #expect(refusal.contains("guard"), "\(refusal)")
        #expect(!refusal.contains("emergency"), "\(refusal)")
    }

    @Test("Maintenance runs the recipe without an order and keeps its lamps out of the order counts; Manual refuses Start; no mode change while moving")
    func unitModes() throws {
        let driver = try CellDriver(seed: 17)
        driver.run(seconds: 1)
        try #require(driver.state == .stopped)
        #expect(try driver.request(.mode(.manual)).refusal == nil)
        #expect(try driver.command(.reset) == nil)
        try driver.run(until: "Idle in Manual", withinSeconds: 30) { $0.state == .idle }
        let manualStart = try #require(try driver.command(.start), "Start was accepted in Manual")
        #expect(manualStart.contains("commissioning tools"), "\(manualStart)")

        #expect(try driver.request(.mode(.maintenance)).refusal == nil)
        #expect(try driver.command(.start) == nil, "Maintenance starts without an order")
        try driver.run(until: "a lamp made in Maintenance", withinSeconds: 60) { $0.finished.count >= 1 }
        #expect(driver.state == .execute)
        let refused = try #require(try driver.request(.mode(.production)).refusal, "a mode change was accepted in Execute")
        #expect(refused.reason == .notAcceptedInState)
        let counters = driver.controller.unit.counters
        #expect(counters.processed.count == 0, "a Maintenance lamp counted toward the order counts")
        #expect(counters.processed.accumulated >= 1)
        #expect(driver.controller.unit.machine.mode == .maintenance)

        #expect(try driver.command(.stop) == nil)
        try driver.run(until: "Stopped", withinSeconds: 30) { $0.state == .stopped }
        #expect(try driver.request(.mode(.production)).refusal == nil)
        #expect(driver.controller.unit.machine.mode == .production)
        // Mode times (PackTags ModeCumulativeTime) were kept for Maintenance.
        #expect(driver.controller.unit.machine.times.modeCumulativeNanoseconds(.maintenance) > 10_000_000_000)
    }

    @Test("Reset after an abort purges the cell: the lamp in the fixture is recorded scrapped and goes to the reject bin, the arms go home")
    func resetPurgesTheCell() throws {
        let driver = try CellDriver(seed: 15)
        try driver.produce(lamps: 2)
        try driver.run(until: "a housing with its LED module in the fixture, recorded", withinSeconds: 60) {
            $0.models.world.fixturePart?.ledModuleLot != nil && $0.lampInCell.map { $0.ledModuleLot != 0 } == true
        }
        let lamp = try #require(driver.lampInCell)
        let part = try #require(driver.models.world.fixturePart)
        #expect(try driver.command(.abort) == nil)
        try driver.run(until: "Aborted after the Abort command", withinSeconds: 5) { $0.state == .aborted }

        // Recorded scrapped at once, with what was known of it.
        try #require(driver.finished.count == 1, "\(driver.finished.map(\.line))")
        let scrapped = driver.finished[0]
        #expect(scrapped.serial == lamp.serial)
        #expect(scrapped.verdict == .scrapped)
        #expect(scrapped.scrapReason == .aborted)
        #expect(scrapped.housingLot == part.housingLot)
        #expect(scrapped.ledModuleLot == part.ledModuleLot)
        #expect(driver.lampInCell == nil)
        // Physically it is still in the fixture.
        #expect(driver.models.world.fixturePart?.id == part.id)
        #expect(driver.models.world.exits.isEmpty)

        #expect(try driver.command(.clear) == nil)
        try driver.run(until: "Stopped after Clear", withinSeconds: 10) { $0.state == .stopped }
        #expect(try driver.command(.reset) == nil)
        try driver.run(until: "Idle after Reset", withinSeconds: 60) { $0.state == .idle }
        #expect(driver.models.world.fixturePart == nil, "the fixture was not emptied")
        let exit = try #require(driver.models.world.exits.first, "the scrapped lamp did not leave the cell")
        #expect(exit.partID == part.id)
        #expect(exit.destination == .reject)
        #expect(driver.models.world.exits.count == 1)
        #expect(driver.finished.count == 1, "the purge recorded the lamp again: \(driver.finished.map(\.line))")
        let loader = driver.cell.compiledCell.loaderArm
        #expect(!driver.cell.image.armInputs[loader].toolState.contains(.holdingPart))
        for (index, arm) in driver.cell.compiledCell.arms.enumerated() {
            let home = arm.points[arm.homePoint].positionsRadians
            let error = driver.cell.image.armInputs[index].actualPositionsRadians - home
            let worst = (0..<armJointCount).map { abs(error[$0]) }.max() ?? 0
            #expect(worst < 0.01, "\(arm.name) is \(worst) rad from home after Reset")
        }

        // Start: the next housing makes a new lamp with a new serial.
        #expect(try driver.command(.start) == nil)
        try driver.run(until: "a lamp made after the Reset", withinSeconds: 60) { $0.finished.count >= 2 }
        #expect(driver.finished[1].verdict == .ok, "\(driver.finished[1].line)")
        #expect(driver.finished[1].serial.sequence > lamp.serial.sequence)
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
    }

    // MARK: - Suspend, hold (replaces InterlockTests)

    @Test("no housings: Suspended (starved); housings back: Execute, and the lamp is made")
    func starvedHousings() throws {
        let driver = try CellDriver(seed: 31)
        driver.models.world.starveHousings(true)
        try driver.produce(lamps: 1)
        try driver.run(until: "Suspended for want of housings", withinSeconds: 20) { $0.state == .suspended }
        #expect(driver.controller.unit.machine.suspendCause == .starved)
        #expect(driver.controller.materialWaitShown == .housing)
        #expect(driver.started.isEmpty, "a lamp was started without a housing")
        // It stays suspended while starved.
        let breach = driver.firstBreach(duringSeconds: 5) { $0.state == .suspended }
        #expect(breach == nil, "\(breach ?? "")")
        driver.models.world.starveHousings(false)
        try driver.run(until: "Execute once housings are back", withinSeconds: 20) { $0.state == .execute }
        try driver.run(until: "a lamp left the cell", withinSeconds: 60) { $0.finished.count >= 1 }
        #expect(driver.finished[0].verdict == .ok, "\(driver.finished[0].line)")
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
    }

    @Test("outfeed blocked: Suspended (blocked) before the unload; clear again: Execute, the lamp goes out")
    func blockedOutfeed() throws {
        let driver = try CellDriver(seed: 32)
        driver.models.world.blockOutfeed(true)
        try driver.produce(lamps: 1)
        try driver.run(until: "Suspended with the outfeed blocked", withinSeconds: 60) { $0.state == .suspended }
        #expect(driver.controller.unit.machine.suspendCause == .blocked)
        #expect(driver.controller.materialWaitShown == .outfeed)
        #expect(driver.lampInCell != nil)
        #expect(driver.models.world.exits.isEmpty, "the lamp was unloaded onto a blocked outfeed")
        let breach = driver.firstBreach(duringSeconds: 5) { $0.state == .suspended && $0.models.world.exits.isEmpty }
        #expect(breach == nil, "\(breach ?? "")")
        driver.models.world.blockOutfeed(false)
        try driver.run(until: "Execute once the outfeed is clear", withinSeconds: 20) {
            $0.state == .execute || $0.state == .complete
        }
        try driver.run(until: "the lamp left the cell", withinSeconds: 30) { $0.finished.count >= 1 }
        #expect(driver.finished[0].verdict == .ok, "\(driver.finished[0].line)")
        #expect(driver.models.world.lampsLeftToOutfeed == 1)
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
    }

    @Test("Hold finishes the steps under way and holds with every arm at rest; Unhold resumes and the lamp is OK")
    func holdAndUnhold() throws {
        let driver = try CellDriver(seed: 33)
        try driver.produce(lamps: 1)
        try driver.run(until: "an arm moves with a lamp in the cell", withinSeconds: 40) {
            $0.state == .execute && $0.lampInCell != nil && $0.anyArmInMotion
        }
        let lamp = try #require(driver.lampInCell)
        let moving = driver.armsInMotion
        #expect(try driver.command(.hold) == nil)
        try driver.run(until: "Held", withinSeconds: 20) { $0.state == .held }
        // The moves under way were finished, not cut short: every arm stands at one of its teach points.
        for (index, arm) in driver.cell.compiledCell.arms.enumerated() {
            let inputs = driver.cell.image.armInputs[index]
            #expect(!inputs.status.contains(.inMotion), "\(arm.name) moves in Held")
            #expect(inputs.status.contains(.inPosition), "\(arm.name) not in position in Held")
            #expect(!inputs.toolState.contains(.busy), "\(arm.name)'s tool is busy in Held")
            let distance = arm.points.map { point in
                (0..<armJointCount).map { abs(inputs.actualPositionsRadians[$0] - point.positionsRadians[$0]) }.max() ?? 0
            }.min() ?? .infinity
            #expect(distance < 0.01, "\(arm.name) held \(distance) rad from its nearest teach point (moving at Hold: \(moving))")
        }
        // Held is a safe point: nothing moves, the lamp stays in the cell.
        let breach = driver.firstBreach(duringSeconds: 1.5) {
            $0.state == .held && !$0.anyArmInMotion && $0.lampInCell?.serial == lamp.serial
        }
        #expect(breach == nil, "\(breach ?? "")")
        #expect(driver.finished.isEmpty)
        #expect(try driver.command(.unhold) == nil)
        try driver.run(until: "Execute after Unhold", withinSeconds: 5) { $0.state == .execute }
        try driver.run(until: "the lamp left the cell", withinSeconds: 60) { $0.finished.count >= 1 }
        #expect(driver.finished[0].serial == lamp.serial)
        #expect(driver.finished[0].verdict == .ok, "\(driver.finished[0].line)")
        #expect(driver.armFaults.isEmpty, "\(driver.armFaults)")
        #expect(driver.setpointJumps.isEmpty, "\(driver.setpointJumps.prefix(3))")
    }

    /// The loader's tool command and request id in this period's outputs, for the lamp-in-cell tests.
    private static func loaderTool(_ driver: CellDriver) -> (command: ArmToolCommand, requestID: UInt16) {
        let outputs = driver.cell.image.armOutputs[driver.cell.compiledCell.loaderArm]
        return (outputs.toolCommand, outputs.toolRequestID)
    }

    @Test("the lamp-in-cell record is durable before the housing grip goes out: the grip waits a period for the drain")
    func lampInCellRecordBeforeTheGrip() throws {
        let driver = try CellDriver(seed: 5)
        try driver.produce(lamps: 3)
        var startedAt: [UInt64: UInt64] = [:]
        var gripAt: [UInt64] = []
        var lastRequest = Self.loaderTool(driver).requestID
        try driver.run(until: "2 lamps finished", withinSeconds: 120) { driver in
            for lamp in driver.started where startedAt[lamp.serial.sequence] == nil {
                startedAt[lamp.serial.sequence] = driver.cell.nowNanoseconds
            }
            let grip = Self.loaderTool(driver)
            if grip.requestID != lastRequest {
                lastRequest = grip.requestID
                if grip.command == .grip, let lamp = driver.lampInCell, lamp.serial.sequence == driver.started.last?.serial.sequence,
                   gripAt.count < driver.started.count
                {
                    gripAt.append(driver.cell.nowNanoseconds)
                    // The record was reported durable in an earlier period than the one that sends the grip.
                    #expect((startedAt[lamp.serial.sequence] ?? .max) < driver.cell.nowNanoseconds,
                            "lamp \(lamp.serial.sequence): grip sent in the period its record was handed to the drain")
                }
            }
            return driver.finished.count >= 2
        }
        #expect(gripAt.count >= 2, "housing grips seen: \(gripAt.count)")
    }

    @Test("a lamp-in-cell record that cannot be written: no housing is gripped, the cell holds and says why; once written, Unhold resumes")
    func lampInCellRecordUnwritable() throws {
        let driver = try CellDriver(seed: 5)
        driver.recordsLampsInCell = false
        try driver.produce(lamps: 3)
        try driver.run(until: "a lamp opened at the infeed", withinSeconds: 60) { $0.lampInCell != nil }
        let request = Self.loaderTool(driver).requestID
        let housing = driver.models.world.housingAtInfeed?.id
        try driver.run(until: "the cell holds", withinSeconds: 5) { $0.state == .held }
        #expect(Self.loaderTool(driver).requestID == request, "no tool request while the record is missing")
        #expect(driver.models.world.housingAtInfeed?.id == housing && housing != nil, "the housing is still at the infeed")
        #expect(driver.controller.lastFault?.message.description.contains("lamp-in-cell record") == true,
                "\(String(describing: driver.controller.lastFault))")
        // Unhold while the record is still missing: no grip, and after the timeout, held again.
        #expect(try driver.command(.unhold) == nil)
        try driver.run(until: "back in Execute", withinSeconds: 2) { $0.state == .execute }
        try driver.run(until: "held again", withinSeconds: 5) { $0.state == .held }
        #expect(Self.loaderTool(driver).requestID == request, "still no tool request")
        // The state directory is writable again: the drain records the lamp; the operator unholds.
        let sequence = try #require(driver.lampInCell?.serial.sequence)
        driver.recordsLampsInCell = true
        driver.controller.lampInCellRecorded.store(sequence, ordering: .releasing)
        #expect(try driver.command(.unhold) == nil)
        try driver.run(until: "the lamp finished", withinSeconds: 60) { $0.finished.count >= 1 }
        #expect(driver.finished[0].serial.sequence == sequence && driver.finished[0].verdict == .ok)
    }
}
