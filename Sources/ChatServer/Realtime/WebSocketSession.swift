import ChatCore
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import ServiceLifecycle

/// One WebSocket connection: joined rooms (one `EventFeed` each), client frames, and a bounded send queue.
///
/// Close codes: 1000 normal; 1001 server shutting down; 1008 flooding or protocol abuse; 1009 message too big
/// (from the WebSocket layer); 4001 the session ended (logout or expiry); 4008 the client read too slowly and its
/// send queue overflowed (resume with `since`).
struct WebSocketSession {
    static let sessionEnded = WebSocketErrorCode.unknown(4001)
    static let slowConsumer = WebSocketErrorCode.unknown(4008)

    let chat: ChatService
    let auth: AuthService
    let principal: Principal
    let settings: RealtimeSettings
    let channel: any Channel
    let connections: LiveConnections
    let logger: Logger

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let channel = self.channel
        // The fan-out fast path: a text frame handed to the connection's event loop by the publishing task, with no
        // task wake-up, while the socket keeps up; otherwise frames queue for the writer task (bounded).
        // Frames published together are coalesced per event loop (one hop per loop, one flush per socket).
        let loopWriter = LoopWriter.of(channel.eventLoop)
        let fastPath: @Sendable (ByteBuffer) -> Bool = { buffer in
            guard channel.isWritable, channel.isActive else { return false }
            loopWriter.writeText(buffer, to: channel)
            return true
        }
        await connections.withClientQueue(
            capacity: settings.queueCapacity, maxBytes: settings.queueBytes, channel: channel, principal: principal, revocations: auth.revocations, fastPath: fastPath
        ) { queue in
            await run(queue: queue, inbound: inbound, outbound: outbound)
        }
    }

    private func run(queue: OutboundQueue<ByteBuffer>, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        // The session's expiry is a timer on the event loop, not a sleeping task per connection (idle memory).
        let remaining = max(0, principal.expiresAt.milliseconds - Timestamp.now().milliseconds)
        let expiry = channel.eventLoop.scheduleTask(in: .milliseconds(remaining)) { queue.close(.expired) }
        defer { expiry.cancel() }
        await withGracefulShutdownHandler {
            // The reader is the one child task; the writer runs on the connection's own task (one task less per
            // socket: idle memory). Every way out closes the queue; the writer then sends the close frame and ends,
            // and only then is the reader cancelled.
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    await readLoop(queue: queue, inbound: inbound)
                }
                await writeLoop(queue: queue, outbound: outbound)
                group.cancelAll()
            }
        } onGracefulShutdown: {
            queue.close(.shutdown)
        }
    }

    private func writeLoop(queue: OutboundQueue<ByteBuffer>, outbound: WebSocketOutboundWriter) async {
        do {
            while true {
                let (items, closed) = await queue.take()
                for item in items {
                    try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: item)))
                }
                if let closed {
                    let (code, reason): (WebSocketErrorCode, String) = switch closed {
                    case .overflow: (Self.slowConsumer, "send queue overflow; resume from your last eventId")
                    case .revoked: (Self.sessionEnded, "signed out")
                    case .expired: (Self.sessionEnded, "session expired")
                    case .shutdown: (.goingAway, "server shutting down")
                    case .policy: (.policyViolation, "too many frames")
                    case .finished: (.normalClosure, "")
                    }
                    try? await outbound.close(code, reason: reason)
                    return
                }
            }
        } catch {
            queue.close(.finished)
        }
    }

    private func readLoop(queue: OutboundQueue<ByteBuffer>, inbound: WebSocketInboundStream) async {
        var rooms: [String: EventFeed] = [:]
        var limiter = FrameRateLimiter(rate: settings.framesPerSecond, burst: settings.frameBurst)
        var violations = 0
        defer { for feed in rooms.values { feed.stop() } }
        do {
            for try await message in inbound.messages(maxSize: settings.maxFrameBytes) {
                guard limiter.allow() else {
                    violations += 1
                    if violations > settings.floodTolerance {
                        queue.close(.policy)
                        return
                    }
                    ChatMetrics.framesRateLimited.increment()
                    queue.push(ControlFrame.error(code: "rate_limited", message: "Too many frames; slow down."))
                    continue
                }
                guard case .text(let text) = message else {
                    queue.push(ControlFrame.error(code: "invalid_frame", message: "Send JSON text frames."))
                    continue
                }
                await handle(text, queue: queue, rooms: &rooms)
            }
            queue.close(.finished)
        } catch {
            queue.close(.finished)
        }
    }

    private func handle(_ text: String, queue: OutboundQueue<ByteBuffer>, rooms: inout [String: EventFeed]) async {
        let frame: ClientFrame
        do {
            frame = try ClientFrame.decode(text)
        } catch {
            queue.push(ControlFrame.error(code: "invalid_frame", message: "The frame is not a JSON object of a known shape."))
            return
        }
        do {
            switch frame.type {
            case "join_room":
                let conversationId = try required(frame.conversationId, "conversationId")
                let since = try frame.since.map { try RealtimeController.parseCursor($0.value) }
                if let existing = rooms.removeValue(forKey: conversationId) { existing.stop() }
                guard rooms.count < settings.maxRoomsPerSocket else {
                    throw ChatError.badRequest("At most \(settings.maxRoomsPerSocket) rooms per connection.", code: "too_many_rooms")
                }
                let feed = makeFeed(scope: .conversation(conversationId), queue: queue)
                rooms[conversationId] = feed
                // `joined` goes out only once the room is subscribed: anything committed after it reaches the client.
                let joined = ControlFrame.joined(conversationId: conversationId, tenantId: principal.tenantId)
                try await feed.start(after: since) { queue.push(joined) }
            case "join_all":
                // Extension: follow every conversation of the user, including ones created later (what SSE does
                // without `conversationId`). Pages use it to keep their conversation list live.
                let since = try frame.since.map { try RealtimeController.parseCursor($0.value) }
                rooms.removeValue(forKey: "*")?.stop()
                let feed = makeFeed(scope: .allConversations, queue: queue)
                rooms["*"] = feed
                let joined = ControlFrame.object([("type", "joined"), ("conversationId", nil), ("room", principal.tenantId + ":*")])
                try await feed.start(after: since) { queue.push(joined) }
            case "leave_room":
                let conversationId = try required(frame.conversationId, "conversationId")
                rooms.removeValue(forKey: conversationId)?.stop()
                queue.push(ControlFrame.left(conversationId: conversationId))
            case "new_message":
                do {
                    let (message, _) = try await chat.send(
                        principal, conversationId: try required(frame.conversationId, "conversationId"),
                        content: try required(frame.content, "content"), threadParentId: frame.threadParentId,
                        clientMessageId: frame.clientMessageId)
                    queue.push(try ControlFrame.ack(clientMessageId: frame.clientMessageId, message: message))
                } catch let error as ChatError {
                    queue.push(ControlFrame.error(code: error.code, message: error.message, conversationId: frame.conversationId, clientMessageId: frame.clientMessageId))
                }
            case "typing":
                try await chat.typing(principal, conversationId: try required(frame.conversationId, "conversationId"))
            case "read_receipt":
                try await chat.markRead(
                    principal, conversationId: try required(frame.conversationId, "conversationId"),
                    messageId: try required(frame.messageId, "messageId"))
            default:
                throw ChatError.badRequest("Unknown frame type.", code: "unknown_type")
            }
        } catch let error as ChatError {
            if frame.type == "join_room", let id = frame.conversationId { rooms.removeValue(forKey: id)?.stop() }
            queue.push(ControlFrame.error(code: error.code, message: error.message, conversationId: frame.conversationId))
        } catch {
            logger.error("websocket frame failed", metadata: ["error": "\(error)"])
            queue.push(ControlFrame.error(code: "internal_error", message: "Something went wrong on the server.", conversationId: frame.conversationId))
        }
    }

    private func makeFeed(scope: EventFeed.Scope, queue: OutboundQueue<ByteBuffer>) -> EventFeed {
        let replayRoom = max(0, settings.queueCapacity / 2 - 500)
        return EventFeed(
            chat: chat, principal: principal, scope: scope,
            pace: { await queue.waitForRoom(atMost: replayRoom) }
        ) { item in
            switch item {
            case .event(let event): return queue.push(event.envelope)
            case .resyncRequired(let id): return queue.push(ControlFrame.resyncRequired(conversationId: id))
            case .overflow:
                queue.close(.overflow)
                return false
            }
        }
    }

    private func required(_ value: String?, _ name: String) throws -> String {
        guard let value else { throw ChatError.badRequest("`\(name)` is required.", code: "missing_field") }
        return value
    }
}
