/// What `GET /api/chat/:conversationId/summary` answers: a digest of a conversation up to `throughSeq`, whose every
/// highlight and question names the message it comes from.
public struct ConversationSummary: Sendable, Equatable, Codable {
    public enum Method: String, Sendable, Codable {
        /// Chosen from the messages themselves, without a model.
        case extractive
        /// Written by the tenant's model.
        case llm
    }

    public struct Highlight: Sendable, Equatable, Codable {
        public var messageId: String
        public var seq: Int64
        public var senderId: String
        public var excerpt: String
    }

    public struct Participant: Sendable, Equatable, Codable {
        public var userId: String
        public var displayName: String
        /// Messages in the summarized range, thread replies included.
        public var messageCount: Int
    }

    public struct Question: Sendable, Equatable, Codable {
        public var messageId: String
        public var seq: Int64
        public var excerpt: String
    }

    public struct TimeSpan: Sendable, Equatable, Codable {
        public var from: Timestamp
        public var to: Timestamp
    }

    public var conversationId: String
    /// The first and last `seq` summarized (0 and 0 for a conversation without messages).
    public var fromSeq: Int64
    public var throughSeq: Int64
    /// Messages summarized, thread replies included.
    public var messageCount: Int
    public var method: Method
    /// The model that wrote `text` (`method` llm), or null.
    public var model: String?
    public var text: String
    public var highlights: [Highlight]
    public var participants: [Participant]
    public var openQuestions: [Question]
    /// When the first and last summarized messages were sent; null without messages.
    public var timeSpan: TimeSpan?
    /// True when this answer was stored before the request (nothing newer was said since).
    public var cached: Bool
    public var generatedAt: Timestamp

    enum CodingKeys: String, CodingKey {
        case conversationId, fromSeq, throughSeq, messageCount, method, model, text, highlights, participants, openQuestions, timeSpan, cached
        case generatedAt
    }

    // Explicit so that empty optionals are written as null, as the contract shows them.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(conversationId, forKey: .conversationId)
        try c.encode(fromSeq, forKey: .fromSeq)
        try c.encode(throughSeq, forKey: .throughSeq)
        try c.encode(messageCount, forKey: .messageCount)
        try c.encode(method, forKey: .method)
        try c.encode(model, forKey: .model)
        try c.encode(text, forKey: .text)
        try c.encode(highlights, forKey: .highlights)
        try c.encode(participants, forKey: .participants)
        try c.encode(openQuestions, forKey: .openQuestions)
        try c.encode(timeSpan, forKey: .timeSpan)
        try c.encode(cached, forKey: .cached)
        try c.encode(generatedAt, forKey: .generatedAt)
    }
}

/// Derived data a store keeps per conversation (a summary's rolling state, an agent's memory): opaque text written
/// and read by the core, replaced only by a version that covers at least as much of the conversation.
public struct ConversationMemory: Sendable, Equatable {
    public var tenantId: String
    public var conversationId: String
    /// What it is: `summary:extractive`, `summary:llm:<agent id>`, `agent:<agent id>`.
    public var kind: String
    /// The newest `seq` it accounts for.
    public var throughSeq: Int64
    public var body: String
    public var updatedAt: Timestamp

    public init(tenantId: String, conversationId: String, kind: String, throughSeq: Int64, body: String, updatedAt: Timestamp) {
        self.tenantId = tenantId
        self.conversationId = conversationId
        self.kind = kind
        self.throughSeq = throughSeq
        self.body = body
        self.updatedAt = updatedAt
    }
}
