// RA610Model against its datasheet, driven through the ModbusDevice methods and step() in virtual time.

import Testing
import Modbus
@testable import CellSimulator

private let enable = RA610CommandBit.enable
private let reset = RA610CommandBit.reset
private let stop = RA610CommandBit.stop
private let stream = RA610CommandBit.stream

@Suite("RA610Model registers")
struct RA610RegisterTests {
    @Test("identity and power-up registers")
    func identity() {
        let arm = ArmHarness(toolKind: .vacuumScrewdriver)
        #expect(arm.input(RA610Register.model, 4) == [610, 0x0203, 0x0102, 0x0304])
        #expect(arm.input(RA610Register.toolKind, 1) == [ToolKind.vacuumScrewdriver.rawValue])
        #expect(arm.holding(0, 7) == [0, 0, 0, 0, 0, 100, 4000])
        #expect(arm.holding(RA610Register.target, 12) == [UInt16](repeating: 0, count: 12))
        // POWERED and REMOTE_READY; IN_POSITION (standing on its setpoint); nothing else.
        #expect(arm.status == RA610StatusBit.powered | RA610StatusBit.remoteReady | RA610StatusBit.inPosition)
        #expect(arm.input(RA610Register.toolAckID, 2) == [0, 0])
        #expect(arm.input(9, 7) == [UInt16](repeating: 0, count: 7), "reserved input registers read 0")
    }

    @Test("uptime_ms is a u32, high word first")
    func uptime() {
        let arm = ArmHarness()
        arm.run(milliseconds: 1_234)
        #expect(arm.input(RA610Register.uptimeMilliseconds, 2) == [0, 1_234])
        arm.run(milliseconds: 65_536)
        #expect(arm.input(RA610Register.uptimeMilliseconds, 2) == [1, 1_234])
    }

    @Test("positions are i32 µrad high word first, negative in two's complement")
    func positionEncoding() {
        let arm = ArmHarness(initialPositionsRadians: [-1.5, 0.25, -0.000001, 3.0, -2.0, 6.0])
        let words = arm.input(RA610Register.actualPosition, 12)
        #expect(Array(words[0..<2]) == [0xFFE9, 0x1CA0])   // −1 500 000
        #expect(Array(words[2..<4]) == [0x0003, 0xD090])   // 250 000
        #expect(Array(words[4..<6]) == [0xFFFF, 0xFFFF])   // −1
        #expect(ArmHarness.decodeInt32s(words) == [-1_500_000, 250_000, -1, 3_000_000, -2_000_000, 6_000_000])
        #expect(arm.velocitiesFromRegisters == [0, 0, 0, 0, 0, 0])
    }

    @Test("initial positions outside the travel stops are clamped")
    func initialClamp() {
        let arm = ArmHarness(initialPositionsRadians: [4, -2, 0, 0, 0, -7])
        #expect(arm.positionsFromRegisters == [2.967, -1.571, 0, 0, 0, -6.283])
    }

    @Test("velocities are i32 µrad/s; the status mirror equals the input registers")
    func velocitiesAndMirror() {
        let arm = ArmHarness(initialPositionsRadians: [0, 0, 0, 0.5, 0, 0])
        arm.startStreaming()
        var j4 = 0.5
        arm.stream(periods: 25) { _ in
            j4 -= 0.008  // −2 rad/s
            return [0, 0, 0, j4, 0, 0]
        }
        let velocities = arm.velocitiesFromRegisters
        #expect(velocities[3] < -1.9 && velocities[3] > -2.1, "J4 velocity \(velocities[3])")
        let modelVelocity = arm.model.actualVelocitiesRadiansPerSecond[3]
        #expect(abs(velocities[3] - modelVelocity) <= 0.5e-6)
        let input = arm.input(0, 40)
        #expect(arm.holding(RA610Register.statusMirror, 40) == input)
        #expect(input[0] & RA610StatusBit.inMotion != 0)
        #expect(arm.holding(RA610Register.statusMirror + 20, 3) == Array(input[20..<23]))
    }

