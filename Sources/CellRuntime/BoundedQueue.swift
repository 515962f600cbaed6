import Synchronization

/// A bounded single-producer, single-consumer queue with storage allocated once at init.
///
/// The control thread pushes (finished lamps, events) without allocating, locking or waiting: when the queue is
/// full, `push` returns false and the caller counts the drop (and, for lamps, holds the cell). The consumer thread
/// (ledger writer, logger) pops. Exactly one producer thread and one consumer thread.
public final class BoundedQueue<Element: Sendable>: @unchecked Sendable {
    /// Capacity in elements.
    public let capacity: Int
    private let storage: UnsafeMutablePointer<Element?>
    // Monotonic counters; index = counter % capacity.
    private let head = Atomic<Int>(0)  // next to pop (consumer)
    private let tail = Atomic<Int>(0)  // next to push (producer)

    public init(capacity: Int) {
        precondition(capacity > 0, "BoundedQueue capacity must be positive")
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: nil, count: capacity)
    }

    deinit {
        storage.deinitialize(count: capacity)
        storage.deallocate()
    }

    /// Appends `element`; false when full. Thread: the one producer. Does not allocate (for POD elements).
    @discardableResult
    public func push(_ element: Element) -> Bool {
        let t = tail.load(ordering: .relaxed)
        let h = head.load(ordering: .acquiring)
        if t - h >= capacity { return false }
        storage[t % capacity] = element
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// Removes the oldest element, or nil when empty. Thread: the one consumer.
    public func pop() -> Element? {
        let h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        if h == t { return nil }
        let element = storage[h % capacity].take()
        head.store(h + 1, ordering: .releasing)
        return element
    }

    /// Elements waiting (approximate when read from a third thread).
    public var count: Int { tail.load(ordering: .acquiring) - head.load(ordering: .acquiring) }
}
