import ChatCore
import ChatSQLite
import Foundation
import Synchronization
import Testing

/// The in-memory read paths (recent-event ring, history page cache) must answer exactly what the database would.
@Suite struct ReadPathTests {
    private func collect(_ chat: ChatService, _ principal: Principal, scope: EventFeed.Scope, after cursor: Int64) async throws -> [ChatEvent] {
        let items = Mutex<[ChatEvent]>([])
        let feed = EventFeed(chat: chat, principal: principal, scope: scope) { item in
            if case .event(let event) = item { items.withLock { $0.append(event) } }
            return true
        }
        try await feed.start(after: cursor)
        feed.stop()
        return items.withLock { $0 }
    }

    @Test func replaysFromTheRingEqualReplaysFromTheStoreAndKeepTenantsApart() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let start = try await f.latestEventId()
        let general = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let secret = try await f.chat.startConversation(alice, title: "no carol", participantIds: [])
        let globexRoom = try await f.chat.conversations(dave).conversations.first!
        for i in 0..<30 {
            _ = try await f.chat.send(alice, conversationId: general.id, content: "g\(i)", threadParentId: nil, clientMessageId: nil)
            _ = try await f.chat.send(alice, conversationId: secret.id, content: "s\(i)", threadParentId: nil, clientMessageId: nil)
            _ = try await f.chat.send(dave, conversationId: globexRoom.id, content: "x\(i)", threadParentId: nil, clientMessageId: nil)
        }
        #expect(f.chat.recent!.events(after: start, limit: 1) { _ in true } != nil)  // the ring covers the cursor

        // A second service on the same database has an empty ring: it reads the store.
        let cold = ChatService(store: f.store, broker: RoomHub())
        #expect(cold.recent!.events(after: start, limit: 1) { _ in true } == nil)
        for (who, scope) in [(carol, EventFeed.Scope.allConversations), (alice, .allConversations), (alice, .conversation(general.id)), (dave, .allConversations)] {
            let warm = try await collect(f.chat, who, scope: scope, after: start)
            let fromStore = try await collect(cold, who, scope: scope, after: start)
            #expect(warm.map(\.eventId) == fromStore.map(\.eventId), "\(who.userId) \(scope)")
            #expect(!warm.isEmpty)
            #expect(warm.allSatisfy { $0.tenantId == who.tenantId })
        }
        let carolSees = try await collect(f.chat, carol, scope: .allConversations, after: start)
        #expect(!carolSees.contains { $0.conversationId == secret.id })
        let daveSees = try await collect(f.chat, dave, scope: .allConversations, after: start)
        #expect(daveSees.count == 30)
    }

    @Test func theRingDropsItsOldestAndThenSendsOlderCursorsToTheStore() {
        let ring = RecentEvents(capacity: 3)
        let events = (11...15).map { ChatEvent(type: .newMessage, eventId: $0, tenantId: "t", conversationId: "c", data: Array("{}".utf8)) }
        #expect(ring.events(after: 10, limit: 10) { _ in true } == nil)  // not started
        ring.append(Array(events[0..<2]))
        #expect(ring.events(after: 10, limit: 10) { _ in true }?.map(\.eventId) == [11, 12])
        ring.append(Array(events[2...]))
        #expect(ring.events(after: 11, limit: 10) { _ in true } == nil)  // 12 was dropped
        #expect(ring.events(after: 12, limit: 10) { _ in true }?.map(\.eventId) == [13, 14, 15])
        #expect(ring.events(after: 13, limit: 1) { _ in true }?.map(\.eventId) == [14])
        #expect(ring.events(after: 15, limit: 10) { _ in true }?.isEmpty == true)
        #expect(ring.events(after: 16, limit: 10) { _ in true } == nil)  // newer than the ring knows: ask the store
        #expect(ring.latest == 15)
        ring.discard(through: 13)  // pruned from the log
        #expect(ring.events(after: 12, limit: 10) { _ in true } == nil)
        #expect(ring.events(after: 13, limit: 10) { _ in true }?.map(\.eventId) == [14, 15])
    }

    @Test(arguments: StoreKind.available) func aLiveEventAtOrBelowTheCursorIsNotHandedOverAgain(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let before = try await f.latestEventId()
        for i in 0..<3 { _ = try await f.chat.send(alice, conversationId: room.id, content: "\(i)", threadParentId: nil, clientMessageId: nil) }
        let old = try await f.chat.events(bob, after: before, conversationId: room.id, limit: 10)
        let cursor = old.last!.eventId!
        let items = Mutex<[Int64]>([])
        let feed = EventFeed(chat: f.chat, principal: bob, scope: .conversation(room.id)) { item in
            if case .event(let event) = item, let id = event.eventId { items.withLock { $0.append(id) } }
            return true
        }
        // A commit's publish can reach the hub after a client already got a cursor past it (read from the store).
        try await feed.start(after: cursor)
        defer { feed.stop() }
        f.hub.publish(old)
        #expect(items.withLock { $0 }.isEmpty)
        _ = try await f.chat.send(alice, conversationId: room.id, content: "new", threadParentId: nil, clientMessageId: nil)
        #expect(items.withLock { $0 }.count == 1)
        #expect(items.withLock { $0 }.first! > cursor)
    }

    @Test func aHistoryPageReadAfterAnAcknowledgedSendHasIt() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let first = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 5)
        #expect(try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 5) == first)  // cached
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for i in 0..<25 {
                        let (message, _) = try await f.chat.send(alice, conversationId: room.id, content: "\(writer)-\(i)", threadParentId: nil, clientMessageId: nil)
                        let page = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 50)
                        #expect(page.messages.contains { $0.id == message.id })
                    }
                }
            }
            // Readers filling the cache while the writers go.
            group.addTask {
                for _ in 0..<200 { _ = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 50) }
            }
            try await group.waitForAll()
        }
        let last = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 50)
        let fresh = try await ChatService(store: SQLiteChatStore(path: f.sqliteStore.pool.path), broker: RoomHub())
            .messages(bob, conversationId: room.id, before: nil, limit: 50)
        #expect(last == fresh)
        #expect(last.body.map { Array($0.readableBytesView) } == JSONText.messagePage(last))
        // A reply changes its root's replyCount: the cached page must show it.
        let root = last.messages.last!
        _ = try await f.chat.send(bob, conversationId: room.id, content: "reply", threadParentId: root.id, clientMessageId: nil)
        let after = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: 50)
        #expect(after.messages.last!.replyCount == root.replyCount + 1)
        // Another tenant never gets the cached page.
        await #expect(throws: ChatError.self) { try await f.chat.messages(dave, conversationId: room.id, before: nil, limit: 50) }
    }

    @Test func aBackgroundCheckpointCopiesEveryCommittedFrame() async throws {
        let f = try await CoreFixture()
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first!
        for i in 0..<50 { _ = try await f.chat.send(alice, conversationId: room.id, content: "\(i)", threadParentId: nil, clientMessageId: nil) }
        let result = try await f.sqliteStore.checkpoint()
        #expect(result.walFrames > 0)
        #expect(result.checkpointed == result.walFrames)
        // The data is still all there, through the pool's connections.
        #expect(try await f.chat.messages(alice, conversationId: room.id, before: nil, limit: 50).messages.count == 50)
    }
}
