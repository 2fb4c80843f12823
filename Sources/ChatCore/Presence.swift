import Synchronization

/// Online, away or offline: what the people who share a conversation with someone see of them.
public enum PresenceStatus: String, Sendable, Codable, CaseIterable {
    case offline, away, online

    var rank: Int {
        switch self {
        case .offline: 0
        case .away: 1
        case .online: 2
        }
    }
}

/// A node's view of its own users, for the other nodes (`ClusterBus`).
public struct PresenceAnnouncement: Sendable, Equatable {
    public var node: String
    public var tenantId: String
    public var userId: String
    public var status: PresenceStatus

    public init(node: String, tenantId: String, userId: String, status: PresenceStatus) {
        self.node = node
        self.tenantId = tenantId
        self.userId = userId
        self.status = status
    }
}

/// Presence from live connections. Each WebSocket, SSE stream and held long-poll is a connection; a person is
/// online when one of their connections is active, away when every one says the person is idle, offline when none
/// is left. Going offline waits `offlineGrace` (a reload or a poll between two requests does not flap); any other
/// change is told at once. Several nodes: each announces its own view of its users (`forward`), repeated every
/// `refreshInterval`, and keeps the others' views until `remoteLifetime` passes without a repeat (a node that died);
/// a person's status is the best of all views. When it changes, an ephemeral `presence` event goes to the
/// "all my conversations" streams of everyone who shares a conversation with them, on every node (each node
/// publishes to its own subscribers, from the same announcements).
public final class PresenceTracker: Sendable {
    public struct Settings: Sendable {
        public var offlineGrace: Duration = .seconds(10)
        public var refreshInterval: Duration = .seconds(30)
        public var remoteLifetime: Duration = .seconds(75)
        /// At most this many people hear of one person's change.
        public var maxRecipients = 10_000
        /// How long a credential's "away" (said over HTTP) is remembered while none of its connections is open here;
        /// after that a connection with it starts online again. Keeps the set bounded by the credentials in use.
        public var awayMemory: Duration = .seconds(3600)
        public init() {}
    }

    struct Key: Hashable, Sendable {
        let tenantId: String
        let userId: String
    }

    /// One live connection's registration; `end()` when the connection closes.
    public final class Connection: Sendable {
        let key: Key
        let id: Int
        let credentialHash: String
        private let tracker: PresenceTracker

        init(key: Key, id: Int, credentialHash: String, tracker: PresenceTracker) {
            self.key = key
            self.id = id
            self.credentialHash = credentialHash
            self.tracker = tracker
        }

        /// The client on this connection says its person is idle (`true`) or back (`false`).
        public func setAway(_ away: Bool) { tracker.setAway(self, away) }
        public func end() { tracker.end(self) }
    }

    private struct Remote {
        var status: PresenceStatus
        var expires: ContinuousClock.Instant
    }

    private struct State {
        var nextId = 0
        /// This node's connections by person: connection id → whether that connection said "away".
        var connections: [Key: [Int: (credential: String, away: Bool)]] = [:]
        /// Credentials whose holder said "away" through the HTTP API (clients without a WebSocket), with when that
        /// was said or when the credential's last connection here ended, whichever is later.
        var awayCredentials: [String: ContinuousClock.Instant] = [:]
        /// `awayCredentials` is swept of forgotten entries when it reaches this size (doubling: amortized).
        var awaySweepAt = 64
        /// What this node last announced of each of its people (offline ones are dropped).
        var announced: [Key: PresenceStatus] = [:]
        var remote: [Key: [String: Remote]] = [:]
        /// The status last published to local subscribers.
        var published: [Key: PresenceStatus] = [:]
        /// When each person's last connection here ended, while their "offline" waits out the grace.
        var lastEnded: [Key: ContinuousClock.Instant] = [:]
        /// People with a task waiting to announce them offline (at most one each).
        var awaitingOffline: Set<Key> = []
    }

    public let node: String
    public let settings: Settings
    private let store: any ChatStore
    private let broker: any EventBroker
    private let state = Mutex(State())
    private let forwarders = Mutex<[@Sendable ([PresenceAnnouncement]) async -> Void]>([])
    private let awayForwarders = Mutex<[@Sendable (String, Bool) async -> Void]>([])

    public init(store: any ChatStore, broker: any EventBroker, node: String = Identifier.make("node"), settings: Settings = Settings()) {
        self.store = store
        self.broker = broker
        self.node = node
        self.settings = settings
    }

