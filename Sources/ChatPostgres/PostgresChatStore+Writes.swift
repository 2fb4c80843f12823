import ChatCore
import PostgresNIO

extension WriteCommand {
    var tenantId: String {
        switch self {
        case .startConversation(let tenantId, _, _, _), .setClosed(let tenantId, _, _, _), .markRead(let tenantId, _, _, _): tenantId
        case .editMessage(let tenantId, _, _, _), .deleteMessage(let tenantId, _, _), .react(let tenantId, _, _, _, _): tenantId
        case .sendMessage(let new): new.tenantId
        case .changeMembers(let tenantId, _, _, _): tenantId
        }
    }
}

/// Event ids handed out inside one write transaction, from the locked tenant counters.
struct EventCounters {
    var next: [String: Int64]
    var changed: Set<String> = []

    mutating func take(_ tenantId: String) throws -> Int64 {
        guard let last = next[tenantId] else { throw PostgresSettingsError("tenant \(tenantId) was not locked for this write") }
        next[tenantId] = last + 1
        changed.insert(tenantId)
        return last + 1
    }
}

extension PostgresChatStore {
    // MARK: Writes

    /// One transaction for the batch. It first locks the rows of every tenant it writes, in id order (two nodes
    /// never wait on each other in a cycle), and takes event ids from their counters. Each command checks
    /// everything before its first write, so a refusal leaves nothing to roll back and needs no savepoint.
    public func apply(_ commands: [WriteCommand]) async throws -> [Result<AppliedWrite, ChatError>] {
        try await guarded { [self] in
            let tenantIds = Array(Set(commands.map(\.tenantId))).sorted()
            let settings = self.settings
            let logger = self.logger
            return try await client.withTransaction(logger: logger) { connection in
                let db = ConnectionRunner(connection: connection, logger: logger)
                // A stuck transaction must not freeze a tenant: bounded waits for locks, statements and idling.
                try await db.run(
                    """
                    SELECT set_config('lock_timeout', \(String(settings.lockTimeoutMilliseconds)), true),
                           set_config('statement_timeout', \(String(settings.statementTimeoutMilliseconds)), true),
                           set_config('idle_in_transaction_session_timeout', \(String(settings.idleInTransactionTimeoutMilliseconds)), true)
                    """)
                var counters = EventCounters(next: [:])
                for try await (id, last) in try await db.run(
                    "SELECT id, last_event_id FROM tenants WHERE id = ANY(\(tenantIds)) ORDER BY id FOR UPDATE"
                ).decode((String, Int64).self) {
                    counters.next[id] = last
                }
                let now = Timestamp.now()
                var senders: [String: User] = [:]
                var results: [Result<AppliedWrite, ChatError>] = []
                results.reserveCapacity(commands.count)
                // In order; a run of consecutive sends is applied as a set (a fixed number of round trips).
                var run: [NewMessage] = []
                for (index, command) in commands.enumerated() {
                    switch command {
                    case .sendMessage(let new):
                        run.append(new)
                        if index + 1 < commands.count, case .sendMessage = commands[index + 1] { continue }
                        results += try await Self.sendRun(db, run, counters: &counters, senders: &senders, now: now)
                        run.removeAll()
                    case .startConversation(let tenantId, let creatorId, let title, let participantIds):
                        results.append(try await Self.refusing {
                            try await Self.startConversation(
                                db, tenantId: tenantId, creatorId: creatorId, title: title, participantIds: participantIds,
                                counters: &counters, now: now)
                        })
                    case .setClosed(let tenantId, let userId, let conversationId, let closed):
                        results.append(try await Self.refusing {
                            try await Self.setClosed(
                                db, tenantId: tenantId, userId: userId, conversationId: conversationId, closed: closed,
                                counters: &counters, now: now)
                        })
                    case .markRead(let tenantId, let userId, let conversationId, let messageId):
                        results.append(try await Self.refusing {
                            try await Self.markRead(
                                db, tenantId: tenantId, userId: userId, conversationId: conversationId, messageId: messageId,
                                counters: &counters, now: now)
                        })
                    case .editMessage(let tenantId, let userId, let messageId, let content):
                        results.append(try await Self.refusing {
                            try await Self.change(
                                db, tenantId: tenantId, userId: userId, messageId: messageId, newContent: content, counters: &counters, now: now)
                        })
                    case .deleteMessage(let tenantId, let userId, let messageId):
                        results.append(try await Self.refusing {
                            try await Self.change(
                                db, tenantId: tenantId, userId: userId, messageId: messageId, newContent: nil, counters: &counters, now: now)
                        })
                    case .react(let tenantId, let userId, let messageId, let code, let on):
                        results.append(try await Self.refusing {
                            try await Self.react(
                                db, tenantId: tenantId, userId: userId, messageId: messageId, code: code, on: on, counters: &counters, now: now)
                        })
                    case .changeMembers(let tenantId, let actorId, let conversationId, let change):
                        results.append(try await Self.refusing {
                            try await Self.changeMembers(
                                db, tenantId: tenantId, actorId: actorId, conversationId: conversationId, change: change,
                                counters: &counters, now: now)
                        })
                    }
                }
                for tenantId in counters.changed.sorted() {
                    try await db.run("UPDATE tenants SET last_event_id = \(counters.next[tenantId]!) WHERE id = \(tenantId)")
                }
                return results
            }
        }
    }

