import ChatCore
import ChatPostgres
import ChatSQLite
import Foundation
import Logging
import NIOCore
import Synchronization

/// Figures of one rate step of a fan-out workload.
struct FanoutStep: Codable {
    var offeredMessagesPerSecond: Double
    var sent: Int
    var deliveriesPerSecond: Double
    var expectedDeliveries: Int
    var latency: DeliveryStats.Snapshot
    var serverCPUSecondsPer100kDeliveries: Double
    var rowsPerCommit: Double
    var saturated: Bool
    /// The server's resident memory at the end of the step, with every client connected.
    var serverRSSMiB: Double = 0
}

struct Runner {
    let binary: String
    let smoke: Bool
    let logger: Logger
    /// A PostgreSQL server where the bench may create databases (the cluster workloads).
    var postgresURL: String? = nil
    /// The Node `ws` room server (bench/node-room-server.js), when node and its `ws` module are installed.
    var nodeScript: String? = nil

    /// The core a single server is pinned to, so that it and the generator each have one (as the issue's outside
    /// measurement does); nil on a one-core machine.
    static var serverCore: Int? { ProcessInfo.processInfo.activeProcessorCount >= 2 ? 1 : nil }

    func freshServer(pinned: Bool = false, nodeScript: String? = nil) async throws -> ServerProcess {
        ServerPort.next += 1
        return try ServerProcess(
            binary: binary, port: ServerPort.base + ServerPort.next, cpu: pinned ? Self.serverCore : nil,
            program: nodeScript.map { .node(script: $0) } ?? .chatServer)
    }

    /// A new server on a fresh database holding the fixture, started. For the Node peer the fixture only names the
    /// rooms (the peer keeps no database and checks no token).
    func prepared(
        tenants: Int, roomsPerTenant: Int, membersPerRoom: Int, soloRooms: Int, prefix: String, pinned: Bool = false, nodeScript: String? = nil
    ) async throws -> (ServerProcess, Fixture) {
        let server = try await freshServer(pinned: pinned, nodeScript: nodeScript)
        let store = try SQLiteChatStore(path: server.databasePath)
        let fixture = try await Fixture.build(
            store: store, tenants: tenants, roomsPerTenant: roomsPerTenant, membersPerRoom: membersPerRoom, soloRooms: soloRooms, prefix: prefix)
        try store.close()
        try await server.start()
        return (server, fixture)
    }

    /// Where a workload runs: one server on SQLite (the default), or `nodes` servers sharing a fresh PostgreSQL
    /// database, every client spread round-robin over them.
    enum Target {
        case sqlite
        /// chat-server on SQLite pinned to one core (the fan-out comparisons with the Node peer).
        case sqlitePinned
        /// The Node `ws` peer, pinned like `sqlitePinned`.
        case node
        case postgres(nodes: Int)
    }

    func prepared(
        _ target: Target, tenants: Int, roomsPerTenant: Int, membersPerRoom: Int, soloRooms: Int, prefix: String
    ) async throws -> (ServerGroup, Fixture) {
        guard case .postgres(let nodes) = target else {
            if case .node = target, nodeScript == nil { throw BenchError("the Node peer needs node and node-ws") }
            let (server, fixture) = try await prepared(
                tenants: tenants, roomsPerTenant: roomsPerTenant, membersPerRoom: membersPerRoom, soloRooms: soloRooms, prefix: prefix,
                pinned: target.isPinned, nodeScript: target.isNode ? nodeScript : nil)
            return (ServerGroup(servers: [server]), fixture)
        }
        guard let postgresURL else { throw BenchError("the PostgreSQL workloads need --postgres URL") }
        let url = try await BenchPostgres.freshDatabase(adminURL: postgresURL)
        let store = try PostgresChatStore(settings: try PostgresSettings(url: url), logger: logger)
        let fixture = try await store.withRunningPool {
            try await store.migrate()
            return try await Fixture.build(
                store: store, tenants: tenants, roomsPerTenant: roomsPerTenant, membersPerRoom: membersPerRoom, soloRooms: soloRooms, prefix: prefix)
        }
        var servers: [ServerProcess] = []
        let cores = ProcessInfo.processInfo.activeProcessorCount
        for node in 0..<nodes {
            ServerPort.next += 1
            // Two nodes: each on a core of its own where there are enough (the generator and PostgreSQL share them).
            let server = try ServerProcess(
                binary: binary, port: ServerPort.base + ServerPort.next, database: url, cpu: nodes > 1 && cores >= nodes ? node % cores : nil)
            try await server.start()
            servers.append(server)
        }
        return (ServerGroup(servers: servers), fixture)
    }

