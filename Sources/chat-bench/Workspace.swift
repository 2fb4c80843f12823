import ChatCore
import ChatSQLite
import Foundation
import NIOCore
import Synchronization

/// W5, a workspace: everyone of one tenant online with one "all my conversations" subscription (`join_all`, as the
/// pages open them), in many conversations of different sizes. The cost of a message must follow its recipients,
/// not the number of people online.
extension Runner {
    struct WorkspaceResult: Codable {
        var users: Int
        var conversations: Int
        var meanMembers: Double
        var step: FanoutStep
    }

    func workspace(users: Int, conversations: Int, members: ClosedRange<Int>, rate: Double, stepSeconds: Int) async throws -> WorkspaceResult {
        let server = try await freshServer(pinned: true)
        defer { server.stop() }
        let store = try SQLiteChatStore(path: server.databasePath)
        let fixture = try await Fixture.workspace(store: store, users: users, conversations: conversations, members: members)
        try store.close()
        try await server.start()

        let initial = DeliveryStats()
        let receivers = fixture.members.map { _ in WorkspaceReceiver(stats: initial) }
        let sockets = zip(fixture.members, receivers).map { member, receiver in
            LoadSocket(token: member.token, initialFrames: [#"{"type":"join_all"}"#], receiver: receiver)
        }
        var socketOf: [String: LoadSocket] = [:]
        for (member, socket) in zip(fixture.members, sockets) { socketOf[member.userId] = socket }
        let senders = fixture.rooms.map { room in room.members.map { socketOf[$0.userId]! } }
        let rooms = fixture.rooms
        logger.info("w5: connecting \(sockets.count) sockets")
        return try await withSockets(ports: [server.port], sockets: sockets, logger: logger) { counters in
            guard await waitUntil(timeout: .seconds(180), { counters.joined.value + counters.failed.value >= sockets.count }) else {
                throw BenchError("w5: only \(counters.joined.value) of \(sockets.count) sockets joined")
            }
            let stats = DeliveryStats()
            for receiver in receivers { receiver.use(stats) }
            let cpuBefore = server.cpuSeconds
            var sent = 0, expected = 0
            var random = SplitMix(seed: 5)
            await pace(rate: rate, duration: .seconds(stepSeconds)) { count in
                for _ in 0..<count {
                    let index = Int(random.next() % UInt64(rooms.count))
                    let roomSenders = senders[index]
                    roomSenders[Int(random.next() % UInt64(roomSenders.count))].send(
                        #"{"type":"new_message","conversationId":"\#(rooms[index].conversationId)","content":"\#(stampedContent())"}"#)
                    sent += 1
                    expected += roomSenders.count
                }
            }
            let target = expected
            _ = await waitUntil(timeout: .seconds(10)) { stats.deliveries >= target }
            let snapshot = stats.snapshot()
            let cpu = server.cpuSeconds - cpuBefore
            let delivered = Double(snapshot.deliveries)
            let step = FanoutStep(
                offeredMessagesPerSecond: rate, sent: sent, deliveriesPerSecond: delivered / Double(stepSeconds), expectedDeliveries: expected,
                latency: snapshot, serverCPUSecondsPer100kDeliveries: delivered > 0 ? cpu / delivered * 100_000 : 0, rowsPerCommit: 0,
                saturated: snapshot.deliveries < expected * 99 / 100 || snapshot.p99ms > 1000, serverRSSMiB: Double(server.rssKiB) / 1024)
            logger.info("w5 @\(Int(rate)) msg/s: \(Int(step.deliveriesPerSecond)) deliveries/s, p99 \(snapshot.p99ms) ms, gaps \(snapshot.gaps)")
            let meanMembers = Double(rooms.reduce(0) { $0 + $1.members.count }) / Double(max(1, rooms.count))
            return WorkspaceResult(users: users, conversations: rooms.count, meanMembers: meanMembers, step: step)
        }
    }
}

extension Fixture {
    /// One tenant of `users` people and `conversations` conversations whose sizes are spread over `members`, the
    /// members drawn at random (a fixed seed: every run gets the same workspace).
    static func workspace(store: SQLiteChatStore, users: Int, conversations: Int, members: ClosedRange<Int>) async throws -> Fixture {
        var limits = ChatLimits()
        limits.maxParticipants = 100_000
        let chat = ChatService(store: store, broker: RoomHub(), limits: limits)
        let tenant = try await store.createTenant(slug: "w5", name: "Bench workspace")
        var fixture = Fixture()
        fixture.members = try await bulkUsers(store: store, tenantId: tenant.id, count: users, prefix: "w")
        var random = SplitMix(seed: 55)
        var plans: [[Member]] = []
        for _ in 0..<conversations {
            let size = members.lowerBound + Int(random.next() % UInt64(members.count))
            var chosen: [Member] = []
            var taken = Set<Int>()
            while chosen.count < min(size, users) {
                let index = Int(random.next() % UInt64(users))
                if taken.insert(index).inserted { chosen.append(fixture.members[index]) }
            }
            plans.append(chosen)
        }
        // Sixteen at a time: the commit queue puts concurrent creations in one transaction.
        let plannedRooms = plans
        fixture.rooms = try await withThrowingTaskGroup(of: (Int, Room).self) { group in
            var rooms = [Room?](repeating: nil, count: plannedRooms.count)
            var next = 0
            func add(_ group: inout ThrowingTaskGroup<(Int, Room), any Error>) {
                guard next < plannedRooms.count else { return }
                let index = next, chosen = plannedRooms[next]
                next += 1
                group.addTask {
                    let conversation = try await chat.startConversation(
                        principal(chosen[0], tenantId: tenant.id), title: "w5 \(index)", participantIds: chosen.dropFirst().map(\.userId))
                    return (index, Room(tenantId: tenant.id, conversationId: conversation.id, members: chosen))
                }
            }
            for _ in 0..<16 { add(&group) }
            while let (index, room) = try await group.next() {
                rooms[index] = room
                add(&group)
            }
            return rooms.compactMap { $0 }
        }
        return fixture
    }
}

/// A receiver of every conversation of one user: order is checked per conversation.
final class WorkspaceReceiver: FrameReceiver, @unchecked Sendable {
    // @unchecked: `trackers` is only touched by the one socket's event loop that calls `receive`.
    private var trackers: [String: SeqTracker] = [:]
    private let stats: Mutex<DeliveryStats>

    init(stats: DeliveryStats) { self.stats = Mutex(stats) }

    func use(_ next: DeliveryStats) { stats.withLock { $0 = next } }

    func receive(_ frame: ByteBuffer) {
        guard let message = Scan.message(frame), let conversation = Scan.conversationId(frame) else { return }
        let now = nowNanos()
        let current = stats.withLock { $0 }
        current.record(latencyMicros: now > message.sentNanos ? (now - message.sentNanos) / 1000 : 0)
        trackers[conversation, default: SeqTracker()].see(message.seq, stats: current)
    }
}

/// A small deterministic generator (SplitMix64), so a workload's shape is the same on every run.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
