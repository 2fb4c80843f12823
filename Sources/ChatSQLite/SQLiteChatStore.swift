import ChatCore
import GRDB
import NIOCore

/// The embedded store: one SQLite file in WAL mode, written with `synchronous=FULL` so that a commit survives
/// power loss, read through a pool of reader connections.
public final class SQLiteChatStore: ChatStore {
    /// The underlying pool (exposed for tests and maintenance commands).
    public let pool: DatabasePool
    /// A connection of its own for WAL checkpoints, so they never run inside the writer's commits.
    private let checkpointer: DatabaseQueue

    /// Opens (creating if needed) the database at `path` and migrates it.
    /// One server process serves a database file (`chat-server serve` holds a lock on it), and every write to the
    /// log goes through its commit queue: the in-memory views of the log and the read caches stay exact.
    public var eventLogIsLocal: Bool { true }

    private let participantCache = ParticipantCache()
    private let pageCache = HistoryPageCache()
    private let senders = UserCache()

    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 8
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            // A 64 MiB page cache and memory-mapped reads: the bench showed pread() of index pages high in the profile.
            try db.execute(sql: "PRAGMA cache_size = -65536")
            try db.execute(sql: "PRAGMA mmap_size = 268435456")
        }
        pool = try DatabasePool(path: path, configuration: config)
        // The pool sets synchronous=NORMAL on its connections; durability of every acknowledged write needs FULL
        // on the one writer connection.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // The writer's own cache: 8 MiB, not the readers' 64. It fills with pages the writer appended and never
            // reads again (log, messages, search index), which W1 showed as 25 MB of a 10,000-socket server at 1,000
            // msg/s; the writer-alone probe was no slower with 8 (67.0 vs 68.1 µs per row, three runs each).
            try db.execute(sql: "PRAGMA cache_size = -8192")
            // The automatic checkpoint runs inside a commit, on the one writer, and stalls every commit behind it
            // (W1 showed 0.3-0.7 s latency spikes at the step where it struck). `checkpoint()` runs them on a
            // connection of their own instead, called in the background by the server; the automatic one stays
            // as a backstop at 65,536 pages (256 MiB of WAL) should the background one fall behind.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 65536")
        }
        try Schema.migrator.migrate(pool)
        var checkpointConfig = Configuration()
        checkpointConfig.busyMode = .timeout(10)
        checkpointer = try DatabaseQueue(path: path, configuration: checkpointConfig)
    }

    /// Copies committed WAL frames into the database file (a passive checkpoint: it waits for no reader and never
    /// blocks the writer), on its own connection and thread. Returns the WAL's frame count and how many are copied.
    @discardableResult
    public func checkpoint() async throws -> (walFrames: Int, checkpointed: Int) {
        try await checkpointer.writeWithoutTransaction { db in
            let result = try db.checkpoint(.passive)
            return (result.walFrameCount, result.checkpointedFrameCount)
        }
    }

    /// The writer connection's `synchronous` setting (2 = FULL), read back for tests.
    public func writerSynchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// The journal mode (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// Runs a read on the calling thread. GRDB's async `read` hops to a reader queue and back, and those two thread
    /// wake-ups were most of the time of a history request (perf: futex and `sem_post` ~30 % of the server). Reads
    /// here are small indexed lookups over a memory-mapped file, so running them in place costs less than the hop;
    /// the pool still gives each caller its own reader connection and snapshot.
    @inline(__always)
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }

    /// The database answers a read.
    public func checkReady() async throws {
        _ = try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event_log_state") }
    }

    /// Closes every connection; later calls fail.
    public func close() throws {
        try checkpointer.close()
        try pool.close()
    }

    // MARK: Tenants and users

    public func createTenant(slug: String, name: String) async throws -> Tenant {
        let tenant = Tenant(id: Identifier.make("tnt"), slug: slug, name: name)
        do {
            try await pool.write { db in
                try db.execute(
                    sql: "INSERT INTO tenants (id, slug, name, created_at) VALUES (?, ?, ?, ?)",
                    arguments: [tenant.id, tenant.slug, tenant.name, Timestamp.now().milliseconds])
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw ChatError(.conflict, "tenant_exists", "A tenant with slug \(slug) exists.")
        }
        return tenant
    }

    public func tenant(id: String) async throws -> Tenant? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT id, slug, name FROM tenants WHERE id = ?", arguments: [id]).map(Self.tenant)
        }
    }

    public func tenant(slug: String) async throws -> Tenant? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT id, slug, name FROM tenants WHERE slug = ?", arguments: [slug]).map(Self.tenant)
        }
    }

    public func createUser(tenantId: String, username: String, displayName: String, passwordHash: String) async throws -> User {
        let user = User(id: Identifier.make("usr"), username: username, displayName: displayName, tenantId: tenantId)
        do {
            try await pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [user.id, tenantId, username, displayName, passwordHash, Timestamp.now().milliseconds])
                try Self.indexUser(db, tenantId: tenantId, userId: user.id, username: username, displayName: displayName)
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw ChatError(.conflict, "user_exists", "A user named \(username) exists in this tenant.")
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY {
            throw ChatError.notFound("tenant")
        }
        return user
    }

    public func user(tenantId: String, id: String) async throws -> User? {
        try read { db in try Self.fetchUser(db, tenantId: tenantId, id: id) }
    }

    /// Writes a user's directory terms (also for tools that insert users in bulk, like the bench).
    public static func indexUser(_ db: Database, tenantId: String, userId: String, username: String, displayName: String) throws {
        for term in Directory.terms(username: username, displayName: displayName) {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO user_terms (tenant_id, term, user_id) VALUES (?, ?, ?)")
                .execute(arguments: [tenantId, term, userId])
        }
    }

    public func loginRecord(tenantSlug: String, username: String) async throws -> (user: User, passwordHash: String)? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot, u.password_hash
                    FROM users u JOIN tenants t ON t.id = u.tenant_id
                    WHERE t.slug = ? AND u.username = ?
                    """,
                arguments: [tenantSlug, username])
            else { return nil }
            return (Self.user(row), row["password_hash"])
        }
    }

    public func isEmpty() async throws -> Bool {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tenants") == 0 }
    }

    // MARK: Credentials

    public func insertCredential(_ c: Credential) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO credentials (hash, tenant_id, user_id, method, csrf_token, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [c.hash, c.tenantId, c.userId, c.method.rawValue, c.csrfToken, c.createdAt.milliseconds, c.expiresAt.milliseconds])
        }
    }

    public func credential(hash: String, now: Timestamp) async throws -> Credential? {
        try read { db in
            guard let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT hash, tenant_id, user_id, method, csrf_token, created_at, expires_at
                    FROM credentials WHERE hash = ? AND expires_at > ?
                    """,
                arguments: [hash, now.milliseconds])
            else { return nil }
            return Credential(
                hash: row["hash"], tenantId: row["tenant_id"], userId: row["user_id"],
                method: Principal.Method(rawValue: row["method"]) ?? .token, csrfToken: row["csrf_token"],
                createdAt: Timestamp(milliseconds: row["created_at"]), expiresAt: Timestamp(milliseconds: row["expires_at"]))
        }
    }

    public func deleteCredential(hash: String) async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM credentials WHERE hash = ?", arguments: [hash]) }
    }

    public func deleteExpiredCredentials(now: Timestamp) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM credentials WHERE expires_at <= ?", arguments: [now.milliseconds])
            return db.changesCount
        }
    }

    // MARK: Reads

    public func conversation(tenantId: String, id: String, viewerId: String) async throws -> Conversation? {
        try read { db in try Self.fetchConversation(db, tenantId: tenantId, id: id, viewerId: viewerId) }
    }

    public func messages(tenantId: String, conversationId: String, viewerId: String, beforeSeq: Int64?, limit: Int) async throws -> MessagePage? {
        guard try participates(tenantId: tenantId, conversationId: conversationId, userId: viewerId) else { return nil }
        let key = HistoryPageCache.Key(conversationId: conversationId, beforeSeq: beforeSeq, limit: limit)
        if let page = pageCache.get(key, tenantId: tenantId) { return page }
        let version = pageCache.version(of: conversationId)
        let page = try read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: Self.messageSelect + """
                     WHERE m.tenant_id = ? AND m.conversation_id = ? AND m.thread_parent_id IS NULL AND m.seq < ?
                     ORDER BY m.seq DESC LIMIT ?
                    """),
                arguments: [tenantId, conversationId, beforeSeq ?? Int64.max, limit + 1])
            let hasMore = rows.count > limit
            let page = try Self.withReactions(db, tenantId: tenantId, rows.prefix(limit).reversed().map(Self.message))
            return MessagePage(messages: page, nextCursor: hasMore ? page.first.map { String($0.seq) } : nil)
        }
        let ready = MessagePage(messages: page.messages, nextCursor: page.nextCursor, body: ByteBuffer(bytes: JSONText.messagePage(page)))
        pageCache.put(key, tenantId: tenantId, version: version, page: ready)
        return ready
    }

    /// Participation through the cache (dropped by every commit that changes who is in a conversation).
    func participates(tenantId: String, conversationId: String, userId: String) throws -> Bool {
        if let known = participantCache.contains(tenantId: tenantId, conversationId: conversationId, userId: userId) {
            return known
        }
        let generation = participantCache.generation
        let rows = try read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT tenant_id, user_id FROM participants WHERE conversation_id = ?"), arguments: [conversationId])
        }
        guard let owner: String = rows.first?["tenant_id"] else { return false }
        participantCache.put(
            conversationId: conversationId, tenantId: owner, userIds: Set(rows.map { $0["user_id"] as String }), readAt: generation)
        return owner == tenantId && rows.contains { ($0["user_id"] as String) == userId }
    }

    public func thread(tenantId: String, messageId: String, viewerId: String) async throws -> Thread? {
        try read { db in
            guard let anchor = try Self.fetchMessage(db, tenantId: tenantId, id: messageId),
                  try Self.isParticipant(db, tenantId: tenantId, conversationId: anchor.conversationId, userId: viewerId)
            else { return nil }
            // A reply's thread is its root's thread.
            let root: Message
            if let parentId = anchor.threadParentId {
                guard let parent = try Self.fetchMessage(db, tenantId: tenantId, id: parentId) else { return nil }
                root = parent
            } else {
                root = anchor
            }
            let replies = try Row.fetchAll(
                db,
                sql: Self.messageSelect + " WHERE m.tenant_id = ? AND m.thread_parent_id = ? ORDER BY m.seq",
                arguments: [tenantId, root.id]
            ).map(Self.message)
            let all = try Self.withReactions(db, tenantId: tenantId, [root] + replies)
            return Thread(parent: all[0], replies: Array(all.dropFirst()))
        }
    }

    public func lastMessages(tenantId: String, viewerId: String, conversationIds: [String]) async throws -> [String: Message] {
        guard !conversationIds.isEmpty else { return [:] }
        return try read { db in
            let rows = try Row.fetchAll(
                db,
                sql: Self.messageSelect + """
                     JOIN participants p ON p.tenant_id = m.tenant_id AND p.conversation_id = m.conversation_id
                     WHERE p.tenant_id = ? AND p.user_id = ? AND m.thread_parent_id IS NULL
                       AND m.conversation_id IN (\(databaseQuestionMarks(count: conversationIds.count)))
                       AND m.seq = (SELECT MAX(seq) FROM messages x WHERE x.conversation_id = m.conversation_id AND x.thread_parent_id IS NULL)
                    """,
                arguments: StatementArguments([tenantId, viewerId] + conversationIds))
            var result: [String: Message] = [:]
            for row in rows {
                let message = Self.message(row)
                result[message.conversationId] = message
            }
            return result
        }
    }

    public func isParticipant(tenantId: String, conversationId: String, userId: String) async throws -> Bool {
        try participates(tenantId: tenantId, conversationId: conversationId, userId: userId)
    }

    public func conversationIds(tenantId: String, userId: String) async throws -> [String] {
        try read { db in
            try String.fetchAll(
                db, sql: "SELECT conversation_id FROM participants WHERE tenant_id = ? AND user_id = ?", arguments: [tenantId, userId])
        }
    }

    // MARK: Writes

    public func apply(_ commands: [WriteCommand]) async throws -> [Result<AppliedWrite, ChatError>] {
        let results = try await applyInTransaction(commands)
        // Committed: drop cached pages of the conversations that changed before anyone is told it is saved.
        var changed: Set<String> = []
        var regrouped: Set<String> = []
        for case .success(let write) in results {
            for event in write.events {
                changed.insert(event.conversationId)
                if event.type == .participantsAdded || event.type == .participantRemoved { regrouped.insert(event.conversationId) }
            }
        }
        if !changed.isEmpty { pageCache.invalidate(changed) }
        // Before anyone hears of the change, the cache stops answering for the old members.
        if !regrouped.isEmpty { participantCache.invalidate(regrouped) }
        return results
    }

    private func applyInTransaction(_ commands: [WriteCommand]) async throws -> [Result<AppliedWrite, ChatError>] {
        try await pool.write { db in
            let now = Timestamp.now()
            let indexedThrough = try Self.newestMessageRow(db)
            let results = try commands.map { command -> Result<AppliedWrite, ChatError> in
                switch command {
                case .sendMessage(let new):
                    // A send checks everything before its first write, so a refusal leaves nothing to roll back:
                    // no savepoint (two statements per message less in the writer).
                    do { return .success(try Self.send(db, new, now: now, senders: senders)) } catch let error as ChatError { return .failure(error) }
                case .startConversation(let tenantId, let creatorId, let title, let participantIds):
                    return try Self.inSavepoint(db) {
                        try Self.startConversation(db, tenantId: tenantId, creatorId: creatorId, title: title, participantIds: participantIds, now: now)
                    }
                case .setClosed(let tenantId, let userId, let conversationId, let closed):
                    return try Self.inSavepoint(db) {
                        try Self.setClosed(db, tenantId: tenantId, userId: userId, conversationId: conversationId, closed: closed, now: now)
                    }
                case .markRead(let tenantId, let userId, let conversationId, let messageId):
                    return try Self.inSavepoint(db) {
                        try Self.markRead(db, tenantId: tenantId, userId: userId, conversationId: conversationId, messageId: messageId, now: now)
                    }
                case .editMessage(let tenantId, let userId, let messageId, let content):
                    return try Self.inSavepoint(db) {
                        try Self.change(db, tenantId: tenantId, userId: userId, messageId: messageId, newContent: content, now: now)
                    }
                case .deleteMessage(let tenantId, let userId, let messageId):
                    return try Self.inSavepoint(db) {
                        try Self.change(db, tenantId: tenantId, userId: userId, messageId: messageId, newContent: nil, now: now)
                    }
                case .react(let tenantId, let userId, let messageId, let code, let on):
                    return try Self.inSavepoint(db) {
                        try Self.react(db, tenantId: tenantId, userId: userId, messageId: messageId, code: code, on: on, now: now)
                    }
                case .changeMembers(let tenantId, let actorId, let conversationId, let change):
                    return try Self.inSavepoint(db) {
                        try Self.changeMembers(db, tenantId: tenantId, actorId: actorId, conversationId: conversationId, change: change, now: now)
                    }
                }
            }
            try Self.indexForSearch(db, after: indexedThrough)
            return results
        }
    }

    /// Runs one command in a savepoint: a refusal (`ChatError`) rolls back just that command; any other error
    /// fails the whole batch.
    private static func inSavepoint(_ db: Database, _ body: () throws -> AppliedWrite) throws -> Result<AppliedWrite, ChatError> {
        var result: Result<AppliedWrite, ChatError>!
        try db.inSavepoint {
            do {
                result = .success(try body())
                return .commit
            } catch let error as ChatError {
                result = .failure(error)
                return .rollback
            }
        }
        return result
    }

    private static func startConversation(
        _ db: Database, tenantId: String, creatorId: String, title: String, participantIds: [String], now: Timestamp
    ) throws -> AppliedWrite {
        var users: [User] = []
        for id in participantIds {
            guard let user = try fetchUser(db, tenantId: tenantId, id: id) else { throw ChatError.notFound("participant") }
            users.append(user)
        }
        let id = Identifier.make("cnv", at: now)
        try db.execute(
            sql: """
                INSERT INTO conversations (id, tenant_id, title, created_by, created_at, updated_at, participant_count)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [id, tenantId, title, creatorId, now.milliseconds, now.milliseconds, users.count])
        for user in users {
            try db.execute(
                sql: "INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at) VALUES (?, ?, ?, ?)",
                arguments: [tenantId, id, user.id, now.milliseconds])
        }
        let conversation = Conversation(
            id: id, tenantId: tenantId, title: title, participants: users, createdBy: creatorId, createdAt: now,
            updatedAt: now, lastMessageAt: nil, closedAt: nil, unreadCount: 0, lastSeq: 0)
        let event = try appendEvent(
            db, type: .conversationCreated, tenantId: tenantId, conversationId: id, data: JSONText.encode(conversation), now: now,
            participantIds: users.map(\.id))
        return AppliedWrite(outcome: .conversation(conversation), events: [event])
    }

    private static func send(_ db: Database, _ new: NewMessage, now: Timestamp, senders: UserCache) throws -> AppliedWrite {
        let tenantId = new.tenantId
        var conversationId = new.conversationId
        var parent: Row? = nil
        if let parentId = new.threadParentId {
            parent = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, conversation_id, thread_parent_id FROM messages WHERE tenant_id = ? AND id = ?"),
                arguments: [tenantId, parentId])
            guard let parent, conversationId == nil || conversationId == parent["conversation_id"] else {
                throw ChatError.notFound("message")
            }
            conversationId = parent["conversation_id"]
        }
        guard let conversationId,
              let state = try RawStatement(db, """
                    SELECT c.rowid, c.closed_at IS NOT NULL, c.last_seq FROM conversations c
                    JOIN participants p ON p.conversation_id = c.id AND p.tenant_id = c.tenant_id
                    WHERE c.tenant_id = ? AND c.id = ? AND p.user_id = ?
                    """).first(.text(tenantId), .text(conversationId), .text(new.senderId), read: {
                        (row: $0.integer(0), closed: $0.integer(1) != 0, lastSeq: $0.integer(2))
                    })
        else { throw ChatError.notFound(new.threadParentId == nil ? "conversation" : "message") }

        if let clientMessageId = new.clientMessageId,
           let existing = try Row.fetchOne(
            db.cachedStatement(sql: messageSelect + " WHERE m.conversation_id = ? AND m.sender_id = ? AND m.client_message_id = ?"),
            arguments: [conversationId, new.senderId, clientMessageId])
        {
            return AppliedWrite(outcome: .message(message(existing), created: false), events: [])
        }
        if state.closed { throw ChatError.conversationClosed }

        guard let sender = try senders.user(tenantId: tenantId, id: new.senderId, orLoad: { try fetchUser(db, tenantId: tenantId, id: new.senderId) })
        else { throw ChatError.notFound("user") }
        // Every refusal is above this line: the writes below either all succeed or fail the whole transaction.
        let rootId: String? = parent.map { ($0["thread_parent_id"] as String?) ?? $0["id"] }
        let seq = state.lastSeq + 1
        let id = Identifier.make("msg", at: now)
        try RawStatement(db, "UPDATE conversations SET last_seq = ?, last_message_at = ?, updated_at = ? WHERE rowid = ?")
            .execute(.integer(seq), .integer(now.milliseconds), .integer(now.milliseconds), .integer(state.row))
        let mentions = try resolveMentions(db, tenantId: tenantId, conversationId: conversationId, content: new.content)
        let attachments = new.files.map { Attachment(id: Identifier.make("fil", at: now), name: $0.name, contentType: $0.contentType, size: $0.data.count) }
        try RawStatement(db, """
                INSERT INTO messages (
                    id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq, client_message_id, mention_ids, attachments)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            .execute(
                .text(id), .text(tenantId), .text(conversationId), .text(new.senderId), rootId.map(RawStatement.Value.text) ?? .null,
                .text(new.content), .integer(now.milliseconds), .integer(seq), new.clientMessageId.map(RawStatement.Value.text) ?? .null,
                mentions.isEmpty ? .null : .text(mentions.joined(separator: " ")), FileRules.encode(attachments).map(RawStatement.Value.text) ?? .null)
        if !new.files.isEmpty {
            try insertFiles(db, tenantId: tenantId, messageId: id, conversationId: conversationId, files: new.files, as: attachments, now: now)
        }
        if !mentions.isEmpty {
            try insertMentionRows(db, tenantId: tenantId, messageId: id, conversationId: conversationId, seq: seq, senderId: new.senderId, mentions: mentions)
        }
        if let rootId {
            try db.cachedStatement(sql: "UPDATE messages SET reply_count = reply_count + 1 WHERE tenant_id = ? AND id = ?")
                .execute(arguments: [tenantId, rootId])
        }
        var message = Message(
            id: id, tenantId: tenantId, conversationId: conversationId, senderId: new.senderId, sender: sender,
            threadParentId: rootId, content: new.content, createdAt: now, seq: seq, replyCount: 0, clientMessageId: new.clientMessageId)
        message.mentions = mentions
        message.attachments = attachments
        let event = try appendEvent(db, type: .newMessage, tenantId: tenantId, conversationId: conversationId, data: JSONText.message(message), now: now)
        return AppliedWrite(outcome: .message(message, created: true), events: [event])
    }

    private static func setClosed(
        _ db: Database, tenantId: String, userId: String, conversationId: String, closed: Bool, now: Timestamp
    ) throws -> AppliedWrite {
        guard var conversation = try fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: userId) else {
            throw ChatError.notFound("conversation")
        }
        guard conversation.isClosed != closed else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
        try db.execute(
            sql: "UPDATE conversations SET closed_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
            arguments: [closed ? now.milliseconds : nil, now.milliseconds, tenantId, conversationId])
        conversation.closedAt = closed ? now : nil
        conversation.updatedAt = now
        var shared = conversation
        shared.unreadCount = 0
        shared.mentionCount = 0
        let event = try appendEvent(
            db, type: .conversationUpdated, tenantId: tenantId, conversationId: conversationId, data: JSONText.encode(shared), now: now,
            participantIds: conversation.participants.map(\.id))
        return AppliedWrite(outcome: .conversation(conversation), events: [event])
    }

    /// An edit (`newContent`) or a delete (nil). A delete also rewrites every logged event that carried the message
    /// (its `new_message` and `message_updated` events) to the tombstone, so its content is gone from storage.
    private static func change(
        _ db: Database, tenantId: String, userId: String, messageId: String, newContent: String?, now: Timestamp
    ) throws -> AppliedWrite {
        guard var message = try fetchMessage(db, tenantId: tenantId, id: messageId) else { throw ChatError.notFound("message") }
        message = try withReactions(db, tenantId: tenantId, [message])[0]
        let closed = try Int64.fetchOne(
            db, sql: "SELECT closed_at FROM conversations WHERE tenant_id = ? AND id = ?", arguments: [tenantId, message.conversationId])
        let participates = try isParticipant(db, tenantId: tenantId, conversationId: message.conversationId, userId: userId)
        if let refusal = MessageChange.check(message, userId: userId, participates: participates, closed: closed != nil, deleting: newContent == nil) {
            throw refusal
        }
        if let newContent {
            guard newContent != message.content else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
            let mentions = try resolveMentions(db, tenantId: tenantId, conversationId: message.conversationId, content: newContent)
            try db.execute(
                sql: "UPDATE messages SET content = ?, edited_at = ?, mention_ids = ? WHERE tenant_id = ? AND id = ?",
                arguments: [newContent, now.milliseconds, mentions.isEmpty ? nil : mentions.joined(separator: " "), tenantId, messageId])
            try db.execute(sql: "DELETE FROM mentions WHERE tenant_id = ? AND message_id = ?", arguments: [tenantId, messageId])
            try insertMentionRows(
                db, tenantId: tenantId, messageId: messageId, conversationId: message.conversationId, seq: message.seq,
                senderId: message.senderId, mentions: mentions)
            message.content = newContent
            message.editedAt = now
            message.mentions = mentions
        } else {
            guard !message.isDeleted else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
            try db.execute(
                sql: "UPDATE messages SET content = ?, deleted_at = ?, mention_ids = NULL, attachments = NULL WHERE tenant_id = ? AND id = ?",
                arguments: [MessageChange.tombstoneContent, now.milliseconds, tenantId, messageId])
            try db.execute(sql: "DELETE FROM mentions WHERE tenant_id = ? AND message_id = ?", arguments: [tenantId, messageId])
            // Deleting the message deletes its files.
            try db.execute(sql: "DELETE FROM files WHERE tenant_id = ? AND message_id = ?", arguments: [tenantId, messageId])
            message.attachments = []
            message.content = ""
            message.deletedAt = now
            message.mentions = []
            // A tombstone has nothing to react to.
            try db.execute(sql: "DELETE FROM reactions WHERE tenant_id = ? AND message_id = ?", arguments: [tenantId, messageId])
            message.reactions = []
            // One conversation's events within the retention, through events_by_room.
            try db.execute(
                sql: """
                    UPDATE events SET data = ?
                    WHERE tenant_id = ? AND conversation_id = ? AND type IN ('new_message', 'message_updated') AND instr(data, ?) > 0
                    """,
                arguments: [String(decoding: JSONText.message(message), as: UTF8.self), tenantId, message.conversationId, MessageChange.idMarker(messageId)])
        }
        let event = try appendEvent(
            db, type: newContent == nil ? .messageDeleted : .messageUpdated, tenantId: tenantId, conversationId: message.conversationId,
            data: JSONText.message(message), now: now)
        return AppliedWrite(outcome: .changed(message, changed: true), events: [event])
    }

    /// Adds or takes back one reaction; nothing changes (and nothing is logged) when it was already so.
    private static func react(
        _ db: Database, tenantId: String, userId: String, messageId: String, code: String, on: Bool, now: Timestamp
    ) throws -> AppliedWrite {
        guard var message = try fetchMessage(db, tenantId: tenantId, id: messageId),
              try isParticipant(db, tenantId: tenantId, conversationId: message.conversationId, userId: userId)
        else { throw ChatError.notFound("message") }
        if on {
            guard !message.isDeleted else { throw ChatError(.conflict, "message_deleted", "A deleted message cannot be reacted to.") }
            try db.execute(
                sql: "INSERT OR IGNORE INTO reactions (tenant_id, message_id, emoji, user_id, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [tenantId, messageId, code, userId, now.milliseconds])
        } else {
            try db.execute(
                sql: "DELETE FROM reactions WHERE tenant_id = ? AND message_id = ? AND emoji = ? AND user_id = ?",
                arguments: [tenantId, messageId, code, userId])
        }
        let changed = db.changesCount > 0
        message = try withReactions(db, tenantId: tenantId, [message])[0]
        guard changed else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
        let event = try appendEvent(
            db, type: on ? .reactionAdded : .reactionRemoved, tenantId: tenantId, conversationId: message.conversationId,
            data: EventPayload.reaction(messageId: messageId, threadParentId: message.threadParentId, emoji: code, userId: userId, reactions: message.reactions),
            now: now)
        return AppliedWrite(outcome: .changed(message, changed: true), events: [event])
    }

    /// The messages with their reactions: one indexed read for all of them.
    static func withReactions(_ db: Database, tenantId: String, _ messages: [Message]) throws -> [Message] {
        guard !messages.isEmpty else { return messages }
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT message_id, emoji, user_id FROM reactions
                WHERE tenant_id = ? AND message_id IN (\(databaseQuestionMarks(count: messages.count)))
                ORDER BY created_at, user_id
                """,
            arguments: StatementArguments([tenantId] + messages.map(\.id)))
        guard !rows.isEmpty else { return messages }
        let grouped = Reaction.group(rows.map { (messageId: $0["message_id"], code: $0["emoji"], userId: $0["user_id"]) })
        return messages.map { message in
            var message = message
            message.reactions = grouped[message.id] ?? []
            return message
        }
    }

    private static func markRead(
        _ db: Database, tenantId: String, userId: String, conversationId: String, messageId: String, now: Timestamp
    ) throws -> AppliedWrite {
        guard let readSeq = try Int64.fetchOne(
            db, sql: "SELECT last_read_seq FROM participants WHERE tenant_id = ? AND conversation_id = ? AND user_id = ?",
            arguments: [tenantId, conversationId, userId])
        else { throw ChatError.notFound("conversation") }
        guard let seq = try Int64.fetchOne(
            db, sql: "SELECT seq FROM messages WHERE tenant_id = ? AND conversation_id = ? AND id = ?",
            arguments: [tenantId, conversationId, messageId])
        else { throw ChatError.notFound("message") }
        // Receipts only move forward; re-reading an older message changes nothing.
        guard seq > readSeq else { return AppliedWrite(outcome: .markedRead, events: []) }
        try db.execute(
            sql: "UPDATE participants SET last_read_seq = ?, last_read_message_id = ? WHERE tenant_id = ? AND conversation_id = ? AND user_id = ?",
            arguments: [seq, messageId, tenantId, conversationId, userId])
        let data = EventPayload.readReceipt(userId: userId, messageId: messageId, seq: seq)
        let event = try appendEvent(db, type: .readReceipt, tenantId: tenantId, conversationId: conversationId, data: data, now: now)
        return AppliedWrite(outcome: .markedRead, events: [event])
    }

    static func appendEvent(
        _ db: Database, type: EventType, tenantId: String, conversationId: String, data: [UInt8], now: Timestamp,
        participantIds: [String]? = nil
    ) throws -> LoggedEvent {
        try RawStatement(db, "INSERT INTO events (tenant_id, conversation_id, type, data, created_at) VALUES (?, ?, ?, ?, ?)")
            .execute(.text(tenantId), .text(conversationId), .text(type.rawValue), .bytes(data), .integer(now.milliseconds))
        return LoggedEvent(
            type: type, eventId: db.lastInsertedRowID, tenantId: tenantId, conversationId: conversationId, data: data,
            participantIds: participantIds)
    }

    // MARK: Event log

    public func events(tenantId: String, viewerId: String, after: Int64, conversationId: String?, limit: Int) async throws -> [ChatEvent] {
        try read { db in
            // Cached statements: a poll or a resume older than the ring of recent events runs this on every request,
            // and compiling it each time (SQLite's parser and GRDB's authorizer) was most of such a poll's CPU.
            let statement: Statement
            let arguments: StatementArguments
            if let conversationId {
                statement = try db.cachedStatement(sql: Self.eventsSelect + " AND e.conversation_id = ? ORDER BY e.id LIMIT ?")
                arguments = [tenantId, after, tenantId, viewerId, conversationId, limit]
            } else {
                statement = try db.cachedStatement(sql: Self.eventsSelect + " ORDER BY e.id LIMIT ?")
                arguments = [tenantId, after, tenantId, viewerId, limit]
            }
            return try Row.fetchAll(statement, arguments: arguments).compactMap { row -> ChatEvent? in
                guard let type = EventType(rawValue: row["type"]) else { return nil }
                let data: String = row["data"]
                return ChatEvent(type: type, eventId: row["id"], tenantId: tenantId, conversationId: row["conversation_id"], data: Array(data.utf8))
            }
        }
    }

    public func eventLogBounds(tenantId: String) async throws -> (latest: Int64, pruned: Int64) {
        try read { db in
            // sqlite_sequence keeps the highest id ever issued, even when the newest rows were pruned.
            let latest = try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'")) ?? 0
            let pruned = try Int64.fetchOne(db.cachedStatement(sql: "SELECT pruned_through FROM event_log_state WHERE singleton = 1")) ?? 0
            return (latest, pruned)
        }
    }

    public func pruneEvents(createdBefore cutoff: Timestamp) async throws -> (count: Int, prunedThrough: Int64) {
        try await pool.write { db in
            var count = 0
            if let highest = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM events WHERE created_at < ?", arguments: [cutoff.milliseconds]) {
                try db.execute(sql: "DELETE FROM events WHERE id <= ?", arguments: [highest])
                count = db.changesCount
                try db.execute(
                    sql: "UPDATE event_log_state SET pruned_through = MAX(pruned_through, ?) WHERE singleton = 1", arguments: [highest])
            }
            let through = try Int64.fetchOne(db, sql: "SELECT pruned_through FROM event_log_state WHERE singleton = 1") ?? 0
            return (count, through)
        }
    }

    static let eventsSelect = """
        SELECT e.id, e.conversation_id, e.type, e.data FROM events e
        WHERE e.tenant_id = ? AND e.id > ?
          AND e.conversation_id IN (SELECT conversation_id FROM participants WHERE tenant_id = ? AND user_id = ?)
        """

    // MARK: Row mapping

    static let messageSelect = """
        SELECT m.id, m.tenant_id, m.conversation_id, m.sender_id, m.thread_parent_id, m.content, m.created_at, m.seq,
               m.reply_count, m.client_message_id, m.edited_at, m.deleted_at, m.mention_ids, m.attachments, u.username, u.display_name, u.is_bot
        FROM messages m JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.sender_id
        """

    static let conversationSelect = """
        SELECT c.id, c.tenant_id, c.title, c.created_by, c.created_at, c.updated_at, c.last_message_at, c.closed_at, c.last_seq,
               c.participant_count,
               (SELECT COUNT(*) FROM messages m
                 WHERE m.conversation_id = c.id AND m.thread_parent_id IS NULL AND m.seq > p.last_read_seq
                   AND m.sender_id <> p.user_id) AS unread,
               (SELECT COUNT(*) FROM mentions x
                 WHERE x.tenant_id = p.tenant_id AND x.user_id = p.user_id AND x.conversation_id = c.id
                   AND x.seq > p.last_read_seq) AS mentioned
        FROM participants p JOIN conversations c ON c.tenant_id = p.tenant_id AND c.id = p.conversation_id
        """

    static func tenant(_ row: Row) -> Tenant {
        Tenant(id: row["id"], slug: row["slug"], name: row["name"])
    }

    static func user(_ row: Row) -> User {
        User(id: row["id"], username: row["username"], displayName: row["display_name"], tenantId: row["tenant_id"], isBot: row["is_bot"])
    }

    static func message(_ row: Row) -> Message {
        let tenantId: String = row["tenant_id"]
        let senderId: String = row["sender_id"]
        var message = Message(
            id: row["id"], tenantId: tenantId, conversationId: row["conversation_id"], senderId: senderId,
            sender: User(id: senderId, username: row["username"], displayName: row["display_name"], tenantId: tenantId, isBot: row["is_bot"]),
            threadParentId: row["thread_parent_id"], content: (row["deleted_at"] as Int64?) == nil ? row["content"] : "",
            createdAt: Timestamp(milliseconds: row["created_at"]), seq: row["seq"], replyCount: row["reply_count"],
            clientMessageId: row["client_message_id"], editedAt: (row["edited_at"] as Int64?).map(Timestamp.init(milliseconds:)),
            deletedAt: (row["deleted_at"] as Int64?).map(Timestamp.init(milliseconds:)))
        if let ids = row["mention_ids"] as String? { message.mentions = ids.split(separator: " ").map(String.init) }
        if let attachments = row["attachments"] as String? { message.attachments = FileRules.decode(attachments) }
        return message
    }

    static func conversation(_ row: Row, participants: [User]) -> Conversation {
        var conversation = Conversation(
            id: row["id"], tenantId: row["tenant_id"], title: row["title"], participants: participants,
            createdBy: row["created_by"], createdAt: Timestamp(milliseconds: row["created_at"]),
            updatedAt: Timestamp(milliseconds: row["updated_at"]),
            lastMessageAt: (row["last_message_at"] as Int64?).map(Timestamp.init(milliseconds:)),
            closedAt: (row["closed_at"] as Int64?).map(Timestamp.init(milliseconds:)),
            unreadCount: row["unread"], lastSeq: row["last_seq"], participantCount: row["participant_count"])
        conversation.mentionCount = row["mentioned"]
        return conversation
    }

    static func fetchUser(_ db: Database, tenantId: String, id: String) throws -> User? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, username, display_name, tenant_id, is_bot FROM users WHERE tenant_id = ? AND id = ?"),
            arguments: [tenantId, id]
        ).map { user($0) }
    }

    static func fetchMessage(_ db: Database, tenantId: String, id: String) throws -> Message? {
        try Row.fetchOne(db, sql: messageSelect + " WHERE m.tenant_id = ? AND m.id = ?", arguments: [tenantId, id]).map(message)
    }

    static func isParticipant(_ db: Database, tenantId: String, conversationId: String, userId: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT 1 FROM participants WHERE tenant_id = ? AND conversation_id = ? AND user_id = ?"),
            arguments: [tenantId, conversationId, userId]) ?? false
    }

    static func fetchConversation(_ db: Database, tenantId: String, id: String, viewerId: String) throws -> Conversation? {
        guard let row = try Row.fetchOne(
            db, sql: conversationSelect + " WHERE p.tenant_id = ? AND p.user_id = ? AND c.id = ?",
            arguments: [tenantId, viewerId, id])
        else { return nil }
        return conversation(row, participants: try listedParticipants(db, tenantId: tenantId, conversationIds: [id])[id] ?? [])
    }
}