    /// A command's refusal (`ChatError`) is its result; any other error fails the whole batch.
    private static func refusing(_ body: () async throws -> AppliedWrite) async throws -> Result<AppliedWrite, ChatError> {
        do {
            return .success(try await body())
        } catch let error as ChatError {
            return .failure(error)
        }
    }

    private static func startConversation(
        _ db: ConnectionRunner, tenantId: String, creatorId: String, title: String, participantIds: [String],
        counters: inout EventCounters, now: Timestamp
    ) async throws -> AppliedWrite {
        var users: [User] = []
        for id in participantIds {
            guard let user = try await fetchUser(db, tenantId: tenantId, id: id) else { throw ChatError.notFound("participant") }
            users.append(user)
        }
        let id = Identifier.make("cnv", at: now)
        try await db.run(
            """
            INSERT INTO conversations (id, tenant_id, title, created_by, created_at, updated_at, participant_count)
            VALUES (\(id), \(tenantId), \(title), \(creatorId), \(now.milliseconds), \(now.milliseconds), \(users.count))
            """)
        try await db.run(
            """
            INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at)
            SELECT \(tenantId), \(id), u, \(now.milliseconds) FROM unnest(\(users.map(\.id))::text[]) AS u
            """)
        let conversation = Conversation(
            id: id, tenantId: tenantId, title: title, participants: users, createdBy: creatorId, createdAt: now,
            updatedAt: now, lastMessageAt: nil, closedAt: nil, unreadCount: 0, lastSeq: 0)
        let event = try await appendEvent(
            db, type: .conversationCreated, tenantId: tenantId, conversationId: id, data: JSONText.encode(conversation),
            counters: &counters, now: now, participantIds: users.map(\.id))
        return AppliedWrite(outcome: .conversation(conversation), events: [event])
    }

