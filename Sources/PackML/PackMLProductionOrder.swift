// A production order: make N good lamps of one variant.

/// Why a production order could not be created; names the field.
public enum ProductionOrderError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `id` is empty.
    case emptyID
    /// `id` is longer than `ProductionOrder.maximumIDLength` bytes (UTF-8).
    case idTooLong(lengthBytes: Int)
    /// `quantity` is 0.
    case zeroQuantity

    /// A message naming the field.
    public var description: String {
        switch self {
        case .emptyID: return "production order: field 'id' is empty"
        case .idTooLong(let length):
            return "production order: field 'id' is \(length) bytes long; at most "
                + "\(ProductionOrder.maximumIDLength) are allowed"
        case .zeroQuantity: return "production order: field 'quantity' must be at least 1"
        }
    }
}

/// A production order: `quantity` good lamps of variant `variantCode`, with the number made so far.
///
/// `produced` counts good lamps only (defective and scrapped lamps do not count toward the quantity); the
/// order is fulfilled when `produced` reaches `quantity`, which makes the cell go Execute → Completing.
/// Created off the control thread (the id is a `String`, which allocates); updating `produced` in place on the
/// control thread does not allocate.
public struct ProductionOrder: Sendable, Equatable {
    /// Longest accepted order id, in UTF-8 bytes.
    public static let maximumIDLength = 64

    /// The order's id (from the plant's order system).
    public let id: String
    /// The lamp variant to build (a code from the recipe set).
    public let variantCode: UInt16
    /// Number of good lamps to make (≥ 1).
    public let quantity: UInt32
    /// Good lamps made so far for this order.
    public private(set) var produced: UInt32 = 0

    /// Creates an order; throws if `id` is empty or too long or `quantity` is 0. Not for the control thread.
    public init(id: String, variantCode: UInt16, quantity: UInt32) throws(ProductionOrderError) {
        guard !id.isEmpty else { throw .emptyID }
        guard id.utf8.count <= Self.maximumIDLength else { throw .idTooLong(lengthBytes: id.utf8.count) }
        guard quantity > 0 else { throw .zeroQuantity }
        self.id = id
        self.variantCode = variantCode
        self.quantity = quantity
    }

    /// True once `produced` has reached `quantity`.
    public var isFulfilled: Bool { produced >= quantity }
    /// Good lamps still to make (0 when fulfilled).
    public var remaining: UInt32 { isFulfilled ? 0 : quantity - produced }

    /// Counts one good lamp (saturates at `UInt32.max`). Control thread; no allocation.
    mutating func recordGoodLamp() {
        if produced < UInt32.max { produced += 1 }
    }
}
