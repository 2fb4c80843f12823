import ArgumentParser
import ChatCore
import ChatModels
import ChatPostgres
import ChatServer
import ChatSQLite
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

@main
struct ChatServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-server",
        abstract: "A multi-tenant real-time chat server.",
        subcommands: [
            Serve.self, CreateTenant.self, CreateUser.self, CreateAgent.self, ListAgents.self, UpdateAgent.self, DeleteAgent.self, MigrateData.self,
            Backup.self,
        ],
        defaultSubcommand: Serve.self)
}

struct DatabaseOption: ParsableArguments {
    @Option(help: ArgumentHelp(
        "A SQLite database file (created if missing), or a postgres:// URL for several nodes on PostgreSQL (env CHAT_DATABASE).",
        valueName: "path-or-url"))
    var database = ProcessInfo.processInfo.environment["CHAT_DATABASE"] ?? "data/chat.sqlite"

    var isPostgres: Bool { PostgresSettings.isPostgresURL(database) }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP, WebSocket, SSE and long-poll server.")

    @Option(help: "Address to bind (env CHAT_HOST).") var host = Env.string("CHAT_HOST", "127.0.0.1")
    @Option(help: "Port to bind; 0 picks a free one (env CHAT_PORT).") var port = Env.int("CHAT_PORT", 8080)
    @OptionGroup var db: DatabaseOption
    @Flag(inversion: .prefixedNo, help: "Seed demo tenants and users when the database is empty (env CHAT_DEMO=1).") var demo = Env.flag("CHAT_DEMO")
    @Option(help: "bcrypt cost for new password hashes (env CHAT_BCRYPT_COST).") var bcryptCost: UInt8 = Env.int("CHAT_BCRYPT_COST", 10)
    @Option(help: "Another origin allowed to use cookie sessions, repeatable (env CHAT_ALLOWED_ORIGIN, comma separated).")
    var allowedOrigin: [String] = Env.list("CHAT_ALLOWED_ORIGIN")
    @Option(help: ArgumentHelp(
        "A reverse proxy whose X-Forwarded-For/-Host/-Proto headers are believed: an address or a network such as 10.0.0.0/8, repeatable (env CHAT_TRUSTED_PROXY, comma separated).",
        valueName: "address"))
    var trustedProxy: [String] = Env.list("CHAT_TRUSTED_PROXY")
    @Option(help: "Secure cookie flag: auto (when the browser used HTTPS), always or never (env CHAT_SECURE_COOKIES).")
    var secureCookies = Env.string("CHAT_SECURE_COOKIES", "auto")
    @Option(help: "Days to keep the durable event log (env CHAT_EVENT_RETENTION_DAYS).") var eventRetentionDays = Env.int("CHAT_EVENT_RETENTION_DAYS", 30)
    @Option(help: ArgumentHelp(
        "A folder with templates/ and Public/; by default found beside the binary (share/chat-server) or in its checkout (env CHAT_RESOURCES).",
        valueName: "folder"))
    var resources: String? = Env.values["CHAT_RESOURCES"]
    @Option(help: ArgumentHelp("A PEM certificate chain: serve HTTPS and WSS with it and --tls-key (env CHAT_TLS_CERTIFICATE).", valueName: "file"))
    var tlsCertificate: String? = Env.values["CHAT_TLS_CERTIFICATE"]
    @Option(help: ArgumentHelp("The PEM private key of --tls-certificate (env CHAT_TLS_KEY).", valueName: "file"))
    var tlsKey: String? = Env.values["CHAT_TLS_KEY"]
    @Option(help: "Seconds after SIGTERM during which /ready answers 503 and open realtime connections keep working, before they are closed with 1001 (env CHAT_DRAIN_SECONDS).")
    var drainSeconds = Env.int("CHAT_DRAIN_SECONDS", 5)
    @Option(help: ArgumentHelp(
        "host:port of a separate listener serving Prometheus metrics at /metrics; off when not given (env CHAT_METRICS_ADDRESS).",
        valueName: "host:port"))
    var metricsAddress: String? = Env.values["CHAT_METRICS_ADDRESS"]
    @Option(help: "Log format: text, or json (one object per line, with request_id on a request's lines) (env CHAT_LOG_FORMAT).")
    var logFormat = Env.string("CHAT_LOG_FORMAT", "text")
    @Option(help: "Log level: trace, debug, info, notice, warning, error (env CHAT_LOG_LEVEL).") var logLevel = Env.string("CHAT_LOG_LEVEL", "info")

