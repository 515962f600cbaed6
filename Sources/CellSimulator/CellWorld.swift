// The simulated cell's physical state: where every part is, the safety relay, feeders and lots, hidden defects,
// and the world's own count of lamps that left the cell.

/// The lot numbers of one supply (infeed, LED feeder, lens feeder): each lot holds a number of parts drawn
/// uniformly from the configured range, then the next lot (number + 1) begins.
struct LotSequence {
    private(set) var lot: UInt32
    private var remainingInLot: Int
    private let sizeRange: ClosedRange<Int>

    init(firstLot: UInt32, sizeRange: ClosedRange<Int>, random: inout SimulationRandom) {
        lot = firstLot
        self.sizeRange = sizeRange
        remainingInLot = Int.random(in: sizeRange, using: &random)
    }

    /// The lot of the next part taken from this supply.
    mutating func take(random: inout SimulationRandom) -> UInt32 {
        let taken = lot
        remainingInLot -= 1
        if remainingInLot <= 0 {
            lot &+= 1
            remainingInLot = Int.random(in: sizeRange, using: &random)
        }
        return taken
    }
}

/// A feeder (LED modules or lenses): one item waits at the pick point; after a pick the next one arrives after
/// the refill time, unless the feeder is starved (then the pick point stays empty until starvation ends).
struct Feeder {
    var lots: LotSequence
    /// Lot of the item at the pick point; nil when none waits.
    var lotAtPickPoint: UInt32?
    var starved = false
    var refillRemainingNanoseconds: UInt64 = 0
    var picked = 0

    mutating func advance(byNanoseconds elapsed: UInt64, random: inout SimulationRandom) {
        guard lotAtPickPoint == nil else { return }
        refillRemainingNanoseconds -= min(refillRemainingNanoseconds, elapsed)
        if refillRemainingNanoseconds == 0, !starved {
            lotAtPickPoint = lots.take(random: &random)
        }
    }

    /// Steps of `stepNanoseconds` that end before this feeder's next item arrives (`.max` when none is due: an item
    /// waits, or the feeder is starved with its refill time spent).
    func stepsBeforeArrival(stepNanoseconds: UInt64) -> UInt64 {
        guard lotAtPickPoint == nil else { return .max }
        if refillRemainingNanoseconds == 0 { return starved ? .max : 0 }
        return (refillRemainingNanoseconds - 1) / stepNanoseconds
    }

    mutating func pick(refillNanoseconds: UInt64) -> UInt32? {
        guard let lot = lotAtPickPoint else { return nil }
        lotAtPickPoint = nil
        refillRemainingNanoseconds = refillNanoseconds
        picked += 1
        return lot
    }
}

/// The physical cell, as the simulated devices see it.
///
/// Parts flow decided by the arms' tools (`toolFinished`, by the location the arm is at) and by the station
/// (`TS200Model`: infeed and outfeed conveyors, fixture clamp, testers). The world never lets a part vanish: a
/// release where the part cannot go ends in ERROR with the part still in the gripper, and a lamp is counted as
/// having left the cell exactly once, when it is released onto the outfeed or into the reject bin.
///
/// Tool rules (`toolFinished`), by command and the arm's location:
/// - GRIP: `.infeed` takes the waiting housing; `.ledFeeder`/`.lensFeeder` take the waiting LED module/lens;
///   `.fixture` takes the part when the clamp is open (clamp closed on a part: ERROR, nothing taken). Nothing to
///   take (empty place, any other location): DONE, result 0, not holding. A gripper that already holds something
///   keeps it: DONE, result 1. Result 1 whenever a part is held afterwards.
/// - RELEASE: a housing/lamp into an empty, open fixture; an LED module onto the *clamped* fixture part that has
///   neither LED module nor lens; a lens onto the clamped fixture part that has no lens; a lamp onto a clear
///   outfeed or into a bin that is not full (the lamp leaves the cell); a loose LED module or lens into the reject
///   bin (discarded, counted). Anything else: ERROR, still holding. Releasing an empty gripper: DONE, result 0.
/// - SCREW / PRESS: on the clamped fixture part only (else ERROR, result 0). SCREW achieves
///   param × (1 + N(0, σ)) (a `.screw` part: 60–85 % of param); PRESS peaks at param × (1 + N(0, σ)) (a `.press`
///   part: 15–30 % over or under). The value is recorded on the part.
/// - DISPENSE_ON: DONE, result 0. DISPENSE_OFF: DONE, result = ml × 100; the glue goes onto the part in the
///   fixture (the dispenser reaches only the fixture in this cell), or is counted as wasted when there is none.
/// - NONE: DONE, result 0, holding unchanged.
///
/// Thread: not thread-safe; stepped and called by one thread at a time (the one stepping the cell's models).
/// `advance(byNanoseconds:)` does not allocate; part events (tool ends, lamp exits) may.
public final class CellWorld: ArmToolWorld {
    /// The configuration the world was built from.
    public let configuration: CellWorldConfiguration
    private var random: SimulationRandom
    private let teachLocations: [String: [TeachLocation]]

