import ChatCore
import Foundation
import Testing

/// The code of the `ChatError` that `body` throws; nil when it throws none.
func refusal(_ body: () async throws -> some Any) async -> String? {
    do {
        _ = try await body()
        return nil
    } catch let error as ChatError {
        return error.code
    } catch {
        return "unexpected: \(error)"
    }
}

@Suite struct MessageChangeTests {
    @Test(arguments: StoreKind.available) func onlyTheSenderEditsAndAnEditIsAnEvent(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.startConversation(alice, title: "edits", participantIds: [bob.userId])
        let (sent, _) = try await f.chat.send(alice, conversationId: room.id, content: "Lunch at noon", threadParentId: nil, clientMessageId: "c-1")
        let cursor = try await f.latestEventId()

        // Someone else's message: refused (403 to a participant, 404 to anyone else), and nothing changes.
        #expect(await refusal { try await f.chat.edit(bob, messageId: sent.id, content: "mine now") } == "not_your_message")
        for outsider in [carol, dave] {
            #expect(await refusal { try await f.chat.edit(outsider, messageId: sent.id, content: "x") } == "not_found")
            #expect(await refusal { try await f.chat.delete(outsider, messageId: sent.id) } == "not_found")
        }
        #expect(await refusal { try await f.chat.edit(alice, messageId: sent.id, content: "   ") } != nil)

        let edited = try await f.chat.edit(alice, messageId: sent.id, content: "Lunch at one")
        #expect(edited.content == "Lunch at one" && edited.editedAt != nil && edited.seq == sent.seq && edited.clientMessageId == "c-1")
        // The same content again: nothing new.
        let again = try await f.chat.edit(alice, messageId: sent.id, content: "Lunch at one")
        #expect(again.editedAt == edited.editedAt)
        let events = try await f.chat.events(bob, after: cursor, conversationId: room.id, limit: 10)
        #expect(events.map(\.type) == [.messageUpdated])
        #expect(String(buffer: events[0].envelope).contains("Lunch at one"))
        let page = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil)
        #expect(page.messages.map(\.content) == ["Lunch at one"] && page.messages[0].editedAt == edited.editedAt)
        // A resend of the original still finds the message (as edited), and stores nothing new.
        let (resent, created) = try await f.chat.send(alice, conversationId: room.id, content: "Lunch at noon", threadParentId: nil, clientMessageId: "c-1")
        #expect(!created && resent.id == sent.id && resent.content == "Lunch at one")

        // A closed conversation: no edits, but a delete is still allowed.
        _ = try await f.chat.setClosed(alice, conversationId: room.id, closed: true)
        #expect(await refusal { try await f.chat.edit(alice, messageId: sent.id, content: "too late") } == "conversation_closed")
        #expect(try await f.chat.delete(alice, messageId: sent.id).isDeleted)
    }

    @Test(arguments: StoreKind.available) func aDeletedMessageKeepsItsPlaceAndLosesItsContentEverywhere(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let room = try await f.chat.startConversation(alice, title: "deletes", participantIds: [bob.userId])
        let cursor = try await f.latestEventId()
        let secret = "secret-\(UUID().uuidString.prefix(8))"
        let (root, _) = try await f.chat.send(alice, conversationId: room.id, content: "The code is \(secret)", threadParentId: nil, clientMessageId: nil)
        _ = try await f.chat.edit(alice, messageId: root.id, content: "The code is \(secret), really")
        let (reply, _) = try await f.chat.send(bob, conversationId: nil, content: "Thanks!", threadParentId: root.id, clientMessageId: nil)
        let (after, _) = try await f.chat.send(alice, conversationId: room.id, content: "Next topic", threadParentId: nil, clientMessageId: nil)

        let tombstone = try await f.chat.delete(alice, messageId: root.id)
        #expect(tombstone.isDeleted && tombstone.content == "" && tombstone.seq == root.seq && tombstone.replyCount == 1)
        // Deleting again changes nothing and logs nothing.
        let latest = try await f.latestEventId()
        #expect(try await f.chat.delete(alice, messageId: root.id).deletedAt == tombstone.deletedAt)
        #expect(try await f.latestEventId() == latest)
        #expect(await refusal { try await f.chat.edit(alice, messageId: root.id, content: "back") } == "message_deleted")

        // Every read: the tombstone in place, its thread intact.
        let page = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil)
        #expect(page.messages.map(\.seq) == [root.seq, after.seq] && page.messages[0].content == "" && page.messages[0].isDeleted)
        let thread = try await f.chat.thread(bob, messageId: root.id)
        #expect(thread.parent.isDeleted && thread.replies.map(\.id) == [reply.id])
        let range = try await f.store.messageRange(tenantId: alice.tenantId, conversationId: room.id, afterSeq: 0, limit: 10)
        #expect(range.first?.content == "" && range.count == 3)
        // A replay from before it was sent: the tombstone in its new_message, then the update and the delete.
        let events = try await f.chat.events(bob, after: cursor, conversationId: room.id, limit: 20)
        #expect(events.map(\.type) == [.newMessage, .messageUpdated, .newMessage, .newMessage, .messageDeleted])
        #expect(!events.contains { String(buffer: $0.envelope).contains(secret) })
        // Storage: no message and no logged event holds the content any more.
        #expect(try await f.integers("SELECT COUNT(*) FROM messages WHERE content LIKE ?", ["%\(secret)%"]) == [0])
        #expect(try await f.integers("SELECT COUNT(*) FROM events WHERE data LIKE ?", ["%\(secret)%"]) == [0])
    }
}

