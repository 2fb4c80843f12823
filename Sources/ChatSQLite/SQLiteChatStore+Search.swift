import ChatCore
import GRDB

extension SQLiteChatStore {
    /// The rowid of the newest message (0 when none): a transaction's new messages are the rows above it.
    static func newestMessageRow(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(rowid) FROM messages")) ?? 0
    }

    /// Adds the messages of this transaction (rows above `after`) to the full-text index in one statement, in the
    /// same transaction: search is as up to date as history, and a batch of sends costs one index insert instead of
    /// a trigger per row (an FTS5 insert per row from a trigger was half of the writer's time per send).
    /// Edits and deletes keep their triggers: a message is always committed, so indexed, before it can be changed.
    static func indexForSearch(_ db: Database, after rowid: Int64) throws {
        try db.cachedStatement(sql: "INSERT INTO message_search (rowid, content) SELECT rowid, content FROM messages WHERE rowid > ?")
            .execute(arguments: [rowid])
    }

    public func search(
        tenantId: String, viewerId: String, terms: [String], conversationId: String?, senderId: String?, offset: Int, limit: Int
    ) async throws -> [SearchHit] {
        // Each word a quoted prefix: nothing a person types is read as FTS5 syntax.
        let match = terms.map { "\"\($0)\"*" }.joined(separator: " ")
        var sql = """
            SELECT m.id, m.tenant_id, m.conversation_id, m.sender_id, m.thread_parent_id, m.content, m.created_at, m.seq,
                   m.reply_count, m.client_message_id, m.edited_at, m.deleted_at, u.username, u.display_name, u.is_bot,
                   snippet(message_search, 0, char(57344), char(57345), '…', 16) AS excerpt, c.title AS conversation_title
            FROM message_search
            JOIN messages m ON m.rowid = message_search.rowid
            JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.sender_id
            JOIN participants p ON p.tenant_id = m.tenant_id AND p.conversation_id = m.conversation_id AND p.user_id = ?
            JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
            WHERE message_search MATCH ? AND m.tenant_id = ? AND m.deleted_at IS NULL
            """
        var arguments: StatementArguments = [viewerId, match, tenantId]
        if let conversationId {
            sql += " AND m.conversation_id = ?"
            _ = arguments.append(contentsOf: [conversationId])
        }
        if let senderId {
            sql += " AND m.sender_id = ?"
            _ = arguments.append(contentsOf: [senderId])
        }
        sql += " ORDER BY bm25(message_search), m.created_at DESC, m.id LIMIT ? OFFSET ?"
        _ = arguments.append(contentsOf: [limit, offset])
        return try read { db in
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let messages = try Self.withReactions(db, tenantId: tenantId, rows.map(Self.message))
            return zip(rows, messages).map { row, message in
                SearchHit(message: message, excerpt: Search.segments(row["excerpt"]), conversationTitle: row["conversation_title"])
            }
        }
    }
}
