import ChatCore
import GRDB

/// Agents: bot users with a backend, and their daily token use.
extension SQLiteChatStore {
    static let agentSelect = """
        SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, a.backend, a.base_url, a.model, a.api_key_env,
               a.system_prompt, a.daily_token_budget, a.requests_per_minute, a.created_at
        FROM agents a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.user_id
        """

    static func agent(_ row: Row) -> Agent {
        Agent(
            user: user(row),
            settings: Agent.Settings(
                backend: Agent.Backend(rawValue: row["backend"]) ?? .builtin, baseURL: row["base_url"], model: row["model"],
                apiKeyEnv: row["api_key_env"], systemPrompt: row["system_prompt"], dailyTokenBudget: row["daily_token_budget"],
                requestsPerMinute: row["requests_per_minute"]),
            createdAt: Timestamp(milliseconds: row["created_at"]))
    }

    public func createAgent(tenantId: String, username: String, displayName: String, settings: Agent.Settings) async throws -> Agent {
        let user = User(id: Identifier.make("usr"), username: username, displayName: displayName, tenantId: tenantId, isBot: true)
        let now = Timestamp.now()
        do {
            try await pool.write { db in
                // "!" is no bcrypt hash: nobody signs in as an agent.
                try db.execute(
                    sql: "INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at, is_bot) VALUES (?, ?, ?, ?, '!', ?, 1)",
                    arguments: [user.id, tenantId, username, displayName, now.milliseconds])
                try Self.indexUser(db, tenantId: tenantId, userId: user.id, username: username, displayName: displayName)
                try Self.writeAgent(db, tenantId: tenantId, userId: user.id, settings: settings, createdAt: now, insert: true)
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw ChatError(.conflict, "user_exists", "A user named \(username) exists in this tenant.")
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY {
            throw ChatError.notFound("tenant")
        }
        return Agent(user: user, settings: settings, createdAt: now)
    }

    static func writeAgent(_ db: Database, tenantId: String, userId: String, settings: Agent.Settings, createdAt: Timestamp, insert: Bool) throws {
        let values: [(any DatabaseValueConvertible)?] = [
            settings.backend.rawValue, settings.baseURL, settings.model, settings.apiKeyEnv, settings.systemPrompt,
            settings.dailyTokenBudget, settings.requestsPerMinute,
        ]
        if insert {
            try db.execute(
                sql: """
                    INSERT INTO agents (backend, base_url, model, api_key_env, system_prompt, daily_token_budget, requests_per_minute,
                                        tenant_id, user_id, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: StatementArguments(values + [tenantId, userId, createdAt.milliseconds]))
        } else {
            try db.execute(
                sql: """
                    UPDATE agents SET backend = ?, base_url = ?, model = ?, api_key_env = ?, system_prompt = ?, daily_token_budget = ?,
                                      requests_per_minute = ?
                    WHERE tenant_id = ? AND user_id = ?
                    """,
                arguments: StatementArguments(values + [tenantId, userId]))
        }
    }

    public func agents(tenantId: String) async throws -> [Agent] {
        try read { db in
            try Row.fetchAll(db, sql: Self.agentSelect + " WHERE a.tenant_id = ? ORDER BY u.username", arguments: [tenantId]).map(Self.agent)
        }
    }

    public func agents(tenantId: String, conversationId: String) async throws -> [Agent] {
        try read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: Self.agentSelect + """
                     JOIN participants p ON p.conversation_id = ? AND p.user_id = a.user_id AND p.tenant_id = a.tenant_id
                     WHERE a.tenant_id = ? ORDER BY u.username
                    """),
                arguments: [conversationId, tenantId]
            ).map(Self.agent)
        }
    }

    public func updateAgent(tenantId: String, userId: String, settings: Agent.Settings) async throws -> Agent? {
        try await pool.write { db in
            try Self.writeAgent(db, tenantId: tenantId, userId: userId, settings: settings, createdAt: .now(), insert: false)
            return try Row.fetchOne(db, sql: Self.agentSelect + " WHERE a.tenant_id = ? AND a.user_id = ?", arguments: [tenantId, userId]).map(Self.agent)
        }
    }

    public func deleteAgent(tenantId: String, userId: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM agents WHERE tenant_id = ? AND user_id = ?", arguments: [tenantId, userId])
            return db.changesCount > 0
        }
    }

    public func reserveTokens(tenantId: String, agentId: String, day: String, tokens: Int, budget: Int) async throws -> Bool {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO agent_usage (tenant_id, agent_id, day, tokens, requests) VALUES (?, ?, ?, 0, 0)",
                arguments: [tenantId, agentId, day])
            try db.execute(
                sql: """
                    UPDATE agent_usage SET tokens = tokens + ?, requests = requests + 1
                    WHERE tenant_id = ? AND agent_id = ? AND day = ? AND tokens + ? <= ?
                    """,
                arguments: [tokens, tenantId, agentId, day, tokens, budget])
            return db.changesCount > 0
        }
    }

    public func settleTokens(tenantId: String, agentId: String, day: String, delta: Int) async throws {
        guard delta != 0 else { return }
        try await pool.write { db in
            try db.execute(
                sql: "UPDATE agent_usage SET tokens = max(0, tokens + ?) WHERE tenant_id = ? AND agent_id = ? AND day = ?",
                arguments: [delta, tenantId, agentId, day])
        }
    }

    public func tokensUsed(tenantId: String, agentId: String, day: String) async throws -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT tokens FROM agent_usage WHERE tenant_id = ? AND agent_id = ? AND day = ?", arguments: [tenantId, agentId, day]) ?? 0
        }
    }

    public func message(tenantId: String, conversationId: String, senderId: String, clientMessageId: String) async throws -> Message? {
        try read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: Self.messageSelect + " WHERE m.conversation_id = ? AND m.sender_id = ? AND m.client_message_id = ? AND m.tenant_id = ?"),
                arguments: [conversationId, senderId, clientMessageId, tenantId]
            ).map(Self.message)
        }
    }
}