    /// World time, ns (advanced by `advance(byNanoseconds:)`; `TS200Model.step()` does this).
    public private(set) var timeNanoseconds: UInt64 = 0

    // MARK: Safety relay

    /// An e-stop button is pressed.
    public private(set) var estopPressed = false
    /// The guard door is open.
    public private(set) var guardOpen = false

    /// The hardware safety chain (e-stops and guard door in series) is closed.
    public var safetyChainClosed: Bool { !estopPressed && !guardOpen }

    /// Presses an e-stop button (opens the safety chain).
    public func pressEstop() { estopPressed = true }
    /// Releases the e-stop button.
    public func releaseEstop() { estopPressed = false }
    /// Opens the guard door (opens the safety chain).
    public func openGuard() { guardOpen = true }
    /// Closes the guard door.
    public func closeGuard() { guardOpen = false }

    // MARK: Infeed

    /// The housing waiting at the infeed pick point, if any.
    public private(set) var housingAtInfeed: SimPart?
    /// No more housings arrive at the infeed while set.
    public private(set) var housingsStarved = false
    private var housingLots: LotSequence
    private var nextPartID: UInt64 = 1
    /// Housings presented at the infeed so far.
    public private(set) var housingsPresented = 0

    /// Starts or ends housing starvation: while starved, an infeed index presents no housing.
    public func starveHousings(_ starved: Bool) { housingsStarved = starved }

    /// The infeed conveyor finished an index: presents a new housing (current housing lot, hidden defect by seed)
    /// unless one already waits or the infeed is starved. Returns whether a new housing arrived. Called by the station.
    @discardableResult
    public func presentNextHousing() -> Bool {
        guard housingAtInfeed == nil, !housingsStarved else { return false }
        let lot = housingLots.take(random: &random)
        var defect = PartDefect.none
        if Double.random(in: 0..<1, using: &random) < configuration.defectRate {
            switch Int.random(in: 0..<4, using: &random) {
            case 0: defect = .screw
            case 1: defect = .press
            case 2: defect = .leak
            default: defect = .light
            }
        }
        housingAtInfeed = SimPart(id: nextPartID, housingLot: lot, defect: defect)
        nextPartID += 1
        housingsPresented += 1
        return true
    }

    // MARK: Feeders

    private var ledFeeder: Feeder
    private var lensFeeder: Feeder

    /// Lot of the LED module waiting at its pick point; nil when none waits.
    public var ledModuleLotAtPickPoint: UInt32? { ledFeeder.lotAtPickPoint }
    /// Lot of the lens waiting at its pick point; nil when none waits.
    public var lensLotAtPickPoint: UInt32? { lensFeeder.lotAtPickPoint }
    /// LED modules picked so far.
    public var ledModulesPicked: Int { ledFeeder.picked }
    /// Lenses picked so far.
    public var lensesPicked: Int { lensFeeder.picked }

    /// Starts or ends LED-module starvation: the module waiting stays, no new one arrives while starved.
    public func starveLEDModules(_ starved: Bool) { ledFeeder.starved = starved }
    /// Starts or ends lens starvation: the lens waiting stays, no new one arrives while starved.
    public func starveLenses(_ starved: Bool) { lensFeeder.starved = starved }

    // MARK: Fixture

    /// The part lying in the fixture, if any.
    public private(set) var fixturePart: SimPart?
    /// The fixture clamp is closed (set by the station at the end of a clamp motion).
    public private(set) var fixtureClampClosed = false
    /// The clamp is closed on a part (`FIXTURE_CLAMPED`).
    public var partClamped: Bool { fixtureClampClosed && fixturePart != nil }

    /// The clamp finished moving to `closed`. Called by the station.
    public func setFixtureClamp(closed: Bool) { fixtureClampClosed = closed }

    /// Glue dispensed while no part lay in the fixture, ml.
    public private(set) var glueWastedMilliliters: Double = 0

    // MARK: Outfeed and reject bin

    /// The lamp standing on the outfeed place point (already counted as left), if any.
    public private(set) var lampAtOutfeed: SimPart?
    /// The outfeed is blocked downstream: its place point is not clear and it cannot index.
    public private(set) var outfeedBlocked = false
    /// The outfeed place point is free (`OUTFEED_CLEAR`).
    public var outfeedClear: Bool { lampAtOutfeed == nil && !outfeedBlocked }

