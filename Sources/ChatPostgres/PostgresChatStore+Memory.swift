import ChatCore
import PostgresNIO

/// Conversation memory: the messages a summary or an agent reads, and what they keep between updates.
extension PostgresChatStore {
    public func messageRange(tenantId: String, conversationId: String, afterSeq: Int64, limit: Int) async throws -> [Message] {
        try await guarded { [self] in
            try await all(
                client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT \(Rows.messageColumns) \(Rows.messageFrom)
                            WHERE m.conversation_id = $1 AND m.tenant_id = $2 AND m.seq > $3 ORDER BY m.seq LIMIT $4
                            """,
                        binds: try bindings(conversationId, tenantId, afterSeq, Int64(limit))),
                    logger: logger),
                Rows.message)
        }
    }

    public func memory(tenantId: String, conversationId: String, kind: String) async throws -> ConversationMemory? {
        try await guarded { [self] in
            try await first(
                client.query(
                    """
                    SELECT through_seq, body, updated_at FROM conversation_memory
                    WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND kind = \(kind)
                    """,
                    logger: logger)
            ) { row in
                ConversationMemory(
                    tenantId: tenantId, conversationId: conversationId, kind: kind, throughSeq: try row.value("through_seq", Int64.self),
                    body: try row.value("body", String.self), updatedAt: Timestamp(milliseconds: try row.value("updated_at", Int64.self)))
            }
        }
    }

    public func saveMemory(_ memory: ConversationMemory) async throws {
        try await guarded { [self] in
            try await client.query(
                """
                INSERT INTO conversation_memory (tenant_id, conversation_id, kind, through_seq, body, updated_at)
                VALUES (\(memory.tenantId), \(memory.conversationId), \(memory.kind), \(memory.throughSeq), \(memory.body), \(memory.updatedAt.milliseconds))
                ON CONFLICT (tenant_id, conversation_id, kind) DO UPDATE
                SET through_seq = excluded.through_seq, body = excluded.body, updated_at = excluded.updated_at
                WHERE excluded.through_seq >= conversation_memory.through_seq
                """,
                logger: logger)
        }
    }
}
