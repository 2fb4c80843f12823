/// How conversation content is put in front of a model: as quoted data (JSON string literals), one message a line,
/// so that nothing a participant wrote reads as an instruction from us.
public enum ModelPrompt {
    /// `text` as a JSON string literal.
    public static func quote(_ text: String) -> String {
        var bytes: [UInt8] = []
        JSONText.appendString(text, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `[#seq] Display Name (in thread #root): "content"` per message.
    public static func transcript(_ messages: [Message], seqOf: [String: Int64] = [:]) -> String {
        var roots = seqOf
        for message in messages where message.threadParentId == nil { roots[message.id] = message.seq }
        return messages.map { message in
            let thread = message.threadParentId.map { " (reply in thread \(roots[$0].map { "#\($0)" } ?? "of an earlier message"))" } ?? ""
            let bot = message.sender.isBot ? " [bot]" : ""
            return "[#\(message.seq)] \(message.sender.displayName)\(bot)\(thread): \(quote(message.content))"
        }.joined(separator: "\n")
    }
}
