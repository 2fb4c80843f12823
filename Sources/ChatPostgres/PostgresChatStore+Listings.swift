import ChatCore
import PostgresNIO

/// The paged listings of a large tenant (the directory, a person's conversations, a conversation's members and the
/// first participants shown with each conversation). Their statements are built in one place so that
/// `listingQueryPlans` explains exactly what runs.
enum PostgresListings {
    static func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) -> PostgresQuery {
        // Username order is lower(username), the unique index's; terms compare in "C" order, so a prefix is the
        // range [prefix, prefix + U+10FFFF).
        let after = afterUsername ?? ""
        guard let prefix else {
            return """
                SELECT id, username, display_name, tenant_id, is_bot FROM users
                WHERE tenant_id = \(tenantId) AND lower(username) > lower(\(after))
                ORDER BY lower(username) LIMIT \(limit)
                """
        }
        let upper = prefix + "\u{10FFFF}"
        // The matches are found, deduplicated and ordered in `user_terms_search` alone (an index-only range); only
        // the page's users are read.
        return """
            SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot FROM (
                SELECT user_id, min(username_key) AS username_key FROM user_terms
                WHERE tenant_id = \(tenantId) AND term >= \(prefix) AND term < \(upper)
                  AND username_key > lower(\(after))
                GROUP BY user_id ORDER BY 2 LIMIT \(limit)
            ) found
            JOIN users u ON u.tenant_id = \(tenantId) AND u.id = found.user_id
            ORDER BY found.username_key
            """
    }

    /// One page of the viewer's conversations by activity.
    static func conversations(tenantId: String, viewerId: String, after cursor: ListCursor?, limit: Int) throws -> PostgresQuery {
        // Without a cursor, a position above every conversation.
        let (beforeTime, beforeId) = cursor.map { ($0.time, $0.id) } ?? (Int64.max, "")
        // One statement: the planner walks the tenant's activity index for someone in many of its conversations
        // and the viewer's participations (then a sort) for someone in few; either way the unread counts are
        // computed for the page's rows only (after the limit).
        return PostgresQuery(
            unsafeSQL: """
                SELECT \(Rows.conversationColumns) \(Rows.conversationFrom)
                WHERE p.tenant_id = $1 AND p.user_id = $2
                  AND (c.updated_at < $3 OR (c.updated_at = $3 AND c.id < $4) OR $4 = '')
                ORDER BY c.updated_at DESC, c.id DESC LIMIT $5
                """,
            binds: try bindings(tenantId, viewerId, beforeTime, beforeId, Int64(limit)))
    }

    /// A range of `participants_by_join`, whatever the conversation's size.
    static func members(tenantId: String, conversationId: String, after cursor: ListCursor?, limit: Int) -> PostgresQuery {
        let (afterTime, afterId) = cursor.map { ($0.time, $0.id) } ?? (Int64.min, "")
        return """
            SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, p.joined_at FROM participants p
            JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
            WHERE p.tenant_id = \(tenantId) AND p.conversation_id = \(conversationId)
              AND (p.joined_at, p.user_id) > (\(afterTime), \(afterId))
            ORDER BY p.joined_at, p.user_id LIMIT \(limit)
            """
    }

    /// The first `Conversation.listedParticipants` participants of each conversation, by when they joined: one
    /// index range of `participants_by_join` per conversation (LATERAL).
    static func firstParticipants(tenantId: String, conversationIds: [String]) -> PostgresQuery {
        """
        SELECT cid AS conversation_id, listed.id, listed.username, listed.display_name, listed.tenant_id, listed.is_bot
        FROM unnest(\(conversationIds)::text[]) WITH ORDINALITY AS ids(cid, n)
        CROSS JOIN LATERAL (
            SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, p.joined_at, p.user_id FROM participants p
            JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
            WHERE p.tenant_id = \(tenantId) AND p.conversation_id = ids.cid
            ORDER BY p.joined_at, p.user_id LIMIT \(Conversation.listedParticipants)
        ) listed
        ORDER BY ids.n, listed.joined_at, listed.user_id
        """
    }
}

