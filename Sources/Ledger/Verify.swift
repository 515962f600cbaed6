// Walking the hash chain.

import GRDB

/// The first problem `verify` found.
public struct LedgerVerificationFailure: Sendable, Equatable, CustomStringConvertible {
    /// What does not match.
    public enum Reason: Sendable, Equatable {
        /// The row's stored `hash` is not the hash of its content: a field of this row was changed.
        case hashMismatch(stored: String, computed: String)
        /// The row's `prev_hash` is not the previous row's `hash`: a row was deleted, inserted or moved here, or
        /// this row's `prev_hash` was changed. `previousSerial` is the row before it in the chain as it is now.
        case brokenLink(previousSerial: String?, expected: String, stored: String)
        /// Positions jump from `expected - 1` to `found`: rows in between were deleted.
        case positionGap(expected: Int64, found: Int64)
        /// The row cannot be read (damaged JSON column, wrong type).
        case undecodable(message: String)
        /// The ledger ends before a checkpoint: entries `ledgerCount + 1 ... checkpointCount` are missing.
        /// `lastSerial` is the last entry still there.
        case truncated(checkpointCount: Int64, ledgerCount: Int64, lastSerial: String?)
        /// The entry at a checkpoint's position has another hash than the checkpoint: the chain up to there was
        /// rewritten (and re-hashed) since the checkpoint was published.
        case checkpointMismatch(checkpoint: Checkpoint, found: String)
    }

    /// Chain position of the first bad row (for `truncated`: the first missing position).
    public var position: Int64
    /// Serial of the first bad row; for `truncated`, the checkpoint's head serial (which is gone); nil if unknown.
    public var serial: String?
    /// What is wrong.
    public var reason: Reason

    /// Creates a failure report.
    public init(position: Int64, serial: String?, reason: Reason) {
        self.position = position
        self.serial = serial
        self.reason = reason
    }

    public var description: String {
        let row = "position \(position) (\(serial ?? "unknown serial"))"
        switch reason {
        case .hashMismatch(let stored, let computed):
            return "\(row): content does not match its hash (stored \(stored), computed \(computed)): a field was changed"
        case .brokenLink(let previousSerial, let expected, let stored):
            return "\(row): prev_hash \(stored) is not the hash \(expected) of the row before it"
                + " (\(previousSerial ?? "genesis")): a row was deleted, inserted or moved"
        case .positionGap(let expected, let found):
            return "\(row): expected position \(expected), found \(found): \(found - expected) row(s) deleted"
        case .undecodable(let message):
            return "\(row): row cannot be read: \(message)"
        case .truncated(let checkpointCount, let ledgerCount, let lastSerial):
            return "ledger has \(ledgerCount) entries (last \(lastSerial ?? "none")), the checkpoint has \(checkpointCount):"
                + " entries \(ledgerCount + 1)...\(checkpointCount) are missing (checkpoint head \(serial ?? "?"))"
        case .checkpointMismatch(let checkpoint, let found):
            return "\(row): hash \(found) differs from checkpoint \(checkpoint): the chain was rewritten"
        }
    }
}

/// The result of walking the chain.
public struct LedgerVerification: Sendable, Equatable, CustomStringConvertible {
    /// Rows checked and found good (before the failure, if any).
    public var verifiedCount: Int64
    /// The head of the verified chain (count and hash of the last good row).
    public var head: Checkpoint
    /// The first problem, or nil when the whole chain (and every given checkpoint) matches.
    public var failure: LedgerVerificationFailure?

    /// True when nothing was wrong.
    public var isValid: Bool { failure == nil }

    public var description: String {
        if let failure { return "ledger verification FAILED after \(verifiedCount) good entries: \(failure)" }
        return "ledger verified: \(verifiedCount) entries, head \(head.headHash)"
    }
}

