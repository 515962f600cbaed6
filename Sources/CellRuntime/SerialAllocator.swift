import Foundation
import Synchronization

/// Errors of the serial state file, naming the file.
public struct SerialAllocatorError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// Hands out lamp sequence numbers that never repeat for a cell, across restarts and crashes.
///
/// The state file holds the highest number *reserved*. At start the allocator reserves a block past it
/// (write to a temporary file, fsync, rename, fsync the directory), and hands numbers out of the block from memory;
/// a service thread reserves the next block before the current one runs out. A crash loses at most the unused rest
/// of a block (a gap in the numbers), never repeats one. The ledger's highest recorded number is a floor too.
public final class SerialAllocator: @unchecked Sendable {
    /// Numbers reserved per write of the state file.
    public static let defaultBlockSize: UInt64 = 1000

    public let path: String
    public let blockSize: UInt64
    private let nextNumber: Atomic<UInt64>
    /// Highest number reserved on disk; numbers up to it may be handed out.
    private let reservedThrough: Atomic<UInt64>
    private let refillLock = NSLock()

    /// Loads the state file (missing: starts from `floor`) and reserves the first block.
    /// - Parameter floor: the highest sequence known to be used elsewhere (e.g. the ledger's last serial).
    public init(path: String, floor: UInt64 = 0, blockSize: UInt64 = defaultBlockSize) throws(SerialAllocatorError) {
        precondition(blockSize > 1, "block size must exceed 1")
        self.path = path
        self.blockSize = blockSize
        var reserved: UInt64 = 0
        if FileManager.default.fileExists(atPath: path) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw SerialAllocatorError(path: path, message: "cannot read the serial state file")
            }
            guard let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw SerialAllocatorError(
                    path: path, message: "expected one unsigned number (the highest reserved sequence), found \"\(text.prefix(40))\"")
            }
            reserved = value
        }
        let start = max(reserved, floor) + 1
        nextNumber = Atomic(start)
        reservedThrough = Atomic(start - 1)
        try reserve(through: start - 1 + blockSize)
    }

    /// The next sequence number, or nil when the reserved block is used up (the caller holds production until a
    /// refill lands). Thread: the control thread (one taker). Never blocks, never allocates.
    public func take() -> UInt64? {
        let candidate = nextNumber.load(ordering: .relaxed)
        guard candidate <= reservedThrough.load(ordering: .acquiring) else { return nil }
        nextNumber.store(candidate + 1, ordering: .relaxed)
        return candidate
    }

    /// True when less than half a block is left: a service thread should call `refill()`. Any thread.
    public var needsRefill: Bool {
        // next ≤ reserved + 1 always, so this is the count of numbers left.
        reservedThrough.load(ordering: .acquiring) + 1 - nextNumber.load(ordering: .relaxed) < blockSize / 2
    }

    /// Reserves the next block on disk if less than half a block is left. Thread: a service thread (does disk I/O).
    public func refill() throws(SerialAllocatorError) {
        refillLock.lock()
        defer { refillLock.unlock() }
        guard needsRefill else { return }
        try reserve(through: reservedThrough.load(ordering: .relaxed) + blockSize)
    }

    private func reserve(through value: UInt64) throws(SerialAllocatorError) {
        do throws(DurableFileError) {
            try DurableFile.write(Data("\(value)\n".utf8), to: path)
        } catch {
            throw SerialAllocatorError(path: error.path, message: error.message)
        }
        reservedThrough.store(value, ordering: .releasing)
    }
}
