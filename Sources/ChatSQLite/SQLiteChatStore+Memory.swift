import ChatCore
import GRDB

/// Conversation memory: the messages a summary or an agent reads, and what they keep between updates.
extension SQLiteChatStore {
    public func messageRange(tenantId: String, conversationId: String, afterSeq: Int64, limit: Int) async throws -> [Message] {
        try read { db in
            // A range of the (conversation_id, seq) unique index.
            try Row.fetchAll(
                db.cachedStatement(sql: Self.messageSelect + " WHERE m.conversation_id = ? AND m.tenant_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?"),
                arguments: [conversationId, tenantId, afterSeq, limit]
            ).map(Self.message)
        }
    }

    public func memory(tenantId: String, conversationId: String, kind: String) async throws -> ConversationMemory? {
        try read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: """
                    SELECT through_seq, body, updated_at FROM conversation_memory WHERE tenant_id = ? AND conversation_id = ? AND kind = ?
                    """),
                arguments: [tenantId, conversationId, kind]
            ).map {
                ConversationMemory(
                    tenantId: tenantId, conversationId: conversationId, kind: kind, throughSeq: $0["through_seq"], body: $0["body"],
                    updatedAt: Timestamp(milliseconds: $0["updated_at"]))
            }
        }
    }

    public func saveMemory(_ memory: ConversationMemory) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO conversation_memory (tenant_id, conversation_id, kind, through_seq, body, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (tenant_id, conversation_id, kind) DO UPDATE
                    SET through_seq = excluded.through_seq, body = excluded.body, updated_at = excluded.updated_at
                    WHERE excluded.through_seq >= conversation_memory.through_seq
                    """,
                arguments: [memory.tenantId, memory.conversationId, memory.kind, memory.throughSeq, memory.body, memory.updatedAt.milliseconds])
        }
    }
}