extension Ledger {
    /// Walks the whole chain in position order and reports the first row that does not match: positions must run
    /// 1, 2, 3 … without gaps, each `prev_hash` must equal the previous row's `hash` (64 zeros for the first) and
    /// each `hash` must equal the hash of the row's content. Catches changed fields, deleted rows, forged rows
    /// inserted with a recomputed hash (the next row's link breaks) and reordered rows. A truncated tail needs a
    /// checkpoint: `verify(against:)`. Thread: any; reads one snapshot with a cursor (constant memory).
    public func verify() throws(LedgerError) -> LedgerVerification {
        try verify(against: [])
    }

    /// `verify()`, then checks the chain against a published checkpoint: the ledger must hold at least
    /// `checkpoint.count` entries and the entry at that position must have `checkpoint.headHash`.
    public func verify(against checkpoint: Checkpoint) throws(LedgerError) -> LedgerVerification {
        try verify(against: [checkpoint])
    }

    /// `verify()` against several checkpoints (e.g. every one found in the log); the first mismatch in chain
    /// order is reported.
    public func verify(against checkpoints: [Checkpoint]) throws(LedgerError) -> LedgerVerification {
        let decoder = LedgerSchema.makeDecoder()
        var expectedAt: [Int64: Checkpoint] = [:]
        for checkpoint in checkpoints where checkpoint.count > 0 {
            expectedAt[checkpoint.count] = checkpoint
        }
        return try read("verify") { db in
            var head = Checkpoint.genesis
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT \(LedgerSchema.columnList) FROM lamp ORDER BY position")
            func result(_ failure: LedgerVerificationFailure?) -> LedgerVerification {
                LedgerVerification(verifiedCount: head.count, head: head, failure: failure)
            }
            while let row = try cursor.next() {
                let entry: LedgerEntry
                do {
                    entry = try LedgerSchema.entry(row, decoder: decoder)
                } catch {
                    var position = head.count + 1
                    var serial: String?
                    var message = "\(error)"
                    if let ledgerError = error as? LedgerError,
                        case .undecodableRow(let badPosition, let badSerial, let badMessage) = ledgerError
                    {
                        (position, serial, message) = (badPosition, badSerial, badMessage)
                    }
                    return result(
                        LedgerVerificationFailure(position: position, serial: serial, reason: .undecodable(message: message)))
                }
                let expectedPosition = head.count + 1
                if entry.position != expectedPosition {
                    return result(
                        LedgerVerificationFailure(
                            position: entry.position, serial: entry.serial,
                            reason: .positionGap(expected: expectedPosition, found: entry.position)))
                }
                if entry.prevHash != head.headHash {
                    return result(
                        LedgerVerificationFailure(
                            position: entry.position, serial: entry.serial,
                            reason: .brokenLink(
                                previousSerial: head.count == 0 ? nil : head.headSerial, expected: head.headHash,
                                stored: entry.prevHash)))
                }
                let computed = LedgerCanonical.expectedHash(of: entry)
                if computed != entry.hash {
                    return result(
                        LedgerVerificationFailure(
                            position: entry.position, serial: entry.serial,
                            reason: .hashMismatch(stored: entry.hash, computed: computed)))
                }
                if let checkpoint = expectedAt[entry.position], checkpoint.headHash != entry.hash {
                    return result(
                        LedgerVerificationFailure(
                            position: entry.position, serial: entry.serial,
                            reason: .checkpointMismatch(checkpoint: checkpoint, found: entry.hash)))
                }
                head = Checkpoint(count: entry.position, headHash: entry.hash, headSerial: entry.serial)
            }
            if let beyond = checkpoints.filter({ $0.count > head.count }).min(by: { $0.count < $1.count }) {
                return result(
                    LedgerVerificationFailure(
                        position: head.count + 1, serial: beyond.headSerial.isEmpty ? nil : beyond.headSerial,
                        reason: .truncated(
                            checkpointCount: beyond.count, ledgerCount: head.count,
                            lastSerial: head.count == 0 ? nil : head.headSerial)))
            }
            return result(nil)
        }
    }
}
