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
}

/// A cursor as a client may send it: the string we issued, or the same digits as a JSON number.
struct CursorText: Decodable {
    let value: String

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

    static func ack(clientMessageId: String?, message: Message) throws -> ByteBuffer {
        var bytes: [UInt8] = Array(#"{"type":"ack","clientMessageId":"#.utf8)
        if let clientMessageId { JSONText.appendString(clientMessageId, to: &bytes) } else { bytes += Array("null".utf8) }
        bytes += Array(#","message":"#.utf8)
        bytes += JSONText.message(message)
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
