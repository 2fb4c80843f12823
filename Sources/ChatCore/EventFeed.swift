import Synchronization

/// What a feed hands to its transport.
public enum FeedItem: Sendable {
    case event(ChatEvent)
    /// The cursor is older than the log keeps (or unknown): the client must reload and resume from now.
    case resyncRequired(conversationId: String?)
    /// Live events piled up faster than the transport took them; the feed has stopped.
    case overflow
    /// The user left or was removed from the conversation of a one-conversation feed, which has stopped (after
    /// handing over the `participant_removed` event).
    case removed(conversationId: String)
}

/// One user's durable events from a cursor, then live events: exactly once, in log order, no gap between the
/// replay and the live part. Every transport (WebSocket room, SSE stream, long-poll) reads through one of these.
///
/// It subscribes to the hub *before* reading the log; live events that arrive during the replay wait in a
/// buffer and are released after it, minus those the replay already covered (event ids only grow).
public final class EventFeed: EventSubscriber {
    /// Which conversations the feed follows.
    public enum Scope: Sendable, Equatable {
        /// Every conversation the user participates in, including ones created later.
        case allConversations
        case conversation(String)

        var conversationId: String? {
            if case .conversation(let id) = self { return id }
            return nil
        }
    }

    private struct State {
        var replaying = true
        var buffer: [ChatEvent] = []
        var lastId: Int64 = 0
        /// The conversations followed (every one has a room subscription in `subscriptions`).
        var members: Set<String> = []
        var stopped = false
        var subscriptions: [Subscription] = []
        /// Room subscriptions of an "all my conversations" feed, so that leaving one ends just that one.
        var rooms: [String: Subscription] = [:]
    }

    public let principal: Principal
    public let scope: Scope
    private let chat: ChatService
    private let sink: @Sendable (FeedItem) -> Bool
    private let pace: (@Sendable () async -> Void)?
    private let maxBuffer: Int
    private static let pageSize = 500
    private let state = Mutex(State())

    /// `sink` receives items in order, under the feed's lock: it must only enqueue. Returning false stops the feed.
    /// `pace`, awaited before each replayed page, lets the transport's writer catch up.
    public init(
        chat: ChatService, principal: Principal, scope: Scope, maxBuffer: Int = 10_000,
        pace: (@Sendable () async -> Void)? = nil, sink: @escaping @Sendable (FeedItem) -> Bool
    ) {
        self.chat = chat
        self.principal = principal
        self.scope = scope
        self.maxBuffer = maxBuffer
        self.pace = pace
        self.sink = sink
    }

    /// Subscribes, replays everything after `cursor` (nothing when nil), then goes live.
    /// `onSubscribed` runs once the feed is subscribed and before any event reaches the sink: a transport that
    /// confirms the subscription there (WebSocket `joined`) promises the client nothing committed later is missed.
    /// Throws `not_found` when the user does not participate in the scope's conversation.
    public func start(after cursor: Int64?, onSubscribed: (@Sendable () -> Void)? = nil) async throws {
        switch scope {
        case .allConversations:
            // First the user's own scope (conversations created from now on), then the rooms of those that exist:
            // every event is then visited once per recipient, never once per subscriber of the tenant.
            hold(chat.broker.subscribe(self, to: .user(tenantId: principal.tenantId, userId: principal.userId)))
            follow(try await chat.store.conversationIds(tenantId: principal.tenantId, userId: principal.userId))
        case .conversation(let id):
            try await chat.requireParticipant(principal, conversationId: id)
            hold(chat.broker.subscribe(self, to: .room(tenantId: principal.tenantId, conversationId: id)))
        }
        // The client has everything up to its cursor: a live event at or below it (committed before the cursor was
        // handed out, published only now) must not reach it again.
        if let cursor { state.withLock { $0.lastId = max($0.lastId, cursor) } }
        // Live events wait in the buffer until the replay is done, so this comes before all of them.
        onSubscribed?()
        if let cursor {
            guard try await replay(after: cursor) else { return }
        }
        state.withLock { s in
            s.replaying = false
            let buffered = s.buffer
            s.buffer = []
            for event in buffered { admit(event, &s) }
        }
    }

    /// Hands over everything after `cursor`, in pages at the transport's pace: from the in-memory ring when it covers
    /// the cursor, else from the store (or `resync_required` when the store no longer has it). False once the feed
    /// has stopped.
    private func replay(after cursor: Int64) async throws -> Bool {
        if let recent = recentEvents(after: cursor) {
            var start = 0
            repeat {
                let end = min(start + Self.pageSize, recent.count)
                guard await emitPage(recent[start..<end]) else { return false }
                start = end
            } while start < recent.count
            return true
        }
        let bounds = try await chat.store.eventLogBounds(tenantId: principal.tenantId)
        if cursor < bounds.pruned || cursor > bounds.latest {
            return state.withLock { s -> Bool in
                s.lastId = max(s.lastId, bounds.latest)
                return emit(.resyncRequired(conversationId: scope.conversationId), &s)
            }
        }
        var after = cursor
        while true {
            if state.withLock({ $0.stopped }) { return false }
            let page = try await chat.events(principal, after: after, conversationId: scope.conversationId, limit: Self.pageSize)
            guard await emitPage(page) else { return false }
            guard page.count == Self.pageSize, let last = page.last?.eventId else { return true }
            after = last
        }
    }

