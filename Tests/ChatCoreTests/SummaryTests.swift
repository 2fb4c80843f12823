import ChatCore
import Foundation
import Testing

/// A release-planning conversation as a team would have it: three people, a thread, questions answered and not.
enum SummaryFixture {
    static let alice = User(id: "usr_alice", username: "alice", displayName: "Alice Martin", tenantId: "tnt_a")
    static let bob = User(id: "usr_bob", username: "bob", displayName: "Bob Chen", tenantId: "tnt_a")
    static let carol = User(id: "usr_carol", username: "carol", displayName: "Carol Diaz", tenantId: "tnt_a")

    /// (sender, content, thread root index or nil); `seq` is the position + 1, a minute apart.
    static let script: [(User, String, Int?)] = [
        (alice, "Morning! Release 2.4 is planned for Thursday. The release checklist is in the wiki.", nil),
        (bob, "The database migration for release 2.4 still needs a review before Thursday.", nil),
        (carol, "I can review the database migration this afternoon.", 1),
        (bob, "Thanks Carol, the migration adds two indexes on the messages table.", 1),
        (alice, "Who is writing the release notes?", nil),
        (carol, "I will write the release notes tonight and share the draft.", nil),
        (bob, "ok", nil),
        (alice, "Marketing wants the release notes and screenshots by Wednesday noon.", nil),
        (carol, "Screenshots of the new search page are done, uploading them to the wiki.", nil),
        (bob, "Should we keep the old search page behind a flag for a week?", nil),
        (alice, "Lunch anyone?", nil),
        (carol, "Did anyone check the load test results for the search page?", nil),
    ]

    static func messages(_ range: Range<Int>? = nil) -> [Message] {
        var ids: [String] = []
        var result: [Message] = []
        for (index, (sender, content, root)) in script.enumerated() {
            let id = "msg_\(index + 1)"
            ids.append(id)
            result.append(Message(
                id: id, tenantId: "tnt_a", conversationId: "cnv_release", senderId: sender.id, sender: sender,
                threadParentId: root.map { ids[$0] }, content: content,
                createdAt: Timestamp(milliseconds: 1_796_000_000_000 + Int64(index) * 60_000), seq: Int64(index + 1), replyCount: 0,
                clientMessageId: nil))
        }
        return range.map { Array(result[$0]) } ?? result
    }
}

@Suite struct ExtractiveDigestTests {
    let generatedAt = Timestamp(milliseconds: 1_796_001_000_000)

