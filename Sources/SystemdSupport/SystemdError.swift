#if canImport(Glibc)
import Glibc
#endif

/// A libsystemd or socket call that failed: which call, on what, and the errno it reported.
public struct SystemdError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The call that failed and what it worked on, e.g. `bind /run/lampcelld/api.sock`.
    public var operation: String
    /// The errno value (libsystemd returns `-errno`; this is the positive value).
    public var errorNumber: Int32

    /// - Parameters:
    ///   - operation: the call and its object, for the message.
    ///   - errorNumber: a positive errno value.
    public init(_ operation: String, errorNumber: Int32) {
        self.operation = operation
        self.errorNumber = errorNumber
    }

    public var description: String { "\(operation): \(String(cString: strerror(errorNumber)))" }
}