@Suite struct ReactionTests {
    @Test(arguments: StoreKind.available) func reactionsCountWhoReactedAndTwiceIsOnce(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let room = try await f.chat.startConversation(alice, title: "reactions", participantIds: [bob.userId])
        let (message, _) = try await f.chat.send(alice, conversationId: room.id, content: "Shipped!", threadParentId: nil, clientMessageId: nil)
        let cursor = try await f.latestEventId()

        _ = try await f.chat.react(bob, messageId: message.id, emoji: "tada", on: true)
        _ = try await f.chat.react(alice, messageId: message.id, emoji: "🎉", on: true)
        let twice = try await f.chat.react(bob, messageId: message.id, emoji: "tada", on: true)
        #expect(twice.reactions == [Reaction(emoji: "tada", userIds: [bob.userId, alice.userId])])
        _ = try await f.chat.react(bob, messageId: message.id, emoji: "thumbsup", on: true)
        // Picker order, not arrival order.
        let page = try await f.chat.messages(alice, conversationId: room.id, before: nil, limit: nil)
        #expect(page.messages[0].reactions.map(\.emoji) == ["thumbsup", "tada"] && page.messages[0].reactions[1].count == 2)
        let removed = try await f.chat.react(bob, messageId: message.id, emoji: "thumbsup", on: false)
        #expect(removed.reactions.map(\.emoji) == ["tada"])
        _ = try await f.chat.react(bob, messageId: message.id, emoji: "thumbsup", on: false)
        let events = try await f.chat.events(alice, after: cursor, conversationId: room.id, limit: 10)
        #expect(events.map(\.type) == [.reactionAdded, .reactionAdded, .reactionAdded, .reactionRemoved])

        #expect(await refusal { try await f.chat.react(bob, messageId: message.id, emoji: "unicorn", on: true) } == "invalid_emoji")
        for outsider in [carol, dave] {
            #expect(await refusal { try await f.chat.react(outsider, messageId: message.id, emoji: "tada", on: true) } == "not_found")
        }
        // A tombstone loses its reactions and takes no new ones.
        let tombstone = try await f.chat.delete(alice, messageId: message.id)
        #expect(tombstone.reactions.isEmpty)
        #expect(await refusal { try await f.chat.react(bob, messageId: message.id, emoji: "tada", on: true) } == "message_deleted")
        #expect(try await f.integers("SELECT COUNT(*) FROM reactions WHERE message_id = ?", [message.id]) == [0])
    }
}

