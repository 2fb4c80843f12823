import ChatCore
import Foundation
import Logging
import NIOCore
import Synchronization

/// What every WebSocket of the server shares, held by reference: a copy of the settings alone was ~100 bytes of
/// every socket.
final class WebSocketServices: Sendable {
    let chat: ChatService
    let settings: RealtimeSettings
    let connections: LiveConnections
    let revocations: RevocationCenter

    init(chat: ChatService, settings: RealtimeSettings, connections: LiveConnections, revocations: RevocationCenter) {
        self.chat = chat
        self.settings = settings
        self.connections = connections
        self.revocations = revocations
    }
}

/// The chat side of one WebSocket: joined rooms (one `EventFeed` each) and the client's frames, handled one at a time
/// and in order, on a task that exists only while frames wait: an idle socket holds no task (memory per connection).
/// Everything it sends goes through the connection's outbox.
final class WebSocketSession: Sendable {
    private struct State {
        var inbox: [String] = []
        /// Reading from the socket is paused until the inbox is worked down.
        var paused = false
        var running = false
        var stopped = false
        /// Joined rooms by key (a conversation id, or "*" for all): a short list, as most sockets join one room
        /// (a dictionary of one entry was ~120 bytes of every socket).
        var rooms: [(key: String, feed: EventFeed)] = []

        mutating func removeRoom(_ key: String) -> EventFeed? {
            guard let index = rooms.firstIndex(where: { $0.key == key }) else { return nil }
            return rooms.remove(at: index).feed
        }
    }

    let shared: WebSocketServices
    var chat: ChatService { shared.chat }
    var settings: RealtimeSettings { shared.settings }
    let principal: Principal
    let outbox: WebSocketOutbox
    /// The upgrade request's id, for the rare log line: the request's own logger (its metadata dictionary and storage,
    /// ~800 bytes) is not kept for the life of every socket.
    let requestId: String?
    private static let logger = Logger(label: "chat-server.websocket")
    /// The connection: its reading is paused while too many frames wait (a slow store must not queue a client's
    /// frames without bound; TCP then pushes back on the client).
    let channel: any Channel
    private let state = Mutex(State())
    /// The connection counts toward its person's presence until it closes.
    private let presence: PresenceTracker.Connection
    static let inboxHigh = 32
    static let inboxLow = 8

    init(shared: WebSocketServices, principal: Principal, outbox: WebSocketOutbox, channel: any Channel, requestId: String?) {
        self.shared = shared
        self.principal = principal
        self.outbox = outbox
        self.channel = channel
        self.requestId = requestId
        self.presence = shared.chat.presence.connect(principal)
    }

    /// Takes a text frame from the connection (on its event loop); frames are handled in arrival order.
    func receive(_ text: String) {
        let (start, pause) = state.withLock { s -> (Bool, Bool) in
            guard !s.stopped else { return (false, false) }
            s.inbox.append(text)
            let pause = !s.paused && s.inbox.count >= Self.inboxHigh
            if pause { s.paused = true }
            if s.running { return (false, pause) }
            s.running = true
            return (true, pause)
        }
        if pause { channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
        if start { Task { await self.drainInbox() } }
    }

    private func drainInbox() async {
        while let (text, resume) = state.withLock({ s -> (String, Bool)? in
            guard !s.stopped, !s.inbox.isEmpty else {
                s.running = false
                return nil
            }
            let text = s.inbox.removeFirst()
            let resume = s.paused && s.inbox.count <= Self.inboxLow
            if resume { s.paused = false }
            return (text, resume)
        }) {
            if resume { channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in } }
            await handle(text)
        }
    }

    /// Leaves every room; frames still waiting are dropped.
    func stop() {
        let feeds = state.withLock { s -> [EventFeed] in
            if !s.stopped { presence.end() }
            s.stopped = true
            s.inbox = []
            defer { s.rooms = [] }
            return s.rooms.map(\.feed)
        }
        for feed in feeds { feed.stop() }
    }

