import ChatCore
import GRDB

/// The listings that grow with a tenant or a person (issue 15): the directory, a person's conversations, a
/// conversation's members and its first participants. Each statement is written so that its cost follows what it
/// returns (CROSS JOIN fixes SQLite's join order where the planner would otherwise walk the tenant), and
/// `listingQueryPlans` shows their plans.
extension SQLiteChatStore {
    public func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) async throws -> [User] {
        let (sql, arguments) = Listings.directory(tenantId: tenantId, prefix: prefix, afterUsername: afterUsername, limit: limit)
        return try read { db in try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { Self.user($0) } }
    }

    public func conversations(tenantId: String, viewerId: String, after cursor: ListCursor?, limit: Int) async throws -> [Conversation] {
        try read { db in
            // First the page's ids (a narrow walk of the viewer's participations), then the page itself: unread
            // counts and participants only for the conversations shown.
            // Someone in many of the tenant's conversations finds a page among its most recently active ones (an
            // index walk that stops at the page); someone in few, by their own participations. The first way is tried
            // over a bounded window and the second taken when the window did not fill the page.
            let (edgeSQL, edgeArguments) = Listings.activityWindowEdge(tenantId: tenantId, after: cursor, window: Listings.activityWindow)
            let edge = try Row.fetchOne(db.cachedStatement(sql: edgeSQL), arguments: edgeArguments)
                .map { ListCursor(time: $0["updated_at"], id: $0["id"]) }
            let (recentSQL, recentArguments) = Listings.conversationsByActivity(
                tenantId: tenantId, viewerId: viewerId, after: cursor, notBefore: edge, limit: limit)
            var ids = try String.fetchAll(db.cachedStatement(sql: recentSQL), arguments: recentArguments)
            if ids.count < limit {
                let (sql, arguments) = Listings.conversations(tenantId: tenantId, viewerId: viewerId, after: cursor, limit: limit)
                ids = try String.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
            }
            guard !ids.isEmpty else { return [] }
            let rows = try Row.fetchAll(
                db,
                sql: Listings.conversationsOfViewer + " WHERE p.conversation_id IN (\(databaseQuestionMarks(count: ids.count))) AND p.user_id = ? AND p.tenant_id = ?",
                arguments: StatementArguments(ids + [viewerId, tenantId]))
            let byId = Dictionary(rows.map { ($0["id"] as String, $0) }, uniquingKeysWith: { first, _ in first })
            let participants = try Self.listedParticipants(db, tenantId: tenantId, conversationIds: ids)
            return ids.compactMap { id in byId[id].map { Self.conversation($0, participants: participants[id] ?? []) } }
        }
    }

    public func members(
        tenantId: String, conversationId: String, viewerId: String, after cursor: ListCursor?, limit: Int
    ) async throws -> [(user: User, joinedAt: Int64)]? {
        guard try participates(tenantId: tenantId, conversationId: conversationId, userId: viewerId) else { return nil }
        let (sql, arguments) = Listings.members(tenantId: tenantId, conversationId: conversationId, after: cursor, limit: limit)
        return try read { db in
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { (Self.user($0), $0["joined_at"]) }
        }
    }

    /// The first `Conversation.listedParticipants` participants of each conversation, by when they joined: an index
    /// range of `participants_by_join` per conversation, whatever its size.
    static func listedParticipants(_ db: Database, tenantId: String, conversationIds: [String]) throws -> [String: [User]] {
        var result: [String: [User]] = [:]
        for id in conversationIds {
            let (sql, arguments) = Listings.firstParticipants(tenantId: tenantId, conversationId: id)
            result[id] = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { user($0) }
        }
        return result
    }

    /// `EXPLAIN QUERY PLAN` of every listing statement, by name, as SQLite reports each step ("SEARCH … USING INDEX").
    public func listingQueryPlans(tenantId: String, viewerId: String, conversationId: String) throws -> [String: [String]] {
        let statements: [(String, (String, StatementArguments))] = [
            ("directory", Listings.directory(tenantId: tenantId, prefix: nil, afterUsername: "a", limit: 101)),
            ("directory search", Listings.directory(tenantId: tenantId, prefix: "a", afterUsername: "a", limit: 101)),
            ("conversations", Listings.conversations(
                tenantId: tenantId, viewerId: viewerId, after: ListCursor(time: 1, id: "cnv_x"), limit: 51)),
            ("conversations by activity", Listings.conversationsByActivity(
                tenantId: tenantId, viewerId: viewerId, after: ListCursor(time: 9, id: "cnv_x"), notBefore: ListCursor(time: 1, id: "cnv_a"), limit: 51)),
            ("activity window", Listings.activityWindowEdge(tenantId: tenantId, after: nil, window: Listings.activityWindow)),
            ("members", Listings.members(tenantId: tenantId, conversationId: conversationId, after: ListCursor(time: 1, id: "usr_x"), limit: 101)),
            ("first participants", Listings.firstParticipants(tenantId: tenantId, conversationId: conversationId)),
        ]
        return try read { db in
            var plans: [String: [String]] = [:]
            for (name, (sql, arguments)) in statements {
                plans[name] = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] }
            }
            return plans
        }
    }
}

