import ChatCore
import Foundation
import Testing

@Suite struct MentionTests {
    @Test func namesAreFoundWhereAWordCouldStart() {
        #expect(Mentions.candidates(in: "@Bob, ask @carol.chen. Not mail@example.com nor @ alone; @bob again @erin-") == ["bob", "carol.chen", "erin"])
        #expect(Mentions.candidates(in: "no at sign").isEmpty)
        let segments = Mentions.segments("Hi @Bob and @zed!", usernames: ["bob"])
        #expect(segments.map(\.text) == ["Hi ", "@Bob", " and @zed!"] && segments.map(\.mention) == [false, true, false])
    }

    @Test(arguments: StoreKind.available) func mentionsResolveToParticipantsAndCountUntilRead(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let carol = try await f.principal("acme", "carol")
        let room = try await f.chat.startConversation(alice, title: "mentions", participantIds: [bob.userId])
        let cursor = try await f.latestEventId()

        // Carol is of the tenant but not in the conversation; dave is of another tenant: neither resolves.
        let (sent, _) = try await f.chat.send(
            alice, conversationId: room.id, content: "@carol @dave @BOB and me @alice, mail alice@example.com", threadParentId: nil, clientMessageId: "m-1")
        #expect(sent.mentions == [bob.userId, alice.userId])
        let (resent, created) = try await f.chat.send(alice, conversationId: room.id, content: "again", threadParentId: nil, clientMessageId: "m-1")
        #expect(!created && resent.mentions == sent.mentions)
        let page = try await f.chat.messages(bob, conversationId: room.id, before: nil, limit: nil)
        #expect(page.messages.last?.mentions == [bob.userId, alice.userId])
        let event = try #require(try await f.chat.events(bob, after: cursor, conversationId: room.id, limit: 5).first)
        #expect(String(buffer: event.envelope).contains(#""mentions":["\#(bob.userId)","\#(alice.userId)"]"#))

        // Bob's count of unread mentions (a thread reply counts too); the sender's own mention is not counted.
        let (reply, _) = try await f.chat.send(alice, conversationId: nil, content: "@bob in the thread", threadParentId: sent.id, clientMessageId: nil)
        #expect(reply.mentions == [bob.userId])
        #expect(try await f.chat.conversation(bob, id: room.id).mentionCount == 2)
        #expect(try await f.chat.conversations(bob).conversations.first { $0.id == room.id }?.mentionCount == 2)
        #expect(try await f.chat.conversation(alice, id: room.id).mentionCount == 0)

        // An edit re-resolves; a delete takes the mention away.
        let edited = try await f.chat.edit(alice, messageId: reply.id, content: "never mind")
        #expect(edited.mentions.isEmpty)
        #expect(try await f.chat.conversation(bob, id: room.id).mentionCount == 1)
        _ = try await f.chat.addMembers(alice, conversationId: room.id, userIds: [carol.userId])
        let (toCarol, _) = try await f.chat.send(alice, conversationId: room.id, content: "welcome @carol", threadParentId: nil, clientMessageId: nil)
        #expect(toCarol.mentions == [carol.userId])
        #expect(try await f.chat.conversation(carol, id: room.id).mentionCount == 1)
        #expect(try await f.chat.delete(alice, messageId: toCarol.id).mentions.isEmpty)
        #expect(try await f.chat.conversation(carol, id: room.id).mentionCount == 0)

        // Reading up to the message clears the count.
        try await f.chat.markRead(bob, conversationId: room.id, messageId: sent.id)
        #expect(try await f.chat.conversation(bob, id: room.id).mentionCount == 0)
    }
}
