import Synchronization

/// What a subscriber listens to.
public enum SubscriptionScope: Sendable, Hashable {
    /// Every event of one conversation (`tenantId:conversationId`).
    case room(tenantId: String, conversationId: String)
    /// Every event of a tenant (a tap for tests and tools; feeds never use it, see `user`).
    case tenant(String)
    /// Events that name the user among their `participantIds` (a conversation the user was just added to). An
    /// "all my conversations" feed subscribes here and to each of its conversations' rooms, so an event costs one
    /// visit per recipient, not one per subscriber of the tenant.
    case user(tenantId: String, userId: String)
}

/// Fans events out to subscribers. The in-process `RoomHub` serves one node; a cross-node broker (e.g. on
/// PostgreSQL LISTEN/NOTIFY) implements the same protocol later, so nothing may assume a single process.
public protocol EventBroker: Sendable {
    /// Delivers events, already committed and in log order, to every subscriber of their rooms. Must not block.
    func publish(_ events: [ChatEvent])
    /// Registers a subscriber. The returned handle's `cancel()` ends the subscription.
    func subscribe(_ subscriber: any EventSubscriber, to scope: SubscriptionScope) -> Subscription
    /// Publishes a batch the commit queue just committed, in commit order; returns once local subscribers have it.
    /// A broker for several nodes may first have to read earlier events of other nodes from the log.
    func publishCommitted(_ events: [ChatEvent]) async
    /// Publishes an ephemeral event (typing) to subscribers on every node.
    func publishEphemeral(_ event: ChatEvent) async
}

extension EventBroker {
    public func publishCommitted(_ events: [ChatEvent]) async { publish(events) }
    public func publishEphemeral(_ event: ChatEvent) async { publish([event]) }
}

/// A receiver of live events, such as one joined room of a WebSocket or one SSE stream.
public protocol EventSubscriber: AnyObject, Sendable {
    /// Hands over an event. Called on the publisher's task, in log order: must not block, only enqueue.
    func deliver(_ event: ChatEvent)
}

/// Ends a subscription when cancelled (or when released).
public final class Subscription: Sendable {
    private let onCancel: Mutex<(@Sendable () -> Void)?>

    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = Mutex(onCancel)
    }

    public func cancel() {
        let action = onCancel.withLock { value -> (@Sendable () -> Void)? in
            defer { value = nil }
            return value
        }
        action?()
    }

    deinit { cancel() }
}

/// The in-process broker: subscribers indexed by room, by user and by tenant. Each event is delivered to its room's
/// subscribers, to those of the users it names, and to its tenant's taps, synchronously and in publish order.
public final class RoomHub: EventBroker {
    private struct Entry {
        let id: Int
        let subscriber: any EventSubscriber
    }

    private struct State {
        var nextId = 0
        var byScope: [SubscriptionScope: [Entry]] = [:]
        var count = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func publish(_ events: [ChatEvent]) {
        for event in events {
            let (room, tenant) = state.withLock { s in
                (s.byScope[.room(tenantId: event.tenantId, conversationId: event.conversationId)] ?? [],
                 s.byScope[.tenant(event.tenantId)] ?? [])
            }
            for entry in room { entry.subscriber.deliver(event) }
            for entry in tenant { entry.subscriber.deliver(event) }
            guard let participants = event.participantIds, !participants.isEmpty else { continue }
            let named = state.withLock { s in
                participants.flatMap { s.byScope[.user(tenantId: event.tenantId, userId: $0)] ?? [] }
            }
            for entry in named { entry.subscriber.deliver(event) }
        }
    }

    public func subscribe(_ subscriber: any EventSubscriber, to scope: SubscriptionScope) -> Subscription {
        let id = state.withLock { s -> Int in
            s.nextId += 1
            s.count += 1
            s.byScope[scope, default: []].append(Entry(id: s.nextId, subscriber: subscriber))
            return s.nextId
        }
        return Subscription { [weak self] in
            self?.state.withLock { s in
                guard var entries = s.byScope[scope], let index = entries.firstIndex(where: { $0.id == id }) else { return }
                entries.remove(at: index)
                s.count -= 1
                s.byScope[scope] = entries.isEmpty ? nil : entries
            }
        }
    }

    /// How many subscriptions are registered (for tests and metrics).
    public var subscriberCount: Int { state.withLock { $0.count } }

    /// How many subscriptions one scope has: what publishing an event of that scope visits.
    public func subscriberCount(of scope: SubscriptionScope) -> Int { state.withLock { $0.byScope[scope]?.count ?? 0 } }
}
