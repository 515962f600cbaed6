// Test support for RA610Model: a small recording world and a harness that drives the model through its
// ModbusDevice methods and step() in virtual time.

import Testing
import Modbus
@testable import CellSimulator

/// A tiny cell world: a safety-chain flag, a record of every tool call, and a configurable outcome.
final class RecordingToolWorld: ArmToolWorld {
    struct Call {
        var arm: String
        var command: ToolCommand
        var param: UInt16
        var jointPositionsRadians: [Double]
        var dispensedMilliliters: Double
    }

    var safetyChainClosed = true
    private(set) var calls: [Call] = []
    /// Decides the outcome of each call; by default every request succeeds, GRIP holds a part, RELEASE drops it,
    /// SCREW/PRESS report their param, DISPENSE_OFF reports the volume in 0.01 ml.
    var decide: (Call) -> ToolOutcome = { call in
        switch call.command {
        case .grip: ToolOutcome(succeeded: true, result: 1, holdingPart: true)
        case .release: ToolOutcome(succeeded: true, result: 0, holdingPart: false)
        case .screw, .press: ToolOutcome(succeeded: true, result: call.param, holdingPart: false)
        case .dispenseOff:
            ToolOutcome(succeeded: true, result: UInt16((call.dispensedMilliliters * 100).rounded()),
                        holdingPart: false)
        case .none, .dispenseOn: ToolOutcome(succeeded: true, result: 0, holdingPart: false)
        }
    }

    func toolFinished(
        arm: String, command: ToolCommand, param: UInt16, jointPositionsRadians: [Double],
        dispensedMilliliters: Double, random: inout SimulationRandom
    ) -> ToolOutcome {
        let call = Call(arm: arm, command: command, param: param, jointPositionsRadians: jointPositionsRadians,
                        dispensedMilliliters: dispensedMilliliters)
        calls.append(call)
        return decide(call)
    }
}

/// Drives one RA610Model in virtual time through the Modbus methods, as a cell controller would.
final class ArmHarness {
    let world = RecordingToolWorld()
    let model: RA610Model
    private var heartbeat: UInt16 = 0

    static let stepsPerMillisecond = Int(1_000_000 / RA610Model.stepNanoseconds)

    init(initialPositionsRadians: [Double] = [Double](repeating: 0, count: 6), toolKind: ToolKind = .gripper,
         seed: UInt64 = 42) {
        model = RA610Model(name: "loader", serialNumber: 0x0102_0304, firmware: 0x0203, toolKind: toolKind,
                           world: world, random: SimulationRandom(seed: seed),
                           initialPositionsRadians: initialPositionsRadians)
    }

    // MARK: Modbus access

    func write(_ address: Int, _ values: [UInt16]) -> ModbusExceptionCode? {
        values.withUnsafeBufferPointer { model.writeRegisters(address: address, values: $0) }
    }

    func read(_ table: ModbusTable, _ address: Int, _ count: Int) -> (values: [UInt16], exception: ModbusExceptionCode?) {
        var values = [UInt16](repeating: 0xDEAD, count: count)
        let exception = values.withUnsafeMutableBufferPointer { model.readRegisters(table, address: address, into: $0) }
        return (values, exception)
    }

    func writeAndRead(_ writeAddress: Int, _ values: [UInt16], _ readAddress: Int, _ readCount: Int)
        -> (values: [UInt16], exception: ModbusExceptionCode?) {
        var readValues = [UInt16](repeating: 0xDEAD, count: readCount)
        let exception = values.withUnsafeBufferPointer { written in
            readValues.withUnsafeMutableBufferPointer { readBuffer in
                model.writeAndReadRegisters(writeAddress: writeAddress, values: written,
                                            readAddress: readAddress, into: readBuffer)
            }
        }
        return (readValues, exception)
    }

    /// Input registers that must read without exception.
    func input(_ address: Int, _ count: Int) -> [UInt16] {
        let (values, exception) = read(.inputRegisters, address, count)
        #expect(exception == nil, "reading input \(address)+\(count)")
        return values
    }

    /// Holding registers that must read without exception.
    func holding(_ address: Int, _ count: Int) -> [UInt16] {
        let (values, exception) = read(.holdingRegisters, address, count)
        #expect(exception == nil, "reading holding \(address)+\(count)")
        return values
    }