    @Test("reads outside the tables, or spanning a gap, are exception 0x02")
    func readAddresses() {
        let arm = ArmHarness()
        for (address, count) in [(28, 1), (20, 10), (27, 2), (255, 1), (255, 2), (296, 1), (290, 10), (100, 1)] {
            #expect(arm.read(.holdingRegisters, address, count).exception == .illegalDataAddress,
                    "holding \(address)+\(count)")
        }
        for (address, count) in [(40, 1), (39, 2), (99, 1), (99, 2), (104, 1), (102, 3), (256, 1)] {
            #expect(arm.read(.inputRegisters, address, count).exception == .illegalDataAddress,
                    "input \(address)+\(count)")
        }
        #expect(arm.read(.holdingRegisters, 0, 28).exception == nil)
        #expect(arm.read(.holdingRegisters, 256, 40).exception == nil)
        #expect(arm.read(.inputRegisters, 0, 40).exception == nil)
        #expect(arm.read(.inputRegisters, 100, 4).exception == nil)
    }

    @Test("writes outside 0..27 are exception 0x02 and write nothing")
    func writeAddresses() {
        let arm = ArmHarness()
        #expect(arm.write(26, [1, 2, 3]) == .illegalDataAddress)
        #expect(arm.write(28, [1]) == .illegalDataAddress)
        #expect(arm.write(256, [1]) == .illegalDataAddress, "status mirror is read only")
        #expect(arm.write(1000, [1]) == .illegalDataAddress)
        #expect(arm.holding(26, 2) == [0, 0])
        // 0x17 with a bad read range writes nothing either.
        let result = arm.writeAndRead(RA610Register.heartbeat, [77], 250, 10)
        #expect(result.exception == .illegalDataAddress)
        #expect(arm.holding(RA610Register.heartbeat, 1) == [0])
        #expect(arm.writeAndRead(RA610Register.heartbeat, [77], 256, 40).exception == nil)
        #expect(arm.writeAndRead(256, [77], 0, 1).exception == .illegalDataAddress)
    }

    @Test("reserved holding registers 7..15 accept writes and read 0")
    func reserved() {
        let arm = ArmHarness()
        #expect(arm.write(5, [200, 8000, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x1234]) == nil)
        #expect(arm.holding(5, 12) == [200, 8000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1234])
    }

    @Test("values out of range are exception 0x03 and write nothing")
    func values() {
        let arm = ArmHarness()
        // A multi-register write with one bad value writes nothing, including the good ones.
        #expect(arm.write(0, [enable, 55, 7]) == .illegalDataValue)
        #expect(arm.holding(0, 3) == [0, 0, 0])
        #expect(arm.write(RA610Register.toolCommand, [6]) == nil)
        for bad: UInt16 in [19, 1001, 0, 0xFFFF] {
            #expect(arm.write(RA610Register.watchdogMilliseconds, [bad]) == .illegalDataValue)
        }
        for good: UInt16 in [20, 1000] {
            #expect(arm.write(RA610Register.watchdogMilliseconds, [good]) == nil)
        }
        for bad: UInt16 in [249, 20001] {
            #expect(arm.write(RA610Register.streamPeriodMicroseconds, [bad]) == .illegalDataValue)
        }
        for good: UInt16 in [250, 20000] {
            #expect(arm.write(RA610Register.streamPeriodMicroseconds, [good]) == nil)
        }
        #expect(arm.holding(5, 2) == [1000, 20000])
        // tool_param is checked when a request starts (tool_request_id changes), against the command.
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.screw.rawValue, 1, 49]) == .illegalDataValue)
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.screw.rawValue, 1, 501]) == .illegalDataValue)
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.press.rawValue, 1, 1501]) == .illegalDataValue)
        #expect(arm.holding(2, 3) == [6, 0, 0])
        #expect(arm.toolState == 0, "no request started")
        // Without a request the param is just stored.
        #expect(arm.write(RA610Register.toolParam, [9999]) == nil)
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue]) == nil)
        #expect(arm.write(RA610Register.toolRequestID, [5]) == nil, "GRIP ignores tool_param")
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.press.rawValue, 6, 1500]) == nil)
    }

    @Test("0x17 writes first, then reads: heartbeat_echo shows the heartbeat written in the same call")
    func writeThenRead() {
        let arm = ArmHarness()
        let result = arm.writeAndRead(RA610Register.heartbeat, [0xBEEF], RA610Register.statusMirror, 40)
        #expect(result.exception == nil)
        #expect(result.values[RA610Register.heartbeatEcho] == 0xBEEF)
        #expect(result.values == arm.input(0, 40))
        // A command written by 0x17 is readable back from the holding table in the same call.
        let both = arm.writeAndRead(RA610Register.watchdogMilliseconds, [250], RA610Register.watchdogMilliseconds, 2)
        #expect(both.values == [250, 4000])
        // 0x17 value checks: nothing written.
        #expect(arm.writeAndRead(RA610Register.heartbeat, [1, 9], 256, 3).exception == .illegalDataValue)
        #expect(arm.input(RA610Register.heartbeatEcho, 1) == [0xBEEF])
    }

    @Test("the RA-610 answers only 0x03, 0x04, 0x06, 0x10, 0x17")
    func functions() {
        let arm = ArmHarness()
        #expect(arm.model.supportedFunctions == [.readHoldingRegisters, .readInputRegisters, .writeSingleRegister,
                                                 .writeMultipleRegisters, .readWriteMultipleRegisters])
    }
}