    // MARK: W1 rooms and W3 one big room

    /// Members of `fixture.rooms` connect (one socket per membership) and join their room; then messages go to
    /// random rooms at stepped rates. Stops stepping once a step saturates.
    func fanout(
        name: String, tenants: Int, roomsPerTenant: Int, members: Int, rates: [Double], stepSeconds: Int, on target: Target = .sqlite
    ) async throws -> [FanoutStep] {
        let (server, fixture) = try await prepared(
            target, tenants: tenants, roomsPerTenant: roomsPerTenant, membersPerRoom: members, soloRooms: 0, prefix: name)
        defer { server.stop() }

        var receivers: [RoomReceiver] = []
        var sockets: [LoadSocket] = []
        var senders: [[LoadSocket]] = []
        let initial = DeliveryStats()
        for room in fixture.rooms {
            var roomSockets: [LoadSocket] = []
            for member in room.members {
                let receiver = RoomReceiver(stats: initial)
                let socket = LoadSocket(
                    token: member.token, initialFrames: [#"{"type":"join_room","conversationId":"\#(room.conversationId)"}"#], receiver: receiver)
                receivers.append(receiver)
                sockets.append(socket)
                roomSockets.append(socket)
            }
            senders.append(roomSockets)
        }
        logger.info("\(name): connecting \(sockets.count) sockets")
        let rooms = fixture.rooms
        let (allSockets, allReceivers, roomSenders) = (sockets, receivers, senders)
        let connectStart = nowNanos()
        return try await withSockets(ports: server.ports, sockets: allSockets, logger: logger) { counters in
            let sockets = allSockets, receivers = allReceivers, senders = roomSenders
            guard await waitUntil(timeout: .seconds(120), { counters.joined.value + counters.failed.value >= sockets.count }) else {
                throw BenchError("\(name): only \(counters.joined.value) of \(sockets.count) sockets joined")
            }
            let connectSeconds = Double(nowNanos() - connectStart) / 1e9
            logger.info("\(name): \(counters.joined.value) joined in \(String(format: "%.1f", connectSeconds)) s")
            var steps: [FanoutStep] = []
            var totalSent = 0
            for rate in rates {
                let stats = DeliveryStats()
                for receiver in receivers { receiver.use(stats) }
                let cpuBefore = server.cpuSeconds
                let metricsBefore = await server.metrics()
                let sent = Counter()
                var next = 0
                await pace(rate: rate, duration: .seconds(stepSeconds)) { count in
                    for _ in 0..<count {
                        let index = next % rooms.count
                        next += 1
                        let roomSenders = senders[index]
                        let sender = roomSenders[Int.random(in: 0..<roomSenders.count)]
                        sender.send(#"{"type":"new_message","conversationId":"\#(rooms[index].conversationId)","content":"\#(stampedContent())"}"#)
                        sent.add(1)
                    }
                }
                let expected = sent.value * members
                // Let the tail arrive.
                _ = await waitUntil(timeout: .seconds(10)) { stats.deliveries >= expected }
                let snapshot = stats.snapshot()
                let metricsAfter = await server.metrics()
                let cpu = server.cpuSeconds - cpuBefore
                let commands = (metricsAfter["chat_commit_commands"] ?? 0) - (metricsBefore["chat_commit_commands"] ?? 0)
                let batches = (metricsAfter["chat_commit_batches"] ?? 0) - (metricsBefore["chat_commit_batches"] ?? 0)
                totalSent += sent.value
                let delivered = Double(snapshot.deliveries)
                let step = FanoutStep(
                    offeredMessagesPerSecond: rate, sent: sent.value,
                    deliveriesPerSecond: delivered / Double(stepSeconds), expectedDeliveries: expected, latency: snapshot,
                    serverCPUSecondsPer100kDeliveries: delivered > 0 ? cpu / delivered * 100_000 : 0,
                    rowsPerCommit: batches > 0 ? commands / batches : 0,
                    saturated: snapshot.deliveries < expected * 99 / 100 || snapshot.p99ms > 1000,
                    serverRSSMiB: Double(server.rssKiB) / 1024)
                steps.append(step)
                logger.info("\(name) @\(Int(rate)) msg/s: \(Int(step.deliveriesPerSecond)) deliveries/s, p99 \(snapshot.p99ms) ms, gaps \(snapshot.gaps)")
                if step.saturated { break }
            }
            // Every receiver saw every message of its room, in order.
            let missing = receivers.filter { $0.lastSeq == 0 && totalSent > 0 }.count
            if missing > 0 { logger.warning("\(name): \(missing) receivers got nothing") }
            return steps
        }
    }

    /// Time from send to the last of `members` recipients, per message, at stepped broadcast rates.
    struct BigRoomStep: Codable {
        var broadcastsPerSecond: Double
        var messages: Int
        var completeMessages: Int
        var timeToLastRecipientP50ms: Double
        var timeToLastRecipientP99ms: Double
        var deliveryP99ms: Double
        var gaps: Int
        var duplicates: Int
        var reorders: Int
    }

    func bigRoom(members: Int, rates: [Double], stepSeconds: Int) async throws -> [BigRoomStep] {
        let (server, fixture) = try await prepared(tenants: 1, roomsPerTenant: 1, membersPerRoom: members, soloRooms: 0, prefix: "w3")
        defer { server.stop() }
        let room = fixture.rooms[0]
        final class LastRecipient: FrameReceiver, @unchecked Sendable {
            // @unchecked: `tracker` is only touched by this socket's task.
            let shared: SharedTable
            let stats: Mutex<DeliveryStats>
            var tracker = SeqTracker()
            init(shared: SharedTable, stats: DeliveryStats) {
                self.shared = shared
                self.stats = Mutex(stats)
            }
            func receive(_ frame: ByteBuffer) {
                guard let message = Scan.message(frame) else { return }
                let now = nowNanos()
                shared.record(seq: message.seq, sent: message.sentNanos, at: now)
                let current = stats.withLock { $0 }
                current.record(latencyMicros: (now - min(now, message.sentNanos)) / 1000)
                tracker.see(message.seq, stats: current)
            }
        }
        let shared = SharedTable()
        let initial = DeliveryStats()
        var receivers: [LastRecipient] = []
        let sockets = room.members.map { member -> LoadSocket in
            let receiver = LastRecipient(shared: shared, stats: initial)
            receivers.append(receiver)
            return LoadSocket(token: member.token, initialFrames: [#"{"type":"join_room","conversationId":"\#(room.conversationId)"}"#], receiver: receiver)
        }
        let sender = sockets[0]
        let receiverList = receivers
        return try await withSockets(port: server.port, sockets: sockets, logger: logger) { counters in
            guard await waitUntil(timeout: .seconds(120), { counters.joined.value >= sockets.count }) else {
                throw BenchError("w3: only \(counters.joined.value) of \(sockets.count) joined")
            }
            var steps: [BigRoomStep] = []
            for rate in rates {
                shared.reset()
                let stats = DeliveryStats()
                for receiver in receiverList { receiver.stats.withLock { $0 = stats } }
                let sent = Counter()
                await pace(rate: rate, duration: .seconds(stepSeconds)) { count in
                    for _ in 0..<count {
                        sender.send(#"{"type":"new_message","conversationId":"\#(room.conversationId)","content":"\#(stampedContent())"}"#)
                        sent.add(1)
                    }
                }
                _ = await waitUntil(timeout: .seconds(10)) { stats.deliveries >= sent.value * members }
                let (p50, p99, complete) = shared.timeToLast(members: members)
                let snapshot = stats.snapshot()
                steps.append(BigRoomStep(
                    broadcastsPerSecond: rate, messages: sent.value, completeMessages: complete, timeToLastRecipientP50ms: p50,
                    timeToLastRecipientP99ms: p99, deliveryP99ms: snapshot.p99ms, gaps: snapshot.gaps, duplicates: snapshot.duplicates,
                    reorders: snapshot.reorders))
                logger.info("w3 @\(rate)/s: time to last recipient p99 \(p99) ms (\(complete)/\(sent.value) complete)")
            }
            return steps
        }
    }

    // MARK: durable sends

    struct DurableResult: Codable {
        var senders: Int
        var acknowledgedPerSecond: Double
        var rowsPerCommit: Double
        var ackP50ms: Double
        var ackP99ms: Double
        /// Share of the wall time the one writer spent in transactions (statements, commit, fsync).
        var writerBusyPercent: Double
        var serverCPUMicrosPerAck: Double
    }

    /// Senders in rooms of their own (no fan-out) send back to back, several frames in flight each; every
    /// acknowledgement comes after its transaction committed with synchronous=FULL.
    func durableSends(senders: Int, inFlight: Int, seconds: Int, on target: Target = .sqlite) async throws -> DurableResult {
        let (server, fixture) = try await prepared(target, tenants: 1, roomsPerTenant: 0, membersPerRoom: 1, soloRooms: senders, prefix: "ds")
        defer { server.stop() }
        final class AckReceiver: FrameReceiver, @unchecked Sendable {
            // @unchecked: called only from this socket's task; `socket` is set once before any frame arrives.
            let stats: DeliveryStats
            let acks: Counter
            let stop: Atomic<Bool>
            var socket: LoadSocket?
            var frame = ""
            init(stats: DeliveryStats, acks: Counter) { self.stats = stats; self.acks = acks; self.stop = Atomic(false) }
            func receive(_ buffer: ByteBuffer) {
                guard Scan.hasPrefix(buffer, Scan.ack) else { return }
                acks.add(1)
                if let stamp = buffer.withUnsafeReadableBytes({ Scan.integer($0, after: Scan.stampKey) }) {
                    let now = nowNanos()
                    stats.record(latencyMicros: (now - min(now, UInt64(stamp))) / 1000)
                }
                if !stop.load(ordering: .relaxed) { socket?.send(frame.replacingOccurrences(of: "STAMP", with: String(nowNanos()))) }
            }
        }
        let stats = DeliveryStats()
        let acks = Counter()
        var receivers: [AckReceiver] = []
        let sockets = fixture.soloRooms.map { room -> LoadSocket in
            let receiver = AckReceiver(stats: stats, acks: acks)
            receiver.frame = #"{"type":"new_message","conversationId":"\#(room.conversationId)","content":"b|STAMP|durable"}"#
            let socket = LoadSocket(token: room.members[0].token, initialFrames: [], receiver: receiver)
            receiver.socket = socket
            receivers.append(receiver)
            return socket
        }
        let receiverList = receivers
        return try await withSockets(ports: server.ports, sockets: sockets, waitFor: \.connected, logger: logger) { counters in
            _ = await waitUntil(timeout: .seconds(60)) { counters.connected.value >= sockets.count }
            let metricsBefore = await server.metrics()
            let cpuBefore = server.cpuSeconds
            let started = nowNanos()
            for (socket, receiver) in zip(sockets, receiverList) {
                for _ in 0..<inFlight { socket.send(receiver.frame.replacingOccurrences(of: "STAMP", with: String(nowNanos()))) }
            }
            try await Task.sleep(for: .seconds(seconds))
            let count = acks.value
            let elapsed = Double(nowNanos() - started) / 1e9
            let cpu = server.cpuSeconds - cpuBefore
            for receiver in receiverList { receiver.stop.store(true, ordering: .relaxed) }
            try await Task.sleep(for: .milliseconds(500))
            let metricsAfter = await server.metrics()
            let commands = (metricsAfter["chat_commit_commands"] ?? 0) - (metricsBefore["chat_commit_commands"] ?? 0)
            let batches = (metricsAfter["chat_commit_batches"] ?? 0) - (metricsBefore["chat_commit_batches"] ?? 0)
            let snapshot = stats.snapshot()
            return DurableResult(
                senders: senders, acknowledgedPerSecond: Double(count) / elapsed, rowsPerCommit: batches > 0 ? commands / batches : 0,
                ackP50ms: snapshot.p50ms, ackP99ms: snapshot.p99ms,
                writerBusyPercent: ((metricsAfter["chat_commit_apply_seconds"] ?? 0) - (metricsBefore["chat_commit_apply_seconds"] ?? 0)) / elapsed * 100,
                serverCPUMicrosPerAck: count > 0 ? cpu / Double(count) * 1e6 : 0)
        }
    }

    // MARK: W2 capacity

    struct CapacityResult: Codable {
        var target: Int
        var connected: Int
        var connectsPerSecond: Double
        var rssKiBBefore: Int
        var rssKiBAfter: Int
        var rssBytesPerConnection: Double
        var idleCPUPercent: Double
        var churned: Int
        var churnConnectsPerSecond: Double
    }

    /// As many idle sockets as the file limit allows, then churn.
    func capacity(target: Int, churn: Int, idleSeconds: Int) async throws -> CapacityResult {
        let (server, fixture) = try await prepared(tenants: 1, roomsPerTenant: 0, membersPerRoom: 1000, soloRooms: 0, prefix: "w2")
        defer { server.stop() }
        let members = fixture.members.map(\.token)
        try await Task.sleep(for: .milliseconds(300))
        let rssBefore = server.rssKiB
        let sockets = (0..<target).map { LoadSocket(token: members[$0 % members.count], initialFrames: [], receiver: nil) }
        let started = nowNanos()
        return try await withSockets(port: server.port, sockets: sockets, concurrency: 256, waitFor: \.connected, logger: logger) { counters in
            _ = await waitUntil(timeout: .seconds(180)) {
                counters.connected.value + counters.failed.value >= target
            }
            let connected = counters.connected.value
            let connectSeconds = Double(nowNanos() - started) / 1e9
            try await Task.sleep(for: .seconds(1))
            let rssAfter = server.rssKiB
            let cpuBefore = server.cpuSeconds
            try await Task.sleep(for: .seconds(idleSeconds))
            let idleCPU = (server.cpuSeconds - cpuBefore) / Double(idleSeconds) * 100
            // Churn: close some, open as many again.
            let churnSockets = Array(sockets.prefix(churn))
            for socket in churnSockets { socket.close() }
            _ = await waitUntil(timeout: .seconds(60)) { counters.closed.value >= churn }
            let fresh = (0..<churn).map { LoadSocket(token: members[$0 % members.count], initialFrames: [], receiver: nil) }
            let churnStart = nowNanos()
            let churnCounters = SocketCounters()
            let reopened = try await withSockets(
                port: server.port, sockets: fresh, concurrency: 256, waitFor: \.connected, counters: churnCounters, logger: logger
            ) { c in
                _ = await waitUntil(timeout: .seconds(60)) { c.connected.value + c.failed.value >= churn }
                return c.connected.value
            }
            let churnSeconds = Double(nowNanos() - churnStart) / 1e9
            logger.info("w2: \(connected) connected in \(connectSeconds) s; RSS \(rssBefore) -> \(rssAfter) KiB")
            return CapacityResult(
                target: target, connected: connected, connectsPerSecond: Double(connected) / connectSeconds, rssKiBBefore: rssBefore,
                rssKiBAfter: rssAfter, rssBytesPerConnection: connected > 0 ? Double(rssAfter - rssBefore) * 1024 / Double(connected) : 0,
                idleCPUPercent: idleCPU, churned: reopened, churnConnectsPerSecond: Double(reopened) / churnSeconds)
        }
    }
}

/// Per-message arrival counts for time-to-last-recipient.
final class SharedTable: Sendable {
    private let table = Mutex<[Int64: (count: Int, latest: UInt64, sent: UInt64)]>([:])

    func record(seq: Int64, sent: UInt64, at now: UInt64) {
        table.withLock { t in
            var entry = t[seq] ?? (0, 0, sent)
            entry.count += 1
            entry.latest = max(entry.latest, now)
            t[seq] = entry
        }
    }

    func reset() { table.withLock { $0.removeAll() } }

    /// p50 and p99 (ms) of time to the last recipient over messages every member received, and how many did.
    func timeToLast(members: Int) -> (Double, Double, Int) {
        let values = table.withLock { t in t.values.filter { $0.count >= members }.map { Double($0.latest - min($0.latest, $0.sent)) / 1e6 } }.sorted()
        guard !values.isEmpty else { return (0, 0, 0) }
        let p50 = values[min(values.count - 1, values.count / 2)]
        let p99 = values[min(values.count - 1, Int(Double(values.count) * 0.99))]
        return (p50, p99, values.count)
    }
}

enum ServerPort {
    nonisolated(unsafe) static var next = 0
    static let base = 18_400
}

extension Runner.Target {
    var isPinned: Bool {
        switch self {
        case .sqlitePinned, .node: true
        case .sqlite, .postgres: false
        }
    }

    var isNode: Bool {
        if case .node = self { return true }
        return false
    }
}
