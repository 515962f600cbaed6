// The lamp drain's lamp-in-cell handshake: a lamp is reported recorded in the cell (which lets the controller send
// the housing grip) only once every sink has made its record durable; a record that fails is tried again until it is
// written, and a stop is not held up by it.

import CellCore
import CellRuntime
import CellService
import Synchronization
import LampCellTestSupport
import Testing

/// A sink whose in-cell record fails a given number of times, then succeeds.
private final class FlakyRecordSink: LampSink, @unchecked Sendable {
    let failuresLeft: Mutex<Int>
    let attempts = Atomic<Int>(0)

    init(failures: Int) { failuresLeft = Mutex(failures) }

    func accept(_ lamp: LampRecord) {}

    func lampStarted(_ lamp: LampRecord) -> Bool {
        attempts.add(1, ordering: .relaxed)
        return failuresLeft.withLock { left in
            if left == 0 { return true }
            left -= 1
            return false
        }
    }
}

@Suite("Lamp drain: the lamp-in-cell handshake")
struct LampDrainTests {
    private static func startedLamp(_ sequence: UInt64) -> LampRecord {
        var lamp = LampRecord(
            serial: LampSerial(dateCode: 26_001, sequence: sequence), variant: 1, startWallNanoseconds: 0,
            startMonotonicNanoseconds: 0)
        lamp.stage = .started
        return lamp
    }

    @Test("a failed in-cell record is tried again; the lamp is reported recorded only once every sink wrote it")
    func recordRetriedUntilWritten() {
        let queue = BoundedQueue<LampRecord>(capacity: 4)
        let flaky = FlakyRecordSink(failures: 3)
        let recorded = Mutex<[UInt64]>([])
        let drain = LampDrain(queue: queue, sinks: [flaky], recordedInCell: { sequence in
            recorded.withLock { $0.append(sequence) }
        })
        drain.start()
        defer { drain.stop() }
        #expect(queue.push(Self.startedLamp(41)))
        let reported = eventually(withinMilliseconds: 5_000) { recorded.withLock { !$0.isEmpty } }
        #expect(reported)
        #expect(recorded.withLock { $0 } == [41], "reported once, after the record was written")
        #expect(flaky.attempts.load(ordering: .relaxed) == 4, "3 failures, then the write that succeeded")
    }

    @Test("a stop is not held up by an in-cell record that keeps failing, and nothing is reported recorded")
    func stopWhileUnwritable() {
        let queue = BoundedQueue<LampRecord>(capacity: 4)
        let never = FlakyRecordSink(failures: .max)
        let recorded = Atomic<Int>(0)
        let drain = LampDrain(queue: queue, sinks: [never], recordedInCell: { _ in recorded.add(1, ordering: .relaxed) })
        drain.start()
        #expect(queue.push(Self.startedLamp(7)))
        #expect(eventually(withinMilliseconds: 5_000) { never.attempts.load(ordering: .relaxed) >= 2 })
        #expect(drain.stop(withinNanoseconds: 5_000_000_000), "the drain thread ended")
        #expect(recorded.load(ordering: .relaxed) == 0)
    }
}