extension PostgresChatStore {
    public func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) async throws -> [User] {
        try await guarded { [self] in
            try await all(
                client.query(PostgresListings.directory(tenantId: tenantId, prefix: prefix, afterUsername: afterUsername, limit: limit), logger: logger),
                Rows.user)
        }
    }

    public func conversations(tenantId: String, viewerId: String, after cursor: ListCursor?, limit: Int) async throws -> [Conversation] {
        try await guarded { [self] in
            let rows = try await client.query(
                try PostgresListings.conversations(tenantId: tenantId, viewerId: viewerId, after: cursor, limit: limit), logger: logger)
            var list: [PostgresRandomAccessRow] = []
            for try await row in rows { list.append(row.makeRandomAccess()) }
            let ids = try list.map { try $0.value("id", String.self) }
            let participants = try await Self.listedParticipants(pool, tenantId: tenantId, conversationIds: ids)
            return try list.map { try Rows.conversation($0, participants: participants[try $0.value("id", String.self)] ?? []) }
        }
    }

    public func members(
        tenantId: String, conversationId: String, viewerId: String, after cursor: ListCursor?, limit: Int
    ) async throws -> [(user: User, joinedAt: Int64)]? {
        try await guarded { [self] in
            guard try await isParticipant(tenantId: tenantId, conversationId: conversationId, userId: viewerId) else { return nil }
            return try await all(
                client.query(PostgresListings.members(tenantId: tenantId, conversationId: conversationId, after: cursor, limit: limit), logger: logger)
            ) { row in (try Rows.user(row), try row.value("joined_at", Int64.self)) }
        }
    }

    static func listedParticipants(_ db: some QueryRunner, tenantId: String, conversationIds: [String]) async throws -> [String: [User]] {
        guard !conversationIds.isEmpty else { return [:] }
        var result: [String: [User]] = [:]
        for try await row in try await db.run(PostgresListings.firstParticipants(tenantId: tenantId, conversationIds: conversationIds)) {
            let row = row.makeRandomAccess()
            result[try row.value("conversation_id", String.self), default: []].append(try Rows.user(row))
        }
        return result
    }

    /// The plan of each listing statement, as `EXPLAIN` prints it, with sequential scans priced out of reach: a
    /// statement that still reads a table in full has no index that serves it. (On a small test database the planner
    /// would rightly prefer scans; this asks whether it has anything else.)
    public func listingQueryPlans(tenantId: String, viewerId: String, conversationId: String) async throws -> [String: [String]] {
        let statements: [(String, PostgresQuery)] = [
            ("directory", PostgresListings.directory(tenantId: tenantId, prefix: nil, afterUsername: "a", limit: 101)),
            ("directory search", PostgresListings.directory(tenantId: tenantId, prefix: "a", afterUsername: "a", limit: 101)),
            ("conversations", try PostgresListings.conversations(
                tenantId: tenantId, viewerId: viewerId, after: ListCursor(time: 1, id: "cnv_x"), limit: 51)),
            ("members", PostgresListings.members(tenantId: tenantId, conversationId: conversationId, after: ListCursor(time: 1, id: "usr_x"), limit: 101)),
            ("first participants", PostgresListings.firstParticipants(tenantId: tenantId, conversationIds: [conversationId, "cnv_x"])),
        ]
        let logger = self.logger
        var plans: [String: [String]] = [:]
        try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: logger)
            try await connection.query("SET LOCAL enable_seqscan = off", logger: logger)
            for (name, statement) in statements {
                var explain = statement
                explain.sql = "EXPLAIN " + statement.sql
                plans[name] = try await connection.query(explain, logger: logger).collect().map { try $0.decode(String.self) }
            }
            try await connection.query("ROLLBACK", logger: logger)
        }
        return plans
    }
}
