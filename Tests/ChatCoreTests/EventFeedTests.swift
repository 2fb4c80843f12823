import ChatCore
import Foundation
import Synchronization
import Testing

@Suite struct EventFeedTests {
    /// Collects what a feed hands over.
    final class Collected: Sendable {
        let items = Mutex<[FeedItem]>([])
        var eventIds: [Int64] { items.withLock { $0.compactMap { if case .event(let e) = $0 { e.eventId } else { nil } } } }
        var resyncs: Int { items.withLock { $0.filter { if case .resyncRequired = $0 { true } else { false } }.count } }
    }

    @Test(arguments: StoreKind.available) func replayThenLiveHasNoGapAndNoDuplicateWhileSendsRace(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let start = try await f.latestEventId()
        let collected = Collected()
        let feed = EventFeed(chat: f.chat, principal: bob, scope: .conversation(room.id)) { item in
            collected.items.withLock { $0.append(item) }
            return true
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for i in 0..<100 {
                        _ = try await f.chat.send(alice, conversationId: room.id, content: "\(task)-\(i)", threadParentId: nil, clientMessageId: nil)
                    }
                }
            }
            // Join mid-stream, resuming from the cursor we had before the sends began.
            try await Task.sleep(for: .milliseconds(20))
            try await feed.start(after: start)
            try await group.waitForAll()
        }
        feed.stop()
        let expected = try await f.chat.events(bob, after: start, conversationId: room.id, limit: 1000).compactMap(\.eventId)
        #expect(expected.count == 400)
        #expect(collected.eventIds == expected)
    }

    @Test(arguments: StoreKind.available) func allConversationsFeedPicksUpConversationsCreatedLater(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let carol = try await f.principal("acme", "carol")
        let collected = Collected()
        let feed = EventFeed(chat: f.chat, principal: carol, scope: .allConversations) { item in
            collected.items.withLock { $0.append(item) }
            return true
        }
        try await feed.start(after: nil)
        defer { feed.stop() }
        let withCarol = try await f.chat.startConversation(alice, title: "new", participantIds: [carol.userId])
        _ = try await f.chat.send(alice, conversationId: withCarol.id, content: "hi carol", threadParentId: nil, clientMessageId: nil)
        let without = try await f.chat.startConversation(alice, title: "secret", participantIds: [])
        _ = try await f.chat.send(alice, conversationId: without.id, content: "not for carol", threadParentId: nil, clientMessageId: nil)
        try await f.chat.typing(alice, conversationId: withCarol.id)
        let seen = collected.items.withLock { $0.compactMap { if case .event(let e) = $0 { e } else { nil } } }
        #expect(seen.map(\.type) == [.conversationCreated, .newMessage, .typing])
        #expect(seen.allSatisfy { $0.conversationId == withCarol.id })
    }

    /// Fan-out proportional to recipients: an all-conversations feed listens to its own rooms and its user, never
    /// to the whole tenant, so a message visits only the feeds of the people in its conversation.
    @Test(arguments: StoreKind.available) func allConversationsFeedListensToItsRoomsNotToTheTenant(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let carol = try await f.principal("acme", "carol")
        let carolsRooms = try await f.chat.conversations(carol).conversations.map(\.id)
        let notCarols = try await f.chat.conversations(alice).conversations.map(\.id).filter { !carolsRooms.contains($0) }
        #expect(!carolsRooms.isEmpty && !notCarols.isEmpty)
        let feed = EventFeed(chat: f.chat, principal: carol, scope: .allConversations) { _ in true }
        try await feed.start(after: nil)
        #expect(f.hub.subscriberCount(of: .tenant(carol.tenantId)) == 0)
        #expect(f.hub.subscriberCount(of: .user(tenantId: carol.tenantId, userId: carol.userId)) == 1)
        for id in carolsRooms { #expect(f.hub.subscriberCount(of: .room(tenantId: carol.tenantId, conversationId: id)) == 1) }
        for id in notCarols { #expect(f.hub.subscriberCount(of: .room(tenantId: carol.tenantId, conversationId: id)) == 0) }
        // Added to a new conversation: its room is followed from its first event on.
        let added = try await f.chat.startConversation(alice, title: "with carol", participantIds: [carol.userId])
        #expect(f.hub.subscriberCount(of: .room(tenantId: carol.tenantId, conversationId: added.id)) == 1)
        feed.stop()
        #expect(f.hub.subscriberCount == 0)
    }

    @Test(arguments: StoreKind.available) func staleOrFutureCursorsAskForResync(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        _ = try await f.chat.pruneEvents(createdBefore: Timestamp.now().adding(seconds: 60))
        for cursor: Int64 in [1, 1_000_000] {
            let collected = Collected()
            let feed = EventFeed(chat: f.chat, principal: alice, scope: .allConversations) { item in
                collected.items.withLock { $0.append(item) }
                return true
            }
            try await feed.start(after: cursor)
            feed.stop()
            #expect(collected.resyncs == 1)
        }
    }

    @Test func outboundQueueOverflowsAtItsBoundAndDropsWhatWasQueued() async {
        let closed = Mutex<CloseReason?>(nil)
        let queue = OutboundQueue<Int>(capacity: 3, onClose: { reason in closed.withLock { $0 = reason } })
        #expect(queue.push(1) && queue.push(2) && queue.push(3))
        #expect(!queue.push(4))
        #expect(closed.withLock { $0 } == .overflow)
        let (items, reason) = await queue.take()
        #expect(items.isEmpty)
        #expect(reason == .overflow)
        #expect(!queue.push(5))
    }

    @Test func outboundQueueWakesItsWriterAndDrainsBeforeClosing() async {
        let queue = OutboundQueue<Int>(capacity: 10)
        async let taken = queue.take()
        try? await Task.sleep(for: .milliseconds(10))
        queue.push(7)
        #expect(await taken.items == [7])
        queue.push(8)
        queue.close(.shutdown)
        let last = await queue.take()
        #expect(last.items == [8] && last.closed == .shutdown)
    }
}

extension EventFeedTests {
    @Test(arguments: StoreKind.available) func theSubscribedHookComesBeforeEveryEventAndAfterTheSubscription(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.conversations(alice).conversations.first { $0.title == "General" }!
        let collected = Collected()
        let hubBefore = f.hub.subscriberCount
        let subscribedAtHook = Mutex<Int>(-1)
        let feed = EventFeed(chat: f.chat, principal: alice, scope: .conversation(room.id)) { item in
            collected.items.withLock { $0.append(item) }
            return true
        }
        let hub = f.hub
        try await feed.start(after: 0) {
            subscribedAtHook.withLock { $0 = hub.subscriberCount }
            collected.items.withLock { $0.append(.resyncRequired(conversationId: "marker")) }
        }
        feed.stop()
        #expect(subscribedAtHook.withLock { $0 } == hubBefore + 1)
        let first = collected.items.withLock { $0.first }
        guard case .resyncRequired(let marker) = first else { Issue.record("the hook did not come first"); return }
        #expect(marker == "marker")
        #expect(collected.eventIds.count > 1)
    }
}

extension EventFeedTests {
    @Test func outboundQueueAlsoOverflowsOnBytes() {
        let queue = OutboundQueue<[UInt8]>(capacity: 100, maxWeight: 10, weigh: { $0.count })
        #expect(queue.push([1, 2, 3, 4, 5, 6]))
        #expect(!queue.push([7, 8, 9, 10, 11]))
        #expect(queue.closeReason == .overflow)
    }
}