    func run() async throws {
        var config = AppConfiguration()
        config.host = host
        config.port = port
        config.seedDemoData = demo
        config.bcryptCost = bcryptCost
        config.allowedOrigins = allowedOrigin
        do { config.proxyTrust = try ProxyTrust(trustedProxy) } catch { throw ValidationError("\(error)") }
        guard let security = AppConfiguration.CookieSecurity(rawValue: secureCookies) else {
            throw ValidationError("--secure-cookies must be auto, always or never")
        }
        config.secureCookies = security
        config.eventRetentionDays = eventRetentionDays
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("give --tls-certificate and --tls-key together") }
        config.tlsCertificatePath = tlsCertificate
        config.tlsKeyPath = tlsKey
        let resourceFolder = try Resources.locate(resources)
        config.templatesDirectory = resourceFolder.appendingPathComponent("templates").path
        config.publicDirectory = resourceFolder.appendingPathComponent("Public").path
        switch logFormat {
        case "json": LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        case "text": LoggingSystem.bootstrap { label in TextLogHandler(label: label) }
        default: throw ValidationError("--log-format must be text or json")
        }
        var logger = Logger(label: "chat-server")
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
        }
        logger.logLevel = level
        var metrics: MetricsListener? = nil
        if let metricsAddress {
            let parts = metricsAddress.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), !parts[0].isEmpty else {
                throw ValidationError("--metrics-address must be host:port, e.g. 127.0.0.1:9090")
            }
            metrics = MetricsListener(endpoint: MetricsEndpoint.bootstrap(), host: String(parts[0]), port: port)
            config.metricsEnabled = true
        }
        if db.isPostgres {
            try await servePostgres(config, metrics: metrics, logger: logger)
        } else {
            try await serveSQLite(config, metrics: metrics, logger: logger)
        }
    }

    struct MetricsListener {
        let endpoint: MetricsEndpoint
        let host: String
        let port: Int

        func services(_ dependencies: ChatDependencies, logger: Logger) -> [any Service] {
            [endpoint.application(host: host, port: port, dependencies: dependencies, logger: logger)]
        }
    }

    private func serveSQLite(_ config: AppConfiguration, metrics: MetricsListener?, logger: Logger) async throws {
        let databasePath = try prepare(db.database)
        // One server per database file: the commit queue, the event ring and the read caches assume every write
        // to the log is this process's. A second `serve` on the same file stops here.
        let lock = try ServeLock(databasePath: databasePath)
        defer { withExtendedLifetime(lock) {} }
        let store = try SQLiteChatStore(path: databasePath)
        let dependencies = ChatDependencies.make(config, store: store, models: OpenAIBackends(client: .shared), logger: logger)
        let app = try await buildApplication(config, dependencies: dependencies, logger: logger)
        announceDemo()
        // Services stop in reverse order on SIGTERM/SIGINT: the drain service first (realtime clients hear 1001
        // before the HTTP server closes), then the application (in-flight requests finish), then the store.
        let group = ServiceGroup(configuration: .init(
            services: [SQLiteStoreService(store: store, logger: logger)] + (metrics?.services(dependencies, logger: logger) ?? [])
                + [app, RealtimeDrainService(connections: dependencies.connections, drain: .seconds(drainSeconds))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// One node of several: the pool runs around everything; migrations and demo seeding happen under an advisory
    /// lock; the cluster broker relays events between nodes through the event log, woken by LISTEN/NOTIFY.
    private func servePostgres(_ config: AppConfiguration, metrics: MetricsListener?, logger: Logger) async throws {
        let settings = try PostgresSettings(url: db.database)
        let store = try PostgresChatStore(settings: settings, logger: logger)
        try await store.withRunningPool {
            try await store.checkReachable()
            try await store.migrate()
            let hub = RoomHub()
            let bus = PostgresClusterBus(store: store)
            let broker = ClusterBroker(hub: hub, log: store, bus: bus, logger: logger)
            try await broker.start()
            let dependencies = ChatDependencies.make(
                config, store: store, hub: hub, broker: broker, models: OpenAIBackends(client: .shared), logger: logger)
            dependencies.auth.revocations.forward { hash in await bus.broadcastRevoked(credentialHash: hash) }
            dependencies.chat.presence.forward { announcements in await bus.broadcastPresence(announcements) }
            dependencies.chat.presence.forwardAway { hash, away in await bus.broadcastAway(credentialHash: hash, away: away) }
            let app = try await buildApplication(config, dependencies: dependencies, logger: logger)
            announceDemo()
            let cluster = PostgresClusterService(
                store: store, bus: bus, broker: broker, revocations: dependencies.auth.revocations, presence: dependencies.chat.presence,
                logger: logger)
            let group = ServiceGroup(configuration: .init(
                services: [cluster] + (metrics?.services(dependencies, logger: logger) ?? [])
                    + [app, RealtimeDrainService(connections: dependencies.connections, drain: .seconds(drainSeconds))],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }

    private func announceDemo() {
        if demo {
            print("""
                Demo data: tenants `acme` (alice, bob, carol) and `globex` (dave, erin), password `\(DemoData.password)`.
                Sign in: curl -s -X POST http://\(host):\(port)/api/auth/token -H 'Content-Type: application/json' \\
                  -d '{"tenant":"acme","username":"alice","password":"\(DemoData.password)"}'
                """)
        }
    }
}

struct CreateTenant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-tenant", abstract: "Create a tenant (workspace).")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Short name used at sign-in, e.g. acme.") var slug: String
    @Option(help: "Display name.") var name: String

    func run() async throws {
        guard slug.range(of: "^[a-z0-9][a-z0-9-]{0,62}$", options: .regularExpression) != nil else {
            throw ValidationError("the slug must be lower-case letters, digits and dashes")
        }
        let tenant = try await withStore(db) { store in try await store.createTenant(slug: slug, name: name) }
        print("created tenant \(tenant.slug) (\(tenant.id))")
    }
}

struct CreateUser: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-user", abstract: "Create a user; the password is read from standard input.")
    @OptionGroup var db: DatabaseOption
    @Option(help: "Tenant slug.") var tenant: String
    @Option(help: "Username, unique within the tenant.") var username: String
    @Option(help: "Display name (defaults to the username).") var displayName: String?
    @Option(help: "bcrypt cost.") var bcryptCost: UInt8 = 10

    func run() async throws {
        guard let password = readLine(strippingNewline: true), password.count >= 8 else {
            throw ValidationError("give a password of at least 8 characters on standard input")
        }
        guard username.range(of: "^[A-Za-z0-9._-]{1,64}$", options: .regularExpression) != nil else {
            throw ValidationError("the username must be 1-64 letters, digits, dots, dashes or underscores")
        }
        let hash = try await BcryptHasher(cost: bcryptCost).hash(password)
        let (tenantSlug, username, displayName) = (self.tenant, self.username, self.displayName)
        let user = try await withStore(db) { store in
            guard let tenant = try await store.tenant(slug: tenantSlug) else { throw ValidationError("no tenant \(tenantSlug)") }
            return try await store.createUser(tenantId: tenant.id, username: username, displayName: displayName ?? username, passwordHash: hash)
        }
        print("created user \(user.username) (\(user.id)) in \(tenantSlug)")
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a SQLite database consistently while the server runs and writes (SQLite's online backup).",
        discussion: """
            The copy holds every message acknowledged before the backup began and passes PRAGMA integrity_check. \
            To restore: stop the server, put the copy in place of the database file (remove its -wal and -shm files), \
            start the server. For PostgreSQL use pg_dump.
            """)
    @OptionGroup var db: DatabaseOption
    @Option(help: "The file to write (it must not exist yet).") var to: String

    func run() throws {
        guard !db.isPostgres else { throw ValidationError("backup copies a SQLite database; for PostgreSQL use pg_dump") }
        guard FileManager.default.fileExists(atPath: db.database) else { throw ValidationError("no SQLite database at \(db.database)") }
        guard !FileManager.default.fileExists(atPath: to) else { throw ValidationError("\(to) exists; give a new file") }
        let copied = try SQLiteBackup.copy(from: db.database, to: to)
        print("backed up \(db.database) to \(to): \(copied.messages) messages, \(copied.events) events, integrity ok")
    }
}

struct MigrateData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-data",
        abstract: "Copy a SQLite database into an empty PostgreSQL one, keeping ids, seq, event ids and credentials.",
        discussion: """
            Clients, their cursors and their sessions survive the move: stop the server on the SQLite file, run this, \
            then start the nodes on the PostgreSQL URL.
            """)
    @Option(help: "The SQLite database file to copy.") var from: String
    @Option(help: "The postgres:// URL of an empty database.") var to: String

    func run() async throws {
        guard PostgresSettings.isPostgresURL(to) else { throw ValidationError("--to must be a postgres:// URL") }
        guard FileManager.default.fileExists(atPath: from) else { throw ValidationError("no SQLite database at \(from)") }
        // No server may write to the file while it is copied.
        let lock = try ServeLock(databasePath: from)
        defer { withExtendedLifetime(lock) {} }
        let source = try SQLiteChatStore(path: from)
        defer { try? source.close() }
        var logger = Logger(label: "chat-server")
        logger.logLevel = .warning
        let target = try PostgresChatStore(settings: try PostgresSettings(url: to), logger: logger)
        let copied = try await target.withRunningPool {
            try await target.checkReachable()
            try await target.migrate()
            try await target.requireEmptyForImport()
            var counts: [String: Int] = [:]
            try await target.importAll(log: try await source.exportLogState()) { consume in
                try await source.exportBatches(batchSize: 2_000) { batch in
                    counts[batch.table, default: 0] += batch.rows.count
                    try await consume(batch)
                }
            }
            return counts
        }
        for (table, _) in StoreTransfer.tables { print("\(table): \(copied[table] ?? 0) rows") }
        print("copied \(from) into \(PostgresSettings.redacted(to))")
    }
}

/// Opens the store named by `--database` for an administrative command (migrating a new PostgreSQL database).
func withStore<T: Sendable>(_ db: DatabaseOption, _ body: (any ChatStore) async throws -> T) async throws -> T {
    if db.isPostgres {
        var logger = Logger(label: "chat-server")
        logger.logLevel = .warning
        let store = try PostgresChatStore(settings: try PostgresSettings(url: db.database), logger: logger)
        return try await store.withRunningPool {
            try await store.checkReachable()
            try await store.migrate()
            return try await body(store)
        }
    }
    let store = try SQLiteChatStore(path: try prepare(db.database))
    defer { try? store.close() }
    return try await body(store)
}

/// Creates the database's folder and returns the path.
func prepare(_ path: String) throws -> String {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    return path
}

/// An exclusive `flock` on `<database>.lock`, held while the server runs (released by the kernel if it dies).
final class ServeLock {
    private let descriptor: Int32

    init(databasePath: String) throws {
        let path = databasePath + ".lock"
        descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ValidationError("cannot open \(path)") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw ValidationError("another chat-server is already serving \(databasePath) (one server per database file)")
        }
    }

    deinit { close(descriptor) }
}
