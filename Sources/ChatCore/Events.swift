#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// The kinds of realtime event of API.md.
public enum EventType: String, Sendable, CaseIterable {
    case newMessage = "new_message"
    case readReceipt = "read_receipt"
    case conversationCreated = "conversation_created"
    case conversationUpdated = "conversation_updated"
    case typing

    /// Durable events are in the event log and carry an `eventId`; typing is ephemeral.
    public var isDurable: Bool { self != .typing }
}

/// One realtime event, encoded once: every transport and every subscriber sends these same buffers.
public struct ChatEvent: Sendable {
    public let type: EventType
    /// Position in the event log; nil for ephemeral events.
    public let eventId: Int64?
    public let tenantId: String
    public let conversationId: String
    /// For conversation events: who participates, so that "all my conversations" streams learn of new ones.
    public let participantIds: [String]?
    /// `{"type","eventId","room","conversationId","data"}` as UTF-8 JSON (a WebSocket text frame's payload).
    public let envelope: ByteBuffer
    /// The same envelope as one Server-Sent Events message (`id:`, `event:`, `data:` lines and a blank line).
    public let sseMessage: ByteBuffer

    public init(type: EventType, eventId: Int64?, tenantId: String, conversationId: String, data: [UInt8], participantIds: [String]? = nil) {
        self.type = type
        self.eventId = eventId
        self.tenantId = tenantId
        self.conversationId = conversationId
        self.participantIds = participantIds
        let envelope = EventEnvelope.encode(type: type, eventId: eventId, tenantId: tenantId, conversationId: conversationId, data: data)
        self.envelope = ByteBuffer(bytes: envelope)
        var sse = ByteBuffer()
        sse.reserveCapacity(envelope.count + 48)
        if let eventId { sse.writeString("id: \(eventId)\n") }
        sse.writeString("event: \(type.rawValue)\ndata: ")
        sse.writeBytes(envelope)
        sse.writeString("\n\n")
        self.sseMessage = sse
    }

    /// `tenantId:conversationId`, the room every transport and the hub key on.
    public var room: String { RoomKey.make(tenantId: tenantId, conversationId: conversationId) }
}

/// The name of a room.
public enum RoomKey {
    public static func make(tenantId: String, conversationId: String) -> String { tenantId + ":" + conversationId }
}

/// The one envelope encoder that serves every transport.
public enum EventEnvelope {
    public static func encode(type: EventType, eventId: Int64?, tenantId: String, conversationId: String, data: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(data.count + 160)
        out += Array(#"{"type":""#.utf8)
        out += Array(type.rawValue.utf8)
        out += Array(#"","eventId":"#.utf8)
        if let eventId {
            out.append(UInt8(ascii: "\""))
            out += Array(String(eventId).utf8)
            out.append(UInt8(ascii: "\""))
        } else {
            out += Array("null".utf8)
        }
        out += Array(#","room":"#.utf8)
        JSONText.appendString(tenantId + ":" + conversationId, to: &out)
        out += Array(#","conversationId":"#.utf8)
        JSONText.appendString(conversationId, to: &out)
        out += Array(#","data":"#.utf8)
        out += data
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// JSON helpers shared by the envelope and the store.
public enum JSONText {
    /// The encoder for every JSON body and event payload: stable key order helps caching and tests.
    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// Encodes a value with the shared settings.
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try makeEncoder().encode(value))
    }

    /// Appends `text` as a quoted JSON string.
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [92, 34]
            case UInt8(ascii: "\\"): out += [92, 92]
            case 0x0A: out += [92, UInt8(ascii: "n")]
            case 0x0D: out += [92, UInt8(ascii: "r")]
            case 0x09: out += [92, UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONText {
    /// A message as JSON, written by hand on the hot path (every send); the same bytes, keys sorted, as the shared
    /// encoder produces (a test compares them).
    public static func message(_ m: Message) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(m.content.utf8.count + 420)
        out += Array(#"{"clientMessageId":"#.utf8)
        optional(m.clientMessageId, to: &out)
        out += Array(#","content":"#.utf8)
        appendString(m.content, to: &out)
        out += Array(#","conversationId":"#.utf8)
        appendString(m.conversationId, to: &out)
        out += Array(#","createdAt":""#.utf8)
        out += Array(m.createdAt.description.utf8)
        out += Array(#"","id":"#.utf8)
        appendString(m.id, to: &out)
        out += Array(#","replyCount":"#.utf8)
        out += Array(String(m.replyCount).utf8)
        out += Array(#","sender":"#.utf8)
        user(m.sender, to: &out)
        out += Array(#","senderId":"#.utf8)
        appendString(m.senderId, to: &out)
        out += Array(#","seq":"#.utf8)
        out += Array(String(m.seq).utf8)
        out += Array(#","tenantId":"#.utf8)
        appendString(m.tenantId, to: &out)
        out += Array(#","threadParentId":"#.utf8)
        optional(m.threadParentId, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func user(_ u: User, to out: inout [UInt8]) {
        out += Array(#"{"displayName":"#.utf8)
        appendString(u.displayName, to: &out)
        out += Array(#","id":"#.utf8)
        appendString(u.id, to: &out)
        out += Array(#","tenantId":"#.utf8)
        appendString(u.tenantId, to: &out)
        out += Array(#","username":"#.utf8)
        appendString(u.username, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func optional(_ text: String?, to out: inout [UInt8]) {
        if let text { appendString(text, to: &out) } else { out += Array("null".utf8) }
    }
}

/// The opaque cursor of API.md: the decimal id of an event-log row.
public enum EventCursor {
    /// Parses a cursor a client sent; nil when it is not one we could have issued.
    public static func parse(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int64(text)
    }

    public static func format(_ id: Int64) -> String { String(id) }
}
