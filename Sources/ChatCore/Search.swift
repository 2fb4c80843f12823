/// Full-text search over the messages a person can see: every word of the query must match the start of a word of
/// the message (so "deplo fri" finds "Deploy on Friday"), best matches first.
public enum Search {
    public static let maxQueryLength = 200
    public static let maxTerms = 8
    public static let defaultLimit = 20
    public static let maxLimit = 100
    /// Marks around a match in an excerpt as the stores produce it (private-use characters no text of ours holds).
    public static let matchStart: Character = "\u{E000}"
    public static let matchEnd: Character = "\u{E001}"

    /// The query's words: letters and digits, lowercased, at most `maxTerms`. (Accents are the stores' business:
    /// SQLite's index ignores them; PostgreSQL's `simple` configuration keeps them.)
    public static func terms(_ query: String) -> [String] {
        var seen: Set<String> = []
        var result: [String] = []
        for word in query.lowercased().split(whereSeparator: { !$0.isLetter && !$0.isNumber }) where seen.insert(String(word)).inserted {
            result.append(String(word))
            if result.count == maxTerms { break }
        }
        return result
    }

    /// An excerpt with the store's match marks as segments a client can render safely.
    public static func segments(_ marked: String) -> [SearchHit.Segment] {
        var segments: [SearchHit.Segment] = []
        var text = ""
        var inMatch = false
        func flush() {
            if !text.isEmpty { segments.append(.init(text: text, match: inMatch)) }
            text = ""
        }
        for character in marked {
            if character == matchStart { flush(); inMatch = true } else if character == matchEnd { flush(); inMatch = false } else { text.append(character) }
        }
        flush()
        return segments
    }
}

/// One search result: the message and an excerpt around what matched.
public struct SearchHit: Sendable, Equatable, Encodable {
    public struct Segment: Sendable, Equatable, Encodable {
        public var text: String
        public var match: Bool
    }

    public var message: Message
    public var excerpt: [Segment]
    public var conversationTitle: String

    public init(message: Message, excerpt: [Segment], conversationTitle: String) {
        self.message = message
        self.excerpt = excerpt
        self.conversationTitle = conversationTitle
    }
}

public struct SearchPage: Sendable, Equatable {
    public var results: [SearchHit]
    public var nextCursor: String?
}

extension ChatService {
    /// The caller's messages matching `query`, optionally in one conversation and from one sender; ranked, paged by
    /// an opaque cursor. Only conversations the caller takes part in, of the caller's tenant, are searched.
    public func search(
        _ caller: Principal, query: String, conversationId: String?, senderId: String?, cursor: String?, limit: Int?
    ) async throws -> SearchPage {
        guard !InputRules.hasControlCharacters(query), !InputRules.length(query, exceeds: Search.maxQueryLength) else {
            throw ChatError.badRequest("`q` is 1 to \(Search.maxQueryLength) characters without control characters.", code: "invalid_query")
        }
        guard !query.isEmpty else { throw ChatError.badRequest("`q` is required.", code: "invalid_query") }
        let terms = Search.terms(query)
        // Punctuation alone holds no word: it matches nothing.
        guard !terms.isEmpty else { return SearchPage(results: [], nextCursor: nil) }
        let pageSize = min(max(limit ?? Search.defaultLimit, 1), Search.maxLimit)
        if let limit, limit < 1 { throw ChatError.badRequest("`limit` must be at least 1.", code: "invalid_limit") }
        var offset = 0
        if let cursor {
            // Exactly the published pattern `^o[0-9]{1,5}$`; a position past the last page served is an empty page.
            let digits = cursor.utf8.dropFirst()
            guard cursor.hasPrefix("o"), (1...5).contains(digits.count), digits.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(cursor.dropFirst())
            else {
                throw ChatError.badRequest("The cursor is not one this server issued.", code: "invalid_cursor")
            }
            guard value < 10_000 else { return SearchPage(results: [], nextCursor: nil) }
            offset = value
        }
        if let conversationId {
            // Not a participant: the same 404 as every conversation endpoint.
            try await requireParticipant(caller, conversationId: conversationId)
        }
        if let senderId, !Identifier.isPlausible(senderId) { return SearchPage(results: [], nextCursor: nil) }
        let hits = try await store.search(
            tenantId: caller.tenantId, viewerId: caller.userId, terms: terms, conversationId: conversationId, senderId: senderId,
            offset: offset, limit: pageSize + 1)
        let page = Array(hits.prefix(pageSize))
        return SearchPage(results: page, nextCursor: hits.count > pageSize && offset + pageSize < 10_000 ? "o\(offset + pageSize)" : nil)
    }
}
