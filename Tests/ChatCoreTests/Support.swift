import ChatCore
import ChatPostgres
import ChatSQLite
import Foundation
import GRDB
import Logging
import PostgresNIO

/// A hasher that does not cost bcrypt's time in tests; the server's bcrypt is tested in ChatServerTests.
struct PlainHasher: PasswordHasher {
    func hash(_ password: String) async throws -> String { "plain:" + password }
    func verify(_ password: String, hash: String) async throws -> Bool { hash == "plain:" + password }
    var placeholderHash: String { "plain:\u{0}" }
}

/// The stores the store-level suite runs against: SQLite always, PostgreSQL when the test command started one and
/// set `CHAT_TEST_POSTGRES_URL` (a server where the tests may create databases).
enum StoreKind: String, CustomStringConvertible, Sendable, CaseIterable {
    case sqlite, postgres

    static var available: [StoreKind] {
        postgresURL == nil ? [.sqlite] : [.sqlite, .postgres]
    }

    static var postgresURL: String? {
        ProcessInfo.processInfo.environment["CHAT_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    var description: String { rawValue }
}

/// A fresh database (a SQLite file in a temporary folder, or a new PostgreSQL database) with the demo tenants seeded,
/// and the chat service over it as the server wires it (on PostgreSQL with the cluster broker).
struct CoreFixture: Sendable {
    let kind: StoreKind
    let store: any ChatStore
    let hub: RoomHub
    let chat: ChatService
    let cleanUp: @Sendable () -> Void
    private let sqlite: SQLiteChatStore?
    let postgres: PostgresChatStore?
    /// The PostgreSQL database's URL, for a second node on it.
    let databaseURL: String?

    init(_ kind: StoreKind = .sqlite) async throws {
        self.kind = kind
        hub = RoomHub()
        switch kind {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-core-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let store = try SQLiteChatStore(path: directory.appendingPathComponent("chat.sqlite").path)
            (self.store, sqlite, postgres, databaseURL) = (store, store, nil, nil)
            chat = ChatService(store: store, broker: hub)
            cleanUp = {
                try? store.close()
                try? FileManager.default.removeItem(at: directory)
            }
        case .postgres:
            let (store, url, pool, drop) = try await TestPostgres.freshStore()
            (self.store, sqlite, postgres, databaseURL) = (store, nil, store, url)
            let broker = ClusterBroker(hub: hub, log: store, bus: PostgresClusterBus(store: store), logger: store.testLogger)
            try await broker.start()
            chat = ChatService(store: store, broker: broker)
            cleanUp = {
                pool.cancel()
                drop()
            }
        }
        try await DemoData.seedIfEmpty(chat: chat, hasher: PlainHasher())
    }

    /// The SQLite store, for the tests of SQLite's own behaviour.
    var sqliteStore: SQLiteChatStore { sqlite! }

    /// A principal for a demo user, as authentication would produce it.
    func principal(_ tenant: String, _ username: String) async throws -> Principal {
        let record = try await store.loginRecord(tenantSlug: tenant, username: username)!
        return Principal(tenantId: record.user.tenantId, userId: record.user.id, method: .token, credentialHash: "test", csrfToken: nil, expiresAt: .now())
    }

    func tenantId(_ slug: String) async throws -> String {
        try await store.tenant(slug: slug)!.id
    }

    func userId(_ tenant: String, _ username: String) async throws -> String {
        try await store.loginRecord(tenantSlug: tenant, username: username)!.user.id
    }

    func latestEventId(_ tenant: String = "acme") async throws -> Int64 {
        try await store.eventLogBounds(tenantId: try await tenantId(tenant)).latest
    }

    /// Runs raw SQL (with `?` placeholders) straight on the database, past the store: the first column of each row
    /// as an integer. For checks of what is stored, and of what the schema refuses.
    @discardableResult
    func integers(_ sql: String, _ arguments: [String] = []) async throws -> [Int64] {
        if let sqlite {
            return try await sqlite.pool.write { db in try Int64.fetchAll(db, sql: sql, arguments: StatementArguments(arguments)) }
        }
        var numbered = ""
        var index = 0
        for character in sql {
            if character == "?" {
                index += 1
                numbered += "$\(index)"
            } else {
                numbered.append(character)
            }
        }
        var bindings = PostgresBindings()
        for argument in arguments { bindings.append(argument) }
        var result: [Int64] = []
        for try await row in try await postgres!.client.query(PostgresQuery(unsafeSQL: numbered, binds: bindings)) {
            result.append(try row.makeRandomAccess()[0].decode(Int64.self))
        }
        return result
    }
}

/// Another node on the fixture's PostgreSQL database: its own pool, hub, cluster broker and listener.
struct Node: Sendable {
    let store: PostgresChatStore
    let hub: RoomHub
    let broker: ClusterBroker
    let chat: ChatService
    let revocations: RevocationCenter
    let stop: @Sendable () -> Void

    /// `listening: false` leaves out the LISTEN connection and the sweep (a node that hears nothing).
    init(url: String, listening: Bool = true) async throws {
        var logger = Logger(label: "chat-test-node")
        logger.logLevel = .error
        let settings = try PostgresSettings(url: url)
        store = try PostgresChatStore(settings: settings, logger: logger)
        let pool = Task { [store] in await store.client.run() }
        hub = RoomHub()
        let bus = PostgresClusterBus(store: store)
        broker = ClusterBroker(hub: hub, log: store, bus: bus, logger: logger)
        try await broker.start()
        chat = ChatService(store: store, broker: broker)
        revocations = RevocationCenter()
        let listener: Task<Void, Never>?
        if listening {
            chat.presence.forward { announcements in await bus.broadcastPresence(announcements) }
            chat.presence.forwardAway { hash, away in await bus.broadcastAway(credentialHash: hash, away: away) }
            let service = PostgresClusterService(
                store: store, bus: bus, broker: broker, revocations: revocations, presence: chat.presence, logger: logger)
            listener = Task { try? await service.run() }
        } else {
            listener = nil
        }
        stop = {
            listener?.cancel()
            pool.cancel()
        }
    }
}

/// Fresh PostgreSQL databases for tests, on the server the test command started.
enum TestPostgres {
    /// A new database with the schema, a running pool, and a clean-up that drops the database.
    static func freshStore() async throws -> (PostgresChatStore, String, Task<Void, Never>, @Sendable () -> Void) {
        guard let adminURL = StoreKind.postgresURL else { throw TestSetupError("CHAT_TEST_POSTGRES_URL is not set") }
        let name = "chat_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await admin(adminURL, "CREATE DATABASE \(name)")
        var components = URLComponents(string: adminURL)!
        components.path = "/" + name
        var logger = Logger(label: "chat-test-pg")
        logger.logLevel = .error
        let store = try PostgresChatStore(settings: try PostgresSettings(url: components.string!), logger: logger)
        let pool = Task { await store.client.run() }
        try await store.migrate()
        let drop: @Sendable () -> Void = {
            // Dropped in the background; a leftover database is harmless (the server is a throwaway).
            Task { try? await admin(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        }
        return (store, components.string!, pool, drop)
    }

    /// One statement on the admin database, through a short-lived connection.
    static func admin(_ url: String, _ sql: String) async throws {
        let settings = try PostgresSettings(url: url)
        var logger = Logger(label: "chat-test-pg")
        logger.logLevel = .error
        let connection = try await PostgresConnection.connect(configuration: try settings.connectionConfiguration, id: 1, logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension PostgresChatStore {
    var testLogger: Logger {
        var logger = Logger(label: "chat-test-pg")
        logger.logLevel = .error
        return logger
    }
}

/// Collects what the hub delivers to one tenant's subscriber.
final class Recorder: EventSubscriber, @unchecked Sendable {
    // @unchecked: `events` is only touched under `lock`.
    private let lock = NSLock()
    private var events: [ChatEvent] = []

    func deliver(_ event: ChatEvent) { lock.withLock { events.append(event) } }
    var received: [ChatEvent] { lock.withLock { events } }
}