    /// Blocks or unblocks the outfeed.
    public func blockOutfeed(_ blocked: Bool) { outfeedBlocked = blocked }

    /// The outfeed conveyor finished an index: the lamp on the place point moves away. Called by the station.
    public func outfeedIndexed() { lampAtOutfeed = nil }

    /// Lamps in the reject bin since it was last emptied.
    public private(set) var lampsInRejectBin = 0
    private var rejectBinForcedFull = false
    /// The reject bin is full (`REJECT_BIN_FULL`): by injection or by `rejectBinCapacity` lamps.
    public var rejectBinFull: Bool { rejectBinForcedFull || lampsInRejectBin >= configuration.rejectBinCapacity }

    /// Forces the reject bin to read full (true) or lifts that (false; it may still be full by count).
    public func setRejectBinFull(_ full: Bool) { rejectBinForcedFull = full }
    /// Empties the reject bin (count 0, not full).
    public func emptyRejectBin() {
        lampsInRejectBin = 0
        rejectBinForcedFull = false
    }

    /// Loose LED modules dropped into the reject bin.
    public private(set) var ledModulesDiscarded = 0
    /// Loose lenses dropped into the reject bin.
    public private(set) var lensesDiscarded = 0

    // MARK: Lamps that left the cell

    /// Every lamp that left the cell, in order: the world's ledger, independent of any controller.
    public private(set) var exits: [LampExit] = []
    /// Lamps released onto the outfeed.
    public private(set) var lampsLeftToOutfeed = 0
    /// Lamps released into the reject bin.
    public private(set) var lampsLeftToReject = 0

    // MARK: Grippers

    private var held: [String: HeldItem] = [:]

    /// What `arm`'s gripper holds, if anything.
    public func heldItem(arm: String) -> HeldItem? { held[arm] }

    /// Initial capacity of the exit log (avoids early reallocations).
    private static let exitLogInitialCapacity = 1024

    /// Builds the world. The configuration must pass `validate()` (a programming error otherwise: validate
    /// configurations loaded from files first). Feeders start with one item waiting; the infeed starts empty.
    public init(configuration: CellWorldConfiguration, random: SimulationRandom) {
        do {
            try configuration.validate()
        } catch {
            preconditionFailure("CellWorld: invalid configuration: \(error)")
        }
        self.configuration = configuration
        var random = random
        var locations: [String: [TeachLocation]] = [:]
        for arm in configuration.arms { locations[arm.arm] = arm.locations }
        teachLocations = locations
        housingLots = LotSequence(
            firstLot: configuration.initialLots.housing, sizeRange: configuration.lotSizeRange, random: &random)
        var ledFeeder = Feeder(
            lots: LotSequence(
                firstLot: configuration.initialLots.ledModule, sizeRange: configuration.lotSizeRange, random: &random))
        var lensFeeder = Feeder(
            lots: LotSequence(
                firstLot: configuration.initialLots.lens, sizeRange: configuration.lotSizeRange, random: &random))
        ledFeeder.advance(byNanoseconds: 0, random: &random)
        lensFeeder.advance(byNanoseconds: 0, random: &random)
        self.ledFeeder = ledFeeder
        self.lensFeeder = lensFeeder
        self.random = random
        exits.reserveCapacity(Self.exitLogInitialCapacity)
    }

    /// Advances world time (feeder refills). Called by `TS200Model.step()`; does not allocate.
    public func advance(byNanoseconds elapsed: UInt64) {
        timeNanoseconds &+= elapsed
        ledFeeder.advance(byNanoseconds: elapsed, random: &random)
        lensFeeder.advance(byNanoseconds: elapsed, random: &random)
    }

    /// Steps of `stepNanoseconds` that end before a feeder presents its next item (see `Feeder.stepsBeforeArrival`):
    /// `advance` over fewer steps changes nothing but time and the refill timers. Does not allocate.
    public func stepsBeforeFeederEvent(stepNanoseconds: UInt64) -> UInt64 {
        min(ledFeeder.stepsBeforeArrival(stepNanoseconds: stepNanoseconds),
            lensFeeder.stepsBeforeArrival(stepNanoseconds: stepNanoseconds))
    }

