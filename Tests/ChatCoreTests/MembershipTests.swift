import ChatCore
import Foundation
import Synchronization
import Testing

@Suite struct MembershipTests {
    /// What a feed handed over, by kind.
    final class Items: Sendable {
        let items = Mutex<[FeedItem]>([])
        func take(_ item: FeedItem) -> Bool {
            items.withLock { $0.append(item) }
            return true
        }
        var events: [ChatEvent] { items.withLock { $0.compactMap { if case .event(let e) = $0 { e } else { nil } } } }
        var removed: [String] { items.withLock { $0.compactMap { if case .removed(let id) = $0 { id } else { nil } } } }
        func contents(_ conversationId: String) -> [String] {
            events.filter { $0.conversationId == conversationId && $0.type == .newMessage }.map { String(buffer: $0.envelope) }
        }
    }

    func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<100 {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    @Test(arguments: StoreKind.available) func whoMayRenameAddAndRemove(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.startConversation(alice, title: "plans", participantIds: [bob.userId])
        let cursor = try await f.latestEventId()

        // Outsiders, of the tenant or another, do not learn it exists; a user of another tenant cannot be added.
        for outsider in [carol, dave] {
            #expect(await refusal { try await f.chat.rename(outsider, conversationId: room.id, title: "mine") } == "not_found")
            #expect(await refusal { try await f.chat.addMembers(outsider, conversationId: room.id, userIds: [outsider.userId]) } == "not_found")
            #expect(await refusal { try await f.chat.removeMember(outsider, conversationId: room.id, userId: bob.userId) } == "not_found")
        }
        #expect(await refusal { try await f.chat.addMembers(bob, conversationId: room.id, userIds: [carol.userId, dave.userId]) } == "not_found")
        #expect(try await f.chat.conversation(alice, id: room.id).participantCount == 2, "nobody added when one id is refused")
        #expect(await refusal { try await f.chat.addMembers(bob, conversationId: room.id, userIds: []) } == "missing_field")
        #expect(await refusal { try await f.chat.rename(bob, conversationId: room.id, title: String(repeating: "x", count: 201)) } == "title_too_long")

        // Any participant renames and adds; adding who is in already, or the same title, changes nothing.
        let renamed = try await f.chat.rename(bob, conversationId: room.id, title: "  Launch plans ")
        #expect(renamed.title == "Launch plans")
        _ = try await f.chat.rename(alice, conversationId: room.id, title: "Launch plans")
        let grown = try await f.chat.addMembers(bob, conversationId: room.id, userIds: [carol.userId, alice.userId, carol.userId])
        #expect(grown.participantCount == 3 && grown.participants.map(\.id) == [alice.userId, bob.userId, carol.userId])
        _ = try await f.chat.addMembers(bob, conversationId: room.id, userIds: [carol.userId])

        // Only the creator removes others; anyone leaves; twice is once.
        #expect(await refusal { try await f.chat.removeMember(bob, conversationId: room.id, userId: carol.userId) } == "not_allowed")
        try await f.chat.removeMember(alice, conversationId: room.id, userId: carol.userId)
        try await f.chat.removeMember(alice, conversationId: room.id, userId: carol.userId)
        try await f.chat.removeMember(bob, conversationId: room.id, userId: bob.userId)
        #expect(await refusal { try await f.chat.removeMember(bob, conversationId: room.id, userId: bob.userId) } == "not_found")
        let left = try await f.chat.conversation(alice, id: room.id)
        #expect(left.participantCount == 1 && left.participants.map(\.id) == [alice.userId] && left.title == "Launch plans")

        let events = try await f.chat.events(alice, after: cursor, conversationId: room.id, limit: 20)
        #expect(events.map(\.type) == [.conversationUpdated, .participantsAdded, .participantRemoved, .participantRemoved])
        let added = try JSONSerialization.jsonObject(with: Data(buffer: events[1].envelope)) as! [String: Any]
        let data = added["data"] as! [String: Any]
        #expect(data["userIds"] as? [String] == [carol.userId] && data["actorId"] as? String == bob.userId)
        let removal = try JSONSerialization.jsonObject(with: Data(buffer: events[3].envelope)) as! [String: Any]
        #expect((removal["data"] as! [String: Any])["userId"] as? String == bob.userId)

        // A closed conversation keeps its name and people, but anyone may still leave it.
        _ = try await f.chat.addMembers(alice, conversationId: room.id, userIds: [bob.userId])
        _ = try await f.chat.setClosed(alice, conversationId: room.id, closed: true)
        #expect(await refusal { try await f.chat.rename(alice, conversationId: room.id, title: "x") } == "conversation_closed")
        #expect(await refusal { try await f.chat.addMembers(alice, conversationId: room.id, userIds: [carol.userId]) } == "conversation_closed")
        try await f.chat.removeMember(bob, conversationId: room.id, userId: bob.userId)
    }

    @Test(arguments: StoreKind.available) func someoneAddedReadsTheHistoryAndSomeoneRemovedLosesItAtOnce(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let room = try await f.chat.startConversation(alice, title: "history", participantIds: [bob.userId])
        let (early, _) = try await f.chat.send(alice, conversationId: room.id, content: "before carol", threadParentId: nil, clientMessageId: nil)
        let cursor = try await f.latestEventId()
        // Read through every cached path first, so that a stale cache would show.
        #expect(await refusal { try await f.chat.messages(carol, conversationId: room.id, before: nil, limit: nil) } == "not_found")

        _ = try await f.chat.addMembers(alice, conversationId: room.id, userIds: [carol.userId])
        let seen = try await f.chat.messages(carol, conversationId: room.id, before: nil, limit: nil)
        #expect(seen.messages.map(\.id) == [early.id])
        #expect(try await f.chat.conversation(carol, id: room.id).unreadCount == 0, "history is readable, not unread")
        _ = try await f.chat.send(alice, conversationId: room.id, content: "welcome", threadParentId: nil, clientMessageId: nil)
        #expect(try await f.chat.conversation(carol, id: room.id).unreadCount == 1)
        #expect(try await f.chat.search(carol, query: "before", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.count == 1)

        _ = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil)
        try await f.chat.removeMember(alice, conversationId: room.id, userId: bob.userId)
        #expect(await refusal { try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil) } == "not_found")
        #expect(await refusal { try await f.chat.thread(bob, messageId: early.id) } == "not_found")
        #expect(await refusal { try await f.chat.send(bob, conversationId: room.id, content: "let me in", threadParentId: nil, clientMessageId: nil) } == "not_found")
        #expect(await refusal { try await f.chat.react(bob, messageId: early.id, emoji: "tada", on: true) } == "not_found")
        #expect(await refusal { try await f.chat.typing(bob, conversationId: room.id) } == "not_found")
        #expect(try await f.chat.search(bob, query: "before", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.isEmpty)
        #expect(try await !f.chat.conversations(bob).conversations.contains { $0.id == room.id })
        #expect(try await f.chat.events(bob, after: cursor, conversationId: nil, limit: 50).allSatisfy { $0.conversationId != room.id })
    }

