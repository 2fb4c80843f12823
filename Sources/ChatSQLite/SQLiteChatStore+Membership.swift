import ChatCore
import GRDB

extension SQLiteChatStore {
    /// A rename or a change of who is in the conversation, checked by `Membership.check` inside the transaction.
    static func changeMembers(
        _ db: Database, tenantId: String, actorId: String, conversationId: String, change: MembershipChange, now: Timestamp
    ) throws -> AppliedWrite {
        let before = try fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: actorId)
        if let refusal = Membership.check(change, actorId: actorId, conversation: before) { throw refusal }
        guard var conversation = before else { throw ChatError.notFound("conversation") }
        conversation.unreadCount = 0
        conversation.mentionCount = 0
        switch change {
        case .rename(let title):
            guard title != conversation.title else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try db.execute(
                sql: "UPDATE conversations SET title = ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                arguments: [title, now.milliseconds, tenantId, conversationId])
            conversation.title = title
            conversation.updatedAt = now
            let event = try appendEvent(
                db, type: .conversationUpdated, tenantId: tenantId, conversationId: conversationId, data: JSONText.encode(conversation),
                now: now, participantIds: conversation.participants.map(\.id))
            return AppliedWrite(outcome: .conversation(conversation), events: [event])
        case .add(let userIds):
            var added: [String] = []
            for id in userIds {
                guard try fetchUser(db, tenantId: tenantId, id: id) != nil else { throw ChatError.notFound("participant") }
                if try isParticipant(db, tenantId: tenantId, conversationId: conversationId, userId: id) { continue }
                // History is theirs to read, but only what comes after joining counts as unread.
                try db.execute(
                    sql: "INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at, last_read_seq) VALUES (?, ?, ?, ?, ?)",
                    arguments: [tenantId, conversationId, id, now.milliseconds, conversation.lastSeq])
                added.append(id)
            }
            guard !added.isEmpty else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try db.execute(
                sql: "UPDATE conversations SET participant_count = participant_count + ?, updated_at = ? WHERE tenant_id = ? AND id = ?",
                arguments: [added.count, now.milliseconds, tenantId, conversationId])
            guard var after = try fetchConversation(db, tenantId: tenantId, id: conversationId, viewerId: actorId) else {
                throw ChatError.notFound("conversation")
            }
            after.unreadCount = 0
            after.mentionCount = 0
            let event = try appendEvent(
                db, type: .participantsAdded, tenantId: tenantId, conversationId: conversationId,
                data: Membership.addedPayload(conversation: after, userIds: added, actorId: actorId), now: now, participantIds: added)
            return AppliedWrite(outcome: .conversation(after), events: [event])
        case .remove(let userId):
            try db.execute(
                sql: "DELETE FROM participants WHERE tenant_id = ? AND conversation_id = ? AND user_id = ?",
                arguments: [tenantId, conversationId, userId])
            guard db.changesCount > 0 else { return AppliedWrite(outcome: .conversation(conversation), events: []) }
            try db.execute(
                sql: "UPDATE conversations SET participant_count = participant_count - 1, updated_at = ? WHERE tenant_id = ? AND id = ?",
                arguments: [now.milliseconds, tenantId, conversationId])
            conversation.participants = try listedParticipants(db, tenantId: tenantId, conversationIds: [conversationId])[conversationId] ?? []
            conversation.participantCount -= 1
            conversation.updatedAt = now
            let event = try appendEvent(
                db, type: .participantRemoved, tenantId: tenantId, conversationId: conversationId,
                data: Membership.removedPayload(conversation: conversation, userId: userId, actorId: actorId), now: now,
                participantIds: [userId])
            return AppliedWrite(outcome: .conversation(conversation), events: [event])
        }
    }
}

extension SQLiteChatStore {
    public func contacts(tenantId: String, userId: String, limit: Int) async throws -> [String] {
        try read { db in
            try String.fetchAll(
                db.cachedStatement(sql: """
                    SELECT DISTINCT other.user_id FROM participants mine
                    CROSS JOIN participants other ON other.conversation_id = mine.conversation_id
                    WHERE mine.tenant_id = ? AND mine.user_id = ? AND other.user_id <> mine.user_id LIMIT ?
                    """),
                arguments: [tenantId, userId, limit])
        }
    }
}
