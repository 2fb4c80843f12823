import ChatCore
import Logging
import PostgresNIO

/// The PostgreSQL schema, as numbered migrations applied at start under an advisory lock (several nodes may start at
/// once). As in the SQLite store, every table carries `tenant_id` and composite foreign keys make it impossible to
/// link rows of two tenants. Event ids are per tenant: `tenants.last_event_id` is the counter, taken under the
/// tenant row's lock by every write transaction of the tenant, so ids become visible in commit order with no gap.
enum PostgresSchema {
    /// Arbitrary constants for `pg_advisory_lock`: one for migrations and seeding, one for event pruning.
    static let setupLock: Int64 = 0x63_6861_7473_6574  // "chatset"
    static let pruneLock: Int64 = 0x63_6861_7470_726E  // "chatprn"

    static let migrations: [(version: Int, sql: String)] = [
        (1, """
            CREATE TABLE tenants (
                id TEXT PRIMARY KEY,
                slug TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                last_event_id BIGINT NOT NULL DEFAULT 0 CHECK (last_event_id >= 0),
                pruned_through BIGINT NOT NULL DEFAULT 0
            );
            CREATE UNIQUE INDEX tenants_slug ON tenants (lower(slug));
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                username TEXT NOT NULL,
                display_name TEXT NOT NULL,
                password_hash TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                UNIQUE (tenant_id, id)
            );
            CREATE UNIQUE INDEX users_username ON users (tenant_id, lower(username));
            CREATE TABLE credentials (
                hash TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                method TEXT NOT NULL CHECK (method IN ('session', 'token')),
                csrf_token TEXT,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX credentials_expiry ON credentials (expires_at);
            CREATE TABLE conversations (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id),
                title TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                last_message_at BIGINT,
                closed_at BIGINT,
                last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
                UNIQUE (tenant_id, id),
                FOREIGN KEY (tenant_id, created_by) REFERENCES users(tenant_id, id)
            );
            CREATE TABLE participants (
                tenant_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                joined_at BIGINT NOT NULL,
                last_read_seq BIGINT NOT NULL DEFAULT 0,
                last_read_message_id TEXT,
                PRIMARY KEY (conversation_id, user_id),
                FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
            );
            CREATE INDEX participants_by_user ON participants (tenant_id, user_id);
            CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                sender_id TEXT NOT NULL,
                thread_parent_id TEXT,
                content TEXT NOT NULL CHECK (length(content) > 0),
                created_at BIGINT NOT NULL,
                seq BIGINT NOT NULL CHECK (seq > 0),
                reply_count INTEGER NOT NULL DEFAULT 0,
                client_message_id TEXT,
                UNIQUE (tenant_id, id),
                UNIQUE (tenant_id, conversation_id, id),
                UNIQUE (conversation_id, seq),
                FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id),
                FOREIGN KEY (tenant_id, sender_id) REFERENCES users(tenant_id, id),
                FOREIGN KEY (tenant_id, conversation_id, thread_parent_id) REFERENCES messages(tenant_id, conversation_id, id)
            );
            CREATE UNIQUE INDEX messages_client_id ON messages (conversation_id, sender_id, client_message_id)
                WHERE client_message_id IS NOT NULL;
            CREATE INDEX messages_thread ON messages (thread_parent_id, seq) WHERE thread_parent_id IS NOT NULL;
            CREATE INDEX messages_top_level ON messages (conversation_id, seq) WHERE thread_parent_id IS NULL;
            CREATE TABLE events (
                tenant_id TEXT NOT NULL,
                id BIGINT NOT NULL CHECK (id > 0),
                conversation_id TEXT NOT NULL,
                type TEXT NOT NULL,
                data TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, id),
                FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id)
            );
            CREATE INDEX events_by_room ON events (tenant_id, conversation_id, id);
            CREATE INDEX events_by_time ON events (created_at);
            CREATE TABLE login_failures (
                key TEXT NOT NULL,
                at BIGINT NOT NULL
            );
            CREATE INDEX login_failures_by_key ON login_failures (key, at);
            """),
        // The directory: one row per search term of a user (`Directory.terms`, folded in Swift); "C" collation, so
        // a prefix is a range of the primary key. Existing users are indexed by `backfill` in the same transaction.
        (2, """
            CREATE TABLE user_terms (
                tenant_id TEXT NOT NULL,
                term TEXT COLLATE "C" NOT NULL,
                user_id TEXT NOT NULL,
                PRIMARY KEY (tenant_id, term, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
            );
            """),
        // Large conversations: the participant count kept on the conversation, participants by when they joined.
        (3, """
            ALTER TABLE conversations ADD COLUMN participant_count INTEGER NOT NULL DEFAULT 0;
            UPDATE conversations c SET participant_count = (SELECT COUNT(*) FROM participants p WHERE p.tenant_id = c.tenant_id AND p.conversation_id = c.id);
            CREATE INDEX participants_by_join ON participants (tenant_id, conversation_id, joined_at, user_id);
            CREATE INDEX conversations_by_activity ON conversations (tenant_id, updated_at, id)
            """),
        // Directory search answered from one index: each term carries its user's sort key, so a prefix's matches
        // are deduplicated and ordered without visiting the users (W6: 7 ms to 1.9 ms for a prefix that 4% of a
        // 20,000-person tenant match). Nullable because `migrate-data` copies terms without it and fills it after.
        (4, """
            ALTER TABLE user_terms ADD COLUMN username_key TEXT;
            UPDATE user_terms t SET username_key = lower(u.username) FROM users u WHERE u.tenant_id = t.tenant_id AND u.id = t.user_id;
            CREATE INDEX user_terms_search ON user_terms (tenant_id, term) INCLUDE (username_key, user_id)
            """),
        // Derived data per conversation (summaries' rolling state, agents' memory), see `ConversationMemory`.
        (5, """
            CREATE TABLE conversation_memory (
                tenant_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                through_seq BIGINT NOT NULL,
                body TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, conversation_id, kind),
                FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id) ON DELETE CASCADE
            )
            """),
        // Agents: bot users of a tenant, their backend, and their token use per day (`AgentBudget`). `is_bot` is an
        // integer as in SQLite, so `migrate-data` copies it as it is.
        (6, """
            ALTER TABLE users ADD COLUMN is_bot INTEGER NOT NULL DEFAULT 0 CHECK (is_bot IN (0, 1));
            CREATE TABLE agents (
                tenant_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                backend TEXT NOT NULL CHECK (backend IN ('builtin', 'openai')),
                base_url TEXT,
                model TEXT,
                api_key_env TEXT,
                system_prompt TEXT NOT NULL DEFAULT '',
                daily_token_budget BIGINT NOT NULL CHECK (daily_token_budget >= 0),
                requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute >= 0),
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, user_id),
                FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
            );
            CREATE TABLE agent_usage (
                tenant_id TEXT NOT NULL,
                agent_id TEXT NOT NULL,
                day TEXT NOT NULL,
                tokens BIGINT NOT NULL,
                requests INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, agent_id, day),
                FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, user_id) ON DELETE CASCADE
            )
            """),
        // Edit and delete: when, and a tombstone's content is one space (the CHECK on content stays; reads show "").
        (7, """
            ALTER TABLE messages ADD COLUMN edited_at BIGINT;
            ALTER TABLE messages ADD COLUMN deleted_at BIGINT
            """),
        // Reactions: one row per person, emoji and message.
        (8, """
            CREATE TABLE reactions (
                tenant_id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                emoji TEXT NOT NULL,
                user_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, message_id, emoji, user_id),
                FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE,
                FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
            )
            """),
        // Full-text search: a GIN index over the content's words ('simple': no stemming, no stop words).
        (9, """
            CREATE INDEX messages_search ON messages USING GIN (to_tsvector('simple', content))
            """),
        // Mentions: the resolved ids on the message (what reads show), and a row per mentioned person for their
        // per-conversation count of unread mentions.
        (10, """
            ALTER TABLE messages ADD COLUMN mention_ids TEXT;
            CREATE TABLE mentions (
                tenant_id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, message_id, user_id),
                FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX mentions_by_user ON mentions (tenant_id, user_id, conversation_id, seq)
            """),
        // Files: the bytes in the database, so every node serves them; the message keeps the list it shows.
        (11, """
            ALTER TABLE messages ADD COLUMN attachments TEXT;
            CREATE TABLE files (
                tenant_id TEXT NOT NULL,
                id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                name TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size INTEGER NOT NULL,
                data BYTEA NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, id),
                FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE
            );
            CREATE INDEX files_by_message ON files (tenant_id, message_id)
            """),
    ]

