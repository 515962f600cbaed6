// JSON bodies of the API besides the status document (requests and answers), shared by the server, lampctl and
// the tests.

/// The body of every error answer (4xx, 5xx): `{"status":409,"error":"refused","message":"…"}`.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public var status: Int
    /// A short machine word: `bad_request`, `forbidden`, `not_found`, `method_not_allowed`, `request_timeout`,
    /// `refused`, `payload_too_large`, `headers_too_large`, `unavailable`, `too_many_connections`, `busy`.
    public var error: String
    /// What went wrong, in words (for a refusal: PackML's reason).
    public var message: String
    /// For a refused command or order: the PackML state and mode it was refused in.
    public var state: String?
    public var mode: String?

    public init(status: Int, error: String, message: String, state: String? = nil, mode: String? = nil) {
        self.status = status
        self.error = error
        self.message = message
        self.state = state
        self.mode = mode
    }
}

/// The answer to an accepted command or order: `{"accepted":true,"request":"Start","state":"Starting"}`.
public struct AcceptedBody: Codable, Sendable, Equatable {
    public var accepted: Bool
    /// What was asked (`Start`, `order ORD-1`, `cancel order`).
    public var request: String
    /// The PackML state right after the controller took the request.
    public var state: String

    public init(accepted: Bool, request: String, state: String) {
        self.accepted = accepted
        self.request = request
        self.state = state
    }
}

/// `POST /v1/order`: `{"id":"ORD-1","variant":"LEFT","quantity":10}`.
public struct OrderRequestBody: Codable, Sendable, Equatable {
    /// The order's id (1…64 bytes).
    public var id: String
    /// `LEFT` or `RIGHT`.
    public var variant: String
    /// Good lamps to make (≥ 1).
    public var quantity: Int

    public init(id: String, variant: String, quantity: Int) {
        self.id = id
        self.variant = variant
        self.quantity = quantity
    }
}

/// The PackML commands the API takes, by their path word (`/v1/commands/start`).
public enum CommandWord {
    /// `reset`, `start`, … `clear`, in PackTags order.
    public static let all = ["reset", "start", "stop", "hold", "unhold", "suspend", "unsuspend", "abort", "clear"]
}

/// The unit modes the API takes, by their path word (`/v1/mode/maintenance`).
public enum ModeWord {
    /// In PackTags order (`UnitMode` 1, 2, 3).
    public static let all = ["production", "maintenance", "manual"]
}