@Suite("RA610Model motion")
struct RA610MotionTests {
    @Test("ENABLE brings the servos on within 50 ms, holding the actual position")
    func enableTiming() {
        let start = [0.3, -0.2, 0.1, 1.0, -1.0, 2.0]
        let arm = ArmHarness(initialPositionsRadians: start)
        arm.setTargets([0, 0, 0, 0, 0, 0])
        arm.setCommand(enable)
        arm.step(1)
        #expect(!arm.has(RA610StatusBit.enabled))
        let took = arm.run(untilWithinMilliseconds: 60) { arm.has(RA610StatusBit.enabled) }
        #expect(took != nil && took! <= 50_000_000)
        arm.run(milliseconds: 200)
        #expect(arm.model.actualPositionsRadians == start, "holds where it is; targets are not followed")
        #expect(arm.has(RA610StatusBit.inPosition) && !arm.has(RA610StatusBit.inMotion))
        #expect(!arm.has(RA610StatusBit.streaming))
    }

    @Test("ENABLE cleared: controlled stop, then servos off")
    func disable() {
        let arm = ArmHarness()
        arm.startStreaming()
        var j1 = 0.0
        arm.stream(periods: 50) { _ in j1 += 0.008; return [j1, 0, 0, 0, 0, 0] }  // 2 rad/s
        arm.setCommand(0)
        arm.step(1)
        #expect(arm.has(RA610StatusBit.enabled), "servos stay on while decelerating")
        #expect(!arm.has(RA610StatusBit.streaming))
        let took = arm.run(untilWithinMilliseconds: 300) { !arm.has(RA610StatusBit.enabled) }
        // 2 rad/s at 15 rad/s² ≈ 133 ms.
        #expect(took != nil && took! > 100_000_000 && took! < 170_000_000)
        #expect(arm.model.actualVelocitiesRadiansPerSecond == [0, 0, 0, 0, 0, 0])
        #expect(arm.faultCode == 0)
    }

    @Test("streaming begins with target[] = actual position")
    func streamStartAccepted() {
        let arm = ArmHarness(initialPositionsRadians: [0.5, 0.5, -0.5, 1, 1, 1])
        arm.startStreaming()
        arm.run(milliseconds: 50, heartbeat: true)
        #expect(arm.has(RA610StatusBit.streaming) && arm.faultCode == 0)
    }

    @Test("STREAM already set when ENABLE comes: streaming begins once ENABLED")
    func streamBeforeEnable() {
        let arm = ArmHarness(initialPositionsRadians: [0.5, 0, 0, 0, 0, 0])
        arm.setTargets([0.5, 0, 0, 0, 0, 0])
        arm.setCommand(enable | stream)
        arm.beatHeart()
        arm.run(untilWithinMilliseconds: 50) { arm.has(RA610StatusBit.enabled) }
        arm.step(1)
        #expect(arm.has(RA610StatusBit.streaming) && arm.faultCode == 0)
    }

    @Test("a first setpoint far from the actual position is SETPOINT_JUMP 0x0201 and a controlled stop")
    func streamStartJump() {
        let arm = ArmHarness(initialPositionsRadians: [0.5, 0, 0, 0, 0, 0])
        arm.enable()
        arm.setTargets([0, 0, 0, 0, 0, 0])  // power-up targets: 0.5 rad away
        arm.setCommand(enable | stream)
        arm.step(1)
        #expect(arm.faultCode == RA610FaultCode.setpointJump)
        #expect(arm.has(RA610StatusBit.fault) && !arm.has(RA610StatusBit.streaming))
        #expect(!arm.has(RA610StatusBit.remoteReady))
        arm.run(milliseconds: 10)
        #expect(!arm.has(RA610StatusBit.enabled))
        #expect(arm.model.actualPositionsRadians[0] == 0.5, "the bad setpoint was not followed")
    }

    @Test("a setpoint step just over 1.5 × vmax × period is 0x0201, just under is fine")
    func jumpLimit() {
        // J4: 1.5 × 6.28 × 0.004 = 0.03768 rad.
        let ok = ArmHarness()
        ok.startStreaming()
        ok.stream(periods: 1) { _ in [0, 0, 0, 0.0376, 0, 0] }
        #expect(ok.faultCode == 0)
        let bad = ArmHarness()
        bad.startStreaming()
        bad.stream(periods: 1) { _ in [0, 0, 0, 0.0377, 0, 0] }
        #expect(bad.faultCode == RA610FaultCode.setpointJump)
    }