    /// Hands this node's announcements to the other nodes (the cluster bus).
    public func forward(_ send: @escaping @Sendable ([PresenceAnnouncement]) async -> Void) {
        forwarders.withLock { $0.append(send) }
    }

    /// Hands credential-wide away/back changes to the other nodes.
    public func forwardAway(_ send: @escaping @Sendable (String, Bool) async -> Void) {
        awayForwarders.withLock { $0.append(send) }
    }

    // MARK: Connections

    public func connect(_ principal: Principal) -> Connection {
        let key = Key(tenantId: principal.tenantId, userId: principal.userId)
        let id = state.withLock { s -> Int in
            s.nextId += 1
            s.connections[key, default: [:]][s.nextId] = (principal.credentialHash, false)
            return s.nextId
        }
        reconsider(key)
        return Connection(key: key, id: id, credentialHash: principal.credentialHash, tracker: self)
    }

    func setAway(_ connection: Connection, _ away: Bool) {
        state.withLock { s in
            guard s.connections[connection.key]?[connection.id] != nil else { return }
            s.connections[connection.key]?[connection.id]?.away = away
        }
        reconsider(connection.key)
    }

    func end(_ connection: Connection) {
        state.withLock { s in
            s.connections[connection.key]?[connection.id] = nil
            if s.connections[connection.key]?.isEmpty == true {
                s.connections[connection.key] = nil
                s.lastEnded[connection.key] = .now
            }
            if s.awayCredentials[connection.credentialHash] != nil { s.awayCredentials[connection.credentialHash] = .now }
        }
        reconsider(connection.key)
    }

    /// Away (or back) for every connection of a credential, on every node, and for its connections opened later:
    /// how SSE and long-poll clients say it.
    public func setAway(_ principal: Principal, _ away: Bool) async {
        applyAway(credentialHash: principal.credentialHash, away)
        for send in awayForwarders.withLock({ $0 }) { await send(principal.credentialHash, away) }
    }

    /// Another node relayed a credential's away/back.
    public func applyAway(credentialHash: String, _ away: Bool) {
        let keys = state.withLock { s -> [Key] in
            if away {
                s.awayCredentials[credentialHash] = .now
                if s.awayCredentials.count >= s.awaySweepAt { forgetIdleAway(&s) }
            } else {
                s.awayCredentials[credentialHash] = nil
            }
            // What the credential says now holds for each of its connections too.
            var keys: [Key] = []
            for (key, connections) in s.connections where connections.values.contains(where: { $0.credential == credentialHash }) {
                for (id, connection) in connections where connection.credential == credentialHash { s.connections[key]?[id]?.away = away }
                keys.append(key)
            }
            return keys
        }
        for key in keys { reconsider(key) }
    }

    // MARK: Reading

    public func status(tenantId: String, userId: String) -> PresenceStatus {
        state.withLock { s in Self.overall(Key(tenantId: tenantId, userId: userId), s, now: .now) }
    }

    // MARK: Other nodes

    /// Another node's view of its people.
    public func receive(_ announcements: [PresenceAnnouncement]) {
        let now = ContinuousClock.now
        var keys: [Key] = []
        state.withLock { s in
            for a in announcements where a.node != node {
                let key = Key(tenantId: a.tenantId, userId: a.userId)
                if a.status == .offline {
                    s.remote[key]?[a.node] = nil
                    if s.remote[key]?.isEmpty == true { s.remote[key] = nil }
                } else {
                    s.remote[key, default: [:]][a.node] = Remote(status: a.status, expires: now + settings.remoteLifetime)
                }
                keys.append(key)
            }
        }
        for key in keys { publishIfChanged(key) }
    }

    /// Repeats this node's view to the others and forgets views that were not repeated in time. Run every few
    /// seconds (`PresenceService`); cheap when nothing is due.
    public func tick() async {
        let now = ContinuousClock.now
        let (expired, mine) = state.withLock { s -> ([Key], [PresenceAnnouncement]) in
            var expired: [Key] = []
            for (key, views) in s.remote {
                let kept = views.filter { $0.value.expires > now }
                if kept.count != views.count {
                    s.remote[key] = kept.isEmpty ? nil : kept
                    expired.append(key)
                }
            }
            let mine = s.announced.map { PresenceAnnouncement(node: node, tenantId: $0.key.tenantId, userId: $0.key.userId, status: $0.value) }
            return (expired, mine)
        }
        for key in expired { publishIfChanged(key) }
        if !mine.isEmpty { await announce(mine) }
    }

