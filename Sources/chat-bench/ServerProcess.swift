import ChatCore
import ChatSQLite
import Foundation
import GRDB
import NIOCore
import NIOHTTP1
import NIOPosix

/// The server under test: a `chat-server` child process on a fresh temporary database.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `process` is set once in `start` and then only read.
    let binary: String
    let port: Int
    let directory: URL
    var databasePath: String { directory.appendingPathComponent("bench.sqlite").path }
    /// `--database`: the SQLite file above, or a PostgreSQL URL several nodes share.
    let database: String
    /// A core to pin the server to (`taskset`), so that two nodes each get one where the machine allows.
    let cpu: Int?
    /// What runs: chat-server, or in its place the Node `ws` peer (it keeps no database) or a bare HTTP stack.
    let program: Program
    private var process: Process?

    enum Program {
        case chatServer
        case node(script: String)
        /// This bench binary serving `/health` on a bare stack (`--serve-floor`).
        case floor(HTTPFloor.Stack)
    }

    init(binary: String, port: Int, database: String? = nil, cpu: Int? = nil, program: Program = .chatServer) throws {
        self.binary = binary
        self.port = port
        self.cpu = cpu
        self.program = program
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("chat-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.database = database ?? directory.appendingPathComponent("bench.sqlite").path
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }
    /// The metrics listener's port (the bench reads commit counters there).
    var metricsPort: Int { port + 1000 }

    func start() async throws {
        let process = Process()
        var arguments = [
            "serve", "--host", "127.0.0.1", "--port", String(port), "--database", database, "--log-level", "error", "--drain-seconds", "0",
            "--metrics-address", "127.0.0.1:\(metricsPort)",
        ]
        var executable = binary
        switch self.program {
        case .chatServer:
            break
        case .node(let script):
            executable = "/usr/bin/env"
            arguments = ["node", script, String(port)]
            process.environment = NodePeer.environment
        case .floor(let stack):
            executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            arguments = ["--serve-floor", stack.rawValue, "--floor-port", String(port)]
        }
        if let cpu, FileManager.default.isExecutableFile(atPath: "/usr/bin/taskset") {
            // taskset execs the server in its place: the pid stays the server's.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", String(cpu), executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.standardOutput = FileHandle.nullDevice
        FileManager.default.createFile(atPath: directory.appendingPathComponent("server.log").path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: directory.appendingPathComponent("server.log"))
        // A server left over from an earlier run would answer in this one's place (with none of its tokens).
        if (try? await HTTPClient.get(port: port, path: "/health")) != nil {
            throw BenchError("port \(port) is already served by another process (a server left from an earlier run?); stop it first")
        }
        try process.run()
        self.process = process
        for _ in 0..<400 {
            if (try? await HTTPClient.get(port: port, path: "/health").status) == 200 { return }
            guard process.isRunning else { throw BenchError("the server exited at start; see \(directory.path)/server.log") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError("the server did not start; see \(directory.path)/server.log")
    }

    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    var cpuSeconds: Double { ProcessStats.cpuSeconds(pid: pid) }
    var rssKiB: Int { ProcessStats.rssKiB(pid: pid) }

    /// The server's counters from `/metrics` (loopback only).
    func metrics() async -> [String: Double] {
        guard let response = try? await HTTPClient.get(port: metricsPort, path: "/metrics") else { return [:] }
        var result: [String: Double] = [:]
        for line in String(buffer: response.body).split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { result[String(parts[0])] = value }
        }
        return result
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The users and rooms a workload runs on, written straight into the database before the server starts.
struct Fixture {
    struct Member {
        let userId: String
        let token: String
    }

    struct Room {
        let tenantId: String
        let conversationId: String
        var members: [Member]
    }

    var rooms: [Room] = []
    /// Every user created.
    var members: [Member] = []
    /// Users with a conversation of their own (no fan-out), for the durable-send workload.
    var soloRooms: [Room] = []

    /// `tenants` x `roomsPerTenant` rooms of `membersPerRoom` members (every member of a tenant is in each room).
    static func build(store: any ChatStore, tenants: Int, roomsPerTenant: Int, membersPerRoom: Int, soloRooms: Int, prefix: String) async throws -> Fixture {
        var limits = ChatLimits()
        limits.maxParticipants = 100_000
        let chat = ChatService(store: store, broker: RoomHub(), limits: limits)
        var fixture = Fixture()
        for t in 0..<tenants {
            let tenant = try await store.createTenant(slug: "\(prefix)-\(t)", name: "Bench \(prefix) \(t)")
            let members = try await bulkUsers(store: store, tenantId: tenant.id, count: max(membersPerRoom, t == 0 ? soloRooms : 0), prefix: "u")
            fixture.members += members
            let creator = principal(members[0], tenantId: tenant.id)
            for r in 0..<roomsPerTenant {
                let roomMembers = Array(members.prefix(membersPerRoom))
                let conversation = try await chat.startConversation(creator, title: "room \(r)", participantIds: roomMembers.map(\.userId))
                fixture.rooms.append(Room(tenantId: tenant.id, conversationId: conversation.id, members: roomMembers))
            }
            if t == 0 {
                for s in 0..<soloRooms {
                    let owner = members[s % members.count]
                    let conversation = try await chat.startConversation(principal(owner, tenantId: tenant.id), title: "solo \(s)", participantIds: [])
                    fixture.soloRooms.append(Room(tenantId: tenant.id, conversationId: conversation.id, members: [owner]))
                }
            }
        }
        return fixture
    }

    static func principal(_ member: Member, tenantId: String) -> Principal {
        Principal(tenantId: tenantId, userId: member.userId, method: .token, credentialHash: "", csrfToken: nil, expiresAt: .now())
    }

    /// Users and API tokens: on SQLite in one transaction (a commit per user would take minutes with
    /// synchronous=FULL); elsewhere through the store, 32 at a time.
    static func bulkUsers(store: any ChatStore, tenantId: String, count: Int, prefix: String) async throws -> [Member] {
        let now = Timestamp.now()
        guard let store = store as? SQLiteChatStore else {
            return try await withThrowingTaskGroup(of: [Member].self) { group in
                let chunk = max(1, (count + 31) / 32)
                for start in stride(from: 0, to: count, by: chunk) {
                    group.addTask {
                        var members: [Member] = []
                        for i in start..<min(start + chunk, count) {
                            let user = try await store.createUser(tenantId: tenantId, username: "\(prefix)\(i)", displayName: "User \(i)", passwordHash: "x")
                            let member = Member(userId: user.id, token: Secret.make())
                            try await store.insertCredential(Credential(
                                hash: SHA256.hex(member.token), tenantId: tenantId, userId: user.id, method: .token, csrfToken: nil,
                                createdAt: now, expiresAt: now.adding(seconds: 86_400)))
                            members.append(member)
                        }
                        return members
                    }
                }
                var all: [Member] = []
                for try await members in group { all += members }
                return all
            }
        }
        let members = (0..<count).map { _ in Member(userId: Identifier.make("usr"), token: Secret.make()) }
        try await store.pool.write { db in
            for (i, member) in members.enumerated() {
                try db.execute(
                    sql: "INSERT INTO users (id, tenant_id, username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?, 'x', ?)",
                    arguments: [member.userId, tenantId, "\(prefix)\(i)", "User \(i)", now.milliseconds])
                try SQLiteChatStore.indexUser(db, tenantId: tenantId, userId: member.userId, username: "\(prefix)\(i)", displayName: "User \(i)")
                try db.execute(
                    sql: "INSERT INTO credentials (hash, tenant_id, user_id, method, csrf_token, created_at, expires_at) VALUES (?, ?, ?, 'token', NULL, ?, ?)",
                    arguments: [SHA256.hex(member.token), tenantId, member.userId, now.milliseconds, now.adding(seconds: 86_400).milliseconds])
            }
        }
        return members
    }
}

/// A minimal HTTP/1.1 client on NIO for health checks, metrics and one-off requests (the load clients are NIO
/// handlers, see HTTPLoadClients).
enum HTTPClient {
    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    static func get(port: Int, path: String, headers: [(String, String)] = []) async throws -> Response {
        try await withConnection(port: port) { connection in try await connection.get(path, headers: headers) }
    }

    static func withConnection<T: Sendable>(port: Int, _ body: (Connection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            return try await body(Connection(outbound: outbound, next: { try await iterator.next() }))
        }
    }

    /// One keep-alive connection: requests go one after another.
    struct Connection {
        let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
        let next: () async throws -> HTTPClientResponsePart?

        func get(_ path: String, headers: [(String, String)] = []) async throws -> Response {
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "Host", value: "127.0.0.1")
            for (name, value) in headers { head.headers.add(name: name, value: value) }
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
            var response = Response(status: 0, headers: [:], body: ByteBuffer())
            while let part = try await next() {
                switch part {
                case .head(let responseHead):
                    response.status = Int(responseHead.status.code)
                    response.headers = responseHead.headers
                case .body(var buffer):
                    response.body.writeBuffer(&buffer)
                case .end:
                    return response
                }
            }
            throw BenchError("connection closed mid-response")
        }
    }
}
