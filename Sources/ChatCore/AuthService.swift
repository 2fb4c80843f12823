import Synchronization

/// Hashes and checks passwords (bcrypt in the server; a cheap one may be injected in tests).
public protocol PasswordHasher: Sendable {
    func hash(_ password: String) async throws -> String
    func verify(_ password: String, hash: String) async throws -> Bool
    /// A valid hash of a password nobody knows, checked when an account does not exist so that timing does not
    /// tell an unknown account from a wrong password.
    var placeholderHash: String { get }
}

/// Where failed sign-ins are counted: in memory for one process, in the database when several nodes share it (so
/// the limits hold across nodes behind a round-robin balancer).
public protocol LoginFailureLog: Sendable {
    /// Failure times (Unix milliseconds, oldest first) of each key, from `since` on.
    func loginFailures(keys: [String], since: Int64) async throws -> [String: [Int64]]
    func recordLoginFailure(keys: [String], at: Int64) async throws
    func clearLoginFailures(key: String) async throws
}

/// Failed sign-ins kept in this process.
public final class InMemoryLoginFailures: LoginFailureLog {
    private let failures = Mutex([String: [Int64]]())
    private let maxKeys = 100_000

    public init() {}

    public func loginFailures(keys: [String], since: Int64) async throws -> [String: [Int64]] {
        failures.withLock { map in
            var result: [String: [Int64]] = [:]
            for key in keys {
                let recent = (map[key] ?? []).filter { $0 >= since }
                map[key] = recent.isEmpty ? nil : recent
                result[key] = recent
            }
            return result
        }
    }

    public func recordLoginFailure(keys: [String], at: Int64) async throws {
        failures.withLock { map in
            if map.count > maxKeys { map.removeAll(keepingCapacity: true) }
            for key in keys { map[key, default: []].append(at) }
        }
    }

    public func clearLoginFailures(key: String) async throws {
        _ = failures.withLock { $0.removeValue(forKey: key) }
    }
}

/// Counts failed logins per key (an account, a client address) in a sliding window.
public final class LoginRateLimiter: Sendable {
    /// How many failures a key may have within the window before it is refused.
    public struct Rule: Sendable {
        public var maxFailures: Int
        public var windowSeconds: Int64
        public init(maxFailures: Int, windowSeconds: Int64) {
            self.maxFailures = maxFailures
            self.windowSeconds = windowSeconds
        }
    }

    private let perAccount: Rule
    private let perAddress: Rule
    private let log: any LoginFailureLog

    public init(
        perAccount: Rule = Rule(maxFailures: 10, windowSeconds: 900), perAddress: Rule = Rule(maxFailures: 100, windowSeconds: 900),
        log: any LoginFailureLog = InMemoryLoginFailures()
    ) {
        self.perAccount = perAccount
        self.perAddress = perAddress
        self.log = log
    }

    private func keys(account: String, address: String?) -> [(String, Rule)] {
        [("a:" + account, perAccount)] + (address.map { [("i:" + $0, perAddress)] } ?? [])
    }

    /// Throws 429 `rate_limited` when either key has too many recent failures.
    public func check(account: String, address: String?, now: Timestamp) async throws {
        let keys = keys(account: account, address: address)
        let window = max(perAccount.windowSeconds, perAddress.windowSeconds) * 1000
        let failures = try await log.loginFailures(keys: keys.map(\.0), since: now.milliseconds - window)
        var longest: Int64? = nil
        for (key, rule) in keys {
            let cutoff = now.milliseconds - rule.windowSeconds * 1000
            let recent = (failures[key] ?? []).filter { $0 > cutoff }
            if recent.count >= rule.maxFailures, let oldest = recent.first {
                let seconds = (oldest + rule.windowSeconds * 1000 - now.milliseconds) / 1000 + 1
                longest = max(longest ?? 0, seconds)
            }
        }
        if let longest {
            ChatMetrics.loginRateLimited.increment()
            throw ChatError(.rateLimited, "rate_limited", "Too many failed sign-in attempts. Try again later.", retryAfter: Int(longest))
        }
    }

    public func recordFailure(account: String, address: String?, now: Timestamp) async throws {
        try await log.recordLoginFailure(keys: keys(account: account, address: address).map(\.0), at: now.milliseconds)
    }

    public func recordSuccess(account: String) async throws {
        try await log.clearLoginFailures(key: "a:" + account)
    }
}

/// Sign-in, sessions and API tokens. Secrets are handed to the client once and stored only as SHA-256 hashes.
public struct AuthService: Sendable {
    public let store: any ChatStore
    public let hasher: any PasswordHasher
    public let limiter: LoginRateLimiter
    public var sessionLifetimeSeconds: Int64 = 30 * 86_400
    public var tokenLifetimeSeconds: Int64 = 30 * 86_400
    /// Told when a credential is revoked, so realtime connections opened with it can close.
    public let revocations: RevocationCenter
    /// Recently seen credentials, so that an API request costs no database read for authentication.
    let cache = CredentialCache()

    public init(store: any ChatStore, hasher: any PasswordHasher, limiter: LoginRateLimiter = LoginRateLimiter(), revocations: RevocationCenter = RevocationCenter()) {
        self.store = store
        self.hasher = hasher
        self.limiter = limiter
        self.revocations = revocations
    }

    /// A successful sign-in: the secret to give the client (cookie value or bearer token) and its record.
    public struct SignIn: Sendable {
        public var secret: String
        public var credential: Credential
        public var user: User
    }

