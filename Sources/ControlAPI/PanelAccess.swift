import CRealtime
import CellCore
import ControlAPIClient
import Foundation
import NIOHTTP1
import Synchronization

/// Settings of the operator panel's TCP listener and its logins (from `[panel]` in lampcelld.toml).
public struct PanelServerConfiguration: Sendable {
    /// Numeric address and port to listen on.
    public var address: String
    public var port: Int
    /// The operators' logins (`name:crypt-hash` lines); nil: no command is accepted over TCP.
    public var operatorsFile: String?
    /// A session ends after this long without a request.
    public var sessionIdleSeconds: Int
    /// Sessions at most (the oldest ends when a login would pass it).
    public var maximumSessions = 64
    /// Login attempts from one remote address within `loginLockoutSeconds` that may fail before further attempts
    /// from it are refused unchecked (by address, not by name: nobody can lock an operator out by trying their name).
    public var maximumFailedLogins = 5
    public var loginLockoutSeconds = 60
    /// Remote addresses whose failed logins are remembered at most (the oldest are forgotten first).
    public var maximumRememberedAddresses = 1024
    /// Panel connections open at most (apart from the Unix socket's): the next one is closed at once.
    public var maximumConnections = 64

    public init(address: String, port: Int, operatorsFile: String?, sessionIdleSeconds: Int) {
        self.address = address
        self.port = port
        self.operatorsFile = operatorsFile
        self.sessionIdleSeconds = sessionIdleSeconds
    }
}

/// The panel's logins and sessions (docs/HMI.md):
/// - a session is a random 256-bit token in an `HttpOnly; SameSite=Strict` cookie; it ends after the idle time;
/// - every command carries the session's CSRF token in `X-CSRF-Token` (a forged cross-site form cannot read it),
///   and a request whose `Origin` is not the panel's own is refused before anything else;
/// - the operators file is read again when it changed, so adding an operator needs no restart.
/// Thread: any (sessions under a mutex); `login` hashes a password: call it on a blocking-job thread.
final class PanelAccess: Sendable {
    static let cookieName = "lampcell_session"
    static let csrfHeader = "X-CSRF-Token"

    struct Session: Sendable {
        var operatorName: String
        var csrfToken: String
        var lastUsedNanoseconds: UInt64
        /// The operator's hash when the session opened: a new password or a removed operator ends it.
        var passwordHash: String
    }

    /// Why a command from the panel is refused.
    enum Refusal: Error {
        case crossSite(origin: String)
        case noSession
        case badToken
    }

    let configuration: PanelServerConfiguration
    private let sessions = Mutex<[String: Session]>([:])
    private let accounts = Mutex<(accounts: OperatorAccounts?, modified: Date?)>((nil, nil))
    private let failures = Mutex<[String: [UInt64]]>([:])
    /// Monotonic time, ns (tests pass a clock of their own).
    private let clock: @Sendable () -> UInt64

    init(configuration: PanelServerConfiguration, clock: @escaping @Sendable () -> UInt64 = { lampcell_monotonic_ns() }) {
        self.configuration = configuration
        self.clock = clock
    }

    private var idleNanoseconds: UInt64 { UInt64(configuration.sessionIdleSeconds) * 1_000_000_000 }

    /// The session a request's cookie names, if it is still open (and marks it used).
    func session(_ headers: HTTPHeaders) -> Session? {
        guard let token = Self.cookie(Self.cookieName, in: headers) else { return nil }
        let now = clock()
        return sessions.withLock { all -> Session? in
            guard var session = all[token] else { return nil }
            guard now &- session.lastUsedNanoseconds < idleNanoseconds else {
                all[token] = nil
                return nil
            }
            session.lastUsedNanoseconds = now
            all[token] = session
            return session
        }
    }

    /// Checks a state-changing request: same origin, an open session, and its CSRF token. Returns the operator.
    func authorize(_ headers: HTTPHeaders) -> Result<Session, Refusal> {
        if let origin = Self.foreignOrigin(headers) { return .failure(.crossSite(origin: origin)) }
        guard let session = session(headers) else { return .failure(.noSession) }
        guard let token = headers.first(name: Self.csrfHeader),
            OperatorAccounts.constantTimeEqual(Array(token.utf8), Array(session.csrfToken.utf8))
        else { return .failure(.badToken) }
        return .success(session)
    }

