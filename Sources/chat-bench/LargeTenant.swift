import ChatCore
import ChatSQLite
import Foundation
import GRDB
import Histogram

/// W6, a large tenant (issue 15): 20,000 people with realistic names, one of them in 5,000 conversations, and one
/// conversation of 5,000 members with a history. Each listing is asked at a fixed rate over keep-alive connections;
/// latency is measured from when each request was due (so a slow answer cannot hide the ones queued behind it), and
/// the HTML pages that list these things are weighed.
extension Runner {
    struct LargeTenantResult: Codable {
        struct Listing: Codable {
            var name: String
            var requestsPerSecond: Double
            var requests: Int
            var errors: Int
            var p50ms: Double
            var p99ms: Double
        }
        /// "sqlite", or "postgres" (the same data moved there by `chat-server migrate-data`).
        var store: String
        var users: Int
        var conversationsOfOne: Int
        var bigConversationMembers: Int
        var listings: [Listing]
        /// Bytes of each HTML page, by path kind.
        var pageBytes: [String: Int]
    }

    /// On PostgreSQL the fixture is written to SQLite as usual and moved by `chat-server migrate-data`, the way a
    /// team grown out of SQLite would arrive there.
    func largeTenant(users: Int, conversations: Int, members: Int, rate: Double, seconds: Int, postgres: Bool = false) async throws -> LargeTenantResult {
        let sqliteServer = try await freshServer(pinned: true)
        let store = try SQLiteChatStore(path: sqliteServer.databasePath)
        let fixture = try await Fixture.largeTenant(store: store, users: users, conversations: conversations, members: members)
        try store.close()
        let server: ServerProcess
        if postgres {
            guard let postgresURL else { throw BenchError("W6 on PostgreSQL needs --postgres URL") }
            let url = try await BenchPostgres.freshDatabase(adminURL: postgresURL)
            try Self.runToEnd(binary, ["migrate-data", "--from", sqliteServer.databasePath, "--to", url])
            server = try ServerProcess(binary: binary, port: sqliteServer.port, database: url, cpu: Self.serverCore)
        } else {
            server = sqliteServer
        }
        defer { server.stop() }
        try await server.start()
        logger.info("w6 (\(postgres ? "postgres" : "sqlite")): \(users) users, one in \(conversations) conversations, one conversation of \(members)")

        let busy = fixture.busy, big = fixture.bigConversation
        let prefixes = ["an", "ma", "jo", "li", "sa", "ch", "el", "da", "ro", "ka", "be", "mi"]
        var listings: [LargeTenantResult.Listing] = []
        let kinds: [(String, String, @Sendable (Int) -> String)] = [
            ("directory search (q=2 letters, 20 per page)", busy.token, { "/api/users?limit=20&q=\(prefixes[$0 % prefixes.count])" }),
            ("first page of 5,000 conversations (50)", busy.token, { _ in "/api/chat/conversations?limit=50" }),
            ("history page of the 5,000-member conversation (50)", busy.token, { _ in "/api/chat/\(big)/messages?limit=50" }),
            ("first members page of the 5,000-member conversation (100)", busy.token, { _ in "/api/chat/\(big)/members?limit=100" }),
        ]
        for (name, token, path) in kinds {
            listings.append(try await Self.pacedRequests(
                name: name, port: server.port, token: token, rate: rate, seconds: seconds, path: path))
            logger.info("w6 \(name): p99 \(listings.last!.p99ms) ms")
        }
        var pageBytes: [String: Int] = [:]
        for (kind, path) in [("conversation list (/chat)", "/chat"), ("the 5,000-member conversation", "/chat/\(big)"),
                             ("its members page", "/chat/\(big)/members")] {
            let response = try await HTTPClient.get(port: server.port, path: path, headers: [("Authorization", "Bearer \(busy.token)")])
            pageBytes[kind] = response.status == 200 ? response.body.readableBytes : -response.status
        }
        return LargeTenantResult(
            store: postgres ? "postgres" : "sqlite", users: users, conversationsOfOne: conversations, bigConversationMembers: members, listings: listings, pageBytes: pageBytes)
    }

    /// Runs one command of the server's binary to its end; its output goes to the bench's log only on failure.
    static func runToEnd(_ binary: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let printed = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("\(arguments.first ?? binary) failed: \(String(decoding: printed, as: UTF8.self))")
        }
    }

    /// `rate` requests per second for `seconds`, spread over four keep-alive connections.
    static func pacedRequests(
        name: String, port: Int, token: String, rate: Double, seconds: Int, path: @escaping @Sendable (Int) -> String
    ) async throws -> LargeTenantResult.Listing {
        let connections = 4
        let perConnection = Int(rate * Double(seconds)) / connections
        let interval = UInt64(Double(connections) / rate * 1e9)
        let start = nowNanos() + 50_000_000
        let results = try await withThrowingTaskGroup(of: ([UInt64], Int).self) { group in
            for lane in 0..<connections {
                group.addTask {
                    try await HTTPClient.withConnection(port: port) { connection in
                        var latencies: [UInt64] = []
                        var errors = 0
                        for i in 0..<perConnection {
                            let due = start + UInt64(i) * interval + UInt64(lane) * interval / UInt64(connections)
                            let now = nowNanos()
                            if due > now { try await Task.sleep(nanoseconds: due - now) }
                            let response = try await connection.get(path(i * connections + lane), headers: [("Authorization", "Bearer \(token)")])
                            if response.status != 200 { errors += 1 }
                            latencies.append(nowNanos() - min(due, nowNanos()))
                        }
                        return (latencies, errors)
                    }
                }
            }
            var all: [UInt64] = []
            var errors = 0
            for try await (latencies, failed) in group {
                all += latencies
                errors += failed
            }
            return (all.sorted(), errors)
        }
        let (sorted, errors) = results
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1e6
        }
        return .init(name: name, requestsPerSecond: rate, requests: sorted.count, errors: errors, p50ms: percentile(0.5), p99ms: percentile(0.99))
    }
}

