/// `@username` in a message's content. A mention resolves to a user of the tenant who takes part in the
/// conversation (case ignored); anything else stays plain text. The stores resolve them when a message is sent or
/// edited and keep them with it, so a later rename of the conversation's members never rewrites history.
public enum Mentions {
    /// At most this many different names per message are looked up.
    public static let maxPerMessage = 50

    /// A name: letters, digits, `_`, `.` and `-`, not ending in `.` or `-` (so "@bob." at a sentence's end is bob).
    /// It must start the content or follow a character that cannot be part of a word (so an e-mail address is not a
    /// mention).
    static func spans(in content: String) -> [(range: Range<String.UnicodeScalarView.Index>, name: String)] {
        let scalars = content.unicodeScalars
        var found: [(Range<String.UnicodeScalarView.Index>, String)] = []
        var index = scalars.startIndex
        var previous: Unicode.Scalar? = nil
        while index < scalars.endIndex {
            let scalar = scalars[index]
            if scalar == "@", previous.map({ !isNameScalar($0) && !$0.properties.isAlphabetic }) ?? true {
                var end = scalars.index(after: index)
                while end < scalars.endIndex, isNameScalar(scalars[end]) { end = scalars.index(after: end) }
                while end > scalars.index(after: index), [".", "-"].contains(scalars[scalars.index(before: end)]) {
                    end = scalars.index(before: end)
                }
                if end > scalars.index(after: index) {
                    found.append((index..<end, String(scalars[scalars.index(after: index)..<end]).lowercased()))
                    previous = scalars[scalars.index(before: end)]
                    index = end
                    continue
                }
            }
            previous = scalar
            index = scalars.index(after: index)
        }
        return found
    }

    static func isNameScalar(_ s: Unicode.Scalar) -> Bool {
        (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") || s == "_" || s == "." || s == "-"
    }

    /// The names written as `@name`, lowercased, each once, in order; at most `maxPerMessage`. Empty (and cheap)
    /// when the content has no `@`.
    public static func candidates(in content: String) -> [String] {
        guard content.utf8.contains(UInt8(ascii: "@")) else { return [] }
        var seen: Set<String> = []
        var names: [String] = []
        for span in spans(in: content) where seen.insert(span.name).inserted {
            names.append(span.name)
            if names.count == maxPerMessage { break }
        }
        return names
    }

    /// Orders resolved users as their names first appear in the content.
    public static func ordered(_ resolved: [(id: String, username: String)], in content: String) -> [String] {
        let byName = Dictionary(resolved.map { ($0.username.lowercased(), $0.id) }, uniquingKeysWith: { first, _ in first })
        var ids: [String] = []
        for name in candidates(in: content) { if let id = byName[name], !ids.contains(id) { ids.append(id) } }
        return ids
    }

    /// The content as text and mention segments, for rendering as text: `usernames` (lowercased) are the names
    /// that resolved.
    public static func segments(_ content: String, usernames: Set<String>) -> [(text: String, mention: Bool)] {
        guard !usernames.isEmpty else { return [(content, false)] }
        var segments: [(String, Bool)] = []
        let scalars = content.unicodeScalars
        var last = scalars.startIndex
        for span in spans(in: content) where usernames.contains(span.name) {
            if span.range.lowerBound > last { segments.append((String(scalars[last..<span.range.lowerBound]), false)) }
            segments.append((String(scalars[span.range]), true))
            last = span.range.upperBound
        }
        if last < scalars.endIndex { segments.append((String(scalars[last...]), false)) }
        return segments
    }
}
