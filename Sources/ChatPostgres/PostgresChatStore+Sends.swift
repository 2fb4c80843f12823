import ChatCore
import PostgresNIO

/// Sends, set-based: a run of consecutive sends in a batch costs a fixed number of round trips (four reads, four
/// writes) however many messages it holds. One statement per message and step made the write path wait on a round
/// trip ~5 times per message (the bench: 186 acks/s for one tenant, the server idle in context switches).
extension PostgresChatStore {
    private struct ConversationState {
        var closed: Bool
        var lastSeq: Int64
        var participants: Set<String>
    }

    static func sendRun(
        _ db: ConnectionRunner, _ sends: [NewMessage], counters: inout EventCounters, senders: inout [String: User], now: Timestamp
    ) async throws -> [Result<AppliedWrite, ChatError>] {
        // 1. Thread parents: a reply lands on its parent's root, in the parent's conversation.
        var parents: [String: (conversationId: String, rootId: String)] = [:]  // "tenant/id"
        let parentKeys = Array(Set(sends.compactMap { send in send.threadParentId.map { [send.tenantId, $0] } }))
        if !parentKeys.isEmpty {
            for try await (tenantId, id, conversationId, parentOfParent) in try await db.run(
                """
                SELECT m.tenant_id, m.id, m.conversation_id, m.thread_parent_id FROM messages m
                JOIN unnest(\(parentKeys.map { $0[0] })::text[], \(parentKeys.map { $0[1] })::text[]) AS k(tenant_id, id)
                  ON m.tenant_id = k.tenant_id AND m.id = k.id
                """
            ).decode((String, String, String, String?).self) {
                parents[tenantId + "/" + id] = (conversationId, parentOfParent ?? id)
            }
        }
        // Each send's conversation (nil: refused as not found).
        let targets: [String?] = sends.map { send in
            guard let parentId = send.threadParentId else { return send.conversationId }
            guard let parent = parents[send.tenantId + "/" + parentId],
                  send.conversationId == nil || send.conversationId == parent.conversationId
            else { return nil }
            return parent.conversationId
        }

        // 2. The conversations, locked (`seq` comes from them), with their participants among the senders.
        var conversations: [String: ConversationState] = [:]  // "tenant/id"
        let conversationKeys = Array(Set(zip(sends, targets).compactMap { send, target in target.map { [send.tenantId, $0] } }))
        if !conversationKeys.isEmpty {
            for try await (tenantId, id, closedAt, lastSeq) in try await db.run(
                """
                SELECT c.tenant_id, c.id, c.closed_at, c.last_seq FROM conversations c
                JOIN unnest(\(conversationKeys.map { $0[0] })::text[], \(conversationKeys.map { $0[1] })::text[]) AS k(tenant_id, id)
                  ON c.tenant_id = k.tenant_id AND c.id = k.id
                ORDER BY c.id
                FOR UPDATE OF c
                """
            ).decode((String, String, Int64?, Int64).self) {
                conversations[tenantId + "/" + id] = ConversationState(closed: closedAt != nil, lastSeq: lastSeq, participants: [])
            }
            let memberKeys = Array(Set(zip(sends, targets).compactMap { send, target in target.map { [send.tenantId, $0, send.senderId] } }))
            for try await (tenantId, conversationId, userId) in try await db.run(
                """
                SELECT p.tenant_id, p.conversation_id, p.user_id FROM participants p
                JOIN unnest(\(memberKeys.map { $0[0] })::text[], \(memberKeys.map { $0[1] })::text[], \(memberKeys.map { $0[2] })::text[])
                  AS k(tenant_id, conversation_id, user_id)
                  ON p.tenant_id = k.tenant_id AND p.conversation_id = k.conversation_id AND p.user_id = k.user_id
                """
            ).decode((String, String, String).self) {
                conversations[tenantId + "/" + conversationId]?.participants.insert(userId)
            }
        }

        // 3. Earlier messages with the same clientMessageId (a resend returns the first).
        var existing: [String: Message] = [:]  // "conversation/sender/clientMessageId"
        let resendKeys = Array(Set(zip(sends, targets).compactMap { send, target -> [String]? in
            guard let target, let clientMessageId = send.clientMessageId else { return nil }
            return [target, send.senderId, clientMessageId]
        }))
        if !resendKeys.isEmpty {
            let query = PostgresQuery(
                unsafeSQL: """
                    SELECT \(Rows.messageColumns) \(Rows.messageFrom)
                    JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(conversation_id, sender_id, client_message_id)
                      ON m.conversation_id = k.conversation_id AND m.sender_id = k.sender_id AND m.client_message_id = k.client_message_id
                    """,
                binds: try bindings(resendKeys.map { $0[0] }, resendKeys.map { $0[1] }, resendKeys.map { $0[2] }))
            for try await row in try await db.run(query) {
                let message = try Rows.message(row.makeRandomAccess())
                existing[message.conversationId + "/" + message.senderId + "/" + (message.clientMessageId ?? "")] = message
            }
        }

        // 4. The senders not seen yet in this batch.
        let missing = Array(Set(sends.map { [$0.tenantId, $0.senderId] }).filter { senders[$0[0] + "/" + $0[1]] == nil })
        if !missing.isEmpty {
            for try await row in try await db.run(
                """
                SELECT u.id, u.username, u.display_name, u.tenant_id, u.is_bot FROM users u
                JOIN unnest(\(missing.map { $0[0] })::text[], \(missing.map { $0[1] })::text[]) AS k(tenant_id, id)
                  ON u.tenant_id = k.tenant_id AND u.id = k.id
                """)
            {
                let user = try Rows.user(row.makeRandomAccess())
                senders[user.tenantId + "/" + user.id] = user
            }
        }

        // 5. Mentions, for the sends whose content has an `@` (none: no statement).
        let mentionSets = try await resolveMentions(db, zip(sends, targets).map { send, target in
            (tenantId: send.tenantId, conversationId: target ?? "", content: target == nil ? "" : send.content)
        })

        // In order, as if one at a time: refusals, resends (also of a message earlier in this run), new messages.
        var results: [Result<AppliedWrite, ChatError>] = []
        results.reserveCapacity(sends.count)
        var inserts: [(message: Message, event: LoggedEvent, data: String)] = []
        var replies: [String: Int32] = [:]  // "tenant/root" -> new replies
        var files: [(message: Message, files: [NewFile])] = []
        for (index, (send, target)) in zip(sends, targets).enumerated() {
            let key = target.map { send.tenantId + "/" + $0 }
            guard let target, let key, let state = conversations[key], state.participants.contains(send.senderId) else {
                results.append(.failure(ChatError.notFound(send.threadParentId == nil ? "conversation" : "message")))
                continue
            }
            if let clientMessageId = send.clientMessageId, let first = existing[target + "/" + send.senderId + "/" + clientMessageId] {
                results.append(.success(AppliedWrite(outcome: .message(first, created: false), events: [])))
                continue
            }
            if state.closed {
                results.append(.failure(ChatError.conversationClosed))
                continue
            }
            guard let sender = senders[send.tenantId + "/" + send.senderId] else {
                results.append(.failure(ChatError.notFound("user")))
                continue
            }
            let seq = state.lastSeq + 1
            conversations[key]?.lastSeq = seq
            let rootId = send.threadParentId.flatMap { parents[send.tenantId + "/" + $0]?.rootId }
            var message = Message(
                id: Identifier.make("msg", at: now), tenantId: send.tenantId, conversationId: target, senderId: send.senderId,
                sender: sender, threadParentId: rootId, content: send.content, createdAt: now, seq: seq, replyCount: 0,
                clientMessageId: send.clientMessageId)
            message.mentions = mentionSets[index]
            message.attachments = send.files.map {
                Attachment(id: Identifier.make("fil", at: now), name: $0.name, contentType: $0.contentType, size: $0.data.count)
            }
            if !send.files.isEmpty { files.append((message, send.files)) }
            if let clientMessageId = send.clientMessageId { existing[target + "/" + send.senderId + "/" + clientMessageId] = message }
            if let rootId { replies[send.tenantId + "/" + rootId, default: 0] += 1 }
            let data = JSONText.message(message)
            let event = LoggedEvent(
                type: .newMessage, eventId: try counters.take(send.tenantId), tenantId: send.tenantId, conversationId: target, data: data)
            inserts.append((message, event, String(decoding: data, as: UTF8.self)))
            results.append(.success(AppliedWrite(outcome: .message(message, created: true), events: [event])))
        }
        guard !inserts.isEmpty else { return results }

        // The writes: one statement each for messages, events, conversations and thread roots.
        let messages = inserts.map(\.message)
        try await db.run(PostgresQuery(
            unsafeSQL: """
                INSERT INTO messages (
                    id, tenant_id, conversation_id, sender_id, thread_parent_id, content, created_at, seq, client_message_id, mention_ids, attachments)
                SELECT i, t, c, s, NULLIF(p, ''), x, a, q, NULLIF(k, ''), NULLIF(n, ''), NULLIF(f, '')
                FROM unnest(
                    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],
                    $11::text[])
                  AS m(i, t, c, s, p, x, a, q, k, n, f)
                """,
            // No id, clientMessageId or mention list is ever empty: '' stands for NULL in the arrays.
            binds: try bindings(
                messages.map(\.id), messages.map(\.tenantId), messages.map(\.conversationId), messages.map(\.senderId),
                messages.map { $0.threadParentId ?? "" }, messages.map(\.content), messages.map { $0.createdAt.milliseconds },
                messages.map(\.seq), messages.map { $0.clientMessageId ?? "" }, messages.map { $0.mentions.joined(separator: " ") },
                messages.map { FileRules.encode($0.attachments) ?? "" })))
        try await insertMentionRows(db, messages)
        for (message, newFiles) in files {
            for (file, attachment) in zip(newFiles, message.attachments) {
                try await db.run(
                    """
                    INSERT INTO files (tenant_id, id, message_id, conversation_id, name, content_type, size, data, created_at)
                    VALUES (\(message.tenantId), \(attachment.id), \(message.id), \(message.conversationId), \(attachment.name),
                            \(attachment.contentType), \(attachment.size), \(ByteBuffer(bytes: file.data)), \(now.milliseconds))
                    """)
            }
        }
        let events = inserts.map(\.event)
        try await db.run(PostgresQuery(
            unsafeSQL: """
                INSERT INTO events (tenant_id, id, conversation_id, type, data, created_at)
                SELECT t, i, c, 'new_message', d, \(now.milliseconds) FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS e(t, i, c, d)
                """,
            binds: try bindings(
                events.map(\.tenantId), events.map { $0.eventId ?? 0 }, events.map(\.conversationId), inserts.map(\.data))))
        var lastSeq: [String: (tenantId: String, id: String, seq: Int64)] = [:]
        for message in messages { lastSeq[message.tenantId + "/" + message.conversationId] = (message.tenantId, message.conversationId, message.seq) }
        let touched = Array(lastSeq.values)
        try await db.run(PostgresQuery(
            unsafeSQL: """
                UPDATE conversations c SET last_seq = k.seq, last_message_at = $4, updated_at = $4
                FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k(tenant_id, id, seq)
                WHERE c.tenant_id = k.tenant_id AND c.id = k.id
                """,
            binds: try bindings(touched.map(\.tenantId), touched.map(\.id), touched.map(\.seq), now.milliseconds)))
        if !replies.isEmpty {
            let roots = replies.map { (key: $0.key.split(separator: "/", maxSplits: 1).map(String.init), count: $0.value) }
            try await db.run(PostgresQuery(
                unsafeSQL: """
                    UPDATE messages m SET reply_count = m.reply_count + k.n
                    FROM unnest($1::text[], $2::text[], $3::integer[]) AS k(tenant_id, id, n)
                    WHERE m.tenant_id = k.tenant_id AND m.id = k.id
                    """,
                binds: try bindings(roots.map { $0.key[0] }, roots.map { $0.key[1] }, roots.map(\.count))))
        }
        return results
    }
}
