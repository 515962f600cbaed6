import CellCore

/// The fault-injection commands of `lampsim` (one text line each), shared by the executable and its tests.
/// Thread: any; each command takes the cell's lock.
public struct FaultConsole: Sendable {
    /// What `execute` returns for `quit`.
    public static let quit = "\u{4}quit"

    public let server: SimulatedCellServer

    public init(server: SimulatedCellServer) { self.server = server }

    public static let help = """
        commands:
          status                         world counters and every device's state
          estop press|release            the e-stop button (opens/closes the safety chain)
          guard open|close               the guard door
          fault <arm> <code>             latch an RA-610 fault, e.g. fault loader 0x0401 (COLLISION)
          station-fault <code>|clear     0x1001 INFEED_JAM, 0x1002 CLAMP_FAULT, 0x1003 TESTER_FAULT
          jam | unjam                    jam the infeed / clear the jam
          starve housings|leds|lenses on|off
          block outfeed on|off
          reject-bin full|empty
          drop <device>                  close the device's client connections now
          delay <device> <ms>            answer every request that late (0: on time)
          silent <device> on|off         receive requests but never answer
          refuse <device> on|off         accept connections and close them at once (device down)
          quit
        """

    /// Runs one command line; returns the reply text ("" for none, `quit` to end).
    public func execute(_ line: String) -> String {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let verb = words.first else { return "" }
        let args = Array(words.dropFirst())
        func on(_ word: String?) -> Bool? {
            switch word {
            case "on", "true", "1", "full", "press", "open": true
            case "off", "false", "0", "empty", "release", "close": false
            default: nil
            }
        }
        let cell = server.cell
        switch (verb, args.count) {
        case ("help", _): return Self.help
        case ("quit", _), ("exit", _): return Self.quit
        case ("status", _): return status()
        case ("estop", 1):
            guard let press = on(args[0]) else { return "usage: estop press|release" }
            cell.withModels { press ? $0.world.pressEstop() : $0.world.releaseEstop() }
            return "e-stop \(press ? "pressed" : "released")"
        case ("guard", 1):
            guard let open = on(args[0]) else { return "usage: guard open|close" }
            cell.withModels { open ? $0.world.openGuard() : $0.world.closeGuard() }
            return "guard \(open ? "open" : "closed")"
        case ("fault", 2):
            guard let code = Self.parseCode(args[1]) else { return "fault: \(args[1]) is not a fault code" }
            let found = cell.withModels { models -> Bool in
                guard let arm = models.arm(named: args[0]) else { return false }
                arm.injectFault(code: code)
                return true
            }
            return found ? "\(args[0]): fault 0x\(String(code, radix: 16)) injected" : "fault: no arm \(args[0])"
        case ("station-fault", 1):
            if args[0] == "clear" {
                cell.withModels { $0.station.clearFault() }
                return "station fault cleared"
            }
            guard let raw = Self.parseCode(args[0]), let code = TS200Model.FaultCode(rawValue: raw) else {
                return "station-fault: \(args[0]) is not a TS-200 fault code (0x1001, 0x1002, 0x1003)"
            }
            cell.withModels { $0.station.injectFault(code: code) }
            return "station fault 0x\(String(raw, radix: 16)) injected"
        case ("jam", 0):
            cell.withModels { $0.station.jamInfeed() }
            return "infeed jammed"
        case ("unjam", 0):
            cell.withModels { $0.station.clearInfeedJam() }
            return "infeed jam cleared"
        case ("starve", 2):
            guard let flag = on(args[1]) else { return "usage: starve housings|leds|lenses on|off" }
            let done = cell.withModels { models -> Bool in
                switch args[0] {
                case "housings": models.world.starveHousings(flag)
                case "leds": models.world.starveLEDModules(flag)
                case "lenses": models.world.starveLenses(flag)
                default: return false
                }
                return true
            }
            return done ? "\(args[0]) \(flag ? "starved" : "supplied")" : "usage: starve housings|leds|lenses on|off"
        case ("block", 2) where args[0] == "outfeed":
            guard let flag = on(args[1]) else { return "usage: block outfeed on|off" }
            cell.withModels { $0.world.blockOutfeed(flag) }
            return "outfeed \(flag ? "blocked" : "clear")"
        case ("reject-bin", 1):
            guard let full = on(args[0]) else { return "usage: reject-bin full|empty" }
            cell.withModels { models in
                models.world.setRejectBinFull(full)
                if !full { models.world.emptyRejectBin() }
            }
            return "reject bin \(full ? "full" : "emptied")"
        case ("drop", 1):
            guard let device = server.server(named: args[0]) else { return "drop: no device \(args[0])" }
            device.dropAllConnections()
            return "\(args[0]): connections dropped"
        case ("delay", 2):
            guard let device = server.server(named: args[0]) else { return "delay: no device \(args[0])" }
            let maximumMilliseconds = DeviceResponseDelay.maximumNanoseconds / 1_000_000
            guard let milliseconds = UInt64(args[1]), milliseconds <= maximumMilliseconds else {
                return "delay: \(args[1]) is not a number of ms up to \(maximumMilliseconds)"
            }
            device.replyJitterNanoseconds = 0  // exactly that late, whatever --response-delay set
            device.replyDelayNanoseconds = milliseconds * 1_000_000
            return "\(args[0]): replies \(milliseconds) ms late"
        case ("silent", 2):
            guard let device = server.server(named: args[0]), let flag = on(args[1]) else {
                return "usage: silent <device> on|off"
            }
            device.isSilent = flag
            return "\(args[0]): \(flag ? "silent" : "answering")"
        case ("refuse", 2):
            guard let device = server.server(named: args[0]), let flag = on(args[1]) else {
                return "usage: refuse <device> on|off"
            }
            device.refusesConnections = flag
            return "\(args[0]): \(flag ? "refusing connections" : "accepting connections")"
        default:
            return "unknown command: \(line) (type help)"
        }
    }

    static func parseCode(_ text: String) -> UInt16? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt16(text.dropFirst(2), radix: 16) }
        return UInt16(text)
    }

    /// One line per device plus the world's counters.
    public func status() -> String {
        server.cell.withModels { models in
            var lines: [String] = []
            for (index, arm) in models.arms.enumerated() {
                lines.append(
                    "\(models.armNames[index]): status 0x\(String(arm.statusWord, radix: 16)) fault 0x\(String(arm.faultCode, radix: 16))")
            }
            let world = models.world
            lines.append(
                "\(models.stationName): fault 0x\(String(models.station.faultCode, radix: 16)) safety \(world.safetyChainClosed ? "ok" : "OPEN")")
            lines.append(
                "lamps out: \(world.lampsLeftToOutfeed) outfeed, \(world.lampsLeftToReject) reject; housings presented \(world.housingsPresented)")
            return lines.joined(separator: "\n")
        }
    }
}
