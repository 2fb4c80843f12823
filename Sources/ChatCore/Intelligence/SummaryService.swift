import Foundation

/// Summaries of conversations, cached per conversation by the `seq` they reach. Messages are append-only with
/// gapless `seq`, so a stored summary is exactly right until a newer message exists; an update reads only the
/// messages after it (the digest rolls), and `refresh` starts over.
public struct SummaryService: Sendable {
    public let chat: ChatService
    /// The most messages one summary reads: a longer conversation is summarized from its newest `window`.
    public let window: Int

    public init(chat: ChatService, window: Int = 2_000) {
        self.chat = chat
        self.window = window
    }

    static let extractiveKind = "summary:extractive"

    struct Stored: Codable {
        var summary: ConversationSummary
        var state: ExtractiveDigest.State
    }

    /// The caller's summary of a conversation they take part in (404 otherwise, as for every conversation endpoint).
    public func summary(_ caller: Principal, conversationId: String, refresh: Bool = false) async throws -> ConversationSummary {
        let conversation = try await chat.conversation(caller, id: conversationId)
        return try await extractive(tenantId: caller.tenantId, conversation: conversation, refresh: refresh)
    }

    /// The extractive summary through the conversation's newest message, from the cache when it is current.
    func extractive(tenantId: String, conversation: Conversation, refresh: Bool) async throws -> ConversationSummary {
        let store = chat.store
        let memory = refresh ? nil : try await store.memory(tenantId: tenantId, conversationId: conversation.id, kind: Self.extractiveKind)
        var previous = memory.flatMap { try? JSONDecoder().decode(Stored.self, from: Data($0.body.utf8)) }
        if var hit = previous, hit.summary.throughSeq >= conversation.lastSeq {
            hit.summary.cached = true
            return hit.summary
        }
        // Too far behind (or nothing yet): start over from the newest `window` messages.
        if let stored = previous, conversation.lastSeq - stored.state.throughSeq > Int64(window) { previous = nil }
        var state = previous?.state ?? ExtractiveDigest.State()
        let start = previous == nil ? max(0, conversation.lastSeq - Int64(window)) : state.throughSeq
        var after = start
        while after < conversation.lastSeq {
            let page = try await store.messageRange(tenantId: tenantId, conversationId: conversation.id, afterSeq: after, limit: 500)
            guard let last = page.last else { break }
            state = ExtractiveDigest.update(state, with: page)
            after = last.seq
        }
        let summary = ExtractiveDigest.summary(of: state, conversationId: conversation.id, generatedAt: .now())
        let body = String(decoding: try JSONEncoder().encode(Stored(summary: summary, state: state)), as: UTF8.self)
        try await store.saveMemory(ConversationMemory(
            tenantId: tenantId, conversationId: conversation.id, kind: Self.extractiveKind, throughSeq: state.throughSeq, body: body,
            updatedAt: summary.generatedAt))
        return summary
    }
}
