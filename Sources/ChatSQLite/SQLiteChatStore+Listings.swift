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

    public func conversations(tenantId: String, viewerId: String, after cursor: ConversationCursor?, limit: Int) async throws -> [Conversation] {
        try read { db in
            let (sql, arguments) = Listings.conversations(tenantId: tenantId, viewerId: viewerId, after: cursor, limit: limit)
            let rows = try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
            let participants = try Self.listedParticipants(db, tenantId: tenantId, conversationIds: rows.map { $0["id"] })
            return rows.map { Self.conversation($0, participants: participants[$0["id"]] ?? []) }
        }
    }

    public func members(tenantId: String, conversationId: String, viewerId: String, afterUsername: String?, limit: Int) async throws -> [User]? {
        guard try participates(tenantId: tenantId, conversationId: conversationId, userId: viewerId) else { return nil }
        let (sql, arguments) = Listings.members(tenantId: tenantId, conversationId: conversationId, afterUsername: afterUsername, limit: limit)
        return try read { db in try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { Self.user($0) } }
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
                tenantId: tenantId, viewerId: viewerId, after: ConversationCursor(updatedAt: 1, id: "cnv_x"), limit: 51)),
            ("members", Listings.members(tenantId: tenantId, conversationId: conversationId, afterUsername: "a", limit: 101)),
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
    static func directory(tenantId: String, prefix: String?, afterUsername: String?, limit: Int) -> (String, StatementArguments) {
        var sql: String
        var arguments: StatementArguments
        if let prefix {
            // Driven by the matching terms, [prefix, prefix + U+10FFFF) in their binary order: the cost follows the
            // matches, not the tenant.
            sql = """
                SELECT u.id, u.username, u.display_name, u.tenant_id
                FROM (SELECT DISTINCT user_id FROM user_terms WHERE tenant_id = ? AND term >= ? AND term < ?) t
                CROSS JOIN users u ON u.tenant_id = ? AND u.id = t.user_id
                WHERE 1
                """
            arguments = [tenantId, prefix, prefix + "\u{10FFFF}", tenantId]
        } else {
            sql = "SELECT u.id, u.username, u.display_name, u.tenant_id FROM users u WHERE u.tenant_id = ?"
            arguments = [tenantId]
        }
        if let afterUsername {
            sql += " AND u.username > ?"
            arguments += [afterUsername]
        }
        return (sql + " ORDER BY u.username LIMIT ?", arguments + [limit])
    }

    /// The viewer's participations drive the query: its cost follows the viewer's conversations, never the tenant's.
    static func conversations(tenantId: String, viewerId: String, after cursor: ConversationCursor?, limit: Int) -> (String, StatementArguments) {
        var sql = SQLiteChatStore.conversationSelect.replacingOccurrences(of: "FROM participants p JOIN", with: "FROM participants p CROSS JOIN")
            + " WHERE p.tenant_id = ? AND p.user_id = ?"
        var arguments: StatementArguments = [tenantId, viewerId]
        if let cursor {
            sql += " AND (c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))"
            arguments += [cursor.updatedAt, cursor.updatedAt, cursor.id]
        }
        return (sql + " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?", arguments + [limit])
    }

    /// From the conversation's participants, not the tenant's users in name order: the cost follows its size.
    static func members(tenantId: String, conversationId: String, afterUsername: String?, limit: Int) -> (String, StatementArguments) {
        ("""
        SELECT u.id, u.username, u.display_name, u.tenant_id FROM participants p INDEXED BY participants_by_join
        CROSS JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
        WHERE p.conversation_id = ? AND p.tenant_id = ? AND u.username > ?
        ORDER BY u.username LIMIT ?
        """, [conversationId, tenantId, afterUsername ?? "", limit])
    }

    static func firstParticipants(tenantId: String, conversationId: String) -> (String, StatementArguments) {
        ("""
        SELECT u.id, u.username, u.display_name, u.tenant_id FROM participants p
        CROSS JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
        WHERE p.conversation_id = ? AND p.tenant_id = ? ORDER BY p.joined_at, p.user_id LIMIT ?
        """, [conversationId, tenantId, Conversation.listedParticipants])
    }
}