    @Test("a setpoint outside the joint limits is POSITION_LIMIT 0x0203")
    func positionLimit() {
        let arm = ArmHarness(initialPositionsRadians: [2.96, 0, 0, 0, 0, 0])
        arm.startStreaming()
        arm.stream(periods: 3) { k in [min(2.96 + 0.0035 * Double(k), 2.967), 0, 0, 0, 0, 0] }
        #expect(arm.faultCode == 0, "the limit itself is allowed")
        arm.stream(periods: 1) { _ in [2.968, 0, 0, 0, 0, 0] }
        #expect(arm.faultCode == RA610FaultCode.positionLimit)
        #expect(arm.model.setpointsRadians[0] == 2.967, "the bad setpoint was not taken")
    }

    @Test("writing identical target[] values while streaming is not a new setpoint")
    func identicalTargets() {
        // stream_period 20 ms; a setpoint of +0.09 rad; one arm then gets the same values rewritten every 4 ms, its
        // twin does not. If a rewrite counted, the reference ramp would restart and the twins would differ.
        let rewritten = ArmHarness()
        let twin = ArmHarness()
        for arm in [rewritten, twin] {
            arm.startStreaming(streamPeriodMicroseconds: 20_000)
            arm.beatHeart()
            arm.setTargets([0.09, 0, 0, 0, 0, 0])
        }
        for _ in 0..<10 {
            rewritten.step(16)
            twin.step(16)
            rewritten.setTargets([0.09, 0, 0, 0, 0, 0])
            #expect(rewritten.model.actualPositionsRadians == twin.model.actualPositionsRadians)
        }
        #expect(rewritten.faultCode == 0 && twin.faultCode == 0)
        #expect(twin.model.actualPositionsRadians[0] > 0.05, "the arms did move")
    }

    @Test("a ramp too fast for the servo (within the jump limit) is FOLLOWING_ERROR 0x0202; a slower one is not")
    func followingError() {
        // J4 ramp at s rad/s: the critically damped servo lags 2s/ωn: 8.8 rad/s → 0.112 rad, 3 rad/s → 0.038 rad.
        func ramp(_ velocity: Double) -> ArmHarness {
            let arm = ArmHarness(initialPositionsRadians: [0, 0, 0, -3, 0, 0])
            arm.startStreaming()
            arm.stream(periods: 60, setpoint: { k in [0, 0, 0, -3 + velocity * 0.004 * Double(k), 0, 0] },
                       afterPeriod: { _ in arm.faultCode == 0 })
            return arm
        }
        let fast = ramp(8.8)
        #expect(fast.faultCode == RA610FaultCode.followingError)
        #expect(fast.model.faultHistory.map(\.code) == [RA610FaultCode.followingError])
        let slow = ramp(3.0)
        #expect(slow.faultCode == 0)
    }

    @Test("critically damped tracking: a reference step has no overshoot and reaches 99 % in about 42 ms")
    func stepResponse() {
        // stream_period 250 µs: a new setpoint is one servo period of ramp, i.e. a step.
        let arm = ArmHarness()
        arm.startStreaming(streamPeriodMicroseconds: 250)
        let stepSize = 0.001  // under 1.5 × 3.14 × 250 µs = 1.18 mrad
        arm.beatHeart()
        arm.setTargets([stepSize, 0, 0, 0, 0, 0])
        var maximum = 0.0
        var reached99: UInt64?
        let start = arm.model.timeNanoseconds
        for i in 0..<(200 * ArmHarness.stepsPerMillisecond) {
            if i % 40 == 0 { arm.beatHeart() }
            arm.step(1)
            let position = arm.model.actualPositionsRadians[0]
            maximum = max(maximum, position)
            if reached99 == nil && position >= 0.99 * stepSize { reached99 = arm.model.timeNanoseconds - start }
        }
        #expect(maximum <= stepSize * (1 + 1e-9), "overshoot: \(maximum)")
        // Theory: 1 − (1 + ωn t) e^(−ωn t) = 0.99 at ωn t = 6.64, t = 42.3 ms.
        #expect(reached99 != nil && reached99! >= 40_000_000 && reached99! <= 46_000_000)
        #expect(arm.faultCode == 0 && arm.has(RA610StatusBit.inPosition))
    }

    @Test("STREAM cleared: the arm settles at the last setpoint with IN_POSITION")
    func streamCleared() {
        let arm = ArmHarness()
        arm.startStreaming()
        arm.stream(periods: 20) { k in [0.01 * Double(k), 0, 0, 0, 0, 0] }
        arm.setCommand(enable)
        arm.step(1)
        #expect(!arm.has(RA610StatusBit.streaming) && arm.has(RA610StatusBit.inMotion))
        arm.setTargets([0, 0, 0, 0, 0, 0])  // stored, not followed
        arm.run(milliseconds: 200)
        #expect(abs(arm.model.actualPositionsRadians[0] - 0.2) < 0.001)
        #expect(arm.has(RA610StatusBit.inPosition) && !arm.has(RA610StatusBit.inMotion))
        #expect(arm.has(RA610StatusBit.enabled) && arm.faultCode == 0, "no watchdog while not streaming")
    }

