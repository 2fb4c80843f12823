import ChatCore
import CompressNIO
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// The three realtime transports, all reading the same event log through `EventFeed`:
/// WebSocket `/api/chat/ws`, Server-Sent Events `/api/chat/events`, long-poll `/api/chat/poll`.
struct RealtimeController {
    let chat: ChatService
    let auth: AuthService
    let origins: OriginPolicy
    let settings: RealtimeSettings
    let connections: LiveConnections

    func addRoutes(to router: Router<ChatRequestContext>) {
        let shared = WebSocketServices(chat: chat, settings: settings, connections: connections, revocations: auth.revocations)
        // Reached by an upgrade request (through the router, from `ChatServerChannel`) and by a plain GET.
        router.get("api/chat/ws") { request, context -> Response in
            let principal = try context.requirePrincipal()
            try connections.admitNewConnection()
            // A plain GET reaches this route too: it gets 400, not an empty 200.
            guard request.headers[.upgrade]?.lowercased().contains("websocket") == true, let slot = context.upgradeSlot else {
                throw ChatError.badRequest("Open this URL as a WebSocket (Upgrade: websocket).", code: "websocket_upgrade_required")
            }
            // A browser sends its cookie with any cross-site WebSocket: refuse foreign origins (CSWSH).
            if principal.method == .session, !origins.isSameSiteOrAllowed(request, client: context.client) {
                throw ChatError(.forbidden, "origin_rejected", "Cross-site WebSocket upgrades are not allowed.")
            }
            let outbox = WebSocketOutbox(capacity: settings.queueCapacity, maxBytes: settings.queueBytes, eventLoop: context.channel.eventLoop)
            let session = WebSocketSession(shared: shared, principal: principal, outbox: outbox, channel: context.channel, requestId: context.requestId)
            slot.accept(WebSocketAcceptance(session: session))
            return Response(status: .ok)
        }
        router.get("api/chat/events", use: events)
        router.get("api/chat/poll", use: poll)
    }

    // MARK: Server-Sent Events

