import ChatCore
import Foundation
import NIOCore

/// A JSON frame a WebSocket client sends (API.md, "WebSocket").
struct ClientFrame: Decodable {
    let type: String
    let conversationId: String?
    let since: CursorText?
    let content: String?
    let threadParentId: String?
    let clientMessageId: String?
    let messageId: String?
    let status: String?
}

extension ClientFrame {
    init(cursor: String?, type: String, fields: [String: FlatJSON.Value]) {
        func text(_ key: String) -> String? { if case .string(let value) = fields[key] { value } else { nil } }
        self.type = type
        conversationId = text("conversationId")
        since = cursor.map { CursorText(value: $0) }
        content = text("content")
        threadParentId = text("threadParentId")
        clientMessageId = text("clientMessageId")
        messageId = text("messageId")
        status = text("status")
    }

    /// Decodes a frame. Flat objects of strings, numbers, booleans and nulls (every frame of API.md) are read by
    /// hand: JSONDecoder was ~11 % of the server's CPU under durable sends. Anything else, and any value of the wrong
    /// type for a known field, goes to JSONDecoder, so errors are the same as before.
    static func decode(_ text: String) throws -> ClientFrame {
        if let fields = FlatJSON.parse(text), let fast = fast(fields) { return fast }
        return try JSONDecoder().decode(ClientFrame.self, from: Data(text.utf8))
    }

    private static func fast(_ fields: [String: FlatJSON.Value]) -> ClientFrame? {
        guard case .string(let type) = fields["type"] else { return nil }
        for key in ["conversationId", "content", "threadParentId", "clientMessageId", "messageId"] {
            switch fields[key] {
            case nil, .null?, .string?: continue
            default: return nil
            }
        }
        var cursor: String? = nil
        switch fields["since"] {
        case nil, .null?: break
        case .string(let value)?: cursor = value
        case .number(let digits)? where !digits.isEmpty && digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) && digits.utf8.count <= 18:
            cursor = digits
        default: return nil
        }
        return ClientFrame(cursor: cursor, type: type, fields: fields)
    }
}

/// A strict reader for one flat JSON object (no nested objects or arrays); nil for anything else.
enum FlatJSON {
    enum Value: Equatable {
        case string(String)
        case number(String)
        case bool(Bool)
        case null
    }

    static func parse(_ text: String) -> [String: Value]? {
        var text = text
        return text.withUTF8 { bytes -> [String: Value]? in
            var reader = Reader(bytes: bytes)
            return reader.object()
        }
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D { index += 1 }
        }

        mutating func object() -> [String: Value]? {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
            index += 1
            var fields: [String: Value] = [:]
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
            } else {
                while true {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                    index += 1
                    skipSpace()
                    guard let value = value(), fields.updateValue(value, forKey: key) == nil else { return nil }
                    skipSpace()
                    guard index < bytes.count else { return nil }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "}") else { return nil }
                    index += 1
                    break
                }
            }
            skipSpace()
            return index == bytes.count ? fields : nil
        }

        mutating func value() -> Value? {
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "-"), 48...57: return number().map(Value.number)
            default: return nil
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func number() -> String? {
            let start = index
            func digits(_ reader: inout Reader) -> Int {
                let from = reader.index
                while reader.index < reader.bytes.count, reader.bytes[reader.index] >= 48, reader.bytes[reader.index] <= 57 { reader.index += 1 }
                return reader.index - from
            }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == 48 { index += 1 } else if digits(&self) == 0 { return nil }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits(&self) > 0 else { return nil }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits(&self) > 0 else { return nil }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        }

        mutating func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            // The common case: no escapes.
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: "\"") {
                    defer { index += 1 }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                }
                if b == UInt8(ascii: "\\") { break }
                if b < 0x20 { return nil }
                index += 1
            }
            var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let b = bytes[index]
                index += 1
                switch b {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard literal("\\u"), let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            return nil
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: String(Character(unicode)).utf8)
                    default:
                        return nil
                    }
                default:
                    if b < 0x20 { return nil }
                    out.append(b)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                index += 1
                let digit: UInt32
                switch b {
                case 48...57: digit = UInt32(b - 48)
                case 65...70: digit = UInt32(b - 55)
                case 97...102: digit = UInt32(b - 87)
                default: return nil
                }
                value = value << 4 | digit
            }
            return value
        }
    }
}

/// A cursor as a client may send it: the string we issued, or the same digits as a JSON number.
struct CursorText: Decodable {
    let value: String

    init(value: String) {
        self.value = value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            value = text
        } else {
            value = String(try container.decode(Int64.self))
        }
    }
}

/// The control frames the server sends besides events; built by hand so every transport shares one encoding.
enum ControlFrame {
    static func joined(conversationId: String, tenantId: String) -> ByteBuffer {
        object([("type", "joined"), ("conversationId", conversationId), ("room", RoomKey.make(tenantId: tenantId, conversationId: conversationId))])
    }

    static func left(conversationId: String) -> ByteBuffer {
        object([("type", "left"), ("conversationId", conversationId)])
    }

    static func error(code: String, message: String, conversationId: String? = nil, clientMessageId: String? = nil) -> ByteBuffer {
        var fields: [(String, String?)] = [("type", "error"), ("code", code), ("message", message)]
        if let conversationId { fields.append(("conversationId", conversationId)) }
        if let clientMessageId { fields.append(("clientMessageId", clientMessageId)) }
        return object(fields)
    }

    static func resyncRequired(conversationId: String?) -> ByteBuffer {
        object([("type", "resync_required"), ("eventId", nil), ("conversationId", conversationId)])
    }

    /// `encoded`: the message's JSON when the caller has it already (the bytes of its `new_message` event).
    static func ack(clientMessageId: String?, message: Message, encoded: [UInt8]? = nil) -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + (clientMessageId?.utf8.count ?? 4) + (encoded?.count ?? 512))
        bytes += #"{"type":"ack","clientMessageId":"#.utf8
        if let clientMessageId { JSONText.appendString(clientMessageId, to: &bytes) } else { bytes += "null".utf8 }
        bytes += #","message":"#.utf8
        if let encoded { bytes += encoded } else { JSONText.appendMessage(message, to: &bytes) }
        bytes.append(UInt8(ascii: "}"))
        return ByteBuffer(bytes: bytes)
    }

    /// `{"k":"v",…}` with nil values as null.
    static func object(_ fields: [(String, String?)]) -> ByteBuffer {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONText.appendString(key, to: &bytes)
            bytes.append(UInt8(ascii: ":"))
            if let value { JSONText.appendString(value, to: &bytes) } else { bytes += Array("null".utf8) }
        }
        bytes.append(UInt8(ascii: "}"))
        return ByteBuffer(bytes: bytes)
    }
}

/// A token bucket: `rate` frames per second on average, bursts up to `burst`.
struct FrameRateLimiter {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = .now
    }

    mutating func allow() -> Bool {
        let now = ContinuousClock.now
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + seconds * rate)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