    @Test("Clearing STREAM, or setting STOP, leaves streaming at once: the status read by the same 0x17 shows it")
    func streamingEndsAtTheWrite() {
        for bits in [enable, enable | RA610CommandBit.stream | RA610CommandBit.stop] {
            let arm = ArmHarness()
            arm.startStreaming()
            arm.stream(periods: 5) { k in [0.01 * Double(k), 0, 0, 0, 0, 0] }
            let lastSetpoint = arm.model.setpointsRadians[0]
            var block = arm.holding(0, RA610Register.holdingCount)
            block[RA610Register.command] = bits
            // The same write moves target[] by 1 rad: streaming has ended, so it is stored, not followed (as a
            // setpoint it would latch SETPOINT_JUMP).
            let moved = ArmHarness.encode(radians: [lastSetpoint + 1, 0, 0, 0, 0, 0])
            block.replaceSubrange(RA610Register.target..<(RA610Register.target + 12), with: moved)
            let reply = arm.writeAndRead(0, block, RA610Register.statusMirror, 1)
            #expect(reply.exception == nil)
            #expect(reply.values[0] & RA610StatusBit.streaming == 0, "command \(bits): STREAMING still set in the reply")
            #expect(reply.values[0] & RA610StatusBit.enabled != 0)
            arm.run(milliseconds: 300)
            #expect(arm.faultCode == 0 && !arm.has(RA610StatusBit.streaming) && !arm.has(RA610StatusBit.inMotion))
            if bits & RA610CommandBit.stop == 0 {
                #expect(abs(arm.model.actualPositionsRadians[0] - lastSetpoint) < 0.001, "settles at the last setpoint")
            }
        }
    }

    @Test("STOP: leaves streaming, decelerates, holds with servos on; streaming resumes when STOP clears")
    func stopBit() {
        let arm = ArmHarness()
        arm.startStreaming()
        var j1 = 0.0
        arm.stream(periods: 50) { _ in j1 += 0.008; return [j1, 0, 0, 0, 0, 0] }  // 2 rad/s
        arm.setCommand(enable | stream | stop)
        arm.step(1)
        #expect(!arm.has(RA610StatusBit.streaming))
        let took = arm.run(untilWithinMilliseconds: 300) {
            arm.model.actualVelocitiesRadiansPerSecond.allSatisfy { $0 == 0 }
        }
        #expect(took != nil && took! < 170_000_000)  // 2 rad/s at 15 rad/s² ≈ 133 ms
        let held = arm.model.actualPositionsRadians
        arm.setTargets([1, 0, 0, 0, 0, 0])  // not followed while STOP is set
        arm.run(milliseconds: 500)
        #expect(arm.model.actualPositionsRadians == held)
        #expect(arm.has(RA610StatusBit.enabled) && !arm.has(RA610StatusBit.streaming) && arm.faultCode == 0)
        // Clearing STOP: streaming begins again, checked against the actual position.
        arm.setTargets(arm.positionsFromRegisters)
        arm.beatHeart()
        arm.setCommand(enable | stream)
        arm.step(1)
        #expect(arm.has(RA610StatusBit.streaming) && arm.faultCode == 0)
        arm.stream(periods: 10) { k in [held[0] + 0.004 * Double(k), 0, 0, 0, 0, 0] }
        #expect(arm.faultCode == 0 && arm.model.actualPositionsRadians[0] > held[0] + 0.01)
    }

    @Test("the joint ranges are hard travel stops")
    func travelStops() {
        // J1 streams toward its upper stop at 3 rad/s; a fault's controlled stop needs 0.3 rad, more than is left.
        let arm = ArmHarness(initialPositionsRadians: [2.4, 0, 0, 0, 0, 0])
        arm.startStreaming()
        var maximum = 0.0
        arm.stream(periods: 200, setpoint: { k in [min(2.4 + 0.012 * Double(k), 2.967), 0, 0, 0, 0, 0] },
                   afterPeriod: { _ in arm.model.actualPositionsRadians[0] < 2.75 })
        #expect(arm.model.actualVelocitiesRadiansPerSecond[0] > 2.9)
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        for _ in 0..<(400 * ArmHarness.stepsPerMillisecond) {
            arm.step(1)
            maximum = max(maximum, arm.model.actualPositionsRadians[0])
        }
        #expect(maximum == 2.967)
        #expect(arm.model.actualPositionsRadians[0] == 2.967)
        #expect(arm.model.actualVelocitiesRadiansPerSecond[0] == 0)
        #expect(!arm.has(RA610StatusBit.enabled))
        #expect(arm.faultCode == RA610FaultCode.overtemperature)
    }
}