    private static func setClosed(
        _ db: ConnectionRunner, tenantId: String, userId: String, conversationId: String, closed: Bool, counters: inout EventCounters,
        now: Timestamp
    ) async throws -> AppliedWrite {
        guard var conversation = try await fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: userId) else {
            throw ChatError.notFound("conversation")
        }
        guard conversation.isClosed != closed else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
        try await db.run(
            """
            UPDATE conversations SET closed_at = \(closed ? now.milliseconds : nil), updated_at = \(now.milliseconds)
            WHERE tenant_id = \(tenantId) AND id = \(conversationId)
            """)
        conversation.closedAt = closed ? now : nil
        conversation.updatedAt = now
        var shared = conversation
        shared.unreadCount = 0
        shared.mentionCount = 0
        let event = try await appendEvent(
            db, type: .conversationUpdated, tenantId: tenantId, conversationId: conversationId, data: JSONText.encode(shared),
            counters: &counters, now: now, participantIds: conversation.participants.map(\.id))
        return AppliedWrite(outcome: .conversation(conversation), events: [event])
    }

    /// An edit (`newContent`) or a delete (nil), under a lock of the message row. A delete also rewrites every logged
    /// event that carried the message (its `new_message` and `message_updated` events) to the tombstone.
    private static func change(
        _ db: ConnectionRunner, tenantId: String, userId: String, messageId: String, newContent: String?, counters: inout EventCounters,
        now: Timestamp
    ) async throws -> AppliedWrite {
        var found: (Message, Bool)?
        for try await row in try await db.run(
            PostgresQuery(
                unsafeSQL: """
                    SELECT \(Rows.messageColumns), c.closed_at IS NOT NULL AS closed \(Rows.messageFrom)
                    JOIN conversations c ON c.tenant_id = m.tenant_id AND c.id = m.conversation_id
                    WHERE m.tenant_id = $1 AND m.id = $2 FOR UPDATE OF m
                    """,
                binds: try bindings(tenantId, messageId)))
        {
            let row = row.makeRandomAccess()
            found = (try Rows.message(row), try row.value("closed", Bool.self))
        }
        guard var (message, closed) = found else { throw ChatError.notFound("message") }
        message = try await Self.withReactions(db, tenantId: tenantId, [message])[0]
        var participates = false
        for try await _ in try await db.run(
            "SELECT 1 FROM participants WHERE tenant_id = \(tenantId) AND conversation_id = \(message.conversationId) AND user_id = \(userId)")
        {
            participates = true
        }
        if let refusal = MessageChange.check(message, userId: userId, participates: participates, closed: closed, deleting: newContent == nil) {
            throw refusal
        }
        if let newContent {
            guard newContent != message.content else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
            let mentions = try await resolveMentions(
                db, [(tenantId: tenantId, conversationId: message.conversationId, content: newContent)])[0]
            try await db.run(
                """
                UPDATE messages SET content = \(newContent), edited_at = \(now.milliseconds),
                       mention_ids = \(mentions.isEmpty ? nil : mentions.joined(separator: " "))
                WHERE tenant_id = \(tenantId) AND id = \(messageId)
                """)
            message.content = newContent
            message.editedAt = now
            message.mentions = mentions
            try await db.run("DELETE FROM mentions WHERE tenant_id = \(tenantId) AND message_id = \(messageId)")
            try await insertMentionRows(db, [message])
        } else {
            guard !message.isDeleted else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
            try await db.run(
                """
                UPDATE messages SET content = \(MessageChange.tombstoneContent), deleted_at = \(now.milliseconds), mention_ids = NULL,
                       attachments = NULL
                WHERE tenant_id = \(tenantId) AND id = \(messageId)
                """)
            try await db.run("DELETE FROM mentions WHERE tenant_id = \(tenantId) AND message_id = \(messageId)")
            // Deleting the message deletes its files.
            try await db.run("DELETE FROM files WHERE tenant_id = \(tenantId) AND message_id = \(messageId)")
            message.attachments = []
            message.content = ""
            message.deletedAt = now
            message.mentions = []
            // A tombstone has nothing to react to.
            try await db.run("DELETE FROM reactions WHERE tenant_id = \(tenantId) AND message_id = \(messageId)")
            message.reactions = []
            // One conversation's events within the retention, through events_by_room.
            try await db.run(
                """
                UPDATE events SET data = \(String(decoding: JSONText.message(message), as: UTF8.self))
                WHERE tenant_id = \(tenantId) AND conversation_id = \(message.conversationId)
                  AND type IN ('new_message', 'message_updated') AND strpos(data, \(MessageChange.idMarker(messageId))) > 0
                """)
        }
        let event = try await appendEvent(
            db, type: newContent == nil ? .messageDeleted : .messageUpdated, tenantId: tenantId, conversationId: message.conversationId,
            data: JSONText.message(message), counters: &counters, now: now)
        return AppliedWrite(outcome: .changed(message, changed: true), events: [event])
    }

    /// Adds or takes back one reaction (the message row locked); nothing changes, and nothing is logged, when it
    /// was already so.
    private static func react(
        _ db: ConnectionRunner, tenantId: String, userId: String, messageId: String, code: String, on: Bool, counters: inout EventCounters,
        now: Timestamp
    ) async throws -> AppliedWrite {
        var found: Message?
        for try await row in try await db.run(
            PostgresQuery(
                unsafeSQL: "SELECT \(Rows.messageColumns) \(Rows.messageFrom) WHERE m.tenant_id = $1 AND m.id = $2 FOR UPDATE OF m",
                binds: try bindings(tenantId, messageId)))
        {
            found = try Rows.message(row.makeRandomAccess())
        }
        guard var message = found else { throw ChatError.notFound("message") }
        var participates = false
        for try await _ in try await db.run(
            "SELECT 1 FROM participants WHERE tenant_id = \(tenantId) AND conversation_id = \(message.conversationId) AND user_id = \(userId)")
        {
            participates = true
        }
        guard participates else { throw ChatError.notFound("message") }
        var changed = false
        if on {
            guard !message.isDeleted else { throw ChatError(.conflict, "message_deleted", "A deleted message cannot be reacted to.") }
            for try await _ in try await db.run(
                """
                INSERT INTO reactions (tenant_id, message_id, emoji, user_id, created_at)
                VALUES (\(tenantId), \(messageId), \(code), \(userId), \(now.milliseconds)) ON CONFLICT DO NOTHING RETURNING 1
                """)
            {
                changed = true
            }
        } else {
            for try await _ in try await db.run(
                "DELETE FROM reactions WHERE tenant_id = \(tenantId) AND message_id = \(messageId) AND emoji = \(code) AND user_id = \(userId) RETURNING 1")
            {
                changed = true
            }
        }
        message = try await withReactions(db, tenantId: tenantId, [message])[0]
        guard changed else { return AppliedWrite(outcome: .changed(message, changed: false), events: []) }
        let event = try await appendEvent(
            db, type: on ? .reactionAdded : .reactionRemoved, tenantId: tenantId, conversationId: message.conversationId,
            data: EventPayload.reaction(messageId: messageId, threadParentId: message.threadParentId, emoji: code, userId: userId, reactions: message.reactions),
            counters: &counters, now: now)
        return AppliedWrite(outcome: .changed(message, changed: true), events: [event])
    }

    private static func markRead(
        _ db: ConnectionRunner, tenantId: String, userId: String, conversationId: String, messageId: String, counters: inout EventCounters,
        now: Timestamp
    ) async throws -> AppliedWrite {
        var readSeq: Int64?
        for try await value in try await db.run(
            "SELECT last_read_seq FROM participants WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND user_id = \(userId) FOR UPDATE"
        ).decode(Int64.self) {
            readSeq = value
        }
        guard let readSeq else { throw ChatError.notFound("conversation") }
        var seq: Int64?
        for try await value in try await db.run(
            "SELECT seq FROM messages WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND id = \(messageId)"
        ).decode(Int64.self) {
            seq = value
        }
        guard let seq else { throw ChatError.notFound("message") }
        // Receipts only move forward; re-reading an older message changes nothing.
        guard seq > readSeq else { return AppliedWrite(outcome: .markedRead, events: []) }
        try await db.run(
            """
            UPDATE participants SET last_read_seq = \(seq), last_read_message_id = \(messageId)
            WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND user_id = \(userId)
            """)
        let event = try await appendEvent(
            db, type: .readReceipt, tenantId: tenantId, conversationId: conversationId,
            data: EventPayload.readReceipt(userId: userId, messageId: messageId, seq: seq), counters: &counters, now: now)
        return AppliedWrite(outcome: .markedRead, events: [event])
    }

    static func appendEvent(
        _ db: ConnectionRunner, type: EventType, tenantId: String, conversationId: String, data: [UInt8], counters: inout EventCounters,
        now: Timestamp, participantIds: [String]? = nil
    ) async throws -> LoggedEvent {
        let id = try counters.take(tenantId)
        try await db.run(
            """
            INSERT INTO events (tenant_id, id, conversation_id, type, data, created_at)
            VALUES (\(tenantId), \(id), \(conversationId), \(type.rawValue), \(String(decoding: data, as: UTF8.self)), \(now.milliseconds))
            """)
        return LoggedEvent(type: type, eventId: id, tenantId: tenantId, conversationId: conversationId, data: data, participantIds: participantIds)
    }
}