    // MARK: Changes

    private static func local(_ key: Key, _ s: State) -> PresenceStatus {
        guard let connections = s.connections[key], !connections.isEmpty else { return .offline }
        return connections.values.contains { !$0.away && s.awayCredentials[$0.credential] == nil } ? .online : .away
    }

    /// Drops the away marks of credentials with no connection here for longer than `awayMemory`.
    private func forgetIdleAway(_ s: inout State) {
        let now = ContinuousClock.now
        let connected = Set(s.connections.values.lazy.flatMap { $0.values.map(\.credential) })
        s.awayCredentials = s.awayCredentials.filter { connected.contains($0.key) || now - $0.value < settings.awayMemory }
        s.awaySweepAt = max(64, s.awayCredentials.count * 2)
    }

    /// The best of this node's announced view and the others' live views.
    private static func overall(_ key: Key, _ s: State, now: ContinuousClock.Instant) -> PresenceStatus {
        var best = s.announced[key] ?? .offline
        for view in s.remote[key]?.values ?? [:].values where view.expires > now && view.status.rank > best.rank { best = view.status }
        return best
    }

    /// Announces a change of this node's view of a person: at once, except going offline, which waits the grace.
    private func reconsider(_ key: Key) {
        let (current, previous, waiting) = state.withLock { s -> (PresenceStatus, PresenceStatus, Bool) in
            let current = Self.local(key, s)
            let previous = s.announced[key] ?? .offline
            guard current == .offline, current != previous else { return (current, previous, false) }
            return (current, previous, !s.awaitingOffline.insert(key).inserted)
        }
        guard current != previous else { return }
        if current == .offline {
            if !waiting { Task { await self.settleOfflineAfterGrace(key) } }
            return
        }
        settle(key)
    }

    /// One task per person going offline, however often their connections come and go meanwhile (a long-poll client
    /// ends a connection per poll): it waits until the grace has passed since the last connection ended, and
    /// announces offline only if none came back.
    private func settleOfflineAfterGrace(_ key: Key) async {
        let grace = settings.offlineGrace
        while true {
            let due = state.withLock { s -> ContinuousClock.Instant? in
                if s.connections[key] == nil, let ended = s.lastEnded[key], ended + grace > .now { return ended + grace }
                s.awaitingOffline.remove(key)
                s.lastEnded[key] = nil
                return nil
            }
            guard let due else { break }
            try? await Task.sleep(until: due, clock: .continuous)
        }
        settle(key)
    }

    private func settle(_ key: Key) {
        let changed = state.withLock { s -> PresenceStatus? in
            let current = Self.local(key, s)
            guard current != (s.announced[key] ?? .offline) else { return nil }
            s.announced[key] = current == .offline ? nil : current
            return current
        }
        guard let changed else { return }
        let announcement = PresenceAnnouncement(node: node, tenantId: key.tenantId, userId: key.userId, status: changed)
        Task { await self.announce([announcement]) }
        publishIfChanged(key)
    }

    private func announce(_ announcements: [PresenceAnnouncement]) async {
        for send in forwarders.withLock({ $0 }) { await send(announcements) }
    }

    /// Tells the local subscribers when the person's overall status changed.
    private func publishIfChanged(_ key: Key) {
        let status = state.withLock { s -> PresenceStatus? in
            let status = Self.overall(key, s, now: .now)
            guard status != (s.published[key] ?? .offline) else { return nil }
            s.published[key] = status == .offline ? nil : status
            return status
        }
        guard let status else { return }
        Task {
            guard let contacts = try? await store.contacts(tenantId: key.tenantId, userId: key.userId, limit: settings.maxRecipients),
                  !contacts.isEmpty
            else { return }
            // A later change may have been published meanwhile: only the current status goes out.
            guard state.withLock({ ($0.published[key] ?? .offline) == status }) else { return }
            broker.publish([ChatEvent(
                type: .presence, eventId: nil, tenantId: key.tenantId, conversationId: "",
                data: EventPayload.presence(userId: key.userId, status: status), participantIds: contacts)])
        }
    }
}

/// What a client may say of itself: "online" or "away" (offline is what closing every connection says).
public enum PresenceInput {
    /// true for "away", false for "online"; 400 `invalid_status` otherwise.
    public static func away(_ status: String) throws -> Bool {
        switch status {
        case "away": return true
        case "online": return false
        default: throw ChatError.badRequest("`status` is \"online\" or \"away\".", code: "invalid_status")
        }
    }
}
