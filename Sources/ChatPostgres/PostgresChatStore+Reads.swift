import ChatCore
import Logging
import NIOCore
import PostgresNIO

/// Row mapping, shared by reads, writes and the event log.
enum Rows {
    static let messageColumns = """
        m.id, m.tenant_id, m.conversation_id, m.sender_id, m.thread_parent_id, m.content, m.created_at, m.seq,
        m.reply_count, m.client_message_id, m.edited_at, m.deleted_at, m.mention_ids, m.attachments, u.username, u.display_name, u.is_bot
        """
    static let messageFrom = "FROM messages m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.sender_id"

    static let conversationColumns = """
        c.id, c.tenant_id, c.title, c.created_by, c.created_at, c.updated_at, c.last_message_at, c.closed_at, c.last_seq,
        c.participant_count,
        (SELECT COUNT(*) FROM messages m
          WHERE m.conversation_id = c.id AND m.thread_parent_id IS NULL AND m.seq > p.last_read_seq
            AND m.sender_id <> p.user_id) AS unread,
        (SELECT COUNT(*) FROM mentions x
          WHERE x.tenant_id = p.tenant_id AND x.user_id = p.user_id AND x.conversation_id = c.id
            AND x.seq > p.last_read_seq) AS mentioned
        """
    static let conversationFrom = "FROM participants p JOIN conversations c ON c.tenant_id = p.tenant_id AND c.id = p.conversation_id"

    static func tenant(_ row: PostgresRandomAccessRow) throws -> Tenant {
        Tenant(id: try row.value("id", String.self), slug: try row.value("slug", String.self), name: try row.value("name", String.self))
    }

    static func user(_ row: PostgresRandomAccessRow) throws -> User {
        User(
            id: try row.value("id", String.self), username: try row.value("username", String.self),
            displayName: try row.value("display_name", String.self), tenantId: try row.value("tenant_id", String.self),
            isBot: try row.value("is_bot", Int32.self) != 0)
    }

    static func message(_ row: PostgresRandomAccessRow) throws -> Message {
        let tenantId = try row.value("tenant_id", String.self)
        let senderId = try row.value("sender_id", String.self)
        var message = Message(
            id: try row.value("id", String.self), tenantId: tenantId, conversationId: try row.value("conversation_id", String.self),
            senderId: senderId,
            sender: User(
                id: senderId, username: try row.value("username", String.self), displayName: try row.value("display_name", String.self),
                tenantId: tenantId, isBot: try row.value("is_bot", Int32.self) != 0),
            threadParentId: try row.value("thread_parent_id", String?.self),
            content: try row.value("deleted_at", Int64?.self) == nil ? try row.value("content", String.self) : "",
            createdAt: Timestamp(milliseconds: try row.value("created_at", Int64.self)), seq: try row.value("seq", Int64.self),
            replyCount: Int(try row.value("reply_count", Int32.self)), clientMessageId: try row.value("client_message_id", String?.self),
            editedAt: try row.value("edited_at", Int64?.self).map(Timestamp.init(milliseconds:)),
            deletedAt: try row.value("deleted_at", Int64?.self).map(Timestamp.init(milliseconds:)))
        if let ids = try row.value("mention_ids", String?.self) { message.mentions = ids.split(separator: " ").map(String.init) }
        if let attachments = try row.value("attachments", String?.self) { message.attachments = FileRules.decode(attachments) }
        return message
    }

    static func conversation(_ row: PostgresRandomAccessRow, participants: [User]) throws -> Conversation {
        var conversation = Conversation(
            id: try row.value("id", String.self), tenantId: try row.value("tenant_id", String.self), title: try row.value("title", String.self),
            participants: participants, createdBy: try row.value("created_by", String.self),
            createdAt: Timestamp(milliseconds: try row.value("created_at", Int64.self)),
            updatedAt: Timestamp(milliseconds: try row.value("updated_at", Int64.self)),
            lastMessageAt: try row.value("last_message_at", Int64?.self).map(Timestamp.init(milliseconds:)),
            closedAt: try row.value("closed_at", Int64?.self).map(Timestamp.init(milliseconds:)),
            unreadCount: Int(try row.value("unread", Int64.self)), lastSeq: try row.value("last_seq", Int64.self),
            participantCount: Int(try row.value("participant_count", Int32.self)))
        conversation.mentionCount = Int(try row.value("mentioned", Int64.self))
        return conversation
    }
}

