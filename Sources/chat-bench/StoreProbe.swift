import ChatCore
import ChatSQLite
import Foundation

/// The writer alone: batches of sends applied straight to the SQLite store (no network, no tasks), to tell the
/// cost of the transaction itself from the rest of a durable send.
extension Runner {
    struct CommitProbeResult: Codable {
        var batchSize: Int
        var batches: Int
        var rooms: Int
        var microsPerRow: Double
        /// This process's CPU (user and system: the transactions, their writes, the checkpoints) per row: what the
        /// writer takes from a server's cores, where the time above also counts waiting for the disk.
        var cpuMicrosPerRow: Double? = nil
    }

    /// `rooms` conversations are written in turn, `batchSize` per transaction: with small batches over many rooms
    /// (as W5 commits them) each transaction pays its fixed cost for few rows.
    func commitProbe(batchSize: Int, batches: Int, rooms roomCount: Int? = nil) async throws -> CommitProbeResult {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteChatStore(path: directory.appendingPathComponent("probe.sqlite").path)
        defer { try? store.close() }
        let fixture = try await Fixture.build(store: store, tenants: 1, roomsPerTenant: 0, membersPerRoom: 0, soloRooms: max(batchSize, roomCount ?? 0), prefix: "probe")
        let rooms = fixture.soloRooms
        // As in the server: WAL checkpoints on their own connection in the background, not inside commits.
        let checkpoints = Task {
            while !Task.isCancelled {
                _ = try? await store.checkpoint()
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { checkpoints.cancel() }
        var total: Duration = .zero
        let cpuBefore = ProcessStats.cpuSeconds(pid: getpid())
        for batch in 0..<batches {
            let commands = (0..<batchSize).map { rooms[(batch * batchSize + $0) % rooms.count] }.map { room in
                WriteCommand.sendMessage(NewMessage(
                    tenantId: room.tenantId, senderId: room.members[0].userId, conversationId: room.conversationId,
                    threadParentId: nil, content: "b|\(batch)|" + String(repeating: "m", count: 60), clientMessageId: nil))
            }
            let began = ContinuousClock.now
            let results = try await store.apply(commands)
            total += ContinuousClock.now - began
            precondition(results.allSatisfy { if case .success = $0 { true } else { false } })
        }
        let cpu = ProcessStats.cpuSeconds(pid: getpid()) - cpuBefore
        let seconds = Double(total.components.seconds) + Double(total.components.attoseconds) / 1e18
        let rows = Double(batchSize * batches)
        return CommitProbeResult(
            batchSize: batchSize, batches: batches, rooms: rooms.count, microsPerRow: seconds / rows * 1e6, cpuMicrosPerRow: cpu / rows * 1e6)
    }
}
