import ChatCore
import PostgresNIO

extension PostgresChatStore {
    /// For each (tenant, conversation, content), the ids of the conversation's participants it mentions, in order:
    /// one statement for a whole run of sends, none when no content has an `@`.
    static func resolveMentions(
        _ db: some QueryRunner, _ items: [(tenantId: String, conversationId: String, content: String)]
    ) async throws -> [[String]] {
        var keys: (index: [Int64], tenant: [String], conversation: [String], name: [String]) = ([], [], [], [])
        for (index, item) in items.enumerated() {
            for name in Mentions.candidates(in: item.content) {
                keys.index.append(Int64(index))
                keys.tenant.append(item.tenantId)
                keys.conversation.append(item.conversationId)
                keys.name.append(name)
            }
        }
        var result = [[String]](repeating: [], count: items.count)
        guard !keys.index.isEmpty else { return result }
        var found = [[(id: String, username: String)]](repeating: [], count: items.count)
        for try await (index, id, username) in try await db.run(PostgresQuery(
            unsafeSQL: """
                SELECT k.n, u.id, u.username
                FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS k(n, tenant_id, conversation_id, name)
                JOIN users u ON u.tenant_id = k.tenant_id AND lower(u.username) = k.name
                JOIN participants p ON p.tenant_id = u.tenant_id AND p.conversation_id = k.conversation_id AND p.user_id = u.id
                """,
            binds: try bindings(keys.index, keys.tenant, keys.conversation, keys.name))
        ).decode((Int64, String, String).self) {
            found[Int(index)].append((id, username))
        }
        for index in items.indices where !found[index].isEmpty {
            result[index] = Mentions.ordered(found[index], in: items[index].content)
        }
        return result
    }

    /// One row per mentioned person but the sender (their own mention is not news to them), for all the messages.
    static func insertMentionRows(_ db: some QueryRunner, _ messages: [Message]) async throws {
        var rows: (tenant: [String], message: [String], user: [String], conversation: [String], seq: [Int64]) = ([], [], [], [], [])
        for message in messages {
            for userId in message.mentions where userId != message.senderId {
                rows.tenant.append(message.tenantId)
                rows.message.append(message.id)
                rows.user.append(userId)
                rows.conversation.append(message.conversationId)
                rows.seq.append(message.seq)
            }
        }
        guard !rows.tenant.isEmpty else { return }
        try await db.run(PostgresQuery(
            unsafeSQL: """
                INSERT INTO mentions (tenant_id, message_id, user_id, conversation_id, seq)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                """,
            binds: try bindings(rows.tenant, rows.message, rows.user, rows.conversation, rows.seq)))
    }
}
