import ChatCore
import ChatSQLite
import GRDB
import NIOCore
import Testing

@Suite struct ChatServiceTests {
    @Test func writerIsDurableWAL() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        #expect(try f.sqliteStore.writerSynchronousMode() == 2)  // FULL
        #expect(try f.sqliteStore.journalMode() == "wal")
    }

    @Test(arguments: StoreKind.available) func seqIsGaplessUnderConcurrentSendersAndCommitsAreGrouped(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let others = [try await f.userId("acme", "bob"), try await f.userId("acme", "carol")]
        let room = try await f.chat.startConversation(alice, title: "load", participantIds: others)
        let before = f.chat.commits.statistics

        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<200 {
                        _ = try await f.chat.send(alice, conversationId: room.id, content: "t\(task) m\(i)", threadParentId: nil, clientMessageId: "t\(task)-\(i)")
                    }
                }
            }
            try await group.waitForAll()
        }

        let seqs = try await f.integers("SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq", [room.id])
        #expect(seqs == Array(1...1600))
        let after = f.chat.commits.statistics
        #expect(after.commands - before.commands == 1600)
        // With 8 concurrent senders some sends must have shared a transaction.
        #expect(after.batches - before.batches < 1600)
    }

    @Test(arguments: StoreKind.available) func resendWithSameClientMessageIdReturnsTheFirstMessage(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let (first, created) = try await f.chat.send(alice, conversationId: room.id, content: "once", threadParentId: nil, clientMessageId: "c-1")
        let (again, createdAgain) = try await f.chat.send(alice, conversationId: room.id, content: "once, edited", threadParentId: nil, clientMessageId: "c-1")
        #expect(created && !createdAgain)
        #expect(again == first)
        #expect(try await f.integers("SELECT COUNT(*) FROM messages WHERE client_message_id = 'c-1'") == [1])
        // Another sender may use the same client id: it is scoped per sender.
        let bob = try await f.principal("acme", "bob")
        let (bobs, bobCreated) = try await f.chat.send(bob, conversationId: room.id, content: "mine", threadParentId: nil, clientMessageId: "c-1")
        #expect(bobCreated && bobs.id != first.id)
    }

    @Test(arguments: StoreKind.available) func replyToAReplyLandsOnTheRootAndCountsReplies(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "Launch plan" }!
        let (root, _) = try await f.chat.send(alice, conversationId: room.id, content: "root", threadParentId: nil, clientMessageId: nil)
        let (reply, _) = try await f.chat.send(alice, conversationId: nil, content: "r1", threadParentId: root.id, clientMessageId: nil)
        let (nested, _) = try await f.chat.send(alice, conversationId: nil, content: "r2", threadParentId: reply.id, clientMessageId: nil)
        #expect(reply.threadParentId == root.id)
        #expect(nested.threadParentId == root.id)
        let thread = try await f.chat.thread(alice, messageId: nested.id)
        #expect(thread.parent.id == root.id)
        #expect(thread.parent.replyCount == 2)
        #expect(thread.replies.map(\.content) == ["r1", "r2"])
        // Replies are not top-level messages.
        let page = try await f.chat.messages(alice, conversationId: room.id, before: nil, limit: 50)
        #expect(!page.messages.contains { $0.threadParentId != nil })
    }

    @Test(arguments: StoreKind.available) func closedConversationRefusesMessagesUntilReopened(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let closed = try await f.chat.setClosed(alice, conversationId: room.id, closed: true)
        #expect(closed.closedAt != nil)
        await #expect(throws: ChatError.conversationClosed) {
            _ = try await f.chat.send(alice, conversationId: room.id, content: "x", threadParentId: nil, clientMessageId: nil)
        }
        let reopened = try await f.chat.setClosed(alice, conversationId: room.id, closed: false)
        #expect(reopened.closedAt == nil)
        _ = try await f.chat.send(alice, conversationId: room.id, content: "back", threadParentId: nil, clientMessageId: nil)
    }

    @Test(arguments: StoreKind.available) func readReceiptsClearUnreadAndOnlyMoveForward(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice"), bob = try await f.principal("acme", "bob")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "Launch plan" }!
        let (m1, _) = try await f.chat.send(alice, conversationId: room.id, content: "one", threadParentId: nil, clientMessageId: nil)
        let (m2, _) = try await f.chat.send(alice, conversationId: room.id, content: "two", threadParentId: nil, clientMessageId: nil)
        var view = try await f.chat.conversation(bob, id: room.id)
        #expect(view.unreadCount == 2)  // bob wrote the seeded message himself
        try await f.chat.markRead(bob, conversationId: room.id, messageId: m2.id)
        view = try await f.chat.conversation(bob, id: room.id)
        #expect(view.unreadCount == 0)
        let latestBefore = try await f.latestEventId()
        try await f.chat.markRead(bob, conversationId: room.id, messageId: m1.id)
        #expect(try await f.latestEventId() == latestBefore)  // nothing new logged
    }

    @Test(arguments: StoreKind.available) func pagesGoBackwardsOldestFirstWithinAPage(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.startConversation(alice, title: "paging", participantIds: [])
        for i in 1...7 { _ = try await f.chat.send(alice, conversationId: room.id, content: "m\(i)", threadParentId: nil, clientMessageId: nil) }
        let first = try await f.chat.messages(alice, conversationId: room.id, before: nil, limit: 3)
        #expect(first.messages.map(\.content) == ["m5", "m6", "m7"])
        let second = try await f.chat.messages(alice, conversationId: room.id, before: first.nextCursor, limit: 3)
        #expect(second.messages.map(\.content) == ["m2", "m3", "m4"])
        let third = try await f.chat.messages(alice, conversationId: room.id, before: second.nextCursor, limit: 3)
        #expect(third.messages.map(\.content) == ["m1"])
        #expect(third.nextCursor == nil)
    }

    @Test(arguments: StoreKind.available) func everyDurableChangeIsLoggedAndPublishedInOrder(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let recorder = Recorder()
        let subscription = f.hub.subscribe(recorder, to: .tenant(alice.tenantId))
        defer { subscription.cancel() }
        let start = try await f.latestEventId()
        let room = try await f.chat.startConversation(alice, title: "log", participantIds: [])
        let (m, _) = try await f.chat.send(alice, conversationId: room.id, content: "hello", threadParentId: nil, clientMessageId: nil)
        _ = try await f.chat.setClosed(alice, conversationId: room.id, closed: true)
        let logged = try await f.chat.events(alice, after: start, conversationId: nil, limit: 100)
        #expect(logged.map(\.type) == [.conversationCreated, .newMessage, .conversationUpdated])
        #expect(recorder.received.map(\.eventId) == logged.map(\.eventId))
        #expect(String(buffer: logged[1].envelope).contains(m.id))
        // Another tenant's user sees none of it.
        let dave = try await f.principal("globex", "dave")
        #expect(try await f.chat.events(dave, after: start, conversationId: nil, limit: 100).isEmpty)
    }

    @Test(arguments: StoreKind.available) func pipelinedBatchesArePublishedInCommitOrderWithoutGaps(_ kind: StoreKind) async throws {
        // Leadership passes on at commit, so one batch commits while the one before is still being published:
        // every subscriber must still see the log's order, and every caller its own event before its answer.
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let recorder = Recorder()
        let subscription = f.hub.subscribe(recorder, to: .tenant(alice.tenantId))
        defer { subscription.cancel() }
        let start = try await f.latestEventId()
        var rooms: [String] = []
        for i in 0..<8 { rooms.append(try await f.chat.startConversation(alice, title: "p\(i)", participantIds: []).id) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (task, room) in rooms.enumerated() {
                group.addTask {
                    for i in 0..<60 {
                        let (message, _) = try await f.chat.send(alice, conversationId: room, content: "\(task)-\(i)", threadParentId: nil, clientMessageId: nil)
                        // Published before the caller hears back.
                        #expect(recorder.received.contains { String(buffer: $0.envelope).contains(message.id) })
                    }
                }
            }
            try await group.waitForAll()
        }
        var logged: [ChatEvent] = []
        var after = start
        while true {
            let page = try await f.chat.events(alice, after: after, conversationId: nil, limit: 500)
            logged += page
            guard page.count == 500, let last = page.last?.eventId else { break }
            after = last
        }
        #expect(logged.count == 8 + 8 * 60)
        #expect(recorder.received.compactMap(\.eventId) == logged.compactMap(\.eventId))
        #expect(f.chat.commits.statistics.batches < f.chat.commits.statistics.commands)
    }

    @Test(arguments: StoreKind.available) func databaseRefusesRowsThatMixTenants(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.conversations(alice).conversations.first!
        // A globex user as sender of a message in an acme conversation, even claiming acme's tenant.
        await #expect(throws: (any Error).self) {
            try await f.integers(
                "INSERT INTO messages (id, tenant_id, conversation_id, sender_id, content, created_at, seq) VALUES ('m_x', ?, ?, ?, 'x', 0, 999) RETURNING seq",
                [alice.tenantId, room.id, dave.userId])
        }
        await #expect(throws: (any Error).self) {
            try await f.integers(
                "INSERT INTO participants (tenant_id, conversation_id, user_id, joined_at) VALUES (?, ?, ?, 0) RETURNING joined_at",
                [dave.tenantId, room.id, dave.userId])
        }
    }

    @Test(arguments: StoreKind.available) func coreRefusesOtherTenantsIdsAsNotFound(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.conversations(alice).conversations.first!
        await #expect(throws: ChatError.notFound("conversation")) { _ = try await f.chat.conversation(dave, id: room.id) }
        await #expect(throws: ChatError.notFound("conversation")) {
            _ = try await f.chat.send(dave, conversationId: room.id, content: "x", threadParentId: nil, clientMessageId: nil)
        }
        await #expect(throws: ChatError.notFound("participant")) {
            _ = try await f.chat.startConversation(dave, title: "steal", participantIds: [alice.userId])
        }
    }

    @Test(arguments: StoreKind.available) func prunedCursorsAreReported(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let pruned = try await f.chat.pruneEvents(createdBefore: Timestamp.now().adding(seconds: 60))
        #expect(pruned > 0)
        let bounds = try await f.store.eventLogBounds(tenantId: try await f.tenantId("acme"))
        #expect(bounds.pruned == bounds.latest)
    }

    @Test(arguments: StoreKind.available) func loginLimitsCountAcrossEveryNodeOfTheStore(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        // Two limiters, as on two nodes: on SQLite one process shares one in-memory log; on PostgreSQL each node has
        // its own limiter over the shared database.
        let memory = InMemoryLoginFailures()
        let log: any LoginFailureLog = kind == .postgres ? f.postgres! : memory
        let rules = (account: LoginRateLimiter.Rule(maxFailures: 3, windowSeconds: 60), address: LoginRateLimiter.Rule(maxFailures: 100, windowSeconds: 60))
        let nodeA = LoginRateLimiter(perAccount: rules.account, perAddress: rules.address, log: log)
        let nodeB = LoginRateLimiter(perAccount: rules.account, perAddress: rules.address, log: log)
        let now = Timestamp.now()
        try await nodeA.recordFailure(account: "acme/alice", address: "1.2.3.4", now: now)
        try await nodeB.recordFailure(account: "acme/alice", address: "1.2.3.4", now: now)
        try await nodeA.recordFailure(account: "acme/alice", address: "1.2.3.4", now: now)
        await #expect(throws: ChatError.self) { try await nodeB.check(account: "acme/alice", address: "1.2.3.4", now: now) }
        // Another account from the same address is still allowed, and the window passes.
        try await nodeA.check(account: "acme/bob", address: "1.2.3.4", now: now)
        try await nodeB.check(account: "acme/alice", address: nil, now: now.adding(seconds: 61))
        // A success clears the account's count everywhere.
        try await nodeA.recordSuccess(account: "acme/alice")
        try await nodeB.check(account: "acme/alice", address: "1.2.3.4", now: now)
    }

    func failure(_ result: Result<AppliedWrite, ChatError>) -> ChatError? {
        if case .failure(let error) = result { return error }
        return nil
    }

    @Test(arguments: StoreKind.available) func oneBatchAppliesItsCommandsInOrder(_ kind: StoreKind) async throws {
        // A batch holds what several clients sent at once: a resend of a message earlier in the same batch, a send
        // after a close in the same batch, replies, strangers, all as if applied one at a time.
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let root = try await f.chat.messages(alice, conversationId: room.id, before: nil, limit: 1).messages[0]
        func send(_ who: Principal, _ content: String, _ clientId: String? = nil, parent: String? = nil, to conversation: String? = nil) -> WriteCommand {
            .sendMessage(NewMessage(
                tenantId: who.tenantId, senderId: who.userId, conversationId: parent == nil ? (conversation ?? room.id) : conversation,
                threadParentId: parent, content: content, clientMessageId: clientId))
        }
        let results = try await f.store.apply([
            send(alice, "one", "b-1"),
            send(alice, "one again", "b-1"),
            send(alice, "a reply", parent: root.id),
            send(dave, "stranger", to: room.id),
            .setClosed(tenantId: alice.tenantId, userId: alice.userId, conversationId: room.id, closed: true),
            send(alice, "after close", "b-2"),
            send(alice, "one, resent after close", "b-1"),
        ])
        guard case .success(let first) = results[0], case .message(let one, true) = first.outcome else { Issue.record("\(results[0])"); return }
        guard case .success(let second) = results[1], case .message(let again, false) = second.outcome else { Issue.record("\(results[1])"); return }
        #expect(again == one && second.events.isEmpty)
        guard case .success(let third) = results[2], case .message(let reply, true) = third.outcome else { Issue.record("\(results[2])"); return }
        #expect(reply.threadParentId == root.id && reply.seq == one.seq + 1)
        #expect(failure(results[3]) == ChatError.notFound("conversation"))
        guard case .success = results[4] else { Issue.record("close: \(results[4])"); return }
        #expect(failure(results[5]) == ChatError.conversationClosed)
        guard case .success(let last) = results[6], case .message(let resent, false) = last.outcome else { Issue.record("\(results[6])"); return }
        #expect(resent == one)
        let ids = results.compactMap { try? $0.get() }.flatMap(\.events).compactMap(\.eventId)
        #expect(ids == Array(ids[0]..<(ids[0] + 3)))  // one, the reply, the close
        #expect(try await f.integers("SELECT reply_count FROM messages WHERE id = ?", [root.id]) == [Int64(root.replyCount + 1)])
        #expect(try await f.integers("SELECT COUNT(*) FROM messages WHERE client_message_id = 'b-1'") == [1])
    }
}