extension Fixture {
    struct LargeTenant {
        var busy: Member
        var bigConversation: String
    }

    /// People named from 120 first and 170 last names (deterministic), so a two-letter search matches a realistic
    /// few percent of them; written straight into the file like `bulkUsers`.
    static func largeTenant(store: SQLiteChatStore, users: Int, conversations: Int, members: Int) async throws -> LargeTenant {
        let first = ["Anna", "Andrew", "Angela", "Anton", "Maria", "Mark", "Martin", "Maya", "John", "Joanna", "Jorge", "Josef", "Lina",
                     "Liam", "Lisa", "Lior", "Sara", "Samuel", "Sasha", "Santiago", "Chloe", "Charles", "Chen", "Chiara", "Elena", "Elias",
                     "Ella", "Elif", "David", "Dana", "Daniel", "Dara", "Rosa", "Robert", "Ronan", "Roya", "Kate", "Karl", "Kamal", "Karin",
                     "Ben", "Beatriz", "Bela", "Bernd", "Mia", "Michael", "Mila", "Miguel", "Zoë", "Émile", "Åsa", "Ömer", "Noah", "Nina",
                     "Omar", "Olga", "Paula", "Peter", "Priya", "Quinn", "Rahul", "Rita", "Sofia", "Stefan", "Tara", "Tomás", "Uma", "Ugo",
                     "Vera", "Victor", "Wen", "Willa", "Xavier", "Xin", "Yara", "Yusuf", "Zara", "Zoltan", "Hana", "Hugo", "Ines", "Ivan",
                     "Greta", "Gabriel", "Fatima", "Felix", "Ada", "Aziz", "Bianca", "Bo", "Carmen", "Cyril", "Dmitri", "Dalia", "Eva",
                     "Emre", "Farah", "Finn", "Gaia", "Goran", "Helga", "Hiro", "Ida", "Igor", "Jana", "Jonas", "Kira", "Kofi", "Lea",
                     "Lukas", "Mona", "Malik", "Nadia", "Nils", "Oscar", "Otto", "Pia", "Pavel", "Rania", "Rolf"]
        let last = (0..<170).map { "\(["Smith", "García", "Müller", "Rossi", "Nowak", "Kim", "Silva", "Dubois", "Jansen", "Novak"][$0 % 10])\($0 / 10 == 0 ? "" : String($0 / 10))" }
        let tenant = try await store.createTenant(slug: "w6", name: "Bench large tenant")
        let now = Timestamp.now()
        let people = (0..<users).map { i -> (Member, String, String) in
            let name = "\(first[i % first.count]) \(last[(i / first.count) % last.count])"
            let username = name.lowercased().replacingOccurrences(of: " ", with: ".") + (i >= first.count * last.count ? "\(i)" : "")
            return (Member(userId: Identifier.make("usr"), token: Secret.make()), username, name)
        }
        try await store.pool.write { db in
            for (member, username, name) in people {
                try db.execute(
                    sql: "INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?, 'x', ?)",
                    arguments: [member.userId, tenant.id, username, name, now.milliseconds])
                try SQLiteChatStore.indexUser(db, tenantId: tenant.id, userId: member.userId, username: username, displayName: name)
            }
            // Only the busy user signs in.
            let busy = people[0].0
            try db.execute(
                sql: "INSERT INTO credentials (hash, tenant_id, user_id, method, csrf_token, created_at, expires_at) VALUES (?, ?, ?, 'token', NULL, ?, ?)",
                arguments: [SHA256.hex(busy.token), tenant.id, busy.userId, now.milliseconds, now.adding(seconds: 86_400).milliseconds])
        }
        var limits = ChatLimits()
        limits.maxParticipants = 100_000
        let chat = ChatService(store: store, broker: RoomHub(), limits: limits)
        let busy = people[0].0
        let caller = principal(busy, tenantId: tenant.id)
        let big = try await chat.startConversation(caller, title: "Everyone", participantIds: people[1..<min(members, users)].map(\.0.userId))
        for i in 0..<120 {
            _ = try await chat.send(caller, conversationId: big.id, content: "announcement \(i)", threadParentId: nil, clientMessageId: nil)
        }
        // The busy user's conversations, sixteen at a time (the commit queue batches them).
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add(_ group: inout ThrowingTaskGroup<Void, any Error>) {
                guard next < conversations else { return }
                let index = next
                next += 1
                group.addTask {
                    let other = people[1 + index % (users - 1)].0.userId
                    _ = try await chat.startConversation(caller, title: "topic \(index)", participantIds: [other])
                }
            }
            for _ in 0..<16 { add(&group) }
            while try await group.next() != nil { add(&group) }
        }
        return LargeTenant(busy: busy, bigConversation: big.id)
    }
}