    var status: UInt16 { input(RA610Register.status, 1)[0] }
    var faultCode: UInt16 { input(RA610Register.faultCode, 1)[0] }
    var toolState: UInt16 { input(RA610Register.toolState, 1)[0] }
    func has(_ bit: UInt16) -> Bool { status & bit != 0 }

    /// Joint positions decoded from the input registers (i32 µrad, high word first), rad.
    var positionsFromRegisters: [Double] {
        Self.decodeInt32s(input(RA610Register.actualPosition, 12)).map { Double($0) / 1e6 }
    }

    /// Joint velocities decoded from the input registers, rad/s.
    var velocitiesFromRegisters: [Double] {
        Self.decodeInt32s(input(RA610Register.actualVelocity, 12)).map { Double($0) / 1e6 }
    }

    static func decodeInt32s(_ words: [UInt16]) -> [Int32] {
        stride(from: 0, to: words.count, by: 2).map { Int32(bitPattern: UInt32(words[$0]) << 16 | UInt32(words[$0 + 1])) }
    }

    static func encode(radians: [Double]) -> [UInt16] {
        radians.flatMap { value -> [UInt16] in
            let bits = UInt32(bitPattern: Int32((value * 1e6).rounded()))
            return [UInt16(bits >> 16), UInt16(bits & 0xFFFF)]
        }
    }

    func setCommand(_ bits: UInt16) {
        #expect(write(RA610Register.command, [bits]) == nil)
    }

    func setTargets(_ radians: [Double]) {
        #expect(write(RA610Register.target, Self.encode(radians: radians)) == nil)
    }

    func beatHeart() {
        heartbeat &+= 1
        #expect(write(RA610Register.heartbeat, [heartbeat]) == nil)
    }

    // MARK: Time

    func step(_ count: Int) {
        for _ in 0..<count { model.step() }
    }

    /// Runs `milliseconds` of model time, changing the heartbeat every 10 ms when `heartbeat` is set.
    func run(milliseconds: Int, heartbeat: Bool = false) {
        for i in 0..<(milliseconds * Self.stepsPerMillisecond) {
            if heartbeat && i % (10 * Self.stepsPerMillisecond) == 0 { beatHeart() }
            model.step()
        }
    }

    /// Steps until `condition` holds (checked before each step) or `limitMilliseconds` pass; returns the model time
    /// it took, or nil.
    @discardableResult
    func run(untilWithinMilliseconds limitMilliseconds: Int, heartbeat: Bool = false,
             _ condition: () -> Bool) -> UInt64? {
        let start = model.timeNanoseconds
        for i in 0...(limitMilliseconds * Self.stepsPerMillisecond) {
            if condition() { return model.timeNanoseconds - start }
            if heartbeat && i % (10 * Self.stepsPerMillisecond) == 0 { beatHeart() }
            model.step()
        }
        return nil
    }

    // MARK: Sequences

    /// ENABLE and wait for ENABLED.
    func enable() {
        setCommand(RA610CommandBit.enable)
        let took = run(untilWithinMilliseconds: 50) { has(RA610StatusBit.enabled) }
        #expect(took != nil, "servos did not come on")
    }

    /// Enables, sets target[] = actual position, sets STREAM and waits until STREAMING.
    func startStreaming(streamPeriodMicroseconds: UInt16 = 4000) {
        #expect(write(RA610Register.streamPeriodMicroseconds, [streamPeriodMicroseconds]) == nil)
        if !has(RA610StatusBit.enabled) { enable() }
        setTargets(positionsFromRegisters)
        beatHeart()
        setCommand(RA610CommandBit.enable | RA610CommandBit.stream)
        model.step()
        #expect(has(RA610StatusBit.streaming), "streaming did not begin")
        #expect(faultCode == 0)
    }

    var streamPeriodSteps: Int {
        Int(holding(RA610Register.streamPeriodMicroseconds, 1)[0]) * 1000 / Int(RA610Model.stepNanoseconds)
    }

    /// Streams one setpoint per stream period for `periods` periods: `setpoint(k)` for k = 1...periods, with the
    /// heartbeat changed each period; `afterPeriod` is called after each period's steps.
    func stream(periods: Int, setpoint: (Int) -> [Double], afterPeriod: (Int) -> Bool = { _ in true }) {
        let steps = streamPeriodSteps
        for k in 1...periods {
            beatHeart()
            setTargets(setpoint(k))
            step(steps)
            if !afterPeriod(k) { return }
        }
    }
}
