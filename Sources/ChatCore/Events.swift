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
    /// Someone reacted, or took a reaction back (data: `{"messageId", "emoji", "userId", "reactions"}`).
    case reactionAdded = "reaction_added"
    case reactionRemoved = "reaction_removed"
    /// A message's content changed (data: the Message, `editedAt` set).
    case messageUpdated = "message_updated"
    /// A message became a tombstone (data: the Message, `deletedAt` set, content "").
    case messageDeleted = "message_deleted"
    /// People joined a conversation (data: `{"actorId","conversation","userIds"}`); it names them, so their "all my
    /// conversations" streams start following it.
    case participantsAdded = "participants_added"
    /// Someone left or was removed (data: `{"actorId","conversation","userId"}`); the last event of the conversation
    /// they receive on any stream.
    case participantRemoved = "participant_removed"
    /// An agent's reply while its model writes it: the text so far (ephemeral, like typing).
    case agentProgress = "agent_progress"
    /// Someone who shares a conversation with the viewer came online, went away or offline (data:
    /// `{"userId","status"}`; ephemeral, on "all my conversations" streams; `conversationId` is "").
    case presence

    /// Durable events are in the event log and carry an `eventId`; typing, agent progress and presence are ephemeral.
    public var isDurable: Bool { self != .typing && self != .agentProgress && self != .presence }
}

/// One realtime event, encoded once: every transport and every subscriber sends these same buffers.
/// An event as a store's transaction appends it to the log: the row, not yet framed for any transport. Stores
/// return these so that the one writer does not spend its time building transport bytes; the commit queue turns
/// them into `ChatEvent`s after the next transaction has started.
public struct LoggedEvent: Sendable {
    public let type: EventType
    public let eventId: Int64
    public let tenantId: String
    public let conversationId: String
    public let data: [UInt8]
    /// For conversation events: who participates, so that "all my conversations" streams learn of new ones.
    public let participantIds: [String]?

    public init(type: EventType, eventId: Int64, tenantId: String, conversationId: String, data: [UInt8], participantIds: [String]? = nil) {
        self.type = type
        self.eventId = eventId
        self.tenantId = tenantId
        self.conversationId = conversationId
        self.data = data
        self.participantIds = participantIds
    }
}

public struct ChatEvent: Sendable {
    public let type: EventType
    /// Position in the event log; nil for ephemeral events.
    public let eventId: Int64?
    public let tenantId: String
    public let conversationId: String
    /// For conversation events: who participates, so that "all my conversations" streams learn of new ones.
    public let participantIds: [String]?
    /// `{"type","eventId","room","conversationId","data"}` as UTF-8 JSON (a WebSocket text frame's payload; a view
    /// into `webSocketFrame`, sharing its bytes).
    public let envelope: ByteBuffer
    /// The envelope as one complete WebSocket text frame, header included. A server's frames are unmasked, so these
    /// bytes are the same for every recipient: written as they are to each socket, never framed again.
    public let webSocketFrame: ByteBuffer
    /// The `id:` and `event:` lines and `data: ` that begin this event's Server-Sent Events message. Only these few
    /// bytes are SSE's own: the message is them, the shared envelope and a blank line (see `sseMessage`).
    public let ssePrefix: ByteBuffer

    public init(type: EventType, eventId: Int64?, tenantId: String, conversationId: String, data: [UInt8], participantIds: [String]? = nil) {
        let envelope = EventEnvelope.encode(type: type, eventId: eventId, tenantId: tenantId, conversationId: conversationId, data: data)
        self.init(type: type, eventId: eventId, tenantId: tenantId, conversationId: conversationId, envelope: envelope, participantIds: participantIds)
    }

    /// A logged event, framed for the transports.
    public init(_ logged: LoggedEvent) {
        self.init(
            type: logged.type, eventId: logged.eventId, tenantId: logged.tenantId, conversationId: logged.conversationId, data: logged.data,
            participantIds: logged.participantIds)
    }

