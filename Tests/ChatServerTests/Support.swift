@testable import ChatServer
import ChatCore
import ChatSQLite
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore

/// Loosely typed access to a JSON response: `body["message"]["seq"].int`.
struct JSONValue: CustomStringConvertible {
    let raw: Any?
    init(_ raw: Any?) { self.raw = raw }
    init(bytes: ByteBuffer) { raw = try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView), options: [.fragmentsAllowed]) }
    subscript(key: String) -> JSONValue { JSONValue((raw as? [String: Any])?[key]) }
    subscript(index: Int) -> JSONValue {
        guard let array = raw as? [Any], index >= 0, index < array.count else { return JSONValue(nil) }
        return JSONValue(array[index])
    }
    var string: String? { raw as? String }
    var int: Int? { (raw as? NSNumber)?.intValue }
    var bool: Bool? { (raw as? NSNumber)?.boolValue }
    var array: [JSONValue] { (raw as? [Any])?.map(JSONValue.init) ?? [] }
    var isNull: Bool { raw is NSNull }
    var exists: Bool { raw != nil }
    var keys: Set<String> { Set((raw as? [String: Any])?.keys.map { $0 } ?? []) }
    var object: [String: JSONValue] { ((raw as? [String: Any]) ?? [:]).mapValues(JSONValue.init) }
    var description: String { raw.map { "\($0)" } ?? "nil" }
}

/// How a test request authenticates.
enum Caller {
    case anonymous
    case bearer(String)
    /// A browser: the session cookie and, for state changes, the CSRF header (nil leaves it out).
    case browser(cookie: String, csrf: String?)
}

struct APIResponse {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let json: JSONValue
    let raw: ByteBuffer
}

/// The package's folder (templates, Public, docs), wherever the tests run.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A path for a fresh SQLite database in a temporary folder of its own.
func testDatabasePath() throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("chat-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder.appendingPathComponent("chat.sqlite").path
}

/// A test configuration on a fresh temporary database with demo data and cheap bcrypt.
func testConfiguration() -> AppConfiguration {
    var config = AppConfiguration()
    config.port = 0
    config.bcryptCost = 4
    config.seedDemoData = true
    // Templates and static files from the package, wherever the tests run.
    config.templatesDirectory = packageRoot.appendingPathComponent("templates").path
    config.publicDirectory = packageRoot.appendingPathComponent("Public").path
    return config
}

/// Runs `body` against a freshly built application on a fresh database (or on `database`, to restart on one); the
/// store stays open for checks until `body` returns.
func withApp<Value: Sendable>(
    _ setup: TestingSetup = .router, config: AppConfiguration = testConfiguration(), database: String? = nil,
    models: any ModelBackendFactory = NoModelBackends(), agentLimits: AgentRuntime.Limits = AgentRuntime.Limits(),
    _ body: @Sendable (any TestClientProtocol, ChatDependencies) async throws -> Value
) async throws -> Value {
    let store = try SQLiteChatStore(path: try database ?? testDatabasePath())
    defer { try? store.close() }
    let dependencies = ChatDependencies.make(config, store: store, models: models, agentLimits: agentLimits)
    var logger = Logger(label: "chat-test")
    logger.logLevel = .warning
    let app = try await buildApplication(config, dependencies: dependencies, logger: logger)
    return try await app.test(setup) { client in try await body(client, dependencies) }
}

extension TestClientProtocol {
    /// Sends a request with an optional JSON body (a Swift value, or raw text via `rawBody`).
    func call(
        _ method: HTTPRequest.Method, _ path: String, as caller: Caller = .anonymous, json: Any? = nil, rawBody: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> APIResponse {
        var headers = extra
        switch caller {
        case .anonymous: break
        case .bearer(let token): headers[.authorization] = "Bearer \(token)"
        case .browser(let cookie, let csrf):
            headers[.cookie] = "chat_session=\(cookie)"
            if let csrf { headers[HTTPField.Name("X-CSRF-Token")!] = csrf }
        }
        var body: ByteBuffer? = nil
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed]))
        } else if let rawBody {
            body = ByteBuffer(string: rawBody)
        }
        if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        return try await execute(uri: path, method: method, headers: headers, body: body) { response in
            APIResponse(status: response.status, headers: response.headers, json: JSONValue(bytes: response.body), raw: response.body)
        }
    }

    /// Signs in through `/api/auth/login`; returns the cookie value and CSRF token.
    func browserSignIn(_ tenant: String, _ username: String, password: String = DemoData.password) async throws -> Caller {
        let response = try await call(.post, "/api/auth/login", json: ["tenant": tenant, "username": username, "password": password])
        guard response.status == .ok, let cookie = sessionCookie(response.headers), let csrf = response.json["csrfToken"].string else {
            throw TestFailure("login failed: \(response.status) \(response.json)")
        }
        return .browser(cookie: cookie, csrf: csrf)
    }

    /// Gets a bearer token through `/api/auth/token`.
    func tokenSignIn(_ tenant: String, _ username: String) async throws -> Caller {
        let response = try await call(.post, "/api/auth/token", json: ["tenant": tenant, "username": username, "password": DemoData.password])
        guard response.status == .ok, let token = response.json["token"].string else {
            throw TestFailure("token failed: \(response.status) \(response.json)")
        }
        return .bearer(token)
    }

    /// The id of the caller's conversation with this title.
    func conversationId(_ title: String, as caller: Caller) async throws -> String {
        let list = try await call(.get, "/api/chat/conversations", as: caller)
        guard let id = list.json["conversations"].array.first(where: { $0["title"].string == title })?["id"].string else {
            throw TestFailure("no conversation \(title)")
        }
        return id
    }

    func userId(_ username: String, as caller: Caller) async throws -> String {
        let list = try await call(.get, "/api/users", as: caller)
        guard let id = list.json["users"].array.first(where: { $0["username"].string == username })?["id"].string else {
            throw TestFailure("no user \(username)")
        }
        return id
    }
}

/// The `chat_session` value from a `Set-Cookie` header.
func sessionCookie(_ headers: HTTPFields) -> String? {
    setCookie(headers)?.split(separator: ";").first.flatMap { part -> String? in
        let pair = part.split(separator: "=", maxSplits: 1)
        return pair.count == 2 && pair[0] == "chat_session" ? String(pair[1]) : nil
    }
}

func setCookie(_ headers: HTTPFields) -> String? {
    headers[values: .setCookie].first { $0.hasPrefix("chat_session=") }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Row counts of every table holding chat state, to check that a refused request changed nothing.
func snapshot(_ store: any ChatStore) async throws -> [String] {
    try await (store as! SQLiteChatStore).pool.read { db in
        var out: [String] = []
        for table in ["tenants", "users", "conversations", "participants", "messages", "events"] {
            out.append("\(table)=\(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1)")
        }
        out.append("closed=\(try String.fetchOne(db, sql: "SELECT group_concat(COALESCE(closed_at, 0)) FROM conversations") ?? "")")
        out.append("read=\(try String.fetchOne(db, sql: "SELECT group_concat(last_read_seq) FROM participants") ?? "")")
        out.append("replies=\(try String.fetchOne(db, sql: "SELECT group_concat(reply_count) FROM messages") ?? "")")
        return out
    }
}
