import Logging
import Synchronization

/// What nodes sharing one database tell each other. Every message is a hint: the event log is the truth, so a lost
/// message costs latency, never an event. The PostgreSQL store implements it with LISTEN/NOTIFY.
public protocol ClusterBus: Sendable {
    /// After a commit: the newest event id of each tenant written (a wake-up for the other nodes).
    func announceCommitted(_ heads: [String: Int64]) async
    /// An ephemeral event (typing) for the subscribers of other nodes.
    func broadcastEphemeral(_ event: ChatEvent) async
    /// A credential was revoked: other nodes close its realtime connections.
    func broadcastRevoked(credentialHash: String) async
}

/// The reads a cluster broker needs from a shared event log.
public protocol SharedEventLog: Sendable {
    /// Every durable event of a tenant after `after`, in id order, with participants on conversation events.
    func logEvents(tenantId: String, after: Int64, limit: Int) async throws -> [ChatEvent]
    /// Each tenant's newest event id.
    func logHeads() async throws -> [String: Int64]
}

/// An `EventBroker` for several nodes sharing one database.
///
/// Local subscribers must see each tenant's durable events in strictly increasing id order with no gap — also
/// across this node's own commits and other nodes'. So durable events reach the local `RoomHub` only through a
/// per-tenant relay that publishes from the last id it published: its own commits go straight out when they are
/// next in line; anything before them (another node's commits not yet seen) is read from the log first. Other
/// nodes' commits arrive as wake-ups (`wake`), and `sweep` re-reads every tenant whose log moved on without one.
public final class ClusterBroker: EventBroker {
    public let hub: RoomHub
    private let log: any SharedEventLog
    private let bus: any ClusterBus
    private let logger: Logger
    private let relays = Mutex<[String: TenantRelay]>([:])
    /// Rows read per page when catching up.
    let pageSize = 500

    public init(hub: RoomHub, log: any SharedEventLog, bus: any ClusterBus, logger: Logger) {
        self.hub = hub
        self.log = log
        self.bus = bus
        self.logger = logger
    }

    /// Starts every tenant's relay at the log's current head: what was committed before is served by replays from
    /// the store, and no subscriber exists yet. Call once, before the server accepts connections.
    public func start() async throws {
        let heads = try await log.logHeads()
        relays.withLock { relays in
            for (tenantId, head) in heads where relays[tenantId] == nil { relays[tenantId] = TenantRelay(publishedThrough: head) }
        }
    }

    // MARK: EventBroker

    /// Hands events to local subscribers as they are (ephemeral events from other nodes).
    public func publish(_ events: [ChatEvent]) {
        hub.publish(events)
    }

    public func subscribe(_ subscriber: any EventSubscriber, to scope: SubscriptionScope) -> Subscription {
        hub.subscribe(subscriber, to: scope)
    }

    public func publishCommitted(_ events: [ChatEvent]) async {
        guard !events.isEmpty else { return }
        var byTenant: [String: [ChatEvent]] = [:]
        var order: [String] = []
        for event in events {
            if byTenant[event.tenantId] == nil { order.append(event.tenantId) }
            byTenant[event.tenantId, default: []].append(event)
        }
        var heads: [String: Int64] = [:]
        for (tenantId, own) in byTenant { heads[tenantId] = own.last?.eventId ?? 0 }
        // Other nodes start reading while this one publishes.
        await bus.announceCommitted(heads)
        for tenantId in order {
            await catchUp(tenantId: tenantId, through: heads[tenantId]!, own: byTenant[tenantId]!)
        }
    }

    public func publishEphemeral(_ event: ChatEvent) async {
        hub.publish([event])
        await bus.broadcastEphemeral(event)
    }

    // MARK: Catching up

    /// A hint that the tenant's log reached `head` (another node's commit).
    public func wake(tenantId: String, head: Int64) async {
        await catchUp(tenantId: tenantId, through: head, own: [])
    }

    /// Catches up every tenant whose log moved past what this node published: the safety net for lost
    /// notifications, a listener connection that dropped, or a node killed between its commit and its notify.
    public func sweep() async throws {
        let heads = try await log.logHeads()
        var lag: Int64 = 0
        for (tenantId, head) in heads where head > relay(tenantId).publishedThrough {
            lag += head - relay(tenantId).publishedThrough
            await catchUp(tenantId: tenantId, through: head, own: [])
        }
        ChatMetrics.eventLogLag.record(lag)
    }

    /// The last id published locally for a tenant (for tests and metrics).
    public func publishedThrough(tenantId: String) -> Int64 { relay(tenantId).publishedThrough }

    private func relay(_ tenantId: String) -> TenantRelay {
        relays.withLock { relays in
            if let relay = relays[tenantId] { return relay }
            // A tenant created after start: every one of its events is new.
            let relay = TenantRelay(publishedThrough: 0)
            relays[tenantId] = relay
            return relay
        }
    }

    private func catchUp(tenantId: String, through target: Int64, own: [ChatEvent]) async {
        let relay = relay(tenantId)
        await relay.lock.acquire()
        defer { relay.lock.release() }
        var published = relay.publishedThrough
        do {
            while published < target {
                let pending = own.drop { ($0.eventId ?? 0) <= published }
                if let first = pending.first?.eventId, first == published + 1 {
                    // Our own commit is next in line: no read needed.
                    hub.publish(Array(pending))
                    published = pending.last?.eventId ?? published
                    continue
                }
                let page = try await log.logEvents(tenantId: tenantId, after: published, limit: pageSize)
                guard let last = page.last?.eventId else { break }
                hub.publish(page)
                published = last
            }
        } catch {
            // The sweep tries again; nothing is skipped, since `published` only moves past what went out.
            logger.warning("catching up the event log failed", metadata: ["tenant": "\(tenantId)", "error": "\(error)"])
        }
        relay.publishedThrough = published
    }
}

/// One tenant's relay state: the last id handed to local subscribers, and a lock so that one catch-up runs at a time.
private final class TenantRelay: Sendable {
    private let published: Mutex<Int64>
    let lock = AsyncLock()

    init(publishedThrough: Int64) {
        published = Mutex(publishedThrough)
    }

    var publishedThrough: Int64 {
        get { published.withLock { $0 } }
        set { published.withLock { $0 = newValue } }
    }
}

/// A lock for async code: waiters queue in arrival order and resume one at a time.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if !s.locked {
                    s.locked = true
                    return true
                }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
