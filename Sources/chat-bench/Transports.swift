import ChatCore
import ChatSQLite
import CompressNIO
import Foundation
import Logging
import NIOCore
import Synchronization

/// W4: one load split between WebSocket, SSE and long-poll clients, then history reads, polls and `/health` under wrk,
/// and `/health` on bare HTTP stacks (HTTPFloor).
extension Runner {
    struct TransportFigures: Codable {
        var clients: Int
        var deliveriesPerSecond: Double
        var latency: DeliveryStats.Snapshot
    }

    struct TransportsResult: Codable {
        var offeredMessagesPerSecond: Double
        var webSocket: TransportFigures
        var serverSentEvents: TransportFigures
        var longPoll: TransportFigures
        var sseToWebSocketRatio: Double
        var completedPollsPerSecond: Double
        /// Compressed / plain bytes over the polls that came back gzip-compressed.
        var pollGzipRatio: Double
        var gzippedPolls: Int
        /// The same for one catch-up poll of a whole page of events (up to 500), as after a reconnect.
        var catchUpGzipRatio: Double
        var historyRequestsPerSecond: Double?
        var historyTool: String
        /// Long-polls that find one event waiting, answered at once (gzip), under wrk: the poll endpoint's own
        /// capacity, which the mixed step above cannot show (there a client completes at most one poll per message).
        var pollCapacityPerSecond: Double? = nil
        /// History, poll and `/health` on chat-server beside `/health` on bare stacks (HTTPFloor), each with the
        /// server's CPU per request; empty without wrk.
        var requestCosts: [RequestCost]? = nil
    }

