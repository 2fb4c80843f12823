import Synchronization

/// Fans events out to subscribers. The in-process `RoomHub` serves one node; a cross-node broker (e.g. on
/// PostgreSQL LISTEN/NOTIFY) implements the same protocol later.
public protocol EventBroker: Sendable {
    /// Delivers events, already committed and in log order, to every subscriber of their rooms. Must not block.
    func publish(_ events: [ChatEvent])
    /// Registers a subscriber. Returns a handle whose `cancel()` ends the subscription.
    func subscribe(_ subscriber: any EventSubscriber) -> Subscription
}

/// A receiver of live events, such as one WebSocket connection or one SSE stream.
public protocol EventSubscriber: AnyObject, Sendable {
    var tenantId: String { get }
    /// Whether this subscriber wants events of this room. Called for every event of the tenant.
    func wants(conversationId: String) -> Bool
    /// Hands over an event. Must not block: enqueue and return.
    func deliver(_ event: ChatEvent)
}

/// Ends a subscription when cancelled.
public final class Subscription: Sendable {
    private let onCancel: Mutex<(@Sendable () -> Void)?>

    public init(onCancel: @escaping @Sendable () -> Void) {
        self.onCancel = Mutex(onCancel)
    }

    public func cancel() {
        let action = onCancel.withLock { value -> (@Sendable () -> Void)? in
            let action = value
            value = nil
            return action
        }
        action?()
    }

    deinit { cancel() }
}

/// The in-process broker: subscribers grouped by tenant; each event is offered to its tenant's subscribers.
public final class RoomHub: EventBroker {
    private struct Entry {
        let id: Int
        let subscriber: any EventSubscriber
    }

    private struct State {
        var nextId = 0
        var byTenant: [String: [Entry]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func publish(_ events: [ChatEvent]) {
        guard !events.isEmpty else { return }
        for event in events {
            let subscribers = state.withLock { $0.byTenant[event.tenantId] ?? [] }
            for entry in subscribers where entry.subscriber.wants(conversationId: event.conversationId) {
                entry.subscriber.deliver(event)
            }
        }
    }

    public func subscribe(_ subscriber: any EventSubscriber) -> Subscription {
        let tenantId = subscriber.tenantId
        let id = state.withLock { s -> Int in
            s.nextId += 1
            s.byTenant[tenantId, default: []].append(Entry(id: s.nextId, subscriber: subscriber))
            return s.nextId
        }
        return Subscription { [weak self] in
            self?.state.withLock { s in
                s.byTenant[tenantId]?.removeAll { $0.id == id }
                if s.byTenant[tenantId]?.isEmpty == true { s.byTenant[tenantId] = nil }
            }
        }
    }

    /// How many subscribers are registered (for tests and metrics).
    public var subscriberCount: Int { state.withLock { $0.byTenant.values.reduce(0) { $0 + $1.count } } }
}
