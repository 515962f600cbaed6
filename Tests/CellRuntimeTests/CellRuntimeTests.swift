import CRealtime
import Foundation
import Synchronization
import Testing

@testable import CellRuntime
import CellCore

@Suite("BoundedQueue")
struct BoundedQueueTests {
    @Test("full queue refuses, empty queue returns nil, order is kept")
    func boundaries() {
        let queue = BoundedQueue<Int>(capacity: 3)
        #expect(queue.pop() == nil)
        #expect(queue.push(1) && queue.push(2) && queue.push(3))
        #expect(!queue.push(4))
        #expect(queue.count == 3)
        #expect(queue.pop() == 1)
        #expect(queue.push(4))
        #expect([queue.pop(), queue.pop(), queue.pop(), queue.pop()] == [2, 3, 4, nil])
    }

    @Test("one producer and one consumer thread: every element arrives once, in order")
    func spscAcrossThreads() {
        let queue = BoundedQueue<Int>(capacity: 64)
        let total = 200_000
        let producer = Thread {
            var next = 0
            while next < total { if queue.push(next) { next += 1 } }
        }
        producer.start()
        var expected = 0
        var outOfOrder = 0
        while expected < total {
            if let value = queue.pop() {
                if value != expected { outOfOrder += 1 }
                expected += 1
            }
        }
        #expect(outOfOrder == 0)
        #expect(queue.pop() == nil)
    }
}

@Suite("PeriodicThread")
struct PeriodicThreadTests {
    final class Trace: @unchecked Sendable {
        let lock = NSLock()
        var deadlines: [UInt64] = []
        var ends: [UInt64] = []
    }

    @Test("periods follow absolute deadlines one period apart")
    func absoluteDeadlines() {
        let trace = Trace()
        let period: UInt64 = 2_000_000
        let done = DispatchSemaphore(value: 0)
        let loop = PeriodicThread(name: "test-loop", periodNanoseconds: period, fifoPriority: nil, lockMemory: false) {
            timing in
            trace.lock.lock()
            trace.deadlines.append(timing.deadlineNanoseconds)
            let count = trace.deadlines.count
            trace.lock.unlock()
            if count == 50 { done.signal() }
        }
        loop.start()
        done.wait()
        loop.requestStop()
        loop.join()
        trace.lock.lock()
        defer { trace.lock.unlock() }
        let steps = zip(trace.deadlines.dropFirst(), trace.deadlines).map { $0 - $1 }
        // Deadlines are a multiple of the period apart (more than one only after an overrun, e.g. a VM spike).
        #expect(steps.allSatisfy { $0 % period == 0 && $0 >= period })
        #expect(loop.periodsRun >= 50)
        #expect(loop.statistics.figures()[.wakeLatency]!.count >= 50)
    }

    @Test("an overrun is counted and skipped: no burst of catch-up periods")
    func overrunSkips() {
        let trace = Trace()
        let period: UInt64 = 2_000_000
        let done = DispatchSemaphore(value: 0)
        let loop = PeriodicThread(name: "test-overrun", periodNanoseconds: period, fifoPriority: nil, lockMemory: false) {
            timing in
            trace.lock.lock()
            trace.deadlines.append(timing.deadlineNanoseconds)
            let count = trace.deadlines.count
            trace.lock.unlock()
            if count == 5 {
                // Busy for 3.5 periods: deadlines 6, 7 and 8 are missed.
                let until = lampcell_monotonic_ns() + period * 7 / 2
                while lampcell_monotonic_ns() < until {}
            }
            trace.lock.lock()
            trace.ends.append(lampcell_monotonic_ns())
            trace.lock.unlock()
            if count == 10 { done.signal() }
        }
        loop.start()
        done.wait()
        loop.requestStop()
        loop.join()
        trace.lock.lock()
        defer { trace.lock.unlock() }
        #expect(loop.overruns >= 3)
        // The period after the long one is scheduled in the future of the long one's end (no catch-up burst).
        #expect(trace.deadlines[5] > trace.ends[4])
        #expect((trace.deadlines[5] - trace.deadlines[4]) % period == 0)
        #expect(trace.deadlines[5] - trace.deadlines[4] >= 4 * period)
    }
}

@Suite("SerialAllocator")
struct SerialAllocatorTests {
    func temporaryPath() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lampcell-serial-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("serial").path
    }

    @Test("numbers never repeat across restarts, even when a process dies mid-block")
    func uniqueAcrossRestarts() throws {
        let path = temporaryPath()
        var seen = Set<UInt64>()
        for _ in 0..<5 {
            // Each "process" takes some numbers and dies without any shutdown step.
            let allocator = try SerialAllocator(path: path, blockSize: 10)
            for _ in 0..<7 {
                let number = try #require(allocator.take())
                #expect(seen.insert(number).inserted)
            }
        }
        #expect(seen.count == 35)
    }

    @Test("a block runs out without a refill, and a refill extends it")
    func refill() throws {
        let allocator = try SerialAllocator(path: temporaryPath(), blockSize: 4)
        #expect((0..<4).compactMap { _ in allocator.take() } == [1, 2, 3, 4])
        #expect(allocator.take() == nil)
        #expect(allocator.needsRefill)
        try allocator.refill()
        #expect(allocator.take() == 5)
    }

    @Test("the ledger's last number is a floor")
    func floor() throws {
        let allocator = try SerialAllocator(path: temporaryPath(), floor: 41, blockSize: 10)
        #expect(allocator.take() == 42)
    }

    @Test("a corrupt state file is refused with its path")
    func corrupt() throws {
        let path = temporaryPath()
        try "twelve\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: SerialAllocatorError.self) { try SerialAllocator(path: path) }
        do {
            _ = try SerialAllocator(path: path)
        } catch {
            #expect(error.description.hasPrefix(path + ":"))
        }
    }
}