/// Something that runs queries: the pool, or one connection inside a transaction.
protocol QueryRunner: Sendable {
    @discardableResult func run(_ query: PostgresQuery) async throws -> PostgresRowSequence
}

struct PoolRunner: QueryRunner {
    let client: PostgresClient
    let logger: Logger
    @discardableResult func run(_ query: PostgresQuery) async throws -> PostgresRowSequence { try await client.query(query, logger: logger) }
}

struct ConnectionRunner: QueryRunner {
    let connection: PostgresConnection
    let logger: Logger
    @discardableResult func run(_ query: PostgresQuery) async throws -> PostgresRowSequence { try await connection.query(query, logger: logger) }
}

extension PostgresChatStore {
    var pool: PoolRunner { PoolRunner(client: client, logger: logger) }

    // MARK: Reads (the viewer must participate)

    public func conversation(tenantId: String, id: String, viewerId: String) async throws -> Conversation? {
        try await guarded { [self] in
            try await Self.fetchConversation(pool, tenantId: tenantId, id: id, viewerId: viewerId)
        }
    }

    public func messages(tenantId: String, conversationId: String, viewerId: String, beforeSeq: Int64?, limit: Int) async throws -> MessagePage? {
        try await guarded { [self] in
            guard try await isParticipant(tenantId: tenantId, conversationId: conversationId, userId: viewerId) else { return nil }
            let rows = try await all(
                client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT \(Rows.messageColumns) \(Rows.messageFrom)
                            WHERE m.tenant_id = $1 AND m.conversation_id = $2 AND m.thread_parent_id IS NULL AND m.seq < $3
                            ORDER BY m.seq DESC LIMIT $4
                            """,
                        binds: try bindings(tenantId, conversationId, beforeSeq ?? Int64.max, Int64(limit + 1))),
                    logger: logger),
                Rows.message)
            let hasMore = rows.count > limit
            let page = try await Self.withReactions(pool, tenantId: tenantId, Array(rows.prefix(limit).reversed()))
            return MessagePage(messages: page, nextCursor: hasMore ? page.first.map { String($0.seq) } : nil)
        }
    }

    public func thread(tenantId: String, messageId: String, viewerId: String) async throws -> Thread? {
        try await guarded { [self] in
            guard let anchor = try await Self.fetchMessage(pool, tenantId: tenantId, id: messageId),
                  try await isParticipant(tenantId: tenantId, conversationId: anchor.conversationId, userId: viewerId)
            else { return nil }
            // A reply's thread is its root's thread.
            var root = anchor
            if let parentId = anchor.threadParentId {
                guard let parent = try await Self.fetchMessage(pool, tenantId: tenantId, id: parentId) else { return nil }
                root = parent
            }
            let replies = try await all(
                client.query(
                    PostgresQuery(
                        unsafeSQL: "SELECT \(Rows.messageColumns) \(Rows.messageFrom) WHERE m.tenant_id = $1 AND m.thread_parent_id = $2 ORDER BY m.seq",
                        binds: try bindings(tenantId, root.id)),
                    logger: logger),
                Rows.message)
            let all = try await Self.withReactions(pool, tenantId: tenantId, [root] + replies)
            return Thread(parent: all[0], replies: Array(all.dropFirst()))
        }
    }

    public func lastMessages(tenantId: String, viewerId: String, conversationIds: [String]) async throws -> [String: Message] {
        guard !conversationIds.isEmpty else { return [:] }
        return try await guarded { [self] in
            let rows = try await all(
                client.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT \(Rows.messageColumns) \(Rows.messageFrom)
                            JOIN participants p ON p.tenant_id = m.tenant_id AND p.conversation_id = m.conversation_id
                            JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
                            WHERE p.tenant_id = $1 AND p.user_id = $2 AND m.thread_parent_id IS NULL AND m.conversation_id = ANY($3)
                              AND m.seq = (SELECT MAX(seq) FROM messages x WHERE x.conversation_id = m.conversation_id AND x.thread_parent_id IS NULL)
                            """,
                        binds: try bindings(tenantId, viewerId, conversationIds)),
                    logger: logger),
                Rows.message)
            var result: [String: Message] = [:]
            for message in rows { result[message.conversationId] = message }
            return result
        }
    }

    public func isParticipant(tenantId: String, conversationId: String, userId: String) async throws -> Bool {
        try await guarded { [self] in
            try await first(
                client.query(
                    "SELECT 1 AS yes FROM participants WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND user_id = \(userId)",
                    logger: logger)
            ) { _ in true } ?? false
        }
    }

    public func conversationIds(tenantId: String, userId: String) async throws -> [String] {
        try await guarded { [self] in
            try await all(
                client.query("SELECT conversation_id FROM participants WHERE tenant_id = \(tenantId) AND user_id = \(userId)", logger: logger)
            ) { try $0.value("conversation_id", String.self) }
        }
    }

    // MARK: Shared lookups (pool or transaction)

    static func fetchUser(_ db: some QueryRunner, tenantId: String, id: String) async throws -> User? {
        for try await row in try await db.run("SELECT id, username, display_name, tenant_id, is_bot FROM users WHERE tenant_id = \(tenantId) AND id = \(id)") {
            return try Rows.user(row.makeRandomAccess())
        }
        return nil
    }

    static func fetchMessage(_ db: some QueryRunner, tenantId: String, id: String) async throws -> Message? {
        let query = PostgresQuery(
            unsafeSQL: "SELECT \(Rows.messageColumns) \(Rows.messageFrom) WHERE m.tenant_id = $1 AND m.id = $2", binds: try bindings(tenantId, id))
        for try await row in try await db.run(query) { return try Rows.message(row.makeRandomAccess()) }
        return nil
    }

    static func fetchConversation(_ db: some QueryRunner, tenantId: String, id: String, viewerId: String) async throws -> Conversation? {
        let query = PostgresQuery(
            unsafeSQL: "SELECT \(Rows.conversationColumns) \(Rows.conversationFrom) WHERE p.tenant_id = $1 AND p.user_id = $2 AND c.id = $3",
            binds: try bindings(tenantId, viewerId, id))
        var found: PostgresRandomAccessRow?
        for try await row in try await db.run(query) { found = row.makeRandomAccess() }
        guard let found else { return nil }
        return try Rows.conversation(found, participants: try await listedParticipants(db, tenantId: tenantId, conversationIds: [id])[id] ?? [])
    }
}

/// Bindings for a query written with `$1`, `$2`… (used where the SQL text is assembled from shared pieces).
func bindings(_ values: any PostgresThrowingDynamicTypeEncodable...) throws -> PostgresBindings {
    var bindings = PostgresBindings(capacity: values.count)
    for value in values { try bindings.append(value) }
    return bindings
}

extension PostgresChatStore {
    /// The messages with their reactions: one indexed read for all of them.
    static func withReactions(_ db: some QueryRunner, tenantId: String, _ messages: [Message]) async throws -> [Message] {
        guard !messages.isEmpty else { return messages }
        var rows: [(messageId: String, code: String, userId: String)] = []
        for try await (messageId, code, userId) in try await db.run(
            """
            SELECT message_id, emoji, user_id FROM reactions
            WHERE tenant_id = \(tenantId) AND message_id = ANY(\(messages.map(\.id)))
            ORDER BY created_at, user_id
            """
        ).decode((String, String, String).self) {
            rows.append((messageId, code, userId))
        }
        guard !rows.isEmpty else { return messages }
        let grouped = Reaction.group(rows)
        return messages.map { message in
            var message = message
            message.reactions = grouped[message.id] ?? []
            return message
        }
    }
}
