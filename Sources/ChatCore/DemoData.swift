/// Seeds a living demo on an empty database: two tenants, their users, conversations and a thread.
public enum DemoData {
    public static let password = "demo-password"
    public static let tenants: [(slug: String, name: String, users: [(String, String)])] = [
        ("acme", "Acme Corp", [("alice", "Alice Anders"), ("bob", "Bob Brown"), ("carol", "Carol Chen")]),
        ("globex", "Globex", [("dave", "Dave Diaz"), ("erin", "Erin Evans")]),
    ]

    /// Seeds when the database has no tenant; returns false (and changes nothing) otherwise.
    @discardableResult
    public static func seedIfEmpty(chat: ChatService, hasher: any PasswordHasher) async throws -> Bool {
        // Several nodes may start together on one empty database: one seeds, the others then find it seeded.
        try await chat.store.withSetupLock { try await seed(chat: chat, hasher: hasher) }
    }

    private static func seed(chat: ChatService, hasher: any PasswordHasher) async throws -> Bool {
        guard try await chat.store.isEmpty() else { return false }
        let hash = try await hasher.hash(password)
        var users: [String: User] = [:]
        for tenant in tenants {
            let created = try await chat.store.createTenant(slug: tenant.slug, name: tenant.name)
            for (username, displayName) in tenant.users {
                users[username] = try await chat.store.createUser(
                    tenantId: created.id, username: username, displayName: displayName, passwordHash: hash)
            }
        }
        func principal(_ name: String) -> Principal {
            let user = users[name]!
            return Principal(tenantId: user.tenantId, userId: user.id, method: .token, credentialHash: "", csrfToken: nil, expiresAt: .now())
        }
        let alice = principal("alice"), bob = principal("bob"), carol = principal("carol")
        let general = try await chat.startConversation(alice, title: "General", participantIds: [users["bob"]!.id, users["carol"]!.id])
        let (welcome, _) = try await chat.send(alice, conversationId: general.id, content: "Welcome to Acme chat! 👋", threadParentId: nil, clientMessageId: nil)
        _ = try await chat.send(bob, conversationId: general.id, content: "Thanks Alice. Is the launch still on Friday?", threadParentId: nil, clientMessageId: nil)
        _ = try await chat.send(carol, conversationId: nil, content: "Replying in a thread: yes, Friday 10:00.", threadParentId: welcome.id, clientMessageId: nil)
        _ = try await chat.send(alice, conversationId: nil, content: "Great, see you all there.", threadParentId: welcome.id, clientMessageId: nil)
        let plan = try await chat.startConversation(alice, title: "Launch plan", participantIds: [users["bob"]!.id])
        _ = try await chat.send(bob, conversationId: plan.id, content: "Draft checklist is in the wiki.", threadParentId: nil, clientMessageId: nil)
        let dave = principal("dave")
        let ops = try await chat.startConversation(dave, title: "Ops", participantIds: [users["erin"]!.id])
        _ = try await chat.send(dave, conversationId: ops.id, content: "Globex ops channel: nothing from Acme can be seen here.", threadParentId: nil, clientMessageId: nil)
        // A built-in assistant in each tenant, in a direct conversation with its first user: it answers /summary and
        // /help with no model configured.
        for first in [alice, dave] {
            let assistant = try await chat.store.createAgent(
                tenantId: first.tenantId, username: "assistant", displayName: "Assistant", settings: Agent.Settings())
            _ = try await chat.startConversation(first, title: "Assistant", participantIds: [assistant.id])
        }
        return true
    }
}
