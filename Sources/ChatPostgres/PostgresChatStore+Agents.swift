import ChatCore
import PostgresNIO

/// Agents: bot users with a backend, and their daily token use.
extension PostgresChatStore {
    static let agentSelect = """
        SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, a.backend, a.base_url, a.model, a.api_key_env,
               a.system_prompt, a.daily_token_budget, a.requests_per_minute, a.created_at
        FROM agents a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.user_id
        """

    static func agent(_ row: PostgresRandomAccessRow) throws -> Agent {
        Agent(
            user: try Rows.user(row),
            settings: Agent.Settings(
                backend: Agent.Backend(rawValue: try row.value("backend", String.self)) ?? .builtin,
                baseURL: try row.value("base_url", String?.self), model: try row.value("model", String?.self),
                apiKeyEnv: try row.value("api_key_env", String?.self), systemPrompt: try row.value("system_prompt", String.self),
                dailyTokenBudget: Int(try row.value("daily_token_budget", Int64.self)),
                requestsPerMinute: Int(try row.value("requests_per_minute", Int32.self))),
            createdAt: Timestamp(milliseconds: try row.value("created_at", Int64.self)))
    }

    public func createAgent(tenantId: String, username: String, displayName: String, settings: Agent.Settings) async throws -> Agent {
        try await guarded { [self] in
            let user = User(id: Identifier.make("usr"), username: username, displayName: displayName, tenantId: tenantId, isBot: true)
            let now = Timestamp.now()
            do {
                try await client.withTransaction(logger: logger) { connection in
                    // "!" is no bcrypt hash: nobody signs in as an agent.
                    try await connection.query(
                        """
                        INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at, is_bot)
                        VALUES (\(user.id), \(tenantId), \(username), \(displayName), '!', \(now.milliseconds), 1)
                        """,
                        logger: logger)
                    try await Self.indexUser(connection, tenantId: tenantId, userId: user.id, username: username, displayName: displayName, logger: logger)
                    try await connection.query(
                        """
                        INSERT INTO agents (tenant_id, user_id, backend, base_url, model, api_key_env, system_prompt, daily_token_budget,
                                            requests_per_minute, created_at)
                        VALUES (\(tenantId), \(user.id), \(settings.backend.rawValue), \(settings.baseURL), \(settings.model), \(settings.apiKeyEnv),
                                \(settings.systemPrompt), \(Int64(settings.dailyTokenBudget)), \(Int32(settings.requestsPerMinute)), \(now.milliseconds))
                        """,
                        logger: logger)
                }
            } catch let error as PSQLError where error.sqlState == .uniqueViolation {
                throw ChatError(.conflict, "user_exists", "A user named \(username) exists in this tenant.")
            } catch let error as PSQLError where error.sqlState == .foreignKeyViolation {
                throw ChatError.notFound("tenant")
            }
            return Agent(user: user, settings: settings, createdAt: now)
        }
    }

    public func agents(tenantId: String) async throws -> [Agent] {
        try await guarded { [self] in
            try await all(
                client.query(
                    PostgresQuery(unsafeSQL: Self.agentSelect + " WHERE a.tenant_id = $1 ORDER BY lower(u.username)", binds: try bindings(tenantId)),
                    logger: logger),
                Self.agent)
        }
    }

    public func agents(tenantId: String, conversationId: String) async throws -> [Agent] {
        try await guarded { [self] in
            try await all(
                client.query(
                    PostgresQuery(
                        unsafeSQL: Self.agentSelect + """
                             JOIN participants p ON p.conversation_id = $1 AND p.user_id = a.user_id AND p.tenant_id = a.tenant_id
                             WHERE a.tenant_id = $2 ORDER BY lower(u.username)
                            """,
                        binds: try bindings(conversationId, tenantId)),
                    logger: logger),
                Self.agent)
        }
    }

    public func updateAgent(tenantId: String, userId: String, settings: Agent.Settings) async throws -> Agent? {
        try await guarded { [self] in
            try await client.query(
                """
                UPDATE agents SET backend = \(settings.backend.rawValue), base_url = \(settings.baseURL), model = \(settings.model),
                       api_key_env = \(settings.apiKeyEnv), system_prompt = \(settings.systemPrompt),
                       daily_token_budget = \(Int64(settings.dailyTokenBudget)), requests_per_minute = \(Int32(settings.requestsPerMinute))
                WHERE tenant_id = \(tenantId) AND user_id = \(userId)
                """,
                logger: logger)
            return try await first(
                client.query(
                    PostgresQuery(unsafeSQL: Self.agentSelect + " WHERE a.tenant_id = $1 AND a.user_id = $2", binds: try bindings(tenantId, userId)),
                    logger: logger),
                Self.agent)
        }
    }

    public func deleteAgent(tenantId: String, userId: String) async throws -> Bool {
        try await guarded { [self] in
            try await first(
                client.query("DELETE FROM agents WHERE tenant_id = \(tenantId) AND user_id = \(userId) RETURNING user_id", logger: logger)
            ) { _ in true } ?? false
        }
    }

    public func reserveTokens(tenantId: String, agentId: String, day: String, tokens: Int, budget: Int) async throws -> Bool {
        try await guarded { [self] in
            // One statement: the row is created or updated only while the day's total stays within the budget.
            try await first(
                client.query(
                    """
                    INSERT INTO agent_usage AS u (tenant_id, agent_id, day, tokens, requests)
                    SELECT \(tenantId), \(agentId), \(day), \(Int64(tokens)), 1 WHERE \(Int64(tokens)) <= \(Int64(budget))
                    ON CONFLICT (tenant_id, agent_id, day) DO UPDATE SET tokens = u.tokens + excluded.tokens, requests = u.requests + 1
                    WHERE u.tokens + excluded.tokens <= \(Int64(budget))
                    RETURNING tokens
                    """,
                    logger: logger)
            ) { _ in true } ?? false
        }
    }

    public func settleTokens(tenantId: String, agentId: String, day: String, delta: Int) async throws {
        guard delta != 0 else { return }
        try await guarded { [self] in
            try await client.query(
                "UPDATE agent_usage SET tokens = GREATEST(0, tokens + \(Int64(delta))) WHERE tenant_id = \(tenantId) AND agent_id = \(agentId) AND day = \(day)",
                logger: logger)
        }
    }

    public func tokensUsed(tenantId: String, agentId: String, day: String) async throws -> Int {
        try await guarded { [self] in
            try await first(
                client.query("SELECT tokens FROM agent_usage WHERE tenant_id = \(tenantId) AND agent_id = \(agentId) AND day = \(day)", logger: logger)
            ) { Int(try $0.value("tokens", Int64.self)) } ?? 0
        }
    }

    public func message(tenantId: String, conversationId: String, senderId: String, clientMessageId: String) async throws -> Message? {
        try await guarded { [self] in
            try await first(
                client.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT \(Rows.messageColumns) \(Rows.messageFrom) WHERE m.conversation_id = $1 AND m.sender_id = $2 AND m.client_message_id = $3 AND m.tenant_id = $4",
                        binds: try bindings(conversationId, senderId, clientMessageId, tenantId)),
                    logger: logger),
                Rows.message)
        }
    }
}