    @Test func pinsHighlightsQuestionsAndParticipantsOfAReleaseConversation() throws {
        let state = ExtractiveDigest.update(ExtractiveDigest.State(), with: SummaryFixture.messages())
        let summary = ExtractiveDigest.summary(of: state, conversationId: "cnv_release", generatedAt: generatedAt)
        #expect(summary.method == .extractive && summary.model == nil && !summary.cached)
        #expect(summary.fromSeq == 1 && summary.throughSeq == 12 && summary.messageCount == 12)
        #expect(summary.highlights.map(\.seq) == [2, 5, 8, 9, 12])
        #expect(summary.openQuestions.map(\.seq) == [10, 11, 12])
        // Equal counts: in the order they first spoke.
        #expect(summary.participants.map(\.userId) == ["usr_alice", "usr_bob", "usr_carol"])
        #expect(summary.participants.map(\.messageCount) == [4, 4, 4])
        #expect(summary.timeSpan?.from.milliseconds == 1_796_000_000_000 && summary.timeSpan?.to.milliseconds == 1_796_000_660_000)
        // Every highlight and question quotes its own message.
        let byId = Dictionary(uniqueKeysWithValues: SummaryFixture.messages().map { ($0.id, $0) })
        for highlight in summary.highlights {
            #expect(byId[highlight.messageId]?.seq == highlight.seq && byId[highlight.messageId]?.content == highlight.excerpt)
        }
        #expect(summary.text == """
            12 messages from 3 people, 2026-11-30 00:53 UTC to 2026-11-30 01:04 UTC (#1–#12).
            Key points:
            • Bob Chen (#2): The database migration for release 2.4 still needs a review before Thursday.
            • Alice Martin (#5): Who is writing the release notes?
            • Alice Martin (#8): Marketing wants the release notes and screenshots by Wednesday noon.
            • Carol Diaz (#9): Screenshots of the new search page are done, uploading them to the wiki.
            • Carol Diaz (#12): Did anyone check the load test results for the search page?
            Open questions:
            • Bob Chen (#10): Should we keep the old search page behind a flag for a week?
            • Alice Martin (#11): Lunch anyone?
            • Carol Diaz (#12): Did anyone check the load test results for the search page?
            """)
    }

    /// Rolling over the first half and then the second gives what one pass over everything gives.
    @Test func rollingUpdatesEqualOnePass() {
        let all = SummaryFixture.messages()
        let whole = ExtractiveDigest.update(ExtractiveDigest.State(), with: all)
        var rolled = ExtractiveDigest.State()
        for chunk in [0..<3, 3..<7, 7..<12] { rolled = ExtractiveDigest.update(rolled, with: Array(all[chunk])) }
        #expect(rolled == whole)
        // Messages at or below throughSeq are not counted twice.
        #expect(ExtractiveDigest.update(whole, with: Array(all[5..<12])) == whole)
    }

    @Test func aThreadAnswerFromSomeoneElseClosesAQuestionAndTheAskersOwnDoesNot() {
        let alice = SummaryFixture.alice, bob = SummaryFixture.bob
        func message(_ seq: Int64, _ sender: User, _ content: String, root: Int64? = nil) -> Message {
            Message(id: "m\(seq)", tenantId: "tnt_a", conversationId: "c", senderId: sender.id, sender: sender, threadParentId: root.map { "m\($0)" },
                    content: content, createdAt: Timestamp(milliseconds: seq * 1000), seq: seq, replyCount: 0, clientMessageId: nil)
        }
        var state = ExtractiveDigest.update(.init(), with: [message(1, alice, "Can someone restart the staging server?"), message(2, alice, "Anyone?", root: 1)])
        #expect(ExtractiveDigest.summary(of: state, conversationId: "c", generatedAt: generatedAt).openQuestions.map(\.seq) == [1])
        state = ExtractiveDigest.update(state, with: [message(3, bob, "Done, it is back up.", root: 1)])
        let summary = ExtractiveDigest.summary(of: state, conversationId: "c", generatedAt: generatedAt)
        #expect(summary.openQuestions.isEmpty)
        #expect(summary.messageCount == 3 && summary.participants.map(\.messageCount) == [2, 1])
    }

    @Test func anEmptyConversationAndALongMessage() {
        let empty = ExtractiveDigest.summary(of: .init(), conversationId: "c", generatedAt: generatedAt)
        #expect(empty.text == "No messages yet." && empty.timeSpan == nil && empty.fromSeq == 0 && empty.throughSeq == 0 && empty.highlights.isEmpty)
        let long = String(repeating: "word ", count: 100)
        let excerpt = ExtractiveDigest.excerptOf(long)
        #expect(excerpt.hasSuffix("…") && excerpt.count <= ExtractiveDigest.excerptLength + 1)
        let json = String(decoding: try! JSONEncoder().encode(empty), as: UTF8.self)
        #expect(json.contains(#""model":null"#) && json.contains(#""timeSpan":null"#))
    }
}

@Suite struct SummaryCacheTests {
    @Test(arguments: StoreKind.available) func cachedUntilANewMessageThenUpdatedFromWhereItStoppedAndRefreshedOnRequest(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let summaries = SummaryService(chat: f.chat)
        let alice = try await f.principal("acme", "alice")
        let bob = try await f.principal("acme", "bob")
        let conversation = try await f.chat.startConversation(alice, title: "release", participantIds: [bob.userId])
        let empty = try await summaries.summary(alice, conversationId: conversation.id)
        #expect(empty.messageCount == 0 && empty.text == "No messages yet." && !empty.cached)
        for (caller, content) in [(alice, "Release 2.4 ships Thursday?"), (bob, "Yes, after the migration review."), (alice, "Great, I will tell marketing.")] {
            _ = try await f.chat.send(caller, conversationId: conversation.id, content: content, threadParentId: nil, clientMessageId: nil)
        }
        let first = try await summaries.summary(alice, conversationId: conversation.id)
        #expect(!first.cached && first.throughSeq == 3 && first.messageCount == 3 && first.openQuestions.isEmpty)
        // Nothing new: the stored summary, marked cached (bob asks too: one summary per conversation).
        let hit = try await summaries.summary(bob, conversationId: conversation.id)
        #expect(hit.cached && hit.generatedAt == first.generatedAt && hit.text == first.text)

        // The update starts from the stored state: make the stored count wrong and see it carried forward.
        let stored = try #require(try await f.store.memory(tenantId: alice.tenantId, conversationId: conversation.id, kind: "summary:extractive"))
        var json = try #require(try JSONSerialization.jsonObject(with: Data(stored.body.utf8)) as? [String: Any])
        var state = try #require(json["state"] as? [String: Any])
        state["messageCount"] = 100
        json["state"] = state
        var tampered = stored
        tampered.body = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        try await f.store.saveMemory(tampered)
        _ = try await f.chat.send(bob, conversationId: conversation.id, content: "Who updates the status page?", threadParentId: nil, clientMessageId: nil)
        let updated = try await summaries.summary(alice, conversationId: conversation.id)
        #expect(!updated.cached && updated.throughSeq == 4 && updated.messageCount == 101)
        #expect(updated.openQuestions.map(\.seq) == [4])
        // refresh=1 starts over from the messages.
        let refreshed = try await summaries.summary(alice, conversationId: conversation.id, refresh: true)
        #expect(!refreshed.cached && refreshed.messageCount == 4 && refreshed.fromSeq == 1 && refreshed.throughSeq == 4)
        #expect(try await summaries.summary(alice, conversationId: conversation.id).messageCount == 4)

        // An older computation finishing late does not replace a newer one.
        var late = tampered
        late.throughSeq = 2
        late.body = "{}"
        try await f.store.saveMemory(late)
        #expect(try await f.store.memory(tenantId: alice.tenantId, conversationId: conversation.id, kind: "summary:extractive")?.throughSeq == 4)
    }

    @Test(arguments: StoreKind.available) func onlyParticipantsOfTheTenantGetASummary(_ kind: StoreKind) async throws {
        let f = try await CoreFixture(kind)
        defer { f.cleanUp() }
        let summaries = SummaryService(chat: f.chat)
        let alice = try await f.principal("acme", "alice")
        let conversation = try await f.chat.startConversation(alice, title: "private", participantIds: [])
        _ = try await f.chat.send(alice, conversationId: conversation.id, content: "canary-7f3a secret plans", threadParentId: nil, clientMessageId: nil)
        for outsider in [try await f.principal("acme", "carol"), try await f.principal("globex", "dave")] {
            await #expect(throws: ChatError.self) { try await summaries.summary(outsider, conversationId: conversation.id) }
        }
        await #expect(throws: ChatError.self) { try await summaries.summary(alice, conversationId: "cnv_does_not_exist") }
        // Stored per tenant: the other tenant's key finds nothing.
        let globex = try await f.tenantId("globex")
        _ = try await summaries.summary(alice, conversationId: conversation.id)
        #expect(try await f.store.memory(tenantId: globex, conversationId: conversation.id, kind: "summary:extractive") == nil)
        #expect(try await f.store.messageRange(tenantId: globex, conversationId: conversation.id, afterSeq: 0, limit: 10).isEmpty)
    }
}