@Suite("RA610Model watchdog, faults and e-stop")
struct RA610SafetyTests {
    @Test("a stale heartbeat while streaming trips COMM_WATCHDOG 0x0101 after watchdog_ms")
    func watchdogTrips() {
        let arm = ArmHarness()
        arm.startStreaming()
        let took = arm.run(untilWithinMilliseconds: 500) { arm.faultCode != 0 }
        #expect(arm.faultCode == RA610FaultCode.commWatchdog)
        #expect(took != nil && took! >= 100_000_000 && took! <= 105_000_000)
        #expect(!arm.has(RA610StatusBit.streaming))
        arm.run(milliseconds: 20)
        #expect(!arm.has(RA610StatusBit.enabled))
    }

    @Test("rewriting the same heartbeat value is no change; a changing heartbeat keeps the arm streaming")
    func watchdogHeld() {
        let arm = ArmHarness()
        #expect(arm.write(RA610Register.watchdogMilliseconds, [30]) == nil)
        arm.startStreaming()
        arm.run(milliseconds: 2_000, heartbeat: true)  // a new value every 10 ms
        #expect(arm.faultCode == 0 && arm.has(RA610StatusBit.streaming))
        let same = arm.holding(RA610Register.heartbeat, 1)
        for _ in 0..<40 {
            #expect(arm.write(RA610Register.heartbeat, same) == nil)
            arm.run(milliseconds: 1)
        }
        #expect(arm.faultCode == RA610FaultCode.commWatchdog)
    }

    @Test("the watchdog counts from the start of streaming, not from an old heartbeat")
    func watchdogFromStreamStart() {
        let arm = ArmHarness()
        arm.enable()
        arm.beatHeart()
        arm.run(milliseconds: 500)  // heartbeat stale, but not streaming: no trip
        #expect(arm.faultCode == 0)
        arm.setTargets(arm.positionsFromRegisters)
        arm.setCommand(enable | stream)
        arm.run(milliseconds: 90)
        #expect(arm.faultCode == 0 && arm.has(RA610StatusBit.streaming))
        arm.run(milliseconds: 20)
        #expect(arm.faultCode == RA610FaultCode.commWatchdog)
    }

    @Test("only the first fault latches; COLLISION sets PROTECTIVE_STOP; RESET clears on an edge")
    func faultLatching() {
        let arm = ArmHarness()
        arm.enable()
        arm.model.injectFault(code: RA610FaultCode.collision)
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        #expect(arm.faultCode == RA610FaultCode.collision)
        #expect(arm.has(RA610StatusBit.protectiveStop) && arm.has(RA610StatusBit.fault))
        #expect(arm.model.faultHistory.map(\.code) == [RA610FaultCode.collision])
        arm.run(milliseconds: 5)
        #expect(!arm.has(RA610StatusBit.enabled))
        arm.setCommand(enable | reset)
        arm.step(1)
        #expect(arm.faultCode == 0 && !arm.has(RA610StatusBit.protectiveStop) && arm.has(RA610StatusBit.remoteReady))
        // RESET held high is no new edge: a new fault stays latched.
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        #expect(arm.write(RA610Register.command, [enable | reset]) == nil)
        #expect(arm.faultCode == RA610FaultCode.overtemperature)
    }

    @Test("after a fault, ENABLE must be seen clear before the servos come on again")
    func enableAfterFault() {
        let arm = ArmHarness()
        arm.enable()
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        arm.run(milliseconds: 5)
        arm.setCommand(enable | reset)
        arm.run(milliseconds: 200)
        #expect(arm.faultCode == 0 && !arm.has(RA610StatusBit.enabled), "ENABLE was never seen clear")
        arm.setCommand(0)
        arm.step(1)
        arm.setCommand(enable)
        let took = arm.run(untilWithinMilliseconds: 60) { arm.has(RA610StatusBit.enabled) }
        #expect(took != nil && took! <= 50_000_000)
    }

    @Test("ENABLE toggled within one write sequence between steps also counts as seen clear")
    func enableToggledBetweenSteps() {
        let arm = ArmHarness()
        arm.enable()
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        arm.run(milliseconds: 5)
        arm.setCommand(0)
        arm.setCommand(reset)
        arm.setCommand(enable)
        #expect(arm.run(untilWithinMilliseconds: 60) { arm.has(RA610StatusBit.enabled) } != nil)
    }

