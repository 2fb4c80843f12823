import ChatCore
import NIOCore
import ServiceLifecycle
import Synchronization

/// Every open WebSocket and SSE stream, so that shutdown can tell each of them first.
public final class LiveConnections: Sendable {
    private let queues = Mutex<[ObjectIdentifier: OutboundQueue<ByteBuffer>]>([:])

    public init() {}

    func add(_ queue: OutboundQueue<ByteBuffer>) {
        queues.withLock { $0[ObjectIdentifier(queue)] = queue }
    }

    func remove(_ queue: OutboundQueue<ByteBuffer>) {
        _ = queues.withLock { $0.removeValue(forKey: ObjectIdentifier(queue)) }
    }

    public var count: Int { queues.withLock { $0.count } }

    /// Runs `body` with a new bounded send queue for one realtime client: registered here for shutdown, closed when
    /// the client's credential is revoked, and, when the client stops reading (overflow) or is signed out, the
    /// connection itself is closed after a short grace, since a writer blocked on such a client cannot close it.
    func withClientQueue<T>(
        capacity: Int, maxBytes: Int, channel: any Channel, principal: Principal, revocations: RevocationCenter,
        fastPath: (@Sendable (ByteBuffer) -> Bool)? = nil,
        _ body: (OutboundQueue<ByteBuffer>) async throws -> T
    ) async rethrows -> T {
        let queue = OutboundQueue<ByteBuffer>(capacity: capacity, maxWeight: maxBytes, weigh: { $0.readableBytes }, onClose: { reason in
            if reason == .overflow || reason == .revoked {
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
        }, fastPath: fastPath)
        let revocation = revocations.watch(credentialHash: principal.credentialHash) { queue.close(.revoked) }
        add(queue)
        defer {
            revocation.cancel()
            remove(queue)
        }
        return try await body(queue)
    }

    /// Closes every connection with `reason` (WebSockets get 1001 for `.shutdown`).
    public func closeAll(_ reason: CloseReason) {
        for queue in queues.withLock({ Array($0.values) }) { queue.close(reason) }
    }
}

/// Runs until graceful shutdown, then says goodbye to realtime clients (WebSocket close 1001, SSE stream end)
/// and waits briefly for them to go, before the HTTP server itself stops. Listed after the application in the
/// service group, so it is shut down first.
public struct RealtimeDrainService: Service {
    let connections: LiveConnections
    let grace: Duration

    public init(connections: LiveConnections, grace: Duration = .seconds(3)) {
        self.connections = connections
        self.grace = grace
    }

    public func run() async throws {
        try? await gracefulShutdown()
        connections.closeAll(.shutdown)
        let deadline = ContinuousClock.now + grace
        while connections.count > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
