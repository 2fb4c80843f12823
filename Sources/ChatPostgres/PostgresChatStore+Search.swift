import ChatCore
import PostgresNIO

extension PostgresChatStore {
    public func search(
        tenantId: String, viewerId: String, terms: [String], conversationId: String?, senderId: String?, offset: Int, limit: Int
    ) async throws -> [SearchHit] {
        try await guarded { [self] in
            // Each word a prefix; words are letters and digits only, so nothing typed is read as tsquery syntax.
            let query = terms.map { "\($0):*" }.joined(separator: " & ")
            var sql = """
                SELECT \(Rows.messageColumns),
                       ts_headline('simple', m.content, q, 'StartSel=\u{E000}, StopSel=\u{E001}, MaxWords=24, MinWords=8, MaxFragments=1') AS excerpt,
                       c.title AS conversation_title
                \(Rows.messageFrom)
                JOIN participants p ON p.tenant_id = m.tenant_id AND p.conversation_id = m.conversation_id AND p.user_id = $1
                JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id,
                to_tsquery('simple', $2) q
                WHERE to_tsvector('simple', m.content) @@ q AND m.tenant_id = $3 AND m.deleted_at IS NULL
                """
            var binds = try bindings(viewerId, query, tenantId)
            if let conversationId {
                try binds.append(conversationId)
                sql += " AND m.conversation_id = $\(binds.count)"
            }
            if let senderId {
                try binds.append(senderId)
                sql += " AND m.sender_id = $\(binds.count)"
            }
            try binds.append(Int64(limit))
            try binds.append(Int64(offset))
            sql += " ORDER BY ts_rank(to_tsvector('simple', m.content), q) DESC, m.created_at DESC, m.id LIMIT $\(binds.count - 1) OFFSET $\(binds.count)"
            var rows: [PostgresRandomAccessRow] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) { rows.append(row.makeRandomAccess()) }
            let messages = try await Self.withReactions(pool, tenantId: tenantId, try rows.map(Rows.message))
            return try zip(rows, messages).map { row, message in
                SearchHit(
                    message: message, excerpt: Search.segments(try row.value("excerpt", String.self)),
                    conversationTitle: try row.value("conversation_title", String.self))
            }
        }
    }
}
