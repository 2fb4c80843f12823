import ChatCore
import ChatSQLite
import Foundation

/// A hasher that does not cost bcrypt's time in tests; the server's bcrypt is tested in ChatServerTests.
struct PlainHasher: PasswordHasher {
    func hash(_ password: String) async throws -> String { "plain:" + password }
    func verify(_ password: String, hash: String) async throws -> Bool { hash == "plain:" + password }
    var placeholderHash: String { "plain:\u{0}" }
}

/// A fresh database file in a temporary folder with the demo tenants seeded.
struct CoreFixture {
    let directory: URL
    let store: SQLiteChatStore
    let hub: RoomHub
    let chat: ChatService

    init() async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-core-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteChatStore(path: directory.appendingPathComponent("chat.sqlite").path)
        hub = RoomHub()
        chat = ChatService(store: store, broker: hub)
        try await DemoData.seedIfEmpty(chat: chat, hasher: PlainHasher())
    }

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

    func cleanUp() {
        try? store.close()
        try? FileManager.default.removeItem(at: directory)
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
