import ChatCore
import GRDB

/// The schema, as GRDB migrations. Every table carries `tenant_id`, and composite foreign keys on
/// `(tenant_id, …)` make it impossible, even for a buggy query, to link rows of two tenants.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY NOT NULL,
                    slug TEXT NOT NULL UNIQUE COLLATE NOCASE,
                    name TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE users (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    username TEXT NOT NULL COLLATE NOCASE,
                    display_name TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    UNIQUE (tenant_id, username),
                    UNIQUE (tenant_id, id)
                );
                CREATE TABLE credentials (
                    hash TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    method TEXT NOT NULL CHECK (method IN ('session', 'token')),
                    csrf_token TEXT,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
                );
                CREATE INDEX credentials_expiry ON credentials(expires_at);
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    title TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    last_message_at INTEGER,
                    closed_at INTEGER,
                    last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
                    UNIQUE (tenant_id, id),
                    FOREIGN KEY (tenant_id, created_by) REFERENCES users(tenant_id, id)
                );
                CREATE TABLE participants (
                    tenant_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    joined_at INTEGER NOT NULL,
                    last_read_seq INTEGER NOT NULL DEFAULT 0,
                    last_read_message_id TEXT,
                    PRIMARY KEY (conversation_id, user_id),
                    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id),
                    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
                ) WITHOUT ROWID;
                CREATE INDEX participants_by_user ON participants(tenant_id, user_id);
                CREATE TABLE messages (
                    id TEXT PRIMARY KEY NOT NULL,
                    tenant_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    sender_id TEXT NOT NULL,
                    thread_parent_id TEXT,
                    content TEXT NOT NULL CHECK (length(content) > 0),
                    created_at INTEGER NOT NULL,
                    seq INTEGER NOT NULL CHECK (seq > 0),
                    reply_count INTEGER NOT NULL DEFAULT 0,
                    client_message_id TEXT,
                    UNIQUE (tenant_id, id),
                    UNIQUE (tenant_id, conversation_id, id),
                    UNIQUE (conversation_id, seq),
                    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id),
                    FOREIGN KEY (tenant_id, sender_id) REFERENCES users(tenant_id, id),
                    FOREIGN KEY (tenant_id, conversation_id, thread_parent_id) REFERENCES messages(tenant_id, conversation_id, id)
                );
                CREATE UNIQUE INDEX messages_client_id ON messages(conversation_id, sender_id, client_message_id)
                    WHERE client_message_id IS NOT NULL;
                CREATE INDEX messages_thread ON messages(thread_parent_id, seq) WHERE thread_parent_id IS NOT NULL;
                CREATE INDEX messages_top_level ON messages(conversation_id, seq) WHERE thread_parent_id IS NULL;
                CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    tenant_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    type TEXT NOT NULL,
                    data TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id)
                );
                CREATE INDEX events_by_room ON events(tenant_id, conversation_id, id);
                CREATE INDEX events_by_time ON events(created_at);
                CREATE TABLE event_log_state (
                    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
                    pruned_through INTEGER NOT NULL
                );
                INSERT INTO event_log_state (singleton, pruned_through) VALUES (1, 0);
                """)
        }
        // The directory: one row per search term of a user (see `Directory.terms`); a prefix search is a range of
        // the primary key. Terms are folded in Swift (SQLite has no accent folding), so existing users are indexed here.
        migrator.registerMigration("v2-directory") { db in
            try db.execute(sql: """
                CREATE TABLE user_terms (
                    tenant_id TEXT NOT NULL,
                    term TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    PRIMARY KEY (tenant_id, term, user_id),
                    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
                ) WITHOUT ROWID;
                """)
            for row in try Row.fetchAll(db, sql: "SELECT id, tenant_id, username, display_name FROM users") {
                try SQLiteChatStore.indexUser(
                    db, tenantId: row["tenant_id"], userId: row["id"], username: row["username"], displayName: row["display_name"])
            }
        }
        // Large conversations: the participant count kept on the conversation (listings show it without counting),
        // participants by when they joined (a listing's first few are an index range), and the tenant's conversations
        // by activity (a busy person's first page is the first rows of that index).
        migrator.registerMigration("v3-participant-count") { db in
            try db.execute(sql: """
                ALTER TABLE conversations ADD COLUMN participant_count INTEGER NOT NULL DEFAULT 0;
                UPDATE conversations SET participant_count = (SELECT COUNT(*) FROM participants p WHERE p.conversation_id = conversations.id);
                CREATE INDEX participants_by_join ON participants(conversation_id, joined_at, user_id);
                CREATE INDEX conversations_by_activity ON conversations(tenant_id, updated_at, id);
                """)
        }
        // Derived data per conversation (summaries' rolling state, agents' memory), see `ConversationMemory`.
        migrator.registerMigration("v4-conversation-memory") { db in
            try db.execute(sql: """
                CREATE TABLE conversation_memory (
                    tenant_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    through_seq INTEGER NOT NULL,
                    body TEXT NOT NULL,
                    updated_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, conversation_id, kind),
                    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id) ON DELETE CASCADE
                ) WITHOUT ROWID;
                """)
        }
        // Agents: bot users of a tenant, their backend, and their token use per day (`AgentBudget`).
        migrator.registerMigration("v5-agents") { db in
            try db.execute(sql: """
                ALTER TABLE users ADD COLUMN is_bot INTEGER NOT NULL DEFAULT 0 CHECK (is_bot IN (0, 1));
                CREATE TABLE agents (
                    tenant_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    backend TEXT NOT NULL CHECK (backend IN ('builtin', 'openai')),
                    base_url TEXT,
                    model TEXT,
                    api_key_env TEXT,
                    system_prompt TEXT NOT NULL DEFAULT '',
                    daily_token_budget INTEGER NOT NULL CHECK (daily_token_budget >= 0),
                    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute >= 0),
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, user_id),
                    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
                ) WITHOUT ROWID;
                CREATE TABLE agent_usage (
                    tenant_id TEXT NOT NULL,
                    agent_id TEXT NOT NULL,
                    day TEXT NOT NULL,
                    tokens INTEGER NOT NULL,
                    requests INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, agent_id, day),
                    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents(tenant_id, user_id) ON DELETE CASCADE
                ) WITHOUT ROWID;
                """)
        }
        // Edit and delete: when, and a tombstone's content is one space (the v1 CHECK (length(content) > 0) stays;
        // reads show "").
        migrator.registerMigration("v6-edit-delete") { db in
            try db.execute(sql: """
                ALTER TABLE messages ADD COLUMN edited_at INTEGER;
                ALTER TABLE messages ADD COLUMN deleted_at INTEGER;
                """)
        }
        // Reactions: one row per person, emoji and message.
        migrator.registerMigration("v7-reactions") { db in
            try db.execute(sql: """
                CREATE TABLE reactions (
                    tenant_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    emoji TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, message_id, emoji, user_id),
                    FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE,
                    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)
                ) WITHOUT ROWID;
                """)
        }
        // Full-text search: an FTS5 index over message content kept by triggers (a tombstone's single space has no
        // words, so deleted messages drop out of it).
        migrator.registerMigration("v8-search") { db in
            try db.execute(sql: """
                CREATE VIRTUAL TABLE message_search USING fts5(
                    content, content='messages', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2');
                CREATE TRIGGER messages_search_insert AFTER INSERT ON messages BEGIN
                    INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
                END;
                CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
                    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
                END;
                CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
                    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
                    INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
                END;
                INSERT INTO message_search (message_search) VALUES ('rebuild');
                """)
        }
        // Mentions: the resolved ids on the message (what reads show), and a row per mentioned person for their
        // per-conversation count of unread mentions.
        migrator.registerMigration("v9-mentions") { db in
            try db.execute(sql: """
                ALTER TABLE messages ADD COLUMN mention_ids TEXT;
                CREATE TABLE mentions (
                    tenant_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY (tenant_id, message_id, user_id),
                    FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE
                ) WITHOUT ROWID;
                CREATE INDEX mentions_by_user ON mentions(tenant_id, user_id, conversation_id, seq);
                """)
        }
        // Files: the bytes in the database (a backup holds them, nothing else to copy), a row per file; the message
        // keeps the list it shows (`attachments`, JSON) so that reads need no join.
        migrator.registerMigration("v10-files") { db in
            try db.execute(sql: """
                ALTER TABLE messages ADD COLUMN attachments TEXT;
                CREATE TABLE files (
                    tenant_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    UNIQUE (tenant_id, id),
                    FOREIGN KEY (tenant_id, message_id) REFERENCES messages(tenant_id, id) ON DELETE CASCADE
                );
                CREATE INDEX files_by_message ON files(tenant_id, message_id);
                """)
        }
        // Sends are indexed for search in one statement per transaction (`indexForSearch`), not by a trigger per row.
        migrator.registerMigration("v11-search-batched") { db in
            try db.execute(sql: "DROP TRIGGER messages_search_insert")
        }
        // Fewer B-trees per send: the text primary key on `id` duplicated `UNIQUE (tenant_id, id)` (every lookup names
        // the tenant), and `UNIQUE (tenant_id, conversation_id, id)` existed only as the target of the thread foreign
        // key; each was one more index entry, at a random place, per message (the writer's time per send fell by about
        // a fifth without them). The reply's same-conversation rule is checked by `send` before any write. The table
        // is rebuilt as SQLite documents it (foreign keys are off during migrations), keeping every rowid, so the
        // full-text index, which points at rowids, stays valid; `row_id` names the rowid so that a VACUUM cannot
        // renumber it under the index.
        migrator.registerMigration("v12-message-keys") { db in
            try db.execute(sql: """
                CREATE TABLE messages_new (
                    row_id INTEGER PRIMARY KEY,
                    id TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    conversation_id TEXT NOT NULL,
                    sender_id TEXT NOT NULL,
                    thread_parent_id TEXT,
                    content TEXT NOT NULL CHECK (length(content) > 0),
                    created_at INTEGER NOT NULL,
                    seq INTEGER NOT NULL CHECK (seq > 0),
                    reply_count INTEGER NOT NULL DEFAULT 0,
                    client_message_id TEXT,
                    edited_at INTEGER,
                    deleted_at INTEGER,
                    mention_ids TEXT,
                    attachments TEXT,
                    UNIQUE (tenant_id, id),
                    UNIQUE (conversation_id, seq),
                    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations(tenant_id, id),
                    FOREIGN KEY (tenant_id, sender_id) REFERENCES users(tenant_id, id),
                    FOREIGN KEY (tenant_id, thread_parent_id) REFERENCES messages(tenant_id, id)
                );
                INSERT INTO messages_new (
                    row_id, id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq, reply_count,
                    client_message_id, edited_at, deleted_at, mention_ids, attachments)
                SELECT rowid, id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq, reply_count,
                    client_message_id, edited_at, deleted_at, mention_ids, attachments
                FROM messages;
                DROP TABLE messages;
                ALTER TABLE messages_new RENAME TO messages;
                CREATE UNIQUE INDEX messages_client_id ON messages(conversation_id, sender_id, client_message_id)
                    WHERE client_message_id IS NOT NULL;
                CREATE INDEX messages_thread ON messages(thread_parent_id, seq) WHERE thread_parent_id IS NOT NULL;
                CREATE INDEX messages_top_level ON messages(conversation_id, seq) WHERE thread_parent_id IS NULL;
                CREATE TRIGGER messages_search_delete AFTER DELETE ON messages BEGIN
                    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
                END;
                CREATE TRIGGER messages_search_update AFTER UPDATE OF content ON messages BEGIN
                    INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.rowid, old.content);
                    INSERT INTO message_search (rowid, content) VALUES (new.rowid, new.content);
                END;
                """)
        }
        return migrator
    }
}
