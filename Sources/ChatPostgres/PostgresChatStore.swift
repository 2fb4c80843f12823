import ChatCore
import Logging
import PostgresNIO
import Synchronization

/// The store for several nodes: one PostgreSQL database shared by any number of `chat-server` processes.
///
/// Ordering contract (see `ChatStore`): a write transaction locks the rows of the tenants it writes, in id order,
/// before anything else, and takes event ids from `tenants.last_event_id`. PostgreSQL makes a commit visible before it
/// releases the transaction's locks, so within a tenant event ids become visible in increasing order with no gap: a
/// reader that has seen id N has seen every id below N, on any node. Tenants never wait for each other.
public final class PostgresChatStore: ChatStore {
    /// The connection pool. It is a service: `PostgresStoreService` runs it.
    public let client: PostgresClient
    let settings: PostgresSettings
    let logger: Logger

    /// Several nodes write the log: no process may keep a view of it that assumes its own commits are all there is.
    public var eventLogIsLocal: Bool { false }

    /// False while the cluster listener cannot reach the database: calls then fail at once (503) instead of queueing
    /// for a connection the pool cannot make (it would wait for as long as the outage lasts).
    private let reachable = Mutex(true)

    public init(settings: PostgresSettings, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        client = PostgresClient(configuration: try settings.clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the connection pool for as long as `body` runs (queries wait for the pool to run).
    public func withRunningPool<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// Applies pending migrations (under the setup lock). The pool must be running.
    public func migrate() async throws {
        try await PostgresSchema.migrate(client, logger: logger)
    }

    /// Fails with a clear message when the database cannot be reached within the connect timeout.
    public func checkReachable() async throws {
        do {
            try await withTimeout(seconds: settings.connectTimeoutSeconds + 1) {
                try await self.client.query("SELECT 1", logger: self.logger)
            }
        } catch {
            throw PostgresSettingsError(
                "cannot reach PostgreSQL at \(settings.host):\(settings.port)/\(settings.database): \(String(reflecting: error))")
        }
    }

    /// The database answers and every migration this build knows is applied.
    public func checkReady() async throws {
        let applied = try await guarded { [self] in
            try await first(client.query("SELECT COUNT(*) AS n FROM schema_migrations", logger: logger)) { try $0.value("n", Int64.self) } ?? 0
        }
        guard applied >= Int64(PostgresSchema.migrations.count) else { throw DatabaseUnavailable(reason: "migrations not applied") }
    }

    public func isUnavailable(_ error: any Error) -> Bool {
        if error is DatabaseUnavailable { return true }
        if let wrapped = error as? PostgresTransactionError {
            return [wrapped.beginError, wrapped.closureError, wrapped.commitError].contains { $0.map(isUnavailable) ?? false }
        }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .queryCancelled:
            return true
        case .server:
            // Lock and statement timeouts, a server shutting down, serialization failures and deadlocks: try again.
            let transient: Set<String> = ["55P03", "57014", "57P01", "57P02", "57P03", "40001", "40P01", "53300"]
            return error.serverInfo?[.sqlState].map(transient.contains) ?? false
        default:
            return false
        }
    }

    public func withSetupLock<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await PostgresSchema.withSetupLock(client, logger: logger, body)
    }

    // MARK: Tenants and users

    public func createTenant(slug: String, name: String) async throws -> Tenant {
        try await guarded { [self] in
            let tenant = Tenant(id: Identifier.make("tnt"), slug: slug, name: name)
            do {
                try await client.query(
                    "INSERT INTO tenants (id, slug, name, created_at) VALUES (\(tenant.id), \(slug), \(name), \(Timestamp.now().milliseconds))",
                    logger: logger)
            } catch let error as PSQLError where error.sqlState == .uniqueViolation {
                throw ChatError(.conflict, "tenant_exists", "A tenant with slug \(slug) exists.")
            }
            return tenant
        }
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await guarded { [self] in
            try await first(client.query("SELECT id, slug, name FROM tenants WHERE id = \(id)", logger: logger), Rows.tenant)
        }
    }

