import ArgumentParser
import Foundation
import Logging

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-bench",
        abstract: "Load-tests chat-server: fan-out (W1), capacity (W2), one big room (W3), durable sends. Prints a table and writes JSON.")

    @Option(help: "The chat-server binary to start (release build recommended).") var server = ".build/release/chat-server"
    @Option(help: "Where to write the figures as JSON.") var output = "bench-results.json"
    @Flag(help: "Tiny sizes and short steps: checks that the bench works, measures nothing.") var smoke = false
    @Option(help: "Workloads to run, comma separated: w1,w5,w6,w2,w3,w4,durable,commit,pg (pg: durable sends and W1 on PostgreSQL with one and two nodes; needs --postgres).")
    var workloads = "w1,w5,w6,durable,commit,w3,w4,w2"
    @Option(help: "A PostgreSQL server where the bench may create databases, for the pg workloads (env CHAT_BENCH_POSTGRES_URL).")
    var postgres = ProcessInfo.processInfo.environment["CHAT_BENCH_POSTGRES_URL"]
    @Option(help: "The Node `ws` peer's script; its W1 (and W5) run beside the server's when node and node-ws are installed.")
    var nodePeer = "bench/node-room-server.js"
    @Option(help: "Seconds per rate step.") var stepSeconds = 8
    @Option(help: "Concurrent senders in the durable-send workload (each its own WebSocket and conversation).") var durableSenders = 1500
    @Option(help: .hidden) var serveFloor: HTTPFloor.Stack?
    @Option(help: .hidden) var floorPort = 18_999

    struct Results: Codable {
        var machine: String
        var date: String
        var smoke: Bool
        var w1: [FanoutStep]?
        /// W1 against the Node `ws` peer, in the same run.
        var w1Node: [FanoutStep]?
        var w5: Runner.WorkspaceResult?
        var w6: Runner.LargeTenantResult?
        var w6Postgres: Runner.LargeTenantResult?
        var w3: [Runner.BigRoomStep]?
        var durable: Runner.DurableResult?
        var w2: Runner.CapacityResult?
        var w4: Runner.TransportsResult?
        var commitProbe: Runner.CommitProbeResult?
        /// The writer at W5's commit size: 10 rows per transaction over 2,000 conversations.
        var smallCommitProbe: Runner.CommitProbeResult?
        var postgres: [ClusterFigures]?
    }

    /// The same workloads on PostgreSQL, with one node and with two (clients spread round-robin over the nodes).
    struct ClusterFigures: Codable {
        var nodes: Int
        /// All senders write conversations of one tenant: this is the per-tenant write ceiling.
        var durable: Runner.DurableResult
        var w1: [FanoutStep]
    }

    func run() async throws {
        if let serveFloor {
            // The bench runs itself as the bare-stack server of W4's request floors.
            return try await HTTPFloor.serve(serveFloor, port: floorPort)
        }
        var logger = Logger(label: "chat-bench")
        logger.logLevel = .info
        var runner = Runner(binary: server, smoke: smoke, logger: logger)
        runner.postgresURL = postgres
        runner.nodeScript = NodePeer.available(script: nodePeer, logger: logger)
        let selected = Set(workloads.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
        var results = Results(machine: Self.machine(), date: ISO8601DateFormatter().string(from: Date()), smoke: smoke)
        let seconds = smoke ? 2 : stepSeconds

        if selected.contains("w1") {
            // Both servers pinned to one core, the generator on the other; the Node peer right after, same steps.
            let w1Rates: [Double] = smoke ? [20] : [300, 600, 1000]
            for target in [Runner.Target.sqlitePinned, .node] where !target.isNode || runner.nodeScript != nil {
                let steps = smoke
                    ? try await runner.fanout(name: target.isNode ? "w1-node" : "w1", tenants: 2, roomsPerTenant: 2, members: 5, rates: w1Rates, stepSeconds: seconds, on: target)
                    : try await runner.fanout(
                        name: target.isNode ? "w1-node" : "w1", tenants: 10, roomsPerTenant: 10, members: 100, rates: w1Rates, stepSeconds: seconds,
                        on: target)
                if target.isNode { results.w1Node = steps } else { results.w1 = steps }
            }
        }
        if selected.contains("w5") {
            results.w5 = smoke
                ? try await runner.workspace(users: 40, conversations: 20, members: 2...10, rate: 20, stepSeconds: seconds)
                : try await runner.workspace(users: 10_000, conversations: 2_000, members: 2...50, rate: 1000, stepSeconds: seconds)
        }
        if selected.contains("w6") {
            results.w6 = smoke
                ? try await runner.largeTenant(users: 300, conversations: 60, members: 100, rate: 20, seconds: 1)
                : try await runner.largeTenant(users: 20_000, conversations: 5_000, members: 5_000, rate: 200, seconds: 10)
            if runner.postgresURL != nil {
                results.w6Postgres = smoke
                    ? try await runner.largeTenant(users: 300, conversations: 60, members: 100, rate: 20, seconds: 1, postgres: true)
                    : try await runner.largeTenant(users: 20_000, conversations: 5_000, members: 5_000, rate: 200, seconds: 10, postgres: true)
            }
        }
        if selected.contains("durable") {
            results.durable = smoke
                ? try await runner.durableSends(senders: 4, inFlight: 2, seconds: seconds)
                : try await runner.durableSends(senders: durableSenders, inFlight: 2, seconds: seconds)
        }
        if selected.contains("commit") {
            let environment = ProcessInfo.processInfo.environment
            let size = smoke ? 10 : Int(environment["CHAT_BENCH_COMMIT_SIZE"] ?? "") ?? 1000
            results.commitProbe = try await runner.commitProbe(
                batchSize: size, batches: smoke ? 2 : Int(environment["CHAT_BENCH_COMMIT_BATCHES"] ?? "") ?? 30,
                rooms: Int(environment["CHAT_BENCH_COMMIT_ROOMS"] ?? ""))
            results.smallCommitProbe = try await runner.commitProbe(batchSize: smoke ? 2 : 10, batches: smoke ? 2 : 1000, rooms: smoke ? 4 : 2000)
        }
        if selected.contains("w3") {
            results.w3 = smoke
                ? try await runner.bigRoom(members: 20, rates: [5], stepSeconds: seconds)
                : try await runner.bigRoom(members: 5000, rates: [2, 5, 10, 20], stepSeconds: seconds)
        }
        if selected.contains("w4") {
            results.w4 = smoke
                ? try await runner.transports(tenants: 1, roomsPerTenant: 2, perTransport: 3, rate: 10, seconds: seconds, wrkSeconds: 1)
                : try await runner.transports(tenants: 10, roomsPerTenant: 10, perTransport: 33, rate: 300, seconds: seconds, wrkSeconds: 10)
        }
        if selected.contains("pg") {
            var figures: [ClusterFigures] = []
            for nodes in [1, 2] {
                let durable = smoke
                    ? try await runner.durableSends(senders: 4, inFlight: 2, seconds: seconds, on: .postgres(nodes: nodes))
                    : try await runner.durableSends(senders: 500, inFlight: 2, seconds: seconds, on: .postgres(nodes: nodes))
                let w1 = smoke
                    ? try await runner.fanout(name: "pg\(nodes)", tenants: 2, roomsPerTenant: 2, members: 5, rates: [20], stepSeconds: seconds, on: .postgres(nodes: nodes))
                    : try await runner.fanout(
                        name: "pg\(nodes)", tenants: 10, roomsPerTenant: 10, members: 100, rates: [100, 200, 400, 600], stepSeconds: seconds,
                        on: .postgres(nodes: nodes))
                figures.append(ClusterFigures(nodes: nodes, durable: durable, w1: w1))
            }
            results.postgres = figures
        }
        if selected.contains("w2") {
            results.w2 = smoke
                ? try await runner.capacity(target: 50, churn: 20, idleSeconds: 1)
                : try await runner.capacity(target: 18_000, churn: 5_000, idleSeconds: 10)
        }

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(results).write(to: URL(fileURLWithPath: output))
        print(Self.table(results))
        print("figures written to \(output)")
        try check(results)
    }

    /// The bench fails only on correctness: gaps, duplicates or reordering, or nothing delivered.
    func check(_ results: Results) throws {
        var problems: [String] = []
        for step in results.w1 ?? [] where step.latency.gaps + step.latency.duplicates + step.latency.reorders > 0 {
            problems.append("w1 @\(step.offeredMessagesPerSecond): gaps \(step.latency.gaps), duplicates \(step.latency.duplicates), reorders \(step.latency.reorders)")
        }
        for step in results.w3 ?? [] where step.gaps + step.duplicates + step.reorders > 0 {
            problems.append("w3 @\(step.broadcastsPerSecond): gaps \(step.gaps), duplicates \(step.duplicates), reorders \(step.reorders)")
        }
        if let first = results.w1?.first, first.latency.deliveries == 0 { problems.append("w1 delivered nothing") }
        for w6 in [results.w6, results.w6Postgres].compactMap({ $0 }) {
            for l in w6.listings where l.errors > 0 || l.requests == 0 { problems.append("w6 \(w6.store) \(l.name): \(l.errors) errors of \(l.requests)") }
            for (page, bytes) in w6.pageBytes where bytes <= 0 { problems.append("w6 \(w6.store) page \(page) answered \(-bytes)") }
        }
        if let w5 = results.w5 {
            let l = w5.step.latency
            if l.deliveries == 0 { problems.append("w5 delivered nothing") }
            if l.gaps + l.duplicates + l.reorders > 0 { problems.append("w5: gaps \(l.gaps), duplicates \(l.duplicates), reorders \(l.reorders)") }
        }
        for cluster in results.postgres ?? [] {
            for step in cluster.w1 where step.latency.gaps + step.latency.duplicates + step.latency.reorders > 0 {
                problems.append("pg \(cluster.nodes) nodes w1 @\(step.offeredMessagesPerSecond): gaps \(step.latency.gaps), duplicates \(step.latency.duplicates), reorders \(step.latency.reorders)")
            }
            if cluster.w1.first?.latency.deliveries == 0 { problems.append("pg \(cluster.nodes) nodes w1 delivered nothing") }
            if cluster.durable.acknowledgedPerSecond == 0 { problems.append("pg \(cluster.nodes) nodes: no durable send was acknowledged") }
        }
        if let durable = results.durable, durable.acknowledgedPerSecond == 0 { problems.append("no durable send was acknowledged") }
        if let w2 = results.w2, w2.connected == 0 { problems.append("w2 connected nothing") }
        if let w4 = results.w4 {
            for (name, t) in [("ws", w4.webSocket), ("sse", w4.serverSentEvents), ("poll", w4.longPoll)] {
                if t.latency.deliveries == 0 { problems.append("w4 \(name) delivered nothing") }
                if t.latency.gaps + t.latency.duplicates + t.latency.reorders > 0 {
                    problems.append("w4 \(name): gaps \(t.latency.gaps), duplicates \(t.latency.duplicates), reorders \(t.latency.reorders)")
                }
            }
        }
        if !problems.isEmpty { throw BenchError(problems.joined(separator: "; ")) }
    }

    static func table(_ r: Results) -> String {
        func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
        var lines = ["", "chat-bench on \(r.machine)\(r.smoke ? " (smoke run: sizes too small to mean anything)" : "")", ""]
        if let w1 = r.w1 {
            lines.append("W1 rooms (server pinned to one core): offered msg/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | CPU s/100k deliveries | rows/commit | RSS MiB | gaps/dups/reorders")
            for s in w1 {
                lines.append("  \(Int(s.offeredMessagesPerSecond)) | \(Int(s.deliveriesPerSecond)) | \(f(s.latency.p50ms)) | \(f(s.latency.p99ms)) | \(f(s.latency.p999ms)) | \(f(s.serverCPUSecondsPer100kDeliveries, 2)) | \(f(s.rowsPerCommit)) | \(Int(s.serverRSSMiB)) | \(s.latency.gaps)/\(s.latency.duplicates)/\(s.latency.reorders)\(s.saturated ? "  (saturated)" : "")")
            }
            if let node = r.w1Node {
                lines.append("W1 on the Node ws peer (in memory, no auth), same steps: offered msg/s | deliveries/s | p50 ms | p99 ms | CPU s/100k deliveries | RSS MiB | gaps/dups/reorders")
                for s in node {
                    lines.append("  \(Int(s.offeredMessagesPerSecond)) | \(Int(s.deliveriesPerSecond)) | \(f(s.latency.p50ms)) | \(f(s.latency.p99ms)) | \(f(s.serverCPUSecondsPer100kDeliveries, 2)) | \(Int(s.serverRSSMiB)) | \(s.latency.gaps)/\(s.latency.duplicates)/\(s.latency.reorders)\(s.saturated ? "  (saturated)" : "")")
                }
                for s in w1 {
                    guard let peer = node.first(where: { $0.offeredMessagesPerSecond == s.offeredMessagesPerSecond }), peer.serverCPUSecondsPer100kDeliveries > 0 else { continue }
                    let ratio = s.serverCPUSecondsPer100kDeliveries / peer.serverCPUSecondsPer100kDeliveries
                    lines.append(Self.target("W1 CPU per delivery @\(Int(s.offeredMessagesPerSecond)) msg/s vs Node", "\(f(ratio, 2))x (\(f(s.serverCPUSecondsPer100kDeliveries, 2)) vs \(f(peer.serverCPUSecondsPer100kDeliveries, 2)) s/100k)", "<= 0.5x", ratio <= 0.5))
                    lines.append(Self.target("W1 RSS with 10k sockets @\(Int(s.offeredMessagesPerSecond)) msg/s vs Node", "\(Int(s.serverRSSMiB)) vs \(Int(peer.serverRSSMiB)) MiB", "<= Node's", s.serverRSSMiB <= peer.serverRSSMiB))
                }
            }
        }
        if let w5 = r.w5 {
            let s = w5.step
            lines.append("W5 workspace: \(w5.users) users online (join_all each), \(w5.conversations) conversations of \(f(w5.meanMembers)) members on average | \(Int(s.offeredMessagesPerSecond)) msg/s | \(Int(s.deliveriesPerSecond)) deliveries/s | p50 \(f(s.latency.p50ms)) ms | p99 \(f(s.latency.p99ms)) ms | CPU s/100k \(f(s.serverCPUSecondsPer100kDeliveries, 2)) | RSS \(Int(s.serverRSSMiB)) MiB | \(s.latency.gaps)/\(s.latency.duplicates)/\(s.latency.reorders)")
            // Against the W1 step with the nearest delivery rate: the same work for the sockets, spread over
            // conversations of 2 to 50 people instead of rooms of 100.
            if let w1 = r.w1?.min(by: { abs($0.deliveriesPerSecond - s.deliveriesPerSecond) < abs($1.deliveriesPerSecond - s.deliveriesPerSecond) }),
               w1.serverCPUSecondsPer100kDeliveries > 0 {
                let ratio = s.serverCPUSecondsPer100kDeliveries / w1.serverCPUSecondsPer100kDeliveries
                lines.append(Self.target(
                    "W5 CPU per delivery vs W1 @\(Int(w1.offeredMessagesPerSecond)) msg/s (\(Int(w1.deliveriesPerSecond)) deliveries/s)",
                    "\(f(ratio, 2))x (\(f(s.serverCPUSecondsPer100kDeliveries, 2)) vs \(f(w1.serverCPUSecondsPer100kDeliveries, 2)) s/100k)", "<= 1.5x", ratio <= 1.5))
            }
            lines.append(Self.target("W5 p99", "\(f(s.latency.p99ms)) ms", "<= 100 ms", s.latency.p99ms <= 100))
        }
        for w6 in [r.w6, r.w6Postgres].compactMap({ $0 }) {
            lines.append("W6 large tenant on \(w6.store): \(w6.users) people, one in \(w6.conversationsOfOne) conversations, one conversation of \(w6.bigConversationMembers): listing | req/s | p50 ms | p99 ms | errors")
            for l in w6.listings {
                lines.append("  \(l.name) | \(Int(l.requestsPerSecond)) | \(f(l.p50ms)) | \(f(l.p99ms)) | \(l.errors)")
                lines.append(Self.target("W6 \(w6.store) \(l.name) p99", "\(f(l.p99ms)) ms", "<= 20 ms at 200 req/s", l.p99ms <= 20 && l.errors == 0))
            }
            for (page, bytes) in w6.pageBytes.sorted(by: { $0.key < $1.key }) {
                lines.append("  HTML \(page): \(bytes) bytes")
                lines.append(Self.target("W6 \(w6.store) HTML \(page)", "\(bytes / 1024) KB", "< 200 KB", bytes > 0 && bytes < 200 * 1024))
            }
        }
        if let d = r.durable {
            lines.append("Durable sends: \(d.senders) senders | \(Int(d.acknowledgedPerSecond)) acks/s | \(f(d.rowsPerCommit)) rows/commit | ack p50 \(f(d.ackP50ms)) ms, p99 \(f(d.ackP99ms)) ms | writer busy \(f(d.writerBusyPercent)) % | server CPU \(f(d.serverCPUMicrosPerAck)) µs/ack")
            lines.append(Self.target("durable sends (SQLite, synchronous=FULL)", "\(Int(d.acknowledgedPerSecond)) acks/s", ">= 20,000 acks/s", d.acknowledgedPerSecond >= 20_000))
        }
        for c in [r.commitProbe, r.smallCommitProbe].compactMap({ $0 }) {
            lines.append("Writer alone: \(c.batches) transactions of \(c.batchSize) sends (\(c.rooms) conversations in turn) applied to the store | \(f(c.microsPerRow)) µs per row (commit and fsync included), \(c.cpuMicrosPerRow.map { f($0) } ?? "-") µs of CPU")
        }
        if let w3 = r.w3 {
            lines.append("W3 big room: broadcasts/s | time to last recipient p50 ms | p99 ms | complete/sent | gaps/dups/reorders")
            for s in w3 {
                lines.append("  \(f(s.broadcastsPerSecond, 0)) | \(f(s.timeToLastRecipientP50ms)) | \(f(s.timeToLastRecipientP99ms)) | \(s.completeMessages)/\(s.messages) | \(s.gaps)/\(s.duplicates)/\(s.reorders)")
            }
        }
        if let w4 = r.w4 {
            lines.append("W4 transports @\(Int(w4.offeredMessagesPerSecond)) msg/s: transport | clients | deliveries/s | p50 ms | p99 ms | gaps/dups/reorders")
            for (name, t) in [("WebSocket", w4.webSocket), ("SSE", w4.serverSentEvents), ("long-poll", w4.longPoll)] {
                lines.append("  \(name) | \(t.clients) | \(Int(t.deliveriesPerSecond)) | \(f(t.latency.p50ms)) | \(f(t.latency.p99ms)) | \(t.latency.gaps)/\(t.latency.duplicates)/\(t.latency.reorders)")
            }
            lines.append("  SSE/WebSocket \(f(w4.sseToWebSocketRatio * 100, 0))% | \(Int(w4.completedPollsPerSecond)) polls/s | gzip ratio \(f(w4.pollGzipRatio, 2)) over \(w4.gzippedPolls) polls, \(f(w4.catchUpGzipRatio, 2)) for a 500-event catch-up | history reads \(w4.historyRequestsPerSecond.map { String(Int($0)) } ?? "-") req/s (\(w4.historyTool))")
            if let costs = w4.requestCosts, !costs.isEmpty {
                lines.append("HTTP requests under wrk -t2 -c64, one at a time: request | req/s | server CPU µs per request (from /proc)")
                for c in costs { lines.append("  \(c.name) | \(Int(c.requestsPerSecond)) | \(f(c.serverCPUMicrosPerRequest))") }
            }
            lines.append(Self.target(
                "long-polls", "\(Int(w4.completedPollsPerSecond))/s in the mixed step (at most one per message per client), \(w4.pollCapacityPerSecond.map { String(Int($0)) } ?? "-")/s answered at once under wrk",
                ">= 15,000/s", max(w4.completedPollsPerSecond, w4.pollCapacityPerSecond ?? 0) >= 15_000))
            if let history = w4.historyRequestsPerSecond {
                lines.append(Self.target("history reads", "\(Int(history)) req/s", ">= 40,000 req/s", history >= 40_000))
            }
        }
        for cluster in r.postgres ?? [] {
            let d = cluster.durable
            lines.append("PostgreSQL, \(cluster.nodes) node\(cluster.nodes == 1 ? "" : "s"): durable sends (one tenant) \(Int(d.acknowledgedPerSecond)) acks/s | \(f(d.rowsPerCommit)) rows/commit | ack p50 \(f(d.ackP50ms)) ms, p99 \(f(d.ackP99ms)) ms | server CPU \(f(d.serverCPUMicrosPerAck)) µs/ack")
            for s in cluster.w1 {
                lines.append("  W1 \(Int(s.offeredMessagesPerSecond)) msg/s | \(Int(s.deliveriesPerSecond)) deliveries/s | p50 \(f(s.latency.p50ms)) ms | p99 \(f(s.latency.p99ms)) ms | CPU s/100k \(f(s.serverCPUSecondsPer100kDeliveries, 2)) | \(s.latency.gaps)/\(s.latency.duplicates)/\(s.latency.reorders)\(s.saturated ? "  (saturated)" : "")")
            }
        }
        if let w2 = r.w2 {
            lines.append("W2 capacity: \(w2.connected)/\(w2.target) idle sockets | \(Int(w2.connectsPerSecond)) connects/s | \(Int(w2.rssBytesPerConnection)) B RSS per socket | idle CPU \(f(w2.idleCPUPercent))% | churn \(w2.churned) at \(Int(w2.churnConnectsPerSecond))/s")
            lines.append(Self.target("RSS per idle WebSocket", "\(f(w2.rssBytesPerConnection / 1024)) KB", "<= 12 KB", w2.rssBytesPerConnection <= 12 * 1024))
        }
        // A smoke run's sizes say nothing about the targets.
        if r.smoke { lines.removeAll { $0.hasPrefix("  target:") } }
        return lines.joined(separator: "\n")
    }

    /// One line of the targets of issue 12: the figure beside its target, and whether it is met.
    static func target(_ name: String, _ figure: String, _ goal: String, _ met: Bool) -> String {
        "  target: \(name): \(figure) | target \(goal) | \(met ? "met" : "NOT met")"
    }

    static func machine() -> String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
        var model = "unknown CPU"
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }) {
            model = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? model
        }
        return "\(cores) cores, \(memory) GiB, \(model)"
    }
}

extension HTTPFloor.Stack: ExpressibleByArgument {}