    /// Work a migration needs beyond SQL, run in its transaction.
    static func backfill(version: Int, _ connection: PostgresConnection, logger: Logger) async throws {
        guard version == 2 else { return }
        var users: [(String, String, String, String)] = []
        let rows = try await connection.query("SELECT id, tenant_id, username, display_name FROM users", logger: logger)
        for try await row in rows.decode((String, String, String, String).self) { users.append(row) }
        for (id, tenantId, username, displayName) in users {
            try await PostgresChatStore.indexUser(connection, tenantId: tenantId, userId: id, username: username, displayName: displayName, logger: logger)
        }
    }

    /// Applies the migrations not applied yet, one transaction each, while holding the setup lock.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await withSetupLock(client, logger: logger) {
            try await client.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)", logger: logger)
            var applied: Set<Int> = []
            for try await version in try await client.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in migrations where !applied.contains(migration.version) {
                try await client.withTransaction(logger: logger) { connection in
                    // The extended protocol takes one statement at a time.
                    for statement in migration.sql.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                        try await connection.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger)
                    }
                    try await backfill(version: migration.version, connection, logger: logger)
                    try await connection.query(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (\(migration.version), \(Timestamp.now().milliseconds))",
                        logger: logger)
                }
                logger.info("applied schema migration", metadata: ["version": "\(migration.version)"])
            }
        }
    }

    /// Runs `body` while this process holds the setup advisory lock (released when the session ends, so a node that
    /// dies while holding it frees it).
    static func withSetupLock<T: Sendable>(_ client: PostgresClient, logger: Logger, _ body: () async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(setupLock))", logger: logger)
            do {
                let result = try await body()
                try await connection.query("SELECT pg_advisory_unlock(\(setupLock))", logger: logger)
                return result
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(setupLock))", logger: logger)
                throw error
            }
        }
    }
}