@Suite struct SearchTests {
    @Test(arguments: StoreKind.available) func everyMessageOfAGroupCommitIsSearchableOnceAcknowledged(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let room = try await f.chat.startConversation(alice, title: "batch", participantIds: [])
        // Concurrent sends share transactions; each is found as soon as its send returns.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<60 {
                group.addTask {
                    let (sent, _) = try await f.chat.send(alice, conversationId: room.id, content: "batchword\(i)x zebra", threadParentId: nil, clientMessageId: nil)
                    let found = try await f.chat.search(alice, query: "batchword\(i)x", conversationId: room.id, senderId: nil, cursor: nil, limit: nil)
                    #expect(found.results.map(\.message.id) == [sent.id])
                }
            }
            try await group.waitForAll()
        }
        #expect(try await f.chat.search(alice, query: "zebra", conversationId: room.id, senderId: nil, cursor: nil, limit: 100).results.count == 60)
    }

    @Test(arguments: StoreKind.available) func searchFindsPrefixesRanksAndNeverCrossesTenantsOrConversations(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let dave = try await f.principal("globex", "dave")
        let shared = try await f.chat.startConversation(alice, title: "Release", participantIds: [bob.userId])
        let private_ = try await f.chat.startConversation(carol, title: "Carol's notes", participantIds: [])
        let globex = try await f.chat.startConversation(dave, title: "Globex", participantIds: [])
        let (deploy, _) = try await f.chat.send(alice, conversationId: shared.id, content: "Deploy on Friday at ten, deploy checklist attached", threadParentId: nil, clientMessageId: nil)
        let (reply, _) = try await f.chat.send(bob, conversationId: nil, content: "The deployment went fine", threadParentId: deploy.id, clientMessageId: nil)
        _ = try await f.chat.send(bob, conversationId: shared.id, content: "Lunch on Friday?", threadParentId: nil, clientMessageId: nil)
        let (gone, _) = try await f.chat.send(alice, conversationId: shared.id, content: "deploy secret plan", threadParentId: nil, clientMessageId: nil)
        _ = try await f.chat.delete(alice, messageId: gone.id)
        _ = try await f.chat.send(carol, conversationId: private_.id, content: "deploy notes only Carol sees", threadParentId: nil, clientMessageId: nil)
        _ = try await f.chat.send(dave, conversationId: globex.id, content: "deploy at Globex", threadParentId: nil, clientMessageId: nil)

        // Prefixes, every word, thread replies too; the message that says it twice first; never the deleted one.
        let found = try await f.chat.search(alice, query: "DEPLO", conversationId: nil, senderId: nil, cursor: nil, limit: nil)
        #expect(found.results.map(\.message.id) == [deploy.id, reply.id])
        #expect(found.results[0].conversationTitle == "Release")
        #expect(found.results[0].excerpt.contains { $0.match && $0.text.lowercased().hasPrefix("deploy") })
        #expect(found.results[0].excerpt.map(\.text).joined().contains("on Friday at ten"))
        let both = try await f.chat.search(alice, query: "friday deploy", conversationId: nil, senderId: nil, cursor: nil, limit: nil)
        #expect(both.results.map(\.message.id) == [deploy.id])
        // Filters, and paging that neither repeats nor skips.
        let fromBob = try await f.chat.search(alice, query: "deploy", conversationId: nil, senderId: bob.userId, cursor: nil, limit: nil)
        #expect(fromBob.results.map(\.message.id) == [reply.id])
        let first = try await f.chat.search(alice, query: "deploy", conversationId: shared.id, senderId: nil, cursor: nil, limit: 1)
        let second = try await f.chat.search(alice, query: "deploy", conversationId: shared.id, senderId: nil, cursor: first.nextCursor, limit: 1)
        #expect(first.results.count == 1 && second.results.count == 1 && second.nextCursor == nil)
        #expect(Set(first.results.map(\.message.id) + second.results.map(\.message.id)) == [deploy.id, reply.id])
        // Nothing of another conversation or another tenant, whoever asks and however.
        for (caller, allowed) in [(alice, Set([deploy.id, reply.id])), (carol, Set<String>()), (dave, Set<String>())] {
            let seen = try await f.chat.search(caller, query: "deploy", conversationId: nil, senderId: nil, cursor: nil, limit: 100)
            let ids = Set(seen.results.map(\.message.id))
            #expect(ids.isDisjoint(with: [gone.id]))
            #expect(allowed.isSubset(of: ids))
            #expect(seen.results.allSatisfy { $0.message.tenantId == caller.tenantId })
        }
        #expect(try await f.chat.search(dave, query: "deploy", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.map(\.message.content) == ["deploy at Globex"])
        #expect(try await f.chat.search(carol, query: "deploy", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.map(\.message.content) == ["deploy notes only Carol sees"])
        #expect(await refusal { try await f.chat.search(dave, query: "deploy", conversationId: shared.id, senderId: nil, cursor: nil, limit: nil) } == "not_found")
        #expect(try await f.chat.search(alice, query: " ?! ", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.isEmpty)
        #expect(await refusal { try await f.chat.search(alice, query: "", conversationId: nil, senderId: nil, cursor: nil, limit: nil) } == "invalid_query")
        #expect(await refusal { try await f.chat.search(alice, query: "x", conversationId: nil, senderId: nil, cursor: "o-1", limit: nil) } == "invalid_cursor")
        // Every cursor of the published pattern is accepted: o0 is the first page, a far one an empty page.
        #expect(try await f.chat.search(alice, query: "deploy", conversationId: nil, senderId: nil, cursor: "o0", limit: nil).results.count == 2)
        #expect(try await f.chat.search(alice, query: "deploy", conversationId: nil, senderId: nil, cursor: "o99999", limit: nil).results.isEmpty)
        // An edit is found by its new words only.
        _ = try await f.chat.edit(alice, messageId: deploy.id, content: "Release on Monday instead")
        #expect(!(try await f.chat.search(alice, query: "checklist", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.contains { $0.message.id == deploy.id }))
        #expect(try await f.chat.search(alice, query: "monday", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.map(\.message.id) == [deploy.id])
        // Query syntax is plain text.
        #expect(try await f.chat.search(alice, query: "\"deploy\" OR NEAR(x) * : &", conversationId: nil, senderId: nil, cursor: nil, limit: nil).results.isEmpty)
    }
}