    public func tenant(slug: String) async throws -> Tenant? {
        try await guarded { [self] in
            try await first(client.query("SELECT id, slug, name FROM tenants WHERE lower(slug) = lower(\(slug))", logger: logger), Rows.tenant)
        }
    }

    public func createUser(tenantId: String, username: String, displayName: String, passwordHash: String) async throws -> User {
        try await guarded { [self] in
            let user = User(id: Identifier.make("usr"), username: username, displayName: displayName, tenantId: tenantId)
            do {
                try await client.withTransaction(logger: logger) { connection in
                    try await connection.query(
                        """
                        INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at)
                        VALUES (\(user.id), \(tenantId), \(username), \(displayName), \(passwordHash), \(Timestamp.now().milliseconds))
                        """,
                        logger: logger)
                    try await Self.indexUser(connection, tenantId: tenantId, userId: user.id, username: username, displayName: displayName, logger: logger)
                }
            } catch let error as PSQLError where error.sqlState == .uniqueViolation {
                throw ChatError(.conflict, "user_exists", "A user named \(username) exists in this tenant.")
            } catch let error as PSQLError where error.sqlState == .foreignKeyViolation {
                throw ChatError.notFound("tenant")
            }
            return user
        }
    }

    public func user(tenantId: String, id: String) async throws -> User? {
        try await guarded { [self] in
            try await first(
                client.query("SELECT id, username, display_name, tenant_id, is_bot FROM users WHERE tenant_id = \(tenantId) AND id = \(id)", logger: logger),
                Rows.user)
        }
    }

    /// Writes a user's directory terms.
    static func indexUser(
        _ connection: PostgresConnection, tenantId: String, userId: String, username: String, displayName: String, logger: Logger
    ) async throws {
        let terms = Array(Directory.terms(username: username, displayName: displayName))
        try await connection.query(
            """
            INSERT INTO user_terms (tenant_id, term, user_id, username_key)
            SELECT \(tenantId), t, \(userId), lower(\(username)) FROM unnest(\(terms)::text[]) AS t
            ON CONFLICT DO NOTHING
            """,
            logger: logger)
    }

    public func loginRecord(tenantSlug: String, username: String) async throws -> (user: User, passwordHash: String)? {
        try await guarded { [self] in
            try await first(
                client.query(
                    """
                    SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, u.password_hash
                    FROM users u JOIN tenants t ON t.id = u.tenant_id
                    WHERE lower(t.slug) = lower(\(tenantSlug)) AND lower(u.username) = lower(\(username))
                    """,
                    logger: logger)
            ) { row in (try Rows.user(row), try row.value("password_hash", String.self)) }
        }
    }

    public func isEmpty() async throws -> Bool {
        try await guarded { [self] in
            try await first(client.query("SELECT NOT EXISTS (SELECT 1 FROM tenants) AS empty", logger: logger)) { try $0.value("empty", Bool.self) } ?? true
        }
    }

    // MARK: Credentials

    public func insertCredential(_ c: Credential) async throws {
        try await guarded { [self] in
            try await client.query(
                """
                INSERT INTO credentials (hash, tenant_id, user_id, method, csrf_token, created_at, expires_at)
                VALUES (\(c.hash), \(c.tenantId), \(c.userId), \(c.method.rawValue), \(c.csrfToken), \(c.createdAt.milliseconds), \(c.expiresAt.milliseconds))
                """,
                logger: logger)
        }
    }

    public func credential(hash: String, now: Timestamp) async throws -> Credential? {
        try await guarded { [self] in
            try await first(
                client.query(
                    """
                    SELECT hash, tenant_id, user_id, method, csrf_token, created_at, expires_at
                    FROM credentials WHERE hash = \(hash) AND expires_at > \(now.milliseconds)
                    """,
                    logger: logger)
            ) { row in
                Credential(
                    hash: try row.value("hash", String.self), tenantId: try row.value("tenant_id", String.self),
                    userId: try row.value("user_id", String.self),
                    method: Principal.Method(rawValue: try row.value("method", String.self)) ?? .token,
                    csrfToken: try row.value("csrf_token", String?.self),
                    createdAt: Timestamp(milliseconds: try row.value("created_at", Int64.self)),
                    expiresAt: Timestamp(milliseconds: try row.value("expires_at", Int64.self)))
            }
        }
    }