    /// Checks a login; on success opens a session and returns its cookie token and the session. Hashes the
    /// password (tens of ms): blocking-job threads only. Throws a message for the operator on failure.
    /// `remote` is the client's address: refused attempts are counted per address. Every attempt counts until it
    /// succeeds, so parallel attempts cannot pass the limit.
    func login(name: String, password: String, remote: String) throws(OperatorAccountsError) -> (token: String, session: Session) {
        let accounts: OperatorAccounts?
        do {
            accounts = try currentAccounts()
        } catch {
            throw OperatorAccountsError("the panel's logins are not available now (the daemon's log says why)")
        }
        guard let accounts else {
            throw OperatorAccountsError("no operators file is configured ([panel] operators_file): the panel is read-only")
        }
        guard OperatorAccounts.nameProblem(name) == nil else { throw OperatorAccountsError("unknown operator or wrong password") }
        let now = clock()
        let lockout = UInt64(configuration.loginLockoutSeconds) * 1_000_000_000
        let admitted = failures.withLock { all -> Bool in
            var recent = (all[remote] ?? []).filter { now &- $0 < lockout }
            guard recent.count < configuration.maximumFailedLogins else { return false }
            recent.append(now)  // counted now, forgiven on success
            all[remote] = recent
            if all.count > configuration.maximumRememberedAddresses {
                all = all.filter { !$0.value.isEmpty && now &- ($0.value.last ?? 0) < lockout }
            }
            return true
        }
        guard admitted else {
            throw OperatorAccountsError(
                "too many refused logins from this address: try again in \(configuration.loginLockoutSeconds) s")
        }
        guard accounts.verify(name: name, password: password), let hash = accounts.storedHash(of: name) else {
            throw OperatorAccountsError("unknown operator or wrong password")
        }
        failures.withLock { $0[remote] = nil }
        let token = Self.randomToken()
        let session = Session(
            operatorName: name, csrfToken: Self.randomToken(), lastUsedNanoseconds: now, passwordHash: hash)
        sessions.withLock { all in
            all = all.filter { now &- $0.value.lastUsedNanoseconds < idleNanoseconds }
            if all.count >= configuration.maximumSessions,
                let oldest = all.min(by: { $0.value.lastUsedNanoseconds < $1.value.lastUsedNanoseconds })?.key
            {
                all[oldest] = nil
            }
            all[token] = session
        }
        return (token, session)
    }

    /// Ends the session the request's cookie names; returns its operator.
    func logout(_ headers: HTTPHeaders) -> String? {
        guard let token = Self.cookie(Self.cookieName, in: headers) else { return nil }
        return sessions.withLock { $0.removeValue(forKey: token)?.operatorName }
    }

    /// The cookie that opens a session (`Max-Age` absent: it ends with the browser; the server ends it when idle).
    static func sessionCookie(_ token: String) -> String {
        "\(cookieName)=\(token); Path=/; HttpOnly; SameSite=Strict"
    }

    /// The cookie that removes it.
    static let expiredCookie = "\(cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"

    /// The operators file, read again when its modification time changed; nil when none is configured.
    private func currentAccounts() throws(OperatorAccountsError) -> OperatorAccounts? {
        guard let path = configuration.operatorsFile else { return nil }
        let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
        if let cached = accounts.withLock({ $0.modified == modified && modified != nil ? $0.accounts : nil }) {
            return cached
        }
        let loaded = try OperatorAccounts.load(path: path)
        accounts.withLock { $0 = (loaded, modified) }
        // A removed operator or a new password ends the sessions opened before.
        sessions.withLock { all in all = all.filter { loaded.storedHash(of: $0.value.operatorName) == $0.value.passwordHash } }
        return loaded
    }

    /// True when `host` (the request's `Host`, with or without a port) is an IP address or `localhost`. A DNS name
    /// is refused: a foreign site that rebinds its name to this address (DNS rebinding) sends its own name as Host.
    static func isAllowedHost(_ host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        var name = Substring(host)
        if name.hasPrefix("[") {  // [IPv6]:port
            guard let close = name.firstIndex(of: "]") else { return false }
            name = name[name.index(after: name.startIndex)..<close]
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        return name.lowercased() == "localhost" || NumericAddress.isValid(String(name))
    }

    /// The request's `Origin` when it names another site than the one the request was sent to; nil for a
    /// same-origin request or one without `Origin` (not sent by a browser's cross-site form or script).
    static func foreignOrigin(_ headers: HTTPHeaders) -> String? {
        guard let origin = headers.first(name: "origin") else { return nil }
        return sameOrigin(origin, host: headers.first(name: "host")) ? nil : origin
    }

    /// True when `origin` (`http://host:port`, or https behind a TLS proxy) names the host the request was sent to.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let url = URLComponents(string: origin), let originHost = url.host else { return false }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        return (url.scheme == "http" || url.scheme == "https") && originAuthority.lowercased() == host.lowercased()
    }

    /// The value of cookie `name` in a request's `Cookie` headers, if any.
    static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        for header in headers[canonicalForm: "cookie"] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return String(parts[1]).trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }

    /// 32 random bytes from the system's generator, hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
