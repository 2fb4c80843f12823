/// What the server accepts, written once: the checks in `ChatService` and the patterns the OpenAPI document
/// publishes come from these definitions, so a client generated from the document never sends what the server
/// refuses, or the reverse. Lengths count Unicode scalars, as JSON Schema's `maxLength` does.
public enum InputRules {
    /// White space: ECMAScript's `\s` (the JSON Schema regex dialect) and Unicode's White_Space, plus NUL.
    static let blank: [ClosedRange<UInt32>] = [
        0x0...0x0, 0x9...0xD, 0x20...0x20, 0x85...0x85, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A,
        0x2028...0x2029, 0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF,
    ]
    /// Control characters, which a client-chosen key may not contain.
    static let control: [ClosedRange<UInt32>] = [0x0...0x1F, 0x7F...0x7F]

    public static func isBlank(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in blank.contains { $0.contains(scalar.value) } }
    }

    public static func hasControlCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains { scalar in control.contains { $0.contains(scalar.value) } }
    }

    /// Unicode scalars in `text`, stopping early once past `limit` (content may be long).
    public static func length(_ text: String, exceeds limit: Int) -> Bool {
        // Cheap bound first: a string with no more UTF-8 bytes than the limit cannot have more scalars.
        guard text.utf8.count > limit else { return false }
        return text.unicodeScalars.count > limit
    }

    /// A JSON Schema `pattern`: at least one character that is not white space.
    public static let notBlankPattern = "[^" + blank.map(classRange).joined() + "]"
    /// A JSON Schema `pattern`: no control characters anywhere.
    public static let noControlPattern = "^[^" + control.map(classRange).joined() + "]*$"

    private static func classRange(_ range: ClosedRange<UInt32>) -> String {
        func escaped(_ value: UInt32) -> String {
            let hex = String(value, radix: 16)
            return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        }
        return range.count == 1 ? escaped(range.lowerBound) : escaped(range.lowerBound) + "-" + escaped(range.upperBound)
    }
}