    @Test(arguments: StoreKind.available) func streamsFollowAConversationFromTheAddAndStopAtTheRemoval(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let room = try await f.chat.startConversation(alice, title: "streams", participantIds: [bob.userId])
        let bobAll = Items(), bobRoom = Items(), carolAll = Items()
        let feeds = [
            EventFeed(chat: f.chat, principal: bob, scope: .allConversations, sink: bobAll.take),
            EventFeed(chat: f.chat, principal: bob, scope: .conversation(room.id), sink: bobRoom.take),
            EventFeed(chat: f.chat, principal: carol, scope: .allConversations, sink: carolAll.take),
        ]
        defer { feeds.forEach { $0.stop() } }
        for feed in feeds { try await feed.start(after: nil) }

        _ = try await f.chat.send(alice, conversationId: room.id, content: "one", threadParentId: nil, clientMessageId: nil)
        _ = try await f.chat.addMembers(alice, conversationId: room.id, userIds: [carol.userId])
        _ = try await f.chat.send(alice, conversationId: room.id, content: "two", threadParentId: nil, clientMessageId: nil)
        try await f.chat.removeMember(alice, conversationId: room.id, userId: bob.userId)
        _ = try await f.chat.send(alice, conversationId: room.id, content: "three, not for bob", threadParentId: nil, clientMessageId: nil)
        let other = try await f.chat.startConversation(alice, title: "still bob's", participantIds: [bob.userId])
        _ = try await f.chat.send(alice, conversationId: other.id, content: "bob still hears this", threadParentId: nil, clientMessageId: nil)

        #expect(try await eventually { bobAll.contents(other.id).count == 1 && carolAll.contents(room.id).count == 2 })
        // Bob: everything up to his removal, the removal last, then nothing more of it; the other conversation goes on.
        for items in [bobAll, bobRoom] {
            let ofRoom = items.events.filter { $0.conversationId == room.id }
            #expect(ofRoom.map(\.type) == [.newMessage, .participantsAdded, .newMessage, .participantRemoved])
            #expect(!items.contents(room.id).contains { $0.contains("not for bob") })
        }
        #expect(bobRoom.removed == [room.id] && bobAll.removed.isEmpty)
        // Carol: from the add on, without a new subscription.
        #expect(carolAll.events.filter { $0.conversationId == room.id }.map(\.type)
            == [.participantsAdded, .newMessage, .participantRemoved, .newMessage])
    }
}