    private func handle(_ text: String) async {
        let frame: ClientFrame
        do {
            frame = try ClientFrame.decode(text)
        } catch {
            outbox.push(text: ControlFrame.error(code: "invalid_frame", message: "The frame is not a JSON object of a known shape."))
            return
        }
        do {
            switch frame.type {
            case "join_room":
                let conversationId = try required(frame.conversationId, "conversationId")
                let since = try frame.since.map { try RealtimeController.parseCursor($0.value) }
                leave(conversationId)
                guard roomCount < settings.maxRoomsPerSocket else {
                    throw ChatError.badRequest("At most \(settings.maxRoomsPerSocket) rooms per connection.", code: "too_many_rooms")
                }
                let feed = makeFeed(scope: .conversation(conversationId))
                guard enter(conversationId, feed) else { return }
                // `joined` goes out only once the room is subscribed: anything committed after it reaches the client.
                let joined = ControlFrame.joined(conversationId: conversationId, tenantId: principal.tenantId)
                let outbox = self.outbox
                try await feed.start(after: since) { outbox.push(text: joined) }
            case "join_all":
                // Extension: follow every conversation of the user, including ones created later (what SSE does
                // without `conversationId`). Pages use it to keep their conversation list live.
                let since = try frame.since.map { try RealtimeController.parseCursor($0.value) }
                leave("*")
                let feed = makeFeed(scope: .allConversations)
                guard enter("*", feed) else { return }
                let joined = ControlFrame.object([("type", "joined"), ("conversationId", nil), ("room", principal.tenantId + ":*")])
                let outbox = self.outbox
                try await feed.start(after: since) { outbox.push(text: joined) }
            case "leave_room":
                let conversationId = try required(frame.conversationId, "conversationId")
                leave(conversationId)
                outbox.push(text: ControlFrame.left(conversationId: conversationId))
            case "new_message":
                do {
                    let sent = try await chat.sendEncoded(
                        principal, conversationId: try required(frame.conversationId, "conversationId"),
                        content: try required(frame.content, "content"), threadParentId: frame.threadParentId,
                        clientMessageId: frame.clientMessageId)
                    outbox.push(text: ControlFrame.ack(clientMessageId: frame.clientMessageId, message: sent.message, encoded: sent.json))
                } catch let error as ChatError {
                    outbox.push(text: ControlFrame.error(
                        code: error.code, message: error.message, conversationId: frame.conversationId, clientMessageId: frame.clientMessageId))
                }
            case "typing":
                try await chat.typing(principal, conversationId: try required(frame.conversationId, "conversationId"))
            case "presence":
                presence.setAway(try PresenceInput.away(try required(frame.status, "status")))
            case "read_receipt":
                try await chat.markRead(
                    principal, conversationId: try required(frame.conversationId, "conversationId"),
                    messageId: try required(frame.messageId, "messageId"))
            default:
                throw ChatError.badRequest("Unknown frame type.", code: "unknown_type")
            }
        } catch let error as ChatError {
            if frame.type == "join_room", let id = frame.conversationId { leave(id) }
            outbox.push(text: ControlFrame.error(code: error.code, message: error.message, conversationId: frame.conversationId))
        } catch {
            Self.logger.error("websocket frame failed", metadata: ["error": "\(error)", "request_id": .string(requestId ?? "")])
            outbox.push(text: ControlFrame.error(code: "internal_error", message: "Something went wrong on the server.", conversationId: frame.conversationId))
        }
    }

    private var roomCount: Int { state.withLock { $0.rooms.count } }

    /// Registers a room's feed; false (and the feed stopped) when the connection has ended meanwhile.
    private func enter(_ key: String, _ feed: EventFeed) -> Bool {
        let kept = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            _ = s.removeRoom(key)
            s.rooms.append((key, feed))
            return true
        }
        if !kept { feed.stop() }
        return kept
    }

    /// Drops a room whose feed has already stopped (called under the feed's lock: must not stop it again).
    private func forget(_ key: String) {
        state.withLock { _ = $0.removeRoom(key) }
    }

    private func leave(_ key: String) {
        state.withLock { $0.removeRoom(key) }?.stop()
    }

    private func makeFeed(scope: EventFeed.Scope) -> EventFeed {
        let replayRoom = max(0, settings.queueCapacity / 2 - 500)
        let outbox = self.outbox
        return EventFeed(
            chat: chat, principal: principal, scope: scope,
            pace: { await outbox.waitForRoom(atMost: replayRoom) }
        ) { [weak self] item in
            switch item {
            case .event(let event): return outbox.push(frame: event.webSocketFrame)
            case .resyncRequired(let id): return outbox.push(text: ControlFrame.resyncRequired(conversationId: id))
            case .overflow:
                outbox.close(.overflow)
                return false
            case .removed(let id):
                // Out of the conversation: the room is left, as if the client had sent `leave_room`.
                self?.forget(id)
                outbox.push(text: ControlFrame.left(conversationId: id))
                return false
            }
        }
    }

    private func required(_ value: String?, _ name: String) throws -> String {
        guard let value else { throw ChatError.badRequest("`\(name)` is required.", code: "missing_field") }
        return value
    }
}
