import Foundation

/// The tenant's people directory: prefix search over usernames and display names, case- and accent-insensitive,
/// paged by an opaque cursor. Both stores keep one row per search term (`user_terms`), so a search is an index range,
/// whatever the size of the tenant.
public enum Directory {
    public static let defaultLimit = 100
    public static let maxLimit = 500
    /// The longest query kept (a longer one matches nothing a shorter one would not).
    public static let maxQueryLength = 64

    /// Lowercased, accents and other combining marks removed: "Émile" and "emile" fold alike.
    public static func fold(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in text.decomposedStringWithCanonicalMapping.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            scalars.append(scalar)
        }
        return String(scalars).lowercased()
    }

    /// What a user is found by: the username, the display name, and each word of the display name, folded.
    public static func terms(username: String, displayName: String) -> Set<String> {
        var terms: Set<String> = [fold(username), fold(displayName)]
        for word in fold(displayName).split(whereSeparator: { !$0.isLetter && !$0.isNumber }) { terms.insert(String(word)) }
        terms.remove("")
        return terms
    }

    /// The cursor after `username` (opaque to clients: base64url of the last username of a page).
    public static func cursor(after username: String) -> String {
        Data(username.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The username a cursor stands for; nil when it is not base64url at all. Every base64url string is read (bits
    /// that do not make a whole byte are ignored, bytes that are not UTF-8 are replaced), so a cursor is either refused
    /// for its alphabet or continues the listing after some name: the published pattern is exactly what is accepted.
    public static func username(fromCursor cursor: String) -> String? {
        guard !cursor.isEmpty, cursor.utf8.count <= 1024,
              cursor.utf8.allSatisfy({ isBase64URL($0) })
        else { return nil }
        var text = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        if text.count % 4 == 1 { text.removeLast() }
        while text.count % 4 != 0 { text += "=" }
        let bytes = Data(base64Encoded: text).map { Array($0) } ?? []
        // NUL cannot be stored in PostgreSQL text, and no username holds one.
        return String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self)
    }

    private static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"): true
        default: false
        }
    }
}

/// One page of the directory.
public struct UserPage: Sendable, Equatable {
    public var users: [User]
    /// Where the next page starts; nil on the last page.
    public var nextCursor: String?

    public init(users: [User], nextCursor: String?) {
        self.users = users
        self.nextCursor = nextCursor
    }
}

/// Where a page continues in a list ordered by a time and an id, both descending (a person's conversations by
/// activity) or ascending (a conversation's members by when they joined). A conversation that moves up while a client
/// pages (a new message) is not shown twice; the client learns of it live.
public struct ListCursor: Sendable, Equatable {
    public var time: Int64
    public var id: String

    public init(time: Int64, id: String) {
        self.time = time
        self.id = id
    }

    /// `<milliseconds>.<id>`.
    public var text: String { "\(time).\(id)" }

    /// The pattern the OpenAPI document publishes: every string matching it is read.
    public static let pattern = "^[0-9]{1,15}\\.[A-Za-z0-9_]{1,64}$"

    public init?(_ text: String) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, (1...15).contains(parts[0].count), parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
              let milliseconds = Int64(parts[0]), Identifier.isPlausible(String(parts[1]))
        else { return nil }
        self.init(time: milliseconds, id: String(parts[1]))
    }
}

/// One page of a user's conversations.
public struct ConversationPage: Sendable, Equatable {
    public var conversations: [Conversation]
    public var nextCursor: String?

    public init(conversations: [Conversation], nextCursor: String?) {
        self.conversations = conversations
        self.nextCursor = nextCursor
    }
}