    /// The location `arm` is at with its joints at `jointPositionsRadians`: the first teach location whose every
    /// joint is within `positionToleranceRadians`; `.none` for an unknown arm or no match.
    public func location(arm: String, jointPositionsRadians: [Double]) -> WorldLocation {
        guard let locations = teachLocations[arm] else { return .none }
        let tolerance = configuration.positionToleranceRadians
        for candidate in locations where candidate.poseRadians.count == jointPositionsRadians.count {
            var inside = true
            for joint in 0..<jointPositionsRadians.count
            where !(abs(jointPositionsRadians[joint] - candidate.poseRadians[joint]) <= tolerance) {
                inside = false
                break
            }
            if inside { return candidate.location }
        }
        return .none
    }

    // MARK: Tools

    /// A tool request of `arm` ended with the arm at `jointPositionsRadians`: moves parts by the rules in the type's
    /// documentation and returns the outcome. Called by `RA610Model` while the cell is stepped.
    public func toolFinished(
        arm: String, command: ToolCommand, param: UInt16, jointPositionsRadians: [Double],
        dispensedMilliliters: Double, random: inout SimulationRandom
    ) -> ToolOutcome {
        let location = location(arm: arm, jointPositionsRadians: jointPositionsRadians)
        switch command {
        case .none, .dispenseOn:
            return done(0, arm: arm)
        case .grip:
            return grip(arm: arm, at: location)
        case .release:
            return release(arm: arm, at: location)
        case .screw:
            return screw(arm: arm, at: location, param: param, random: &random)
        case .press:
            return press(arm: arm, at: location, param: param, random: &random)
        case .dispenseOff:
            let volume = dispensedMilliliters.isFinite ? max(0, dispensedMilliliters) : 0
            if fixturePart != nil {
                fixturePart?.glueMilliliters += volume
            } else {
                glueWastedMilliliters += volume
            }
            return done(Self.clampedUInt16(volume * 100), arm: arm)
        }
    }

    private func done(_ result: UInt16, arm: String) -> ToolOutcome {
        ToolOutcome(succeeded: true, result: result, holdingPart: held[arm] != nil)
    }

    private func error(arm: String) -> ToolOutcome {
        ToolOutcome(succeeded: false, result: 0, holdingPart: held[arm] != nil)
    }

    private func grip(arm: String, at location: WorldLocation) -> ToolOutcome {
        if held[arm] != nil { return done(1, arm: arm) }
        switch location {
        case .infeed:
            guard let housing = housingAtInfeed else { return done(0, arm: arm) }
            housingAtInfeed = nil
            held[arm] = .part(housing)
        case .ledFeeder:
            guard let lot = ledFeeder.pick(refillNanoseconds: configuration.feederRefillNanoseconds) else {
                return done(0, arm: arm)
            }
            held[arm] = .ledModule(lot: lot)
        case .lensFeeder:
            guard let lot = lensFeeder.pick(refillNanoseconds: configuration.feederRefillNanoseconds) else {
                return done(0, arm: arm)
            }
            held[arm] = .lens(lot: lot)
        case .fixture:
            guard let part = fixturePart else { return done(0, arm: arm) }
            if fixtureClampClosed { return error(arm: arm) }
            fixturePart = nil
            held[arm] = .part(part)
        case .outfeed, .reject, .none:
            return done(0, arm: arm)
        }
        return done(1, arm: arm)
    }

    private func release(arm: String, at location: WorldLocation) -> ToolOutcome {
        guard let item = held[arm] else { return done(0, arm: arm) }
        switch (item, location) {
        case (.part(let part), .fixture):
            guard fixturePart == nil, !fixtureClampClosed else { return error(arm: arm) }
            fixturePart = part
        case (.ledModule(let lot), .fixture):
            guard partClamped, let part = fixturePart, !part.ledModuleInstalled, !part.lensPlaced else {
                return error(arm: arm)
            }
            fixturePart?.ledModuleLot = lot
        case (.lens(let lot), .fixture):
            guard partClamped, let part = fixturePart, !part.lensPlaced else { return error(arm: arm) }
            fixturePart?.lensLot = lot
        case (.part(let part), .outfeed):
            guard outfeedClear else { return error(arm: arm) }
            lampAtOutfeed = part
            lampsLeftToOutfeed += 1
            exits.append(LampExit(part: part, destination: .outfeed, timeNanoseconds: timeNanoseconds))
        case (.part(let part), .reject):
            guard !rejectBinFull else { return error(arm: arm) }
            lampsInRejectBin += 1
            lampsLeftToReject += 1
            exits.append(LampExit(part: part, destination: .reject, timeNanoseconds: timeNanoseconds))
        case (.ledModule, .reject):
            guard !rejectBinFull else { return error(arm: arm) }
            ledModulesDiscarded += 1
        case (.lens, .reject):
            guard !rejectBinFull else { return error(arm: arm) }
            lensesDiscarded += 1
        default:
            return error(arm: arm)
        }
        held[arm] = nil
        return done(0, arm: arm)
    }

