import ChatCore
import PostgresNIO

extension PostgresChatStore {
    /// A rename or a change of who is in the conversation, checked by `Membership.check` inside the transaction
    /// (which holds the tenant's lock, so two nodes never change one conversation's members at once).
    static func changeMembers(
        _ db: ConnectionRunner, tenantId: String, actorId: String, conversationId: String, change: MembershipChange,
        counters: inout EventCounters, now: Timestamp
    ) async throws -> AppliedWrite {
        let before = try await fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: actorId)
        if let refusal = Membership.check(change, actorId: actorId, conversation: before) { throw refusal }
        guard var conversation = before else { throw ChatError.notFound("conversation") }
        conversation.unreadCount = 0
        conversation.mentionCount = 0
        switch change {
        case .rename(let title):
            guard title != conversation.title else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try await db.run(
                """
                UPDATE conversations SET title = \(title), updated_at = \(now.milliseconds)
                WHERE tenant_id = \(tenantId) AND id = \(conversationId)
                """)
            conversation.title = title
            conversation.updatedAt = now
            let event = try await appendEvent(
                db, type: .conversationUpdated, tenantId: tenantId, conversationId: conversationId, data: JSONText.encode(conversation),
                counters: &counters, now: now, participantIds: conversation.participants.map(\.id))
            return AppliedWrite(outcome: .conversation(conversation), events: [event])
        case .add(let userIds):
            for id in userIds {
                guard try await fetchUser(db, tenantId: tenantId, id: id) != nil else { throw ChatError.notFound("participant") }
            }
            // History is theirs to read, but only what comes after joining counts as unread.
            var added: [String] = []
            for try await id in try await db.run(
                """
                INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at, last_read_seq)
                SELECT \(tenantId), \(conversationId), u, \(now.milliseconds), \(conversation.lastSeq)
                FROM unnest(\(userIds)::text[]) WITH ORDINALITY AS t(u, n) ORDER BY n
                ON CONFLICT DO NOTHING RETURNING user_id
                """).decode(String.self) {
                added.append(id)
            }
            added.sort { userIds.firstIndex(of: $0)! < userIds.firstIndex(of: $1)! }
            guard !added.isEmpty else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try await db.run(
                """
                UPDATE conversations SET participant_count = participant_count + \(added.count), updated_at = \(now.milliseconds)
                WHERE tenant_id = \(tenantId) AND id = \(conversationId)
                """)
            guard var after = try await fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: actorId) else {
                throw ChatError.notFound("conversation")
            }
            after.unreadCount = 0
            after.mentionCount = 0
            let event = try await appendEvent(
                db, type: .participantsAdded, tenantId: tenantId, conversationId: conversationId,
                data: Membership.addedPayload(conversation: after, userIds: added, actorId: actorId), counters: &counters, now: now,
                participantIds: added)
            return AppliedWrite(outcome: .conversation(after), events: [event])
        case .remove(let userId):
            var removed = false
            for try await _ in try await db.run(
                """
                DELETE FROM participants WHERE tenant_id = \(tenantId) AND conversation_id = \(conversationId) AND user_id = \(userId)
                RETURNING user_id
                """) {
                removed = true
            }
            guard removed else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try await db.run(
                """
                UPDATE conversations SET participant_count = participant_count - 1, updated_at = \(now.milliseconds)
                WHERE tenant_id = \(tenantId) AND id = \(conversationId)
                """)
            conversation.participants = try await listedParticipants(db, tenantId: tenantId, conversationIds: [conversationId])[conversationId] ?? []
            conversation.participantCount -= 1
            conversation.updatedAt = now
            let event = try await appendEvent(
                db, type: .participantRemoved, tenantId: tenantId, conversationId: conversationId,
                data: Membership.removedPayload(conversation: conversation, userId: userId, actorId: actorId), counters: &counters,
                now: now, participantIds: [userId])
            return AppliedWrite(outcome: .conversation(conversation), events: [event])
        }
    }
}

extension PostgresChatStore {
    public func contacts(tenantId: String, userId: String, limit: Int) async throws -> [String] {
        try await guarded { [self] in
            var ids: [String] = []
            for try await id in try await client.query(
                """
                SELECT DISTINCT other.user_id FROM participants mine
                JOIN participants other ON other.tenant_id = mine.tenant_id AND other.conversation_id = mine.conversation_id
                WHERE mine.tenant_id = \(tenantId) AND mine.user_id = \(userId) AND other.user_id <> mine.user_id LIMIT \(limit)
                """, logger: logger
            ).decode(String.self) {
                ids.append(id)
            }
            return ids
        }
    }
}