    /// The ring's events after `cursor` that this feed follows; nil when the ring does not cover the cursor.
    private func recentEvents(after cursor: Int64) -> [ChatEvent]? {
        guard let ring = chat.recent else { return nil }
        let tenantId = principal.tenantId, userId = principal.userId
        switch scope {
        case .conversation(let id):
            return ring.events(after: cursor, limit: .max) { $0.tenantId == tenantId && $0.conversationId == id }
        case .allConversations:
            let members = state.withLock { $0.members }
            return ring.events(after: cursor, limit: .max) { event in
                event.tenantId == tenantId
                    && (members.contains(event.conversationId)
                        || ((event.type == .conversationCreated || event.type == .participantsAdded)
                            && event.participantIds?.contains(userId) == true))
            }
        }
    }

    /// Waits for the transport, then hands over one page of replayed events; false once the feed has stopped.
    private func emitPage(_ page: some Collection<ChatEvent>) async -> Bool {
        await pace?()
        // The log only holds the user's conversations; any not followed yet (created during the replay) gets its room.
        if scope == .allConversations {
            let known = state.withLock { $0.members }
            let unknown = Set(page.lazy.map(\.conversationId).filter { !known.contains($0) })
            if !unknown.isEmpty { follow(unknown) }
        }
        return state.withLock { s -> Bool in
            for event in page {
                if let id = event.eventId { s.lastId = max(s.lastId, id) }
                guard emit(.event(event), &s) else { return false }
            }
            return !s.stopped
        }
    }

    /// Unsubscribes; nothing more reaches the sink.
    public func stop() {
        let subscriptions = state.withLock { s -> [Subscription] in
            s.stopped = true
            defer {
                s.subscriptions = []
                s.rooms = [:]
            }
            return s.subscriptions + s.rooms.values
        }
        for subscription in subscriptions { subscription.cancel() }
    }

    /// Keeps a subscription until `stop` (cancels it at once when the feed has already stopped).
    private func hold(_ subscriptions: [Subscription]) {
        let kept = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.subscriptions += subscriptions
            return true
        }
        if !kept { for subscription in subscriptions { subscription.cancel() } }
    }

    private func hold(_ subscription: Subscription) { hold([subscription]) }

    /// Follows conversations not followed yet: each gets its room subscription. Subscribing happens outside the
    /// feed's lock (the hub takes its own).
    private func follow(_ ids: some Sequence<String>) {
        let fresh = state.withLock { s -> [String] in
            guard !s.stopped else { return [] }
            return ids.filter { s.members.insert($0).inserted }
        }
        for id in fresh {
            let subscription = chat.broker.subscribe(self, to: .room(tenantId: principal.tenantId, conversationId: id))
            let kept = state.withLock { s -> Bool in
                guard !s.stopped, s.members.contains(id), s.rooms[id] == nil else { return false }
                s.rooms[id] = subscription
                return true
            }
            if !kept { subscription.cancel() }
        }
    }

    /// Whether a membership event takes the feed's user into its conversation (true), out of it (false), or neither.
    private func membership(of event: ChatEvent) -> Bool? {
        switch event.type {
        case .conversationCreated, .participantsAdded:
            return event.participantIds?.contains(principal.userId) == true ? true : nil
        case .participantRemoved:
            return event.participantIds?.contains(principal.userId) == true ? false : nil
        default:
            return nil
        }
    }

    /// The id of the newest durable event handed to the sink (or covered by a resync).
    public var cursor: Int64 { state.withLock { $0.lastId } }

    public func deliver(_ event: ChatEvent) {
        // A conversation the user was added to: its room is followed before the hub publishes the next event, so
        // nothing after this one is missed (the hub publishes durable events one at a time, in order).
        if scope == .allConversations, membership(of: event) == true {
            follow(CollectionOfOne(event.conversationId))
        }
        state.withLock { s in
            guard !s.stopped else { return }
            if scope == .allConversations {
                // Presence names its recipients: it belongs to no conversation.
                guard s.members.contains(event.conversationId) || event.type == .presence else { return }
            }
            if s.replaying {
                if s.buffer.count >= maxBuffer {
                    s.buffer = []
                    _ = emit(.overflow, &s)
                    s.stopped = true
                } else {
                    s.buffer.append(event)
                }
                return
            }
            admit(event, &s)
        }
    }

    private func admit(_ event: ChatEvent, _ s: inout State) {
        guard !s.stopped else { return }
        // Events waiting in the buffer behind a removal are of a conversation the user has left.
        if scope == .allConversations, !s.members.contains(event.conversationId), event.type != .presence { return }
        if let id = event.eventId {
            guard id > s.lastId else { return }  // already replayed
            s.lastId = id
        }
        guard emit(.event(event), &s) else { return }
        if membership(of: event) == false { unfollow(event.conversationId, &s) }
    }

    /// The user is out of the conversation: nothing more of it reaches them, from this moment on any transport.
    private func unfollow(_ conversationId: String, _ s: inout State) {
        switch scope {
        case .allConversations:
            s.members.remove(conversationId)
            // Cancelling takes the hub's lock, never the feed's: safe under this lock (the hub delivers outside its own).
            s.rooms.removeValue(forKey: conversationId)?.cancel()
        case .conversation:
            _ = emit(.removed(conversationId: conversationId), &s)
            s.stopped = true
        }
    }

    private func emit(_ item: FeedItem, _ s: inout State) -> Bool {
        guard !s.stopped else { return false }
        if !sink(item) { s.stopped = true }
        return !s.stopped
    }
}