    public func deleteCredential(hash: String) async throws {
        try await guarded { [self] in
            try await client.query("DELETE FROM credentials WHERE hash = \(hash)", logger: logger)
        }
    }

    public func deleteExpiredCredentials(now: Timestamp) async throws -> Int {
        try await guarded { [self] in
            // Failed sign-ins older than a day count for no window any more (the housekeeping runs hourly).
            try await client.query("DELETE FROM login_failures WHERE at < \(now.milliseconds - 86_400_000)", logger: logger)
            return try await all(
                client.query("DELETE FROM credentials WHERE expires_at <= \(now.milliseconds) RETURNING hash", logger: logger)
            ) { try $0.value("hash", String.self) }.count
        }
    }

    // MARK: Helpers

    /// Whether the database answers, as the cluster listener last found it.
    public func setReachable(_ value: Bool) {
        reachable.withLock { $0 = value }
    }

    /// Every call into the database goes through here: it fails fast while the database is known to be down, and
    /// never waits longer than `requestTimeoutSeconds` (a backstop for a pool that waits for a connection).
    func guarded<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard reachable.withLock({ $0 }) else { throw DatabaseUnavailable(reason: "the database cannot be reached") }
        ChatMetrics.databaseCallsInFlight.increment()
        defer { ChatMetrics.databaseCallsInFlight.decrement() }
        do {
            return try await withTimeout(seconds: settings.requestTimeoutSeconds, body)
        } catch is TimedOut {
            throw DatabaseUnavailable(reason: "no answer from the database within \(settings.requestTimeoutSeconds) s")
        }
    }

    func first<T>(_ rows: PostgresRowSequence, _ map: (PostgresRandomAccessRow) throws -> T) async throws -> T? {
        for try await row in rows { return try map(row.makeRandomAccess()) }
        return nil
    }

    func all<T>(_ rows: PostgresRowSequence, _ map: (PostgresRandomAccessRow) throws -> T) async throws -> [T] {
        var result: [T] = []
        for try await row in rows { result.append(try map(row.makeRandomAccess())) }
        return result
    }
}

extension PostgresRandomAccessRow {
    func value<T: PostgresDecodable>(_ column: String, _ type: T.Type) throws -> T {
        try self[column].decode(T.self)
    }
}

extension PSQLError {
    var sqlState: PostgresError.Code? {
        serverInfo?[.sqlState].map { PostgresError.Code(raw: $0) }
    }
}

/// The database cannot be reached or did not answer in time.
public struct DatabaseUnavailable: Error, CustomStringConvertible {
    public let reason: String
    public var description: String { reason }
}

struct TimedOut: Error {}

/// Runs `body`, failing with `TimedOut` after `seconds`.
func withTimeout<T: Sendable>(seconds: Int, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

extension PostgresChatStore: LoginFailureLog {
    public func loginFailures(keys: [String], since: Int64) async throws -> [String: [Int64]] {
        try await guarded { [self] in
            var result: [String: [Int64]] = [:]
            for try await (key, at) in try await client.query(
                "SELECT key, at FROM login_failures WHERE key = ANY(\(keys)) AND at >= \(since) ORDER BY at", logger: logger
            ).decode((String, Int64).self) {
                result[key, default: []].append(at)
            }
            return result
        }
    }

    public func recordLoginFailure(keys: [String], at: Int64) async throws {
        try await guarded { [self] in
            try await client.query("INSERT INTO login_failures (key, at) SELECT k, \(at) FROM unnest(\(keys)::text[]) AS k", logger: logger)
        }
    }

    public func clearLoginFailures(key: String) async throws {
        try await guarded { [self] in
            try await client.query("DELETE FROM login_failures WHERE key = \(key)", logger: logger)
        }
    }
}