    @Test("e-stop: the arm stops within 300 ms, servos off, ESTOP and 0x0601 replacing another fault")
    func emergencyStop() {
        let arm = ArmHarness()
        arm.startStreaming()
        var j4 = 0.0
        var j1 = 0.0
        arm.stream(periods: 80) { _ in
            j1 += 0.0125  // 3.125 rad/s
            j4 += 0.025   // 6.25 rad/s
            return [j1, 0, 0, j4, 0, 0]
        }
        #expect(arm.faultCode == 0)
        #expect(arm.model.actualVelocitiesRadiansPerSecond[3] > 6.2)
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        arm.world.safetyChainClosed = false
        arm.step(1)
        #expect(arm.faultCode == RA610FaultCode.emergencyStop)
        #expect(arm.has(RA610StatusBit.estop) && arm.has(RA610StatusBit.fault) && !arm.has(RA610StatusBit.remoteReady))
        let took = arm.run(untilWithinMilliseconds: 400) {
            !arm.has(RA610StatusBit.enabled) && arm.model.actualVelocitiesRadiansPerSecond.allSatisfy { $0 == 0 }
        }
        #expect(took != nil && took! <= 300_000_000)
        #expect(arm.model.faultHistory.map(\.code) == [RA610FaultCode.overtemperature, RA610FaultCode.emergencyStop])
        // Reset refused while the chain is open.
        arm.setCommand(reset)
        arm.run(milliseconds: 10)
        #expect(arm.faultCode == RA610FaultCode.emergencyStop && arm.has(RA610StatusBit.estop))
        arm.setCommand(enable)
        arm.run(milliseconds: 100)
        #expect(!arm.has(RA610StatusBit.enabled))
        // Chain closed: a RESET edge clears it.
        arm.world.safetyChainClosed = true
        arm.run(milliseconds: 10)
        #expect(arm.faultCode == RA610FaultCode.emergencyStop, "closing the chain alone does not reset")
        arm.setCommand(0)
        arm.setCommand(reset)
        arm.step(1)
        #expect(arm.faultCode == 0 && !arm.has(RA610StatusBit.estop) && arm.has(RA610StatusBit.remoteReady))
        arm.setCommand(enable)
        #expect(arm.run(untilWithinMilliseconds: 60) { arm.has(RA610StatusBit.enabled) } != nil)
    }

    @Test("e-stop with the chain open at power-up: ENABLE is refused")
    func chainOpenAtPowerUp() {
        let arm = ArmHarness()
        arm.world.safetyChainClosed = false
        arm.setCommand(enable)
        arm.run(milliseconds: 100)
        #expect(!arm.has(RA610StatusBit.enabled) && arm.faultCode == RA610FaultCode.emergencyStop)
    }
}