    @Sendable func events(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try connections.admitNewConnection()
        let query = request.uri.queryParameters
        let conversationId = query.get("conversationId")
        let scope: EventFeed.Scope = conversationId.map { .conversation($0) } ?? .allConversations
        if let conversationId { try await chat.requireParticipant(principal, conversationId: conversationId) }
        let cursorText = request.headers[.lastEventID] ?? query.get("lastEventId")
        let cursor = try cursorText.map(Self.parseCursor)

        let settings = self.settings
        let auth = self.auth
        let chat = self.chat
        let channel = context.channel
        let connections = self.connections
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-cache"
        headers[.xAccelBuffering] = "no"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await connections.withClientQueue(
                capacity: settings.queueCapacity, maxBytes: settings.queueBytes, channel: channel, principal: principal, revocations: auth.revocations
            ) { queue in
                let presence = chat.presence.connect(principal)
                defer { presence.end() }
                let feed = EventFeed(
                    chat: chat, principal: principal, scope: scope,
                    pace: { await queue.waitForRoom(atMost: max(0, settings.queueCapacity / 2 - 500)) }
                ) { item in
                    switch item {
                    case .event(let event): return queue.push(event.sseMessage)
                    case .resyncRequired(let id):
                        return queue.push(SSEMessage(
                            head: ByteBuffer(string: "event: resync_required\ndata: "), data: ControlFrame.resyncRequired(conversationId: id)))
                    case .overflow:
                        queue.close(.overflow)
                        return false
                    case .removed:
                        // The stream's one conversation is no longer the user's: end it after the removal event.
                        queue.close(.finished)
                        return false
                    }
                }
                defer { feed.stop() }

                try await request.body.consumeWithInboundCloseHandler { _ in
                    try await withGracefulShutdownHandler {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                // The preamble goes out once the stream is subscribed: nothing committed later is missed.
                                let preamble = SSEMessage(raw: ByteBuffer(string: "retry: \(settings.sseRetryMilliseconds)\n: connected\n\n"))
                                do { try await feed.start(after: cursor) { queue.push(preamble) } } catch { queue.close(.finished) }
                            }
                            // Heartbeat and session expiry are timers on the stream's event loop, not sleeping tasks:
                            // thousands of open streams then cost no task stacks for them.
                            let heartbeat = TimeAmount.seconds(Int64(settings.sseHeartbeatSeconds))
                            let keepalive = channel.eventLoop.scheduleRepeatedTask(initialDelay: heartbeat, delay: heartbeat) { task in
                                if !queue.push(SSEMessage(raw: ByteBuffer(string: ": keepalive\n\n"))) { task.cancel() }
                            }
                            let remaining = principal.expiresAt.milliseconds - Timestamp.now().milliseconds
                            let expiry = channel.eventLoop.scheduleTask(in: .milliseconds(max(0, remaining))) { queue.close(.expired) }
                            defer {
                                keepalive.cancel()
                                expiry.cancel()
                                group.cancelAll()
                            }
                            // The writer: everything queued goes out in one write (one flush), until the queue closes.
                            while true {
                                let (items, closed) = await queue.take()
                                if !items.isEmpty {
                                    var batch = ByteBuffer()
                                    batch.reserveCapacity(items.reduce(0) { $0 + $1.byteCount })
                                    for item in items { item.write(to: &batch) }
                                    try await writer.write(batch)
                                }
                                if closed != nil { break }
                            }
                        }
                    } onGracefulShutdown: {
                        queue.close(.shutdown)
                    }
                } onInboundClosed: {
                    queue.close(.finished)
                }
            }
            try await writer.finish(nil)
        })
    }

    // MARK: Long-poll

    @Sendable func poll(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try connections.admitNewConnection()
        // Parsed once: `queryParameters` splits the query string again at every use.
        let query = request.uri.queryParameters
        let conversationId = query.get("conversationId")
        let scope: EventFeed.Scope = conversationId.map { .conversation($0) } ?? .allConversations
        var timeout = settings.pollDefaultTimeoutSeconds
        if let text = query.get("timeout") {
            guard let value = Int(text), value >= 0, value <= settings.pollMaxTimeoutSeconds else {
                throw ChatError.badRequest(
                    "`timeout` must be a whole number of seconds from 0 to \(settings.pollMaxTimeoutSeconds).", code: "invalid_timeout")
            }
            timeout = value
        }
        guard let cursorText = query.get("cursor") else {
            // No cursor: the current position, so the next poll starts from now. (With a cursor, the feed checks
            // participation itself.)
            if let conversationId { try await chat.requireParticipant(principal, conversationId: conversationId) }
            return try pollResponse(events: [], cursor: try await chat.currentCursor(principal), request: request)
        }
        let cursor = try Self.parseCursor(cursorText)

        let maxEvents = settings.pollMaxEvents
        let collected = OutboundQueue<FeedItem>(capacity: maxEvents + 1)
        let feed = EventFeed(chat: chat, principal: principal, scope: scope) { item in
            if case .overflow = item { return false }
            collected.push(item)
            return collected.pendingCount < maxEvents
        }
        defer { feed.stop() }
        // A held poll is a live connection; the grace before "offline" covers the moment between two polls.
        let presence = chat.presence.connect(principal)
        defer { presence.end() }
        try await feed.start(after: cursor)

        var items: [FeedItem] = []
        let wait = timeout
        if collected.pendingCount == 0 && wait > 0 {
            // Hold until something arrives or the timeout passes: a timer on the connection's event loop closes the
            // queue (cheaper than a task group with a sleeping child for every held poll).
            let timer = context.channel.eventLoop.scheduleTask(in: .seconds(Int64(wait))) { collected.close(.finished) }
            items = await collected.take().items
            timer.cancel()
        }
        feed.stop()
        collected.close(.finished)
        items += await collected.take().items

        var events: [ByteBuffer] = []
        var newCursor = cursor
        for item in items {
            switch item {
            case .event(let event):
                events.append(event.envelope)
                if let id = event.eventId { newCursor = max(newCursor, id) }
            case .resyncRequired(let id):
                events.append(ControlFrame.resyncRequired(conversationId: id))
                newCursor = max(newCursor, try await chat.currentCursor(principal))
            case .overflow, .removed:
                break
            }
        }
        return try pollResponse(events: events, cursor: newCursor, request: request)
    }

    /// `{"events":[…],"cursor":"…"}`, gzip-compressed when the client accepts it.
    private func pollResponse(events: [ByteBuffer], cursor: Int64, request: Request) throws -> Response {
        var body = ByteBuffer()
        body.reserveCapacity(events.reduce(64) { $0 + $1.readableBytes + 1 })
        body.writeString(#"{"events":["#)
        for (index, var event) in events.enumerated() {
            if index > 0 { body.writeString(",") }
            body.writeBuffer(&event)
        }
        body.writeString(#"],"cursor":""#)
        body.writeString(EventCursor.format(cursor))
        body.writeString(#""}"#)
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.vary] = "Accept-Encoding"
        // API.md: gzip-encoded whenever the request accepts gzip (pooled compressors keep small answers cheap).
        if Self.acceptsGzip(request) {
            body = try Self.gzip.compress(body)
            headers[.contentEncoding] = "gzip"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    static let gzip = GzipPool()

    static func acceptsGzip(_ request: Request) -> Bool {
        guard let accept = request.headers[.acceptEncoding] else { return false }
        return acceptsGzip(accept)
    }

    /// `Accept-Encoding` allows gzip: `gzip` (or else `*`) listed without `q=0`. Read on bytes: this runs for every
    /// poll, and Foundation's string trimming was a measurable share of a request.
    static func acceptsGzip(_ header: String) -> Bool {
        func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
            var slice = bytes
            while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
            while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
            return slice
        }
        var gzip: Bool? = nil, any: Bool? = nil
        for part in Array(header.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
            let pieces = part.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
            guard let name = pieces.first else { continue }
            let coding = String(decoding: trimmed(name), as: UTF8.self).lowercased()
            guard coding == "gzip" || coding == "*" else { continue }
            var allowed = true
            for parameter in pieces.dropFirst() {
                let text = String(decoding: trimmed(parameter).filter { $0 != 0x20 && $0 != 0x09 }, as: UTF8.self).lowercased()
                if text.hasPrefix("q="), let q = Double(text.dropFirst(2)), q <= 0 { allowed = false }
            }
            if coding == "gzip" { gzip = allowed } else { any = allowed }
        }
        return gzip ?? any ?? false
    }

    static func parseCursor(_ text: String) throws -> Int64 {
        guard let cursor = EventCursor.parse(text) else {
            throw ChatError.badRequest("The cursor is not one this server issued.", code: "invalid_cursor")
        }
        return cursor
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    static let xAccelBuffering = HTTPField.Name("X-Accel-Buffering")!
}