/// The listing statements and their arguments.
enum Listings {
    /// The conversation columns, the viewer's participations first (CROSS JOIN keeps SQLite from starting at the
    /// tenant's conversations).
    static let conversationsOfViewer = SQLiteChatStore.conversationSelect.replacingOccurrences(
        of: "FROM participants p JOIN", with: "FROM participants p CROSS JOIN")

    static func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) -> (String, StatementArguments) {
        var sql: String
        var arguments: StatementArguments
        if let prefix {
            // Driven by the matching terms, [prefix, prefix + U+10FFFF) in their binary order: the cost follows the
            // matches, not the tenant.
            sql = """
                SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot
                FROM (SELECT DISTINCT user_id FROM user_terms WHERE tenant_id = ? AND term >= ? AND term < ?) t
                CROSS JOIN users u ON u.tenant_id = ? AND u.id = t.user_id
                WHERE 1
                """
            arguments = [tenantId, prefix, prefix + "\u{10FFFF}", tenantId]
        } else {
            sql = "SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot FROM users u WHERE u.tenant_id = ?"
            arguments = [tenantId]
        }
        if let afterUsername {
            sql += " AND u.username > ?"
            arguments += [afterUsername]
        }
        return (sql + " ORDER BY u.username LIMIT ?", arguments + [limit])
    }

    /// How many of the tenant's most recently active conversations are looked through for a page first.
    static let activityWindow = 2_000

    /// The oldest of the tenant's `window` most recently active conversations after the cursor (nil when there are
    /// fewer): an index-only walk.
    static func activityWindowEdge(tenantId: String, after cursor: ListCursor?, window: Int) -> (String, StatementArguments) {
        let (time, id) = cursor.map { ($0.time, $0.id) } ?? (Int64.max, "\u{10FFFF}")
        return ("""
            SELECT updated_at, id FROM conversations INDEXED BY conversations_by_activity
            WHERE tenant_id = ? AND (updated_at, id) < (?, ?) ORDER BY updated_at DESC, id DESC LIMIT 1 OFFSET ?
            """, [tenantId, time, id, window - 1])
    }

    /// The ids of a page of the viewer's conversations among the tenant's most recently active ones after the cursor
    /// (and not before `notBefore`): `conversations_by_activity` walked in order, each checked by primary key in
    /// `participants`, stopping at the page.
    static func conversationsByActivity(
        tenantId: String, viewerId: String, after cursor: ListCursor?, notBefore edge: ListCursor?, limit: Int
    ) -> (String, StatementArguments) {
        let (time, id) = cursor.map { ($0.time, $0.id) } ?? (Int64.max, "\u{10FFFF}")
        let (edgeTime, edgeId) = edge.map { ($0.time, $0.id) } ?? (Int64.min, "")
        return ("""
            SELECT c.id FROM conversations c INDEXED BY conversations_by_activity
            WHERE c.tenant_id = ? AND (c.updated_at, c.id) < (?, ?) AND (c.updated_at, c.id) >= (?, ?)
              AND EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = c.id AND p.user_id = ? AND p.tenant_id = ?)
            ORDER BY c.updated_at DESC, c.id DESC LIMIT ?
            """, [tenantId, time, id, edgeTime, edgeId, viewerId, tenantId, limit])
    }

    /// The ids of a page of the viewer's conversations, by the viewer's participations: its cost follows the viewer's
    /// conversations, never the tenant's.
    static func conversations(tenantId: String, viewerId: String, after cursor: ListCursor?, limit: Int) -> (String, StatementArguments) {
        var sql = """
            SELECT c.id FROM participants p
            CROSS JOIN conversations c ON c.tenant_id = p.tenant_id AND c.id = p.conversation_id
            WHERE p.tenant_id = ? AND p.user_id = ?
            """
        var arguments: StatementArguments = [tenantId, viewerId]
        if let cursor {
            sql += " AND (c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))"
            arguments += [cursor.time, cursor.time, cursor.id]
        }
        return (sql + " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?", arguments + [limit])
    }

    /// A range of `participants_by_join`: the cost follows the page, not the conversation's size.
    static func members(tenantId: String, conversationId: String, after cursor: ListCursor?, limit: Int) -> (String, StatementArguments) {
        ("""
        SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, p.joined_at FROM participants p INDEXED BY participants_by_join
        CROSS JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
        WHERE p.conversation_id = ? AND p.tenant_id = ? AND (p.joined_at, p.user_id) > (?, ?)
        ORDER BY p.joined_at, p.user_id LIMIT ?
        """, [conversationId, tenantId, cursor?.time ?? Int64.min, cursor?.id ?? "", limit])
    }

    static func firstParticipants(tenantId: String, conversationId: String) -> (String, StatementArguments) {
        ("""
        SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot FROM participants p
        CROSS JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
        WHERE p.conversation_id = ? AND p.tenant_id = ? ORDER BY p.joined_at, p.user_id LIMIT ?
        """, [conversationId, tenantId, Conversation.listedParticipants])
    }
}