    /// An event around an envelope encoded elsewhere (an ephemeral event relayed by another node).
    public init(type: EventType, eventId: Int64?, tenantId: String, conversationId: String, envelope: [UInt8], participantIds: [String]? = nil) {
        self.type = type
        self.eventId = eventId
        self.tenantId = tenantId
        self.conversationId = conversationId
        self.participantIds = participantIds
        let frame = WebSocketFraming.frame(opcode: WebSocketFraming.text, payload: envelope)
        self.webSocketFrame = frame
        self.envelope = frame.getSlice(at: frame.readerIndex + frame.readableBytes - envelope.count, length: envelope.count)!
        var prefix = ByteBuffer()
        prefix.reserveCapacity(48)
        if let eventId { prefix.writeString("id: \(eventId)\n") }
        prefix.writeString("event: \(type.rawValue)\ndata: ")
        self.ssePrefix = prefix
    }

    /// The event as one Server-Sent Events message, built from bytes the event already holds.
    public var sseMessage: SSEMessage { SSEMessage(head: ssePrefix, data: envelope) }

    /// `tenantId:conversationId`, the room every transport and the hub key on.
    public var room: String { RoomKey.make(tenantId: tenantId, conversationId: conversationId) }
}

/// One Server-Sent Events message as the stream writes it: `head`, then (when there is one) the `data` line's value
/// and the blank line that ends the message. An event's message keeps its envelope where the WebSocket frame has
/// it, so the log's recent events hold each envelope once (a copy per transport was ~1 KB per event in W1).
public struct SSEMessage: Sendable {
    public let head: ByteBuffer
    public let data: ByteBuffer?

    public init(head: ByteBuffer, data: ByteBuffer?) {
        self.head = head
        self.data = data
    }

    /// Bytes of the stream's own (a comment, the `retry:` preamble), written as they are.
    public init(raw: ByteBuffer) {
        self.init(head: raw, data: nil)
    }

    public var byteCount: Int { head.readableBytes + (data.map { $0.readableBytes + 2 } ?? 0) }

    public func write(to buffer: inout ByteBuffer) {
        var head = head
        buffer.writeBuffer(&head)
        if var data {
            buffer.writeBuffer(&data)
            buffer.writeStaticString("\n\n")
        }
    }
}

/// Server-to-client WebSocket frames (RFC 6455 section 5.2): FIN set, no mask, the payload after a 2-, 4- or
/// 10-byte header. Built here so that an event is framed once, however many sockets it goes to.
public enum WebSocketFraming {
    public static let text: UInt8 = 0x1
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xA

    public static func frame(opcode: UInt8, payload: some Collection<UInt8>) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(payload.count + 10)
        writeHeader(opcode: opcode, length: payload.count, to: &buffer)
        buffer.writeBytes(payload)
        return buffer
    }

    public static func frame(opcode: UInt8, payload: ByteBuffer) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(payload.readableBytes + 10)
        writeHeader(opcode: opcode, length: payload.readableBytes, to: &buffer)
        var payload = payload
        buffer.writeBuffer(&payload)
        return buffer
    }

    static func writeHeader(opcode: UInt8, length: Int, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0x80 | opcode))
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= 0xFFFF {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
    }
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
        JSONText.appendRaw(#"{"type":"#, to: &out)
        JSONText.appendString(type.rawValue, to: &out)
        JSONText.appendRaw(#","eventId":"#, to: &out)
        if let eventId {
            out.append(UInt8(ascii: "\""))
            JSONText.appendInteger(eventId, to: &out)
            out.append(UInt8(ascii: "\""))
        } else {
            JSONText.appendRaw("null", to: &out)
        }
        JSONText.appendRaw(#","room":"#, to: &out)
        JSONText.appendString(tenantId + ":" + conversationId, to: &out)
        JSONText.appendRaw(#","conversationId":"#, to: &out)
        JSONText.appendString(conversationId, to: &out)
        JSONText.appendRaw(#","data":"#, to: &out)
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

    /// Appends `text` as a quoted JSON string. Runs of bytes that need no escaping are copied at once (the common
    /// case is a whole string: history pages spent most of their time appending byte by byte).
    public static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let b = bytes[index]
                if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") { continue }
                if index > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index])) }
                runStart = index + 1
                out.append(92)
                switch b {
                case UInt8(ascii: "\""): out.append(34)
                case UInt8(ascii: "\\"): out.append(92)
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    let hex: StaticString = "0123456789abcdef"
                    out.append(UInt8(ascii: "u")); out.append(48); out.append(48)
                    out.append(hex.utf8Start[Int(b >> 4)]); out.append(hex.utf8Start[Int(b & 15)])
                }
            }
            if bytes.count > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count])) }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends the decimal digits of `value`.
    public static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value >= 0 && value < 10 {
            out.append(48 + UInt8(value))
            return
        }
        var text = String(value)
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendRaw(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}

