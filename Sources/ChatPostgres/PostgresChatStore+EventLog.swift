import ChatCore
import PostgresNIO

extension PostgresChatStore: SharedEventLog {
    // MARK: Event log

    public func events(tenantId: String, viewerId: String, after: Int64, conversationId: String?, limit: Int) async throws -> [ChatEvent] {
        try await guarded { [self] in
            var sql = """
                SELECT e.id, e.conversation_id, e.type, e.data FROM events e
                WHERE e.tenant_id = $1 AND e.id > $2
                  AND e.conversation_id IN (SELECT conversation_id FROM participants WHERE tenant_id = $1 AND user_id = $3)
                """
            var values = try bindings(tenantId, after, viewerId)
            if let conversationId {
                sql += " AND e.conversation_id = $4"
                values.append(conversationId)
            }
            sql += " ORDER BY e.id LIMIT \(max(1, limit))"
            return try await all(client.query(PostgresQuery(unsafeSQL: sql, binds: values), logger: logger)) { row -> ChatEvent? in
                guard let type = EventType(rawValue: try row.value("type", String.self)) else { return nil }
                return ChatEvent(
                    type: type, eventId: try row.value("id", Int64.self), tenantId: tenantId,
                    conversationId: try row.value("conversation_id", String.self), data: Array(try row.value("data", String.self).utf8))
            }.compactMap { $0 }
        }
    }

    public func eventLogBounds(tenantId: String) async throws -> (latest: Int64, pruned: Int64) {
        try await guarded { [self] in
            try await first(
                client.query("SELECT last_event_id, pruned_through FROM tenants WHERE id = \(tenantId)", logger: logger)
            ) { (try $0.value("last_event_id", Int64.self), try $0.value("pruned_through", Int64.self)) } ?? (0, 0)
        }
    }

    /// Deletes old events on one node at a time (an advisory lock taken for the transaction: a node that finds it
    /// taken skips this round). Each tenant keeps the highest id it ever pruned.
    public func pruneEvents(createdBefore cutoff: Timestamp) async throws -> (count: Int, prunedThrough: Int64) {
        try await guarded { [self] in
            let logger = self.logger
            return try await client.withTransaction(logger: logger) { connection in
                let db = ConnectionRunner(connection: connection, logger: logger)
                var locked = false
                for try await value in try await db.run("SELECT pg_try_advisory_xact_lock(\(PostgresSchema.pruneLock))").decode(Bool.self) {
                    locked = value
                }
                guard locked else { return (0, 0) }
                var highest: [String: Int64] = [:]
                var count = 0
                for try await (tenantId, id) in try await db.run(
                    "DELETE FROM events WHERE created_at < \(cutoff.milliseconds) RETURNING tenant_id, id"
                ).decode((String, Int64).self) {
                    highest[tenantId] = max(highest[tenantId] ?? 0, id)
                    count += 1
                }
                for (tenantId, id) in highest {
                    try await db.run("UPDATE tenants SET pruned_through = GREATEST(pruned_through, \(id)) WHERE id = \(tenantId)")
                }
                return (count, highest.values.max() ?? 0)
            }
        }
    }

    // MARK: SharedEventLog (the cluster broker's reads)

    public func logEvents(tenantId: String, after: Int64, limit: Int) async throws -> [ChatEvent] {
        try await guarded { [self] in
            // Conversation events carry their participants, so "all my conversations" streams learn of new ones.
            let query: PostgresQuery = """
                SELECT e.id, e.conversation_id, e.type, e.data,
                       CASE WHEN e.type IN ('conversation_created', 'conversation_updated')
                            THEN (SELECT array_agg(p.user_id ORDER BY p.joined_at) FROM participants p
                                  WHERE p.tenant_id = e.tenant_id AND p.conversation_id = e.conversation_id)
                       END AS participant_ids
                FROM events e WHERE e.tenant_id = \(tenantId) AND e.id > \(after) ORDER BY e.id LIMIT \(Int64(max(1, limit)))
                """
            return try await all(client.query(query, logger: logger)) { row -> ChatEvent? in
                guard let type = EventType(rawValue: try row.value("type", String.self)) else { return nil }
                let data = Array(try row.value("data", String.self).utf8)
                return ChatEvent(
                    type: type, eventId: try row.value("id", Int64.self), tenantId: tenantId,
                    conversationId: try row.value("conversation_id", String.self), data: data,
                    participantIds: try row.value("participant_ids", [String]?.self) ?? Membership.namedUsers(type: type, data: data))
            }.compactMap { $0 }
        }
    }

    public func logHeads() async throws -> [String: Int64] {
        try await guarded { [self] in
            var heads: [String: Int64] = [:]
            for try await (id, last) in try await client.query("SELECT id, last_event_id FROM tenants", logger: logger).decode((String, Int64).self) {
                heads[id] = last
            }
            return heads
        }
    }
}