    private func screw(arm: String, at location: WorldLocation, param: UInt16, random: inout SimulationRandom)
        -> ToolOutcome
    {
        guard location == .fixture, partClamped, let part = fixturePart else { return error(arm: arm) }
        let target = Double(param)
        let achieved: Double
        if part.defect == .screw {
            achieved = target * Double.random(in: configuration.screwDefectTorqueFractionRange, using: &random)
        } else {
            achieved = target * (1 + random.normal() * configuration.screwTorqueNoiseFraction)
        }
        let result = Self.clampedUInt16(achieved)
        fixturePart?.screwTorquesHundredthsNewtonMetre.append(result)
        return done(result, arm: arm)
    }

    private func press(arm: String, at location: WorldLocation, param: UInt16, random: inout SimulationRandom)
        -> ToolOutcome
    {
        guard location == .fixture, partClamped, let part = fixturePart else { return error(arm: arm) }
        let target = Double(param)
        let peak: Double
        if part.defect == .press {
            let deviation = Double.random(in: configuration.pressDefectDeviationFractionRange, using: &random)
            peak = target * (Bool.random(using: &random) ? 1 + deviation : 1 - deviation)
        } else {
            peak = target * (1 + random.normal() * configuration.pressForceNoiseFraction)
        }
        let result = Self.clampedUInt16(peak)
        fixturePart?.pressForcesNewton.append(result)
        return done(result, arm: arm)
    }

    // MARK: Measurements (called by the station's testers)

    /// Leak rate reported when no part is clamped: the open test head cannot hold pressure (saturated reading).
    public static let leakRateWithoutPart: UInt16 = 0xFFFF

    /// A leak test of the clamped part against `nominals`: nominal ± tolerance (uniform) for a good lamp; a leaking
    /// one (`.leak` defect, glue below `minimumGlueMilliliters`, or no lens) reads within `defectLeakRateRange`.
    /// No clamped part: `leakRateWithoutPart`. The result is recorded on the part. Called by the station.
    public func measureLeakRate(nominals: LampVariantNominals, random: inout SimulationRandom) -> UInt16 {
        guard partClamped, let part = fixturePart else { return Self.leakRateWithoutPart }
        let leaking = part.defect == .leak || !part.lensPlaced
            || part.glueMilliliters < configuration.minimumGlueMilliliters
        let value =
            leaking
            ? Double.random(in: configuration.defectLeakRateRange, using: &random)
            : Double.random(in: nominals.leakRateWindow, using: &random)
        let result = Self.clampedUInt16(value)
        fixturePart?.lastLeakRateHundredths = result
        return result
    }

    /// A photometric test of the clamped part against `nominals`: intensity and cut-off uniform within the good
    /// windows; a `.light` defect reads 60–80 % intensity and a cut-off within `defectCutoffAngleRange`. No clamped
    /// part or no LED module: intensity 0 and cut-off 0 (no light). The result is recorded on the part.
    public func measureLight(nominals: LampVariantNominals, random: inout SimulationRandom)
        -> (luminousIntensityCandela: UInt16, cutoffAngleHundredthsDegree: Int16)
    {
        guard partClamped, let part = fixturePart, part.ledModuleInstalled else { return (0, 0) }
        var intensity = Double.random(in: nominals.luminousIntensityWindow, using: &random)
        var cutoff = Double.random(in: nominals.cutoffAngleWindow, using: &random)
        if part.defect == .light {
            intensity = nominals.luminousIntensityCandela
                * Double.random(in: configuration.defectIntensityFractionRange, using: &random)
            cutoff = Double.random(in: configuration.defectCutoffAngleRange, using: &random)
        }
        let result = (Self.clampedUInt16(intensity), Self.clampedInt16(cutoff))
        fixturePart?.lastLuminousIntensityCandela = result.0
        fixturePart?.lastCutoffAngleHundredthsDegree = result.1
        return result
    }

    static func clampedUInt16(_ value: Double) -> UInt16 {
        guard value.isFinite else { return value > 0 ? .max : 0 }
        return UInt16(clamping: Int(max(-1, min(Double(UInt16.max) + 1, value.rounded()))))
    }

    static func clampedInt16(_ value: Double) -> Int16 {
        guard value.isFinite else { return value > 0 ? .max : .min }
        return Int16(clamping: Int(max(Double(Int16.min) - 1, min(Double(Int16.max) + 1, value.rounded()))))
    }
}