extension JSONText {
    /// A message as JSON, written by hand on the hot path (every send); the same bytes, keys sorted, as the shared
    /// encoder produces (a test compares them).
    public static func message(_ m: Message) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(m.content.utf8.count + 420)
        appendMessage(m, to: &out)
        return out
    }

    /// Appends a message's JSON (see `message(_:)`).
    public static func appendMessage(_ m: Message, to out: inout [UInt8]) {
        appendRaw(#"{"attachments":["#, to: &out)
        for (index, a) in m.attachments.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendRaw(#"{"contentType":"#, to: &out)
            appendString(a.contentType, to: &out)
            appendRaw(#","id":"#, to: &out)
            appendString(a.id, to: &out)
            appendRaw(#","name":"#, to: &out)
            appendString(a.name, to: &out)
            appendRaw(#","size":"#, to: &out)
            appendInteger(Int64(a.size), to: &out)
            out.append(UInt8(ascii: "}"))
        }
        appendRaw(#"],"clientMessageId":"#, to: &out)
        optional(m.clientMessageId, to: &out)
        appendRaw(#","content":"#, to: &out)
        appendString(m.content, to: &out)
        appendRaw(#","conversationId":"#, to: &out)
        appendString(m.conversationId, to: &out)
        appendRaw(#","createdAt":"#, to: &out)
        timestamp(m.createdAt, to: &out)
        appendRaw(#","deletedAt":"#, to: &out)
        timestamp(m.deletedAt, to: &out)
        appendRaw(#","editedAt":"#, to: &out)
        timestamp(m.editedAt, to: &out)
        appendRaw(#","id":"#, to: &out)
        appendString(m.id, to: &out)
        appendRaw(#","mentions":["#, to: &out)
        for (index, id) in m.mentions.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(id, to: &out)
        }
        appendRaw(#"],"reactions":["#, to: &out)
        for (index, reaction) in m.reactions.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendReaction(reaction, to: &out)
        }
        appendRaw(#"],"replyCount":"#, to: &out)
        appendInteger(Int64(m.replyCount), to: &out)
        appendRaw(#","sender":"#, to: &out)
        user(m.sender, to: &out)
        appendRaw(#","senderId":"#, to: &out)
        appendString(m.senderId, to: &out)
        appendRaw(#","seq":"#, to: &out)
        appendInteger(m.seq, to: &out)
        appendRaw(#","tenantId":"#, to: &out)
        appendString(m.tenantId, to: &out)
        appendRaw(#","threadParentId":"#, to: &out)
        optional(m.threadParentId, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The body of `GET /api/chat/:id/messages`: `{"messages":[…],"nextCursor":…}`.
    public static func messagePage(_ page: MessagePage) -> [UInt8] {
        pageBody("messages", page.messages, nextCursor: page.nextCursor, reserve: page.messages.reduce(64) { $0 + $1.content.utf8.count + 420 }) {
            appendMessage($0, to: &$1)
        }
    }

    /// `{"<key>":[…],"nextCursor":…}`, each item written by `append`.
    static func pageBody<Item>(
        _ key: StaticString, _ items: [Item], nextCursor: String?, reserve: Int, _ append: (Item, inout [UInt8]) -> Void
    ) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(reserve)
        appendRaw(#"{""#, to: &out)
        appendRaw(key, to: &out)
        appendRaw(#"":["#, to: &out)
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            append(item, &out)
        }
        appendRaw(#"],"nextCursor":"#, to: &out)
        optional(nextCursor, to: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// A conversation's JSON, written by hand for listings; the same bytes as the shared encoder (a test compares).
    public static func appendConversation(_ c: Conversation, to out: inout [UInt8]) {
        appendRaw(#"{"closedAt":"#, to: &out)
        timestamp(c.closedAt, to: &out)
        appendRaw(#","createdAt":"#, to: &out)
        timestamp(c.createdAt, to: &out)
        appendRaw(#","createdBy":"#, to: &out)
        appendString(c.createdBy, to: &out)
        appendRaw(#","id":"#, to: &out)
        appendString(c.id, to: &out)
        appendRaw(#","lastMessageAt":"#, to: &out)
        timestamp(c.lastMessageAt, to: &out)
        appendRaw(#","lastSeq":"#, to: &out)
        appendInteger(c.lastSeq, to: &out)
        appendRaw(#","mentionCount":"#, to: &out)
        appendInteger(Int64(c.mentionCount), to: &out)
        appendRaw(#","participantCount":"#, to: &out)
        appendInteger(Int64(c.participantCount), to: &out)
        appendRaw(#","participants":["#, to: &out)
        for (index, participant) in c.participants.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            user(participant, to: &out)
        }
        appendRaw(#"],"tenantId":"#, to: &out)
        appendString(c.tenantId, to: &out)
        appendRaw(#","title":"#, to: &out)
        appendString(c.title, to: &out)
        appendRaw(#","unreadCount":"#, to: &out)
        appendInteger(Int64(c.unreadCount), to: &out)
        appendRaw(#","updatedAt":"#, to: &out)
        timestamp(c.updatedAt, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    /// The body of `GET /api/chat/conversations`: `{"conversations":[…],"nextCursor":…}`.
    public static func conversationPage(_ page: ConversationPage) -> [UInt8] {
        pageBody(
            "conversations", page.conversations, nextCursor: page.nextCursor,
            reserve: page.conversations.reduce(64) { $0 + 400 + $1.participants.count * 120 }
        ) { appendConversation($0, to: &$1) }
    }

    static func appendReaction(_ r: Reaction, to out: inout [UInt8]) {
        appendRaw(#"{"count":"#, to: &out)
        appendInteger(Int64(r.count), to: &out)
        appendRaw(#","emoji":"#, to: &out)
        appendString(r.emoji, to: &out)
        appendRaw(#","userIds":["#, to: &out)
        for (index, id) in r.userIds.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            appendString(id, to: &out)
        }
        appendRaw("]}", to: &out)
    }

    static func user(_ u: User, to out: inout [UInt8]) {
        appendRaw(#"{"displayName":"#, to: &out)
        appendString(u.displayName, to: &out)
        appendRaw(#","id":"#, to: &out)
        appendString(u.id, to: &out)
        appendRaw(u.isBot ? #","isBot":true,"tenantId":"# : #","isBot":false,"tenantId":"#, to: &out)
        appendString(u.tenantId, to: &out)
        appendRaw(#","username":"#, to: &out)
        appendString(u.username, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    static func optional(_ text: String?, to out: inout [UInt8]) {
        if let text { appendString(text, to: &out) } else { appendRaw("null", to: &out) }
    }

    /// A quoted RFC 3339 time, or null. Its characters never need escaping.
    static func timestamp(_ time: Timestamp?, to out: inout [UInt8]) {
        guard let time else { return appendRaw("null", to: &out) }
        out.append(UInt8(ascii: "\""))
        time.appendRFC3339(to: &out)
        out.append(UInt8(ascii: "\""))
    }
}

/// The opaque cursor of API.md: the decimal id of an event-log row.
public enum EventCursor {
    /// Parses a cursor a client sent (event cursors and history `before` cursors alike); nil when it is not one we
    /// could have issued. 18 digits always fit an Int64, so every string the pattern allows parses.
    public static func parse(_ text: String) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int64(text)
    }

    /// `parse` as a JSON Schema pattern, for the OpenAPI document.
    public static let pattern = "^[0-9]{1,18}$"

    public static func format(_ id: Int64) -> String { String(id) }
}

/// The `data` of events whose payload is not a whole domain object, written in one place for every store.
public enum EventPayload {
    /// `{"status","userId"}`
    public static func presence(userId: String, status: PresenceStatus) -> [UInt8] {
        var data: [UInt8] = Array(#"{"status":"#.utf8)
        JSONText.appendString(status.rawValue, to: &data)
        data += Array(#","userId":"#.utf8)
        JSONText.appendString(userId, to: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }

    /// `{"userId","messageId","seq"}`
    public static func readReceipt(userId: String, messageId: String, seq: Int64) -> [UInt8] {
        var data: [UInt8] = Array(#"{"userId":"#.utf8)
        JSONText.appendString(userId, to: &data)
        data += Array(#","messageId":"#.utf8)
        JSONText.appendString(messageId, to: &data)
        data += Array(#","seq":\#(seq)}"#.utf8)
        return data
    }

    /// `{"emoji","messageId","reactions":[…],"threadParentId","userId"}`
    public static func reaction(messageId: String, threadParentId: String?, emoji: String, userId: String, reactions: [Reaction]) -> [UInt8] {
        var data: [UInt8] = Array(#"{"emoji":"#.utf8)
        JSONText.appendString(emoji, to: &data)
        data += Array(#","messageId":"#.utf8)
        JSONText.appendString(messageId, to: &data)
        data += Array(#","reactions":["#.utf8)
        for (index, reaction) in reactions.enumerated() {
            if index > 0 { data.append(UInt8(ascii: ",")) }
            JSONText.appendReaction(reaction, to: &data)
        }
        data += Array(#"],"threadParentId":"#.utf8)
        if let threadParentId { JSONText.appendString(threadParentId, to: &data) } else { data += Array("null".utf8) }
        data += Array(#","userId":"#.utf8)
        JSONText.appendString(userId, to: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }

    /// `{"agentId","displayName","triggerMessageId","threadParentId","text","done"}`
    public static func agentProgress(agent: User, triggerMessageId: String, threadParentId: String?, text: String, done: Bool) -> [UInt8] {
        var data: [UInt8] = Array(#"{"agentId":"#.utf8)
        JSONText.appendString(agent.id, to: &data)
        data += Array(#","displayName":"#.utf8)
        JSONText.appendString(agent.displayName, to: &data)
        data += Array(#","done":"#.utf8)
        data += Array((done ? "true" : "false").utf8)
        data += Array(#","text":"#.utf8)
        JSONText.appendString(text, to: &data)
        data += Array(#","threadParentId":"#.utf8)
        if let threadParentId { JSONText.appendString(threadParentId, to: &data) } else { data += Array("null".utf8) }
        data += Array(#","triggerMessageId":"#.utf8)
        JSONText.appendString(triggerMessageId, to: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }

    /// `{"userId","displayName"}`
    public static func typing(userId: String, displayName: String) -> [UInt8] {
        var data: [UInt8] = Array(#"{"userId":"#.utf8)
        JSONText.appendString(userId, to: &data)
        data += Array(#","displayName":"#.utf8)
        JSONText.appendString(displayName, to: &data)
        data.append(UInt8(ascii: "}"))
        return data
    }
}
