import ChatCore
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The cluster bus on LISTEN/NOTIFY, one channel. Notifications are sent after the commit, in statements of their
/// own: a NOTIFY inside the write transaction would take PostgreSQL's database-wide notify lock at every commit and
/// serialize the commits of all tenants. Payloads (all well under NOTIFY's 8,000 bytes):
/// `c <tenantId> <head>` (committed), `e <node> <tenantId> <conversationId> <data>` (ephemeral), `r <hash>` (revoked),
/// `p <node> <tenantId> <userId>:<status>,…` (a node's view of its people's presence), `a <hash> <1|0>` (away/back).
public final class PostgresClusterBus: ClusterBus {
    static let channel = "chat_cluster"
    /// Distinguishes this process's own ephemeral broadcasts, which it has already delivered locally.
    let node = Identifier.make("node")
    let client: PostgresClient
    let logger: Logger

    public init(store: PostgresChatStore) {
        client = store.client
        logger = store.logger
    }

    public func announceCommitted(_ heads: [String: Int64]) async {
        let payloads = heads.map { "c \($0.key) \($0.value)" }
        await send(payloads)
    }

    public func broadcastEphemeral(_ event: ChatEvent) async {
        let payload = "e \(node) \(event.tenantId) \(event.conversationId) \(event.type.rawValue) \(String(buffer: event.envelope))"
        guard payload.utf8.count < 7_900 else { return }
        await send([payload])
    }

    public func broadcastRevoked(credentialHash: String) async {
        await send(["r \(credentialHash)"])
    }

    /// Presence announcements, grouped by node and tenant into payloads under NOTIFY's limit.
    public func broadcastPresence(_ announcements: [PresenceAnnouncement]) async {
        var payloads: [String] = []
        let groups = Dictionary(grouping: announcements) { "\($0.node) \($0.tenantId)" }
        for (head, group) in groups {
            var payload = "p \(head) "
            var first = true
            for a in group {
                let item = "\(a.userId):\(a.status.rawValue)"
                if payload.utf8.count + item.utf8.count > 7_500 {
                    payloads.append(payload)
                    payload = "p \(head) "
                    first = true
                }
                payload += (first ? "" : ",") + item
                first = false
            }
            payloads.append(payload)
        }
        if !payloads.isEmpty { await send(payloads) }
    }

    public func broadcastAway(credentialHash: String, away: Bool) async {
        await send(["a \(credentialHash) \(away ? 1 : 0)"])
    }

    private func send(_ payloads: [String]) async {
        do {
            try await client.query(
                "SELECT pg_notify(\(Self.channel), p) FROM unnest(\(payloads)::text[]) AS p", logger: logger)
        } catch {
            // A wake-up only: the other nodes' sweep finds the events anyway.
            logger.warning("cluster notify failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Listens for the other nodes on a connection of its own (a pooled connection would be reaped, and LISTEN does
/// not work through a transaction-mode pooler), reconnecting with backoff when it drops, and sweeps the log every
/// second and after every (re)connect, so a lost notification or a dead listener costs latency, never an event.
public struct PostgresClusterService: Service {
    let settings: PostgresSettings
    let store: PostgresChatStore
    let bus: PostgresClusterBus
    let broker: ClusterBroker
    let revocations: RevocationCenter
    let presence: PresenceTracker?
    let logger: Logger
    var sweepInterval: Duration = .seconds(1)

    public init(
        store: PostgresChatStore, bus: PostgresClusterBus, broker: ClusterBroker, revocations: RevocationCenter, presence: PresenceTracker? = nil,
        logger: Logger
    ) {
        self.presence = presence
        self.settings = store.settings
        self.store = store
        self.bus = bus
        self.broker = broker
        self.revocations = revocations
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.listenForever() }
                group.addTask { await self.sweepForever() }
                await group.waitForAll()
            }
        }
    }

    private func sweepForever() async {
        var round = 0
        while !Task.isCancelled {
            round += 1
            do {
                try await broker.sweep()
                // Every fifth round: the sign-outs whose notification never arrived.
                if round % 5 == 0 { try await closeRevokedConnections() }
                // Every tenth: repeat this node's presence view, forget views of nodes that stopped repeating theirs.
                if round % 10 == 0 { await presence?.tick() }
            } catch {
                logger.warning("cluster sweep failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: sweepInterval)
        }
    }

    /// Closes this node's realtime connections whose credential is gone from the database (signed out on a node
    /// whose notification was lost) or expired.
    func closeRevokedConnections() async throws {
        let watched = revocations.watchedCredentialHashes
        guard !watched.isEmpty else { return }
        var live: Set<String> = []
        for try await hash in try await bus.client.query(
            "SELECT hash FROM credentials WHERE hash = ANY(\(watched)) AND expires_at > \(Timestamp.now().milliseconds)", logger: logger
        ).decode(String.self) {
            live.insert(hash)
        }
        for hash in watched where !live.contains(hash) { revocations.revoke(credentialHash: hash) }
    }

    private func listenForever() async {
        var backoff = Duration.milliseconds(100)
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            do {
                let connection: PostgresConnection
                do {
                    connection = try await PostgresConnection.connect(
                        configuration: try settings.connectionConfiguration, id: attempt, logger: logger)
                } catch {
                    // Requests fail fast (503) until a connection can be made again.
                    store.setReachable(false)
                    throw error
                }
                defer { Task { try? await connection.close() } }
                try await connection.listen(on: PostgresClusterBus.channel) { notifications in
                    store.setReachable(true)
                    backoff = .milliseconds(100)
                    // Anything committed while no listener was up is caught now.
                    try? await broker.sweep()
                    for try await notification in notifications { await handle(notification.payload) }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("cluster listener lost its connection; reconnecting", metadata: ["error": "\(error)"])
            }
            // The connection ended: find out now whether the database is gone, rather than at the next request.
            if !Task.isCancelled, (try? await PostgresConnection.connect(
                configuration: try settings.connectionConfiguration, id: attempt, logger: logger).close()) == nil {
                store.setReachable(false)
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    func handle(_ payload: String) async {
        let parts = payload.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: false)
        switch parts.first {
        case "c" where parts.count == 3:
            if let head = Int64(parts[2]) { await broker.wake(tenantId: String(parts[1]), head: head) }
        case "e" where parts.count == 6:
            guard parts[1] != bus.node, let type = EventType(rawValue: String(parts[4])) else { return }
            broker.publish([ChatEvent(
                type: type, eventId: nil, tenantId: String(parts[2]), conversationId: String(parts[3]), envelope: Array(parts[5].utf8))])
        case "r" where parts.count == 2:
            revocations.revoke(credentialHash: String(parts[1]))
        case "p" where parts.count == 4:
            let (node, tenantId) = (String(parts[1]), String(parts[2]))
            presence?.receive(parts[3].split(separator: ",").compactMap { item in
                let pair = item.split(separator: ":", maxSplits: 1)
                guard pair.count == 2, let status = PresenceStatus(rawValue: String(pair[1])) else { return nil }
                return PresenceAnnouncement(node: node, tenantId: tenantId, userId: String(pair[0]), status: status)
            })
        case "a" where parts.count == 3:
            presence?.applyAway(credentialHash: String(parts[1]), parts[2] == "1")
        default:
            logger.debug("unknown cluster notification", metadata: ["payload": "\(payload.prefix(40))"])
        }
    }
}