    public func signIn(tenant: String, username: String, password: String, address: String?, method: Principal.Method) async throws -> SignIn {
        let now = Timestamp.now()
        let account = tenant.lowercased() + "/" + username.lowercased()
        try await limiter.check(account: account, address: address, now: now)
        let record = try await store.loginRecord(tenantSlug: tenant, username: username)
        // Verify against a fixed hash when the account is unknown, so timing does not tell which part was wrong.
        let ok = try await hasher.verify(password, hash: record?.passwordHash ?? hasher.placeholderHash)
        guard ok, let user = record?.user else {
            try await limiter.recordFailure(account: account, address: address, now: now)
            throw ChatError.invalidCredentials
        }
        try await limiter.recordSuccess(account: account)
        let secret = Secret.make()
        let lifetime = method == .session ? sessionLifetimeSeconds : tokenLifetimeSeconds
        let credential = Credential(
            hash: SHA256.hex(secret), tenantId: user.tenantId, userId: user.id, method: method,
            csrfToken: method == .session ? Secret.make() : nil, createdAt: now, expiresAt: now.adding(seconds: lifetime))
        try await store.insertCredential(credential)
        return SignIn(secret: secret, credential: credential, user: user)
    }

    /// The principal for a secret presented as a cookie (`.session`) or bearer token (`.token`), or nil.
    public func authenticate(secret: String, method: Principal.Method) async throws -> Principal? {
        guard !secret.isEmpty, secret.utf8.count <= 256 else { return nil }
        let hash = SHA256.hex(secret)
        let now = Timestamp.now()
        // The cache is exact only when this process sees every sign-out; nodes sharing a database ask it each time,
        // so a credential revoked on one node is dead on all of them at once.
        let cached = store.eventLogIsLocal
        if cached, let entry = cache.get(hash, now: now) {
            return entry.method == method ? entry.principal : nil
        }
        guard let credential = try await store.credential(hash: hash, now: now) else { return nil }
        if cached { cache.put(credential, now: now) }
        return credential.method == method ? credential.principal : nil
    }

    /// Kills the caller's session or token on the server and closes its realtime connections.
    public func signOut(_ principal: Principal) async throws {
        try await store.deleteCredential(hash: principal.credentialHash)
        cache.remove(principal.credentialHash)
        await revocations.revokeEverywhere(credentialHash: principal.credentialHash)
    }
}

/// A live connection that ends when the credential it was opened with is revoked.
public protocol RevocationWatcher: AnyObject, Sendable {
    func credentialRevoked()
}

/// Tells live connections that the credential they were opened with is gone (logout, expiry).
public final class RevocationCenter: Sendable {
    /// Watchers by credential: a short list each (a person's few tabs and devices). The connections' send queues
    /// are the watchers themselves: no closure and cancel handle per connection (~130 bytes of every open WebSocket).
    private let watchers = Mutex<[String: [any RevocationWatcher]]>([:])
    private let remote = Mutex<(@Sendable (String) async -> Void)?>(nil)

    public init() {}

    /// Where revocations go besides this process (the other nodes sharing the database).
    public func forward(to send: @escaping @Sendable (String) async -> Void) {
        remote.withLock { $0 = send }
    }

    /// The credentials that open connections of this process depend on.
    public var watchedCredentialHashes: [String] { watchers.withLock { Array($0.keys) } }

    /// Revokes here and tells the other nodes.
    public func revokeEverywhere(credentialHash: String) async {
        revoke(credentialHash: credentialHash)
        if let send = remote.withLock({ $0 }) { await send(credentialHash) }
    }

    /// `watcher` hears once when `credentialHash` is revoked, unless removed first (when its connection ends).
    public func add(_ watcher: any RevocationWatcher, credentialHash: String) {
        watchers.withLock { $0[credentialHash, default: []].append(watcher) }
    }

    public func remove(_ watcher: any RevocationWatcher, credentialHash: String) {
        watchers.withLock { watchers in
            guard var list = watchers[credentialHash], let index = list.firstIndex(where: { $0 === watcher }) else { return }
            list.remove(at: index)
            watchers[credentialHash] = list.isEmpty ? nil : list
        }
    }

    public func revoke(credentialHash: String) {
        let revoked = watchers.withLock { $0.removeValue(forKey: credentialHash) } ?? []
        for watcher in revoked { watcher.credentialRevoked() }
    }
}

/// Credentials read from the store in the last minute. A sign-out in this process evicts at once; the short lifetime
/// bounds how long a credential deleted by another process (a future second node) could still be honoured here.
final class CredentialCache: Sendable {
    private let entries = Mutex<[String: (credential: Credential, cachedAt: Int64)]>([:])
    private let lifetimeMilliseconds: Int64 = 60_000
    private let maxEntries = 100_000

    func get(_ hash: String, now: Timestamp) -> Credential? {
        entries.withLock { entries -> Credential? in
            guard let entry = entries[hash] else { return nil }
            guard now.milliseconds - entry.cachedAt < lifetimeMilliseconds, entry.credential.expiresAt > now else {
                entries[hash] = nil
                return nil
            }
            return entry.credential
        }
    }

    func put(_ credential: Credential, now: Timestamp) {
        entries.withLock { entries in
            if entries.count >= maxEntries { entries.removeAll(keepingCapacity: true) }
            entries[credential.hash] = (credential, now.milliseconds)
        }
    }

    func remove(_ hash: String) {
        _ = entries.withLock { $0.removeValue(forKey: hash) }
    }
}