@Suite("RA610Model tool")
struct RA610ToolTests {
    @Test("a request runs once per tool_request_id: the same id again does nothing")
    func idempotent() {
        let arm = ArmHarness()
        arm.enable()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue, 1, 0]) == nil)
        #expect(arm.toolState & RA610ToolStateBit.busy != 0)
        arm.run(milliseconds: 100)
        #expect(arm.toolState == RA610ToolStateBit.busy, "GRIP takes 150 ms")
        arm.run(milliseconds: 60)
        #expect(arm.toolState == RA610ToolStateBit.done | RA610ToolStateBit.holdingPart)
        #expect(arm.input(RA610Register.toolAckID, 2) == [1, 1])
        // The retried write: same id, harmless.
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue, 1, 0]) == nil)
        arm.run(milliseconds: 300)
        #expect(arm.world.calls.count == 1)
        #expect(arm.world.calls.first?.command == .grip && arm.world.calls.first?.arm == "loader")
        #expect(arm.toolState == RA610ToolStateBit.done | RA610ToolStateBit.holdingPart)
        // A new id runs again.
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.release.rawValue, 2]) == nil)
        arm.run(milliseconds: 200)
        #expect(arm.world.calls.map(\.command) == [.grip, .release])
        #expect(arm.toolState == RA610ToolStateBit.done)
        #expect(arm.input(RA610Register.toolAckID, 2) == [2, 0])
    }

    @Test("a new request while BUSY is exception 0x06 and writes nothing")
    func busy() {
        let arm = ArmHarness(toolKind: .vacuumScrewdriver)
        arm.enable()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.screw.rawValue, 1, 120]) == nil)
        arm.run(milliseconds: 100)
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue, 2, 0]) == .serverDeviceBusy)
        #expect(arm.holding(2, 3) == [ToolCommand.screw.rawValue, 1, 120])
        // 0x03 comes before 0x06.
        #expect(arm.write(RA610Register.toolCommand, [9, 2]) == .illegalDataValue)
        // Writes that do not start a request are fine while busy.
        #expect(arm.write(RA610Register.heartbeat, [3]) == nil)
        let took = arm.run(untilWithinMilliseconds: 1_500) { arm.toolState & RA610ToolStateBit.busy == 0 }
        #expect(took != nil && took! >= 700_000_000, "SCREW lasts 900..1400 ms")
        #expect(arm.toolState == RA610ToolStateBit.done)
        #expect(arm.input(RA610Register.toolAckID, 2) == [1, 120])
        #expect(arm.world.calls.first?.param == 120)
    }

    @Test("a request while disabled or moving ends with ERROR without calling the world")
    func refused() {
        let arm = ArmHarness()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue, 1]) == nil)
        arm.step(1)
        #expect(arm.toolState == RA610ToolStateBit.error)
        #expect(arm.input(RA610Register.toolAckID, 2) == [1, 0])
        arm.startStreaming()
        arm.stream(periods: 10) { k in [0.004 * Double(k), 0, 0, 0, 0, 0] }  // 1 rad/s
        #expect(arm.write(RA610Register.toolRequestID, [2]) == nil)
        arm.step(1)
        #expect(arm.toolState == RA610ToolStateBit.error)
        #expect(arm.input(RA610Register.toolAckID, 1) == [2])
        #expect(arm.world.calls.isEmpty)
    }

    @Test("a fault while the tool runs ends it with ERROR")
    func faultDuringTool() {
        let arm = ArmHarness()
        arm.enable()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.grip.rawValue, 1]) == nil)
        arm.run(milliseconds: 50)
        arm.model.injectFault(code: RA610FaultCode.overtemperature)
        #expect(arm.toolState == RA610ToolStateBit.error)
        arm.run(milliseconds: 300)
        #expect(arm.world.calls.isEmpty)
    }

    @Test("a world outcome that failed ends ERROR with its result; a jammed tool ends ERROR")
    func failures() {
        let arm = ArmHarness(toolKind: .dispenserPress)
        arm.world.decide = { _ in ToolOutcome(succeeded: false, result: 321, holdingPart: false) }
        arm.enable()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.press.rawValue, 1, 800]) == nil)
        #expect(arm.run(untilWithinMilliseconds: 1_000) { arm.toolState & RA610ToolStateBit.busy == 0 } != nil)
        #expect(arm.toolState == RA610ToolStateBit.error && arm.input(RA610Register.toolResult, 1) == [321])
        arm.model.failNextToolRequest()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.press.rawValue, 2, 800]) == nil)
        #expect(arm.run(untilWithinMilliseconds: 1_000) { arm.toolState & RA610ToolStateBit.busy == 0 } != nil)
        #expect(arm.toolState == RA610ToolStateBit.error)
        #expect(arm.world.calls.count == 1, "a jammed tool does not act on the world")
    }

    @Test("NONE ends DONE at once with result 0")
    func noneRequest() {
        let arm = ArmHarness()
        #expect(arm.write(RA610Register.toolRequestID, [7]) == nil)
        #expect(arm.toolState == RA610ToolStateBit.done)
        #expect(arm.input(RA610Register.toolAckID, 2) == [7, 0])
        #expect(arm.world.calls.isEmpty)
    }

    @Test("glue accrues at 0.20 ml/s while dispensing and moving, and is passed to the world at DISPENSE_OFF")
    func glue() {
        let arm = ArmHarness(toolKind: .dispenserPress)
        arm.startStreaming()
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.dispenseOn.rawValue, 1]) == nil)
        arm.run(milliseconds: 60, heartbeat: true)
        #expect(arm.toolState == RA610ToolStateBit.done)
        arm.run(milliseconds: 1_000, heartbeat: true)  // dispensing, standing still: nothing
        #expect(arm.model.dispensedGlueMilliliters == 0)
        // Move J1 at 1 rad/s for 2 s, then settle (the servo's settling adds a few tens of ms of motion).
        arm.stream(periods: 500) { k in [0.004 * Double(k), 0, 0, 0, 0, 0] }
        arm.setCommand(enable)
        arm.run(milliseconds: 300)
        let dispensed = arm.model.dispensedGlueMilliliters
        #expect(dispensed >= 0.20 * 2.0 && dispensed <= 0.20 * 2.1, "\(dispensed) ml")
        #expect(!arm.has(RA610StatusBit.inMotion))
        #expect(arm.write(RA610Register.toolCommand, [ToolCommand.dispenseOff.rawValue, 2]) == nil)
        arm.run(milliseconds: 60)
        #expect(arm.toolState == RA610ToolStateBit.done)
        #expect(arm.world.calls.map(\.command) == [.dispenseOn, .dispenseOff])
        let passed = arm.world.calls.last?.dispensedMilliliters ?? 0
        #expect(passed == dispensed)
        #expect(arm.input(RA610Register.toolResult, 1) == [UInt16((passed * 100).rounded())])
    }
}
