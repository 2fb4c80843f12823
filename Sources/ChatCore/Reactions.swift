/// Reactions: a bounded set of emoji, each named by a short code (what is stored and sent) with its character.
public enum Reactions {
    /// The emoji people may react with, in the order pickers show them.
    public static let all: [(code: String, emoji: String, name: String)] = [
        ("thumbsup", "👍", "thumbs up"), ("heart", "❤️", "heart"), ("joy", "😂", "tears of joy"), ("tada", "🎉", "party"),
        ("eyes", "👀", "eyes"), ("rocket", "🚀", "rocket"), ("white_check_mark", "✅", "check mark"), ("pray", "🙏", "thank you"),
        ("thinking", "🤔", "thinking"), ("fire", "🔥", "fire"), ("cry", "😢", "sad"), ("100", "💯", "hundred points"),
    ]

    /// The short code for a code or its emoji (as a client may send either); nil for anything else.
    public static func code(_ text: String) -> String? {
        let lowered = text.lowercased()
        if let found = all.first(where: { $0.code == lowered || $0.emoji == text }) { return found.code }
        // Heart without its variation selector, as some keyboards send it.
        if text == "\u{2764}" { return "heart" }
        return nil
    }

    public static func emoji(_ code: String) -> String { all.first { $0.code == code }?.emoji ?? code }

    /// `code`'s place in `all`, so that every reaction list is in picker order.
    public static func order(_ code: String) -> Int { all.firstIndex { $0.code == code } ?? all.count }

    /// The published pattern of a reaction path segment (codes only; emoji are accepted too but not advertised).
    public static var pattern: String { "^(" + all.map(\.code).joined(separator: "|") + ")$" }
}

/// One emoji's reactions on a message: how many, and who (in the order they reacted).
public struct Reaction: Sendable, Equatable, Codable {
    public var emoji: String
    public var count: Int
    public var userIds: [String]

    public init(emoji: String, userIds: [String]) {
        self.emoji = emoji
        self.count = userIds.count
        self.userIds = userIds
    }

    /// Rows of (message id, code, user id) in reaction order, grouped per message in picker order.
    public static func group(_ rows: [(messageId: String, code: String, userId: String)]) -> [String: [Reaction]] {
        var byMessage: [String: [String: [String]]] = [:]
        for row in rows { byMessage[row.messageId, default: [:]][row.code, default: []].append(row.userId) }
        return byMessage.mapValues { codes in
            codes.sorted { Reactions.order($0.key) < Reactions.order($1.key) }.map { Reaction(emoji: $0.key, userIds: $0.value) }
        }
    }
}