    func transports(tenants: Int, roomsPerTenant: Int, perTransport: Int, rate: Double, seconds: Int, wrkSeconds: Int) async throws -> TransportsResult {
        let server = try await freshServer()
        defer { server.stop() }
        let store = try SQLiteChatStore(path: server.databasePath)
        let fixture = try await Fixture.build(
            store: store, tenants: tenants, roomsPerTenant: roomsPerTenant, membersPerRoom: perTransport * 3, soloRooms: 0, prefix: "w4")
        // History to read: 200 messages in a conversation of its own (the live rooms start empty, so every
        // receiver can check seq from 1).
        let reader = fixture.rooms[0].members[0]
        let chat = ChatService(store: store, broker: RoomHub())
        let readerPrincipal = Fixture.principal(reader, tenantId: fixture.rooms[0].tenantId)
        let history = try await chat.startConversation(readerPrincipal, title: "history", participantIds: [])
        for i in 0..<200 {
            _ = try await chat.send(readerPrincipal, conversationId: history.id, content: "history \(i)", threadParentId: nil, clientMessageId: nil)
        }
        try store.close()
        try await server.start()

        let ws = DeliveryStats(), sse = DeliveryStats(), poll = DeliveryStats()
        var sockets: [LoadSocket] = []
        var senders: [LoadSocket] = []
        for room in fixture.rooms {
            for member in room.members.prefix(perTransport) {
                let socket = LoadSocket(
                    token: member.token, initialFrames: [#"{"type":"join_room","conversationId":"\#(room.conversationId)"}"#],
                    receiver: RoomReceiver(stats: ws))
                sockets.append(socket)
            }
            senders.append(sockets[sockets.count - perTransport])
        }
        let streamsOpen = Counter(), polls = Counter(), gzipBytes = Counter(), plainBytes = Counter(), gzipped = Counter()
        let stop = StopFlag()
        let rooms = fixture.rooms
        let port = server.port
        let allSockets = sockets, allSenders = senders
        let logger = self.logger
        return try await withThrowingTaskGroup(of: TransportsResult?.self) { group in
            for room in rooms {
                for member in room.members.dropFirst(perTransport).prefix(perTransport) {
                    group.addTask {
                        await HTTPLoadClients.sse(port: port, token: member.token, conversationId: room.conversationId, stats: sse, opened: streamsOpen)
                        return nil
                    }
                }
                for member in room.members.dropFirst(perTransport * 2).prefix(perTransport) {
                    group.addTask {
                        await HTTPLoadClients.poll(
                            port: port, token: member.token, conversationId: room.conversationId, stats: poll, opened: streamsOpen,
                            polls: polls, gzipBytes: gzipBytes, plainBytes: plainBytes, gzipped: gzipped, stop: stop)
                        return nil
                    }
                }
            }
            group.addTask {
                defer { stop.set() }
                return try await withSockets(port: port, sockets: allSockets, logger: logger) { counters in
                    let expectedStreams = rooms.count * perTransport * 2
                    _ = await waitUntil(timeout: .seconds(120)) {
                        counters.joined.value >= allSockets.count && streamsOpen.value >= expectedStreams
                    }
                    logger.info("w4: \(counters.joined.value) sockets, \(streamsOpen.value) SSE/poll clients")
                    let pollsBefore = polls.value
                    let started = nowNanos()
                    var next = 0
                    await pace(rate: rate, duration: .seconds(seconds)) { count in
                        for _ in 0..<count {
                            let index = next % rooms.count
                            next += 1
                            allSenders[index].send(#"{"type":"new_message","conversationId":"\#(rooms[index].conversationId)","content":"\#(stampedContent())"}"#)
                        }
                    }
                    let sent = next
                    _ = await waitUntil(timeout: .seconds(10)) {
                        ws.deliveries >= sent * perTransport && sse.deliveries >= sent * perTransport && poll.deliveries >= sent * perTransport
                    }
                    let elapsed = Double(nowNanos() - started) / 1e9
                    let pollCount = polls.value - pollsBefore
                    func figures(_ stats: DeliveryStats) -> TransportFigures {
                        let snapshot = stats.snapshot()
                        return TransportFigures(clients: rooms.count * perTransport, deliveriesPerSecond: Double(snapshot.deliveries) / Double(seconds), latency: snapshot)
                    }
                    let catchUp = await Self.catchUpRatio(port: port, token: rooms[0].members[0].token, conversationId: rooms[0].conversationId)
                    let pid = server.pid
                    // The server can still be working through the step's backlog; the request figures start once
                    // the idle clients are all it serves (pings, heartbeats, polls that time out).
                    var idleCPU = 1.0
                    for _ in 0..<30 where idleCPU > 0.15 {
                        let before = ProcessStats.cpuSeconds(pid: pid)
                        try await Task.sleep(for: .seconds(1))
                        idleCPU = ProcessStats.cpuSeconds(pid: pid) - before
                    }
                    logger.info("w4: server CPU with the clients idle: \(Int(idleCPU * 100)) % of a core")
                    let health = Self.wrk(name: "chat-server /health", port: port, pid: pid, path: "/health", seconds: wrkSeconds)
                    let historyCost = Self.wrk(
                        name: "chat-server history (50 messages)", port: port, pid: pid, path: "/api/chat/\(history.id)/messages?limit=50",
                        headers: ["Authorization: Bearer \(reader.token)"], seconds: wrkSeconds)
                    let pollCapacity = await Self.pollCapacity(
                        port: port, pid: pid, token: rooms[0].members[0].token, conversationId: rooms[0].conversationId, seconds: wrkSeconds)
                    let wsFigures = figures(ws), sseFigures = figures(sse)
                    return TransportsResult(
                        offeredMessagesPerSecond: rate, webSocket: wsFigures, serverSentEvents: sseFigures, longPoll: figures(poll),
                        sseToWebSocketRatio: wsFigures.deliveriesPerSecond > 0 ? sseFigures.deliveriesPerSecond / wsFigures.deliveriesPerSecond : 0,
                        completedPollsPerSecond: Double(pollCount) / elapsed,
                        pollGzipRatio: plainBytes.value > 0 ? Double(gzipBytes.value) / Double(plainBytes.value) : 0,
                        gzippedPolls: gzipped.value, catchUpGzipRatio: catchUp,
                        historyRequestsPerSecond: historyCost?.requestsPerSecond,
                        historyTool: historyCost == nil ? "wrk not installed or failed" : "wrk -t2 -c64 -d\(wrkSeconds)s, 50 messages per response",
                        pollCapacityPerSecond: pollCapacity?.requestsPerSecond, requestCosts: [health, historyCost, pollCapacity].compactMap { $0 })
                }
            }
            var result: TransportsResult? = nil
            for try await value in group {
                if let value {
                    result = value
                    server.stop()  // ends the SSE streams and polls
                }
            }
            guard var result else { throw BenchError("w4 ended without figures") }
            if result.requestCosts?.isEmpty == false {
                result.requestCosts? += try await httpFloors(seconds: wrkSeconds)
            }
            return result
        }
    }

    /// One poll from the start of the log (a client catching up after a reconnect): compressed / plain size.
    static func catchUpRatio(port: Int, token: String, conversationId: String) async -> Double {
        let headers = [("Authorization", "Bearer \(token)"), ("Accept-Encoding", "gzip")]
        guard var response = try? await HTTPClient.get(port: port, path: "/api/chat/poll?cursor=0&conversationId=\(conversationId)&timeout=0", headers: headers),
              response.headers["Content-Encoding"].first == "gzip"
        else { return 0 }
        let compressed = response.body.readableBytes
        guard let plain = try? response.body.decompress(with: .gzip()), plain.readableBytes > 0 else { return 0 }
        return Double(compressed) / Double(plain.readableBytes)
    }

    /// Polls from the cursor before a conversation's newest event: each answer carries that one event, gzip-encoded.
    static func pollCapacity(port: Int, pid: Int32, token: String, conversationId: String, seconds: Int) async -> RequestCost? {
        let headers = [("Authorization", "Bearer \(token)")]
        guard let response = try? await HTTPClient.get(port: port, path: "/api/chat/poll?cursor=0&conversationId=\(conversationId)&timeout=0", headers: headers)
        else { return nil }
        let text = String(buffer: response.body)
        let ids = text.components(separatedBy: #""eventId":""#).dropFirst().compactMap { Int64($0.prefix { $0.isNumber }) }
        guard ids.count >= 2 else { return nil }
        return wrk(
            name: "chat-server long-poll, one event waiting (gzip)", port: port, pid: pid, path: "/api/chat/poll?cursor=\(ids[ids.count - 2])&conversationId=\(conversationId)&timeout=0",
            headers: ["Authorization: Bearer \(token)", "Accept-Encoding: gzip"], seconds: seconds)
    }
}
