import ChatPostgres
import Foundation
import Logging
import PostgresNIO

/// The servers of one workload: one on SQLite, or several nodes sharing PostgreSQL. Figures are summed over them.
struct ServerGroup: Sendable {
    let servers: [ServerProcess]

    var ports: [Int] { servers.map(\.port) }
    /// The first node's port (workloads that talk to one node).
    var port: Int { servers[0].port }
    var cpuSeconds: Double { servers.reduce(0) { $0 + $1.cpuSeconds } }
    var rssKiB: Int { servers.reduce(0) { $0 + $1.rssKiB } }

    func metrics() async -> [String: Double] {
        var total: [String: Double] = [:]
        for server in servers {
            for (name, value) in await server.metrics() { total[name, default: 0] += value }
        }
        return total
    }

    func stop() {
        for server in servers { server.stop() }
    }
}

/// Fresh PostgreSQL databases for the cluster workloads.
enum BenchPostgres {
    static func freshDatabase(adminURL: String) async throws -> String {
        let name = "chat_bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        var logger = Logger(label: "chat-bench-pg")
        logger.logLevel = .error
        let connection = try await PostgresConnection.connect(
            configuration: try PostgresSettings(url: adminURL).connectionConfiguration, id: 1, logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        guard var components = URLComponents(string: adminURL) else { throw BenchError("bad --postgres URL") }
        components.path = "/" + name
        return components.string!
    }
}
