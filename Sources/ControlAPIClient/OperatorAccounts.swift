import CCrypt
import Foundation
import Glibc

/// The operators who may command the cell from the web panel: one `name:hash` line each (the format of
/// `/etc/shadow`'s first two fields), `#` comments and blank lines allowed. The hash is crypt(3)'s (libxcrypt),
/// yescrypt by default, so `mkpasswd -m yescrypt` makes one too; `lampctl operator add` writes a line.
/// The daemon reads the file at start and whenever it changed (the panel's login). Thread: any (immutable).
public struct OperatorAccounts: Sendable {
    /// Operator names: letters, digits, `.`, `_`, `-`, at most this long (they appear in logs and the history).
    public static let maximumNameLength = 32
    /// Longest password accepted (longer input is refused before hashing: no hashing work for a megabyte).
    public static let maximumPasswordBytes = 256
    /// The hashing method of new hashes: yescrypt, as Debian's /etc/shadow.
    public static let hashPrefix = "$y$"

    /// The file read, for messages.
    public let path: String
    private let hashes: [String: String]

    public var names: [String] { hashes.keys.sorted() }

    public init(path: String, hashes: [String: String]) {
        self.path = path
        self.hashes = hashes
    }

    /// Reads `path`. Throws naming the file and line of the first bad entry.
    public static func load(path: String) throws(OperatorAccountsError) -> OperatorAccounts {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw OperatorAccountsError("\(path): cannot be read (missing, unreadable, or not UTF-8)")
        }
        return try parse(text, path: path)
    }

    /// Parses the file's text. Throws naming `path` and the line of the first bad entry.
    public static func parse(_ text: String, path: String) throws(OperatorAccountsError) -> OperatorAccounts {
        var hashes: [String: String] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw OperatorAccountsError("\(path):\(index + 1): expected name:hash")
            }
            let name = String(line[..<colon])
            let hash = String(line[line.index(after: colon)...])
            if let problem = nameProblem(name) { throw OperatorAccountsError("\(path):\(index + 1): \(problem)") }
            guard hash.hasPrefix("$"), crypt_checksalt(hash) == CRYPT_SALT_OK else {
                throw OperatorAccountsError(
                    "\(path):\(index + 1): the hash of '\(name)' is not a crypt(3) hash this system supports "
                        + "(make one with lampctl operator add)")
            }
            guard hashes[name] == nil else {
                throw OperatorAccountsError("\(path):\(index + 1): operator '\(name)' appears twice")
            }
            hashes[name] = hash
        }
        return OperatorAccounts(path: path, hashes: hashes)
    }

    /// Why `name` is not an operator name, or nil when it is one.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= maximumNameLength else {
            return "an operator name has 1…\(maximumNameLength) characters; got '\(name)'"
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".utf8)
        guard name.utf8.allSatisfy(allowed.contains) else {
            return "operator name '\(name)' may hold only letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    /// True when `password` is `name`'s. Costs one hash (tens of ms for yescrypt): call it off event loops.
    /// Unknown names cost a hash too, so that timing does not tell which names exist.
    public func verify(name: String, password: String) -> Bool {
        guard password.utf8.count <= Self.maximumPasswordBytes else { return false }
        let stored = hashes[name] ?? Self.decoyHash
        guard let computed = Self.crypt(password, setting: stored) else { return false }
        let match = Self.constantTimeEqual(Array(computed.utf8), Array(stored.utf8))
        return match && hashes[name] != nil
    }

    /// The hash stored for `name`, or nil for an unknown name.
    public func storedHash(of name: String) -> String? { hashes[name] }

    /// A new hash of `password` with a fresh random salt (yescrypt, the library's default cost).
    public static func hash(password: String) throws(OperatorAccountsError) -> String {
        guard password.utf8.count <= maximumPasswordBytes else {
            throw OperatorAccountsError("the password is longer than \(maximumPasswordBytes) bytes")
        }
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        // nil random bytes: libxcrypt draws them from the system's random source.
        guard crypt_gensalt_rn(hashPrefix, 0, nil, 0, &setting, Int32(setting.count)) != nil else {
            throw OperatorAccountsError("crypt_gensalt: error \(errno)")
        }
        let settingText = String(decoding: setting.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let hash = crypt(password, setting: settingText) else {
            throw OperatorAccountsError("crypt: the password could not be hashed")
        }
        return hash
    }

    /// A line of the file for `name`.
    public static func line(name: String, hash: String) -> String { "\(name):\(hash)" }

    /// A hash of a random string made once per process, checked against for unknown names.
    private static let decoyHash: String = (try? hash(password: UUID().uuidString)) ?? "$y$"

    private static func crypt(_ password: String, setting: String) -> String? {
        // crypt_data is ~32 KiB: on the heap, zeroed as crypt_r requires.
        let data = UnsafeMutableRawPointer.allocate(
            byteCount: MemoryLayout<crypt_data>.size, alignment: MemoryLayout<crypt_data>.alignment)
        defer {
            explicit_bzero(data, MemoryLayout<crypt_data>.size)  // the password passed through it
            data.deallocate()
        }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let result = crypt_r(password, setting, data.assumingMemoryBound(to: crypt_data.self)) else { return nil }
        let text = String(cString: result)
        return text.hasPrefix("*") ? nil : text  // libxcrypt's failure tokens start with '*'
    }

    /// Compares two secrets in a time that depends only on their length.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// A bad operators file or password input, with the file and line.
public struct OperatorAccountsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
