import ChatCore
import GRDB

extension SQLiteChatStore {
    /// The ids of the conversation's participants that the content mentions, in order; no statement at all when the
    /// content has no `@`. (`users.username` is COLLATE NOCASE, so the IN list ignores case.)
    static func resolveMentions(_ db: Database, tenantId: String, conversationId: String, content: String) throws -> [String] {
        let names = Mentions.candidates(in: content)
        guard !names.isEmpty else { return [] }
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT u.id, u.username FROM users u
                JOIN participants p ON p.tenant_id = u.tenant_id AND p.user_id = u.id AND p.conversation_id = ?
                WHERE u.tenant_id = ? AND u.username IN (\(databaseQuestionMarks(count: names.count)))
                """,
            arguments: StatementArguments([conversationId, tenantId] + names))
        return Mentions.ordered(rows.map { (id: $0["id"], username: $0["username"]) }, in: content)
    }

    /// One row per mentioned person but the sender (their own mention is not news to them).
    static func insertMentionRows(
        _ db: Database, tenantId: String, messageId: String, conversationId: String, seq: Int64, senderId: String, mentions: [String]
    ) throws {
        for userId in mentions where userId != senderId {
            try db.cachedStatement(sql: "INSERT INTO mentions (tenant_id, message_id, user_id, conversation_id, seq) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [tenantId, messageId, userId, conversationId, seq])
        }
    }
}
