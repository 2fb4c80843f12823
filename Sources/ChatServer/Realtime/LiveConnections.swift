import ChatCore
import NIOCore
import ServiceLifecycle
import Synchronization

/// A realtime client's send side, as shutdown sees it.
protocol RealtimeClient: AnyObject, Sendable {
    func close(_ reason: CloseReason)
}

extension OutboundQueue: RealtimeClient, RevocationWatcher {
    /// Signed out: the stream ends (and its connection closes after a short grace, see `withClientQueue`).
    public func credentialRevoked() { close(.revoked) }
}

/// Every open WebSocket and SSE stream, so that shutdown can tell each of them first.
public final class LiveConnections: Sendable {
    private let clients = Mutex<[ObjectIdentifier: any RealtimeClient]>([:])
    private let draining = Mutex(false)

    public init() {}

    /// True from the start of a graceful shutdown: `/ready` answers 503 and new realtime connections are refused,
    /// while the ones open keep working until the drain period ends.
    public var isDraining: Bool { draining.withLock { $0 } }

    public func startDraining() {
        draining.withLock { $0 = true }
    }

    /// Refuses a new realtime connection while the server drains.
    func admitNewConnection() throws {
        if isDraining { throw ChatError(.unavailable, "draining", "This server is shutting down; connect again (another node will answer).") }
    }

    func add(_ client: any RealtimeClient) {
        clients.withLock { $0[ObjectIdentifier(client)] = client }
    }

    func remove(_ client: any RealtimeClient) {
        _ = clients.withLock { $0.removeValue(forKey: ObjectIdentifier(client)) }
    }

    public var count: Int { clients.withLock { $0.count } }

    /// Runs `body` with a new bounded send queue for one SSE client: registered here for shutdown, closed when
    /// the client's credential is revoked, and, when the client stops reading (overflow) or is signed out, the
    /// connection itself is closed after a short grace, since a writer blocked on such a client cannot close it.
    func withClientQueue<T>(
        capacity: Int, maxBytes: Int, channel: any Channel, principal: Principal, revocations: RevocationCenter,
        _ body: (OutboundQueue<SSEMessage>) async throws -> T
    ) async rethrows -> T {
        let queue = OutboundQueue<SSEMessage>(capacity: capacity, maxWeight: maxBytes, weigh: { $0.byteCount }, onClose: { reason in
            if reason == .overflow { ChatMetrics.slowConsumersDropped.increment() }
            if reason == .overflow || reason == .revoked {
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        })
        revocations.add(queue, credentialHash: principal.credentialHash)
        add(queue)
        defer {
            revocations.remove(queue, credentialHash: principal.credentialHash)
            remove(queue)
        }
        return try await body(queue)
    }

    /// Closes every connection with `reason` (WebSockets get 1001 for `.shutdown`).
    public func closeAll(_ reason: CloseReason) {
        for client in clients.withLock({ Array($0.values) }) { client.close(reason) }
    }
}

/// Runs until graceful shutdown, then says goodbye to realtime clients (WebSocket close 1001, SSE stream end)
/// and waits briefly for them to go, before the HTTP server itself stops. Listed after the application in the
/// service group, so it is shut down first.
public struct RealtimeDrainService: Service {
    let connections: LiveConnections
    /// How long the server keeps serving its open realtime connections after SIGTERM while `/ready` says 503, so
    /// that a load balancer stops sending new clients first.
    let drain: Duration
    let grace: Duration

    public init(connections: LiveConnections, drain: Duration = .zero, grace: Duration = .seconds(3)) {
        self.connections = connections
        self.drain = drain
        self.grace = grace
    }

    public func run() async throws {
        try? await gracefulShutdown()
        connections.startDraining()
        if drain > .zero { try? await Task.sleep(for: drain) }
        connections.closeAll(.shutdown)
        let deadline = ContinuousClock.now + grace
        while connections.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
