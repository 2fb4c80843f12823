import ArgumentParser
import ChatCore
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
        subcommands: [Serve.self, CreateTenant.self, CreateUser.self],
        defaultSubcommand: Serve.self)
}

struct DatabaseOption: ParsableArguments {
    @Option(help: "SQLite database file (created if missing).")
    var database = "data/chat.sqlite"
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP, WebSocket, SSE and long-poll server.")

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind (0 picks a free one).") var port = 8080
    @OptionGroup var db: DatabaseOption
    @Flag(help: "Seed demo tenants and users when the database is empty.") var demo = false
    @Option(help: "bcrypt cost for password hashes.") var bcryptCost: UInt8 = 10
    @Option(help: "Another origin allowed to use cookie sessions (repeatable).") var allowedOrigin: [String] = []
    @Option(help: ArgumentHelp(
        "A reverse proxy whose X-Forwarded-For/-Host/-Proto headers are believed: an address or a network such as 10.0.0.0/8 (repeatable).",
        valueName: "address"))
    var trustedProxy: [String] = []
    @Option(help: "Secure cookie flag: auto (HTTPS via X-Forwarded-Proto), always or never.") var secureCookies = "auto"
    @Option(help: "Days to keep the durable event log.") var eventRetentionDays = 30
    @Option(help: "Folder of mustache templates.") var templates = "templates"
    @Option(help: "Folder of static files.") var publicDirectory = "Public"
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

    func run() async throws {
        var config = AppConfiguration()
        config.host = host
        config.port = port
        config.databasePath = try prepare(db.database)
        // One server per database file: the commit queue, the event ring and the read caches assume every write
        // to the log is this process's. A second `serve` on the same file stops here.
        let lock = try ServeLock(databasePath: config.databasePath)
        defer { withExtendedLifetime(lock) {} }
        config.seedDemoData = demo
        config.bcryptCost = bcryptCost
        config.allowedOrigins = allowedOrigin
        do { config.proxyTrust = try ProxyTrust(trustedProxy) } catch { throw ValidationError("\(error)") }
        guard let security = AppConfiguration.CookieSecurity(rawValue: secureCookies) else {
            throw ValidationError("--secure-cookies must be auto, always or never")
        }
        config.secureCookies = security
        config.eventRetentionDays = eventRetentionDays
        config.templatesDirectory = templates
        config.publicDirectory = publicDirectory
        var logger = Logger(label: "chat-server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let dependencies = try ChatDependencies.make(config)
        let app = try await buildApplication(config, dependencies: dependencies, logger: logger)
        if demo {
            print("""
                Demo data: tenants `acme` (alice, bob, carol) and `globex` (dave, erin), password `\(DemoData.password)`.
                Sign in: curl -s -X POST http://\(host):\(port)/api/auth/token -H 'Content-Type: application/json' \\
                  -d '{"tenant":"acme","username":"alice","password":"\(DemoData.password)"}'
                """)
        }
        // The drain service comes after the application, so on SIGTERM/SIGINT it is stopped first: realtime clients
        // hear 1001 before the HTTP server closes, then in-flight requests finish, then the database closes.
        let group = ServiceGroup(configuration: .init(
            services: [app, RealtimeDrainService(connections: dependencies.connections)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
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
        let store = try SQLiteChatStore(path: try prepare(db.database))
        let tenant = try await store.createTenant(slug: slug, name: name)
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
        let store = try SQLiteChatStore(path: try prepare(db.database))
        guard let tenant = try await store.tenant(slug: self.tenant) else { throw ValidationError("no tenant \(self.tenant)") }
        let hash = try await BcryptHasher(cost: bcryptCost).hash(password)
        let user = try await store.createUser(tenantId: tenant.id, username: username, displayName: displayName ?? username, passwordHash: hash)
        print("created user \(user.username) (\(user.id)) in \(tenant.slug)")
    }
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
