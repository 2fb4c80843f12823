import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Logging
import NIOCore
import NIOPosix
import Synchronization
import WSClient

/// Messages received by a test client, readable with a timeout.
final class Inbox: Sendable {
    private let state = Mutex<(items: [String], closed: Bool)>(([], false))

    func append(_ text: String) { state.withLock { $0.items.append(text) } }
    func close() { state.withLock { $0.closed = true } }
    var isClosed: Bool { state.withLock { $0.closed } }

    /// The next message, or nil after `timeout` (or once closed and empty).
    func next(timeout: Duration = .seconds(5)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let item = state.withLock { s -> (String?, Bool) in
                if !s.items.isEmpty { return (s.items.removeFirst(), false) }
                return (nil, s.closed)
            }
            if let text = item.0 { return text }
            if item.1 { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// The next message parsed as JSON, skipping those `skip` says to.
    func nextJSON(timeout: Duration = .seconds(5), skip: (JSONValue) -> Bool = { _ in false }) async -> JSONValue? {
        while let text = await next(timeout: timeout) {
            let json = JSONValue(try? JSONSerialization.jsonObject(with: Data(text.utf8)))
            if !skip(json) { return json }
        }
        return nil
    }

    /// Waits until nothing arrives for `quiet`; returns what came.
    func drain(quiet: Duration = .milliseconds(300)) async -> [String] {
        var out: [String] = []
        while let text = await next(timeout: quiet) { out.append(text) }
        return out
    }
}

/// A WebSocket test connection: send frames, read what arrives.
struct WSConnection: Sendable {
    let inbox: Inbox
    let outgoing: AsyncStream<String?>.Continuation

    func send(_ json: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: json)
        outgoing.yield(String(decoding: data, as: UTF8.self))
    }

    func sendRaw(_ text: String) { outgoing.yield(text) }
}

/// Opens a WebSocket to the live test server, runs `body`, then closes; returns the server's close frame.
@discardableResult
func withWebSocket(
    _ client: any TestClientProtocol, headers: HTTPFields, _ body: @escaping @Sendable (WSConnection) async throws -> Void
) async throws -> WebSocketCloseFrame? {
    let inbox = Inbox()
    let (outgoing, continuation) = AsyncStream<String?>.makeStream()
    let connection = WSConnection(inbox: inbox, outgoing: continuation)
    return try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
        group.addTask {
            defer { inbox.close() }
            return try await client.ws(
                "/api/chat/ws", configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers)
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { inner in
                    inner.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message { inbox.append(text) }
                        }
                    }
                    inner.addTask {
                        for await item in outgoing {
                            guard let item else {
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                            try await outbound.write(.text(item))
                        }
                    }
                    try await inner.next()
                    inner.cancelAll()
                }
            }
        }
        group.addTask {
            try await body(connection)
            continuation.yield(nil)
            return nil
        }
        var close: WebSocketCloseFrame? = nil
        for try await result in group where result != nil { close = result }
        return close
    }
}

/// A raw HTTP/1.1 client for streaming responses (SSE): the test framework's client only returns whole bodies.
final class StreamingHTTPClient: Sendable {
    let inbox = Inbox()
    let head = Mutex<String>("")

    /// Sends a GET and feeds each SSE message (the text between blank lines) into `inbox` until the server
    /// ends the stream, closes, or `body` returns.
    static func stream(
        port: Int, path: String, headers: [(String, String)], _ body: @escaping @Sendable (StreamingHTTPClient) async throws -> Void
    ) async throws {
        let client = StreamingHTTPClient()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        try await channel.executeThenClose { inbound, outbound in
            var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
            for (name, value) in headers { request += "\(name): \(value)\r\n" }
            request += "\r\n"
            try await outbound.write(ByteBuffer(string: request))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var parser = SSEParser()
                    defer { client.inbox.close() }
                    for try await buffer in inbound {
                        for message in parser.feed(String(buffer: buffer)) { client.inbox.append(message) }
                        if let head = parser.head { client.head.withLock { $0 = head } }
                        if parser.isFinished { break }
                    }
                }
                group.addTask { try await body(client) }
                try await group.next()
                group.cancelAll()
            }
        }
    }
}

/// Splits an HTTP/1.1 chunked SSE response into its head and its messages.
struct SSEParser {
    var head: String?
    /// True once the last (empty) chunk arrived: the server ended the stream, whether or not it closes the connection.
    private(set) var isFinished = false
    private var raw = ""
    private var body = ""

    mutating func feed(_ text: String) -> [String] {
        raw += text
        if head == nil {
            guard let end = raw.range(of: "\r\n\r\n") else { return [] }
            head = String(raw[..<end.lowerBound])
            raw = String(raw[end.upperBound...])
        }
        // De-chunk: "<hex size>\r\n<data>\r\n" repeated.
        while let lineEnd = raw.range(of: "\r\n") {
            guard let size = Int(raw[..<lineEnd.lowerBound], radix: 16) else { break }
            if size == 0 { isFinished = true }
            let dataStart = lineEnd.upperBound
            guard raw.utf8.distance(from: dataStart, to: raw.endIndex) >= size + 2 else { break }
            let dataEnd = raw.utf8.index(dataStart, offsetBy: size)
            body += String(raw[dataStart..<dataEnd])
            raw = String(raw[raw.utf8.index(dataEnd, offsetBy: 2)...])
        }
        var messages: [String] = []
        while let end = body.range(of: "\n\n") {
            messages.append(String(body[..<end.lowerBound]))
            body = String(body[end.upperBound...])
        }
        return messages
    }
}

/// Fields of one SSE message.
struct SSEMessage {
    var id: String?
    var event: String?
    var data: JSONValue
    /// True for messages without an event (comments, the `retry:` preamble).
    var isComment: Bool

    init(_ text: String) {
        var id: String?, event: String?, data = ""
        var comment = true
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("id: ") { id = String(line.dropFirst(4)); comment = false }
            else if line.hasPrefix("event: ") { event = String(line.dropFirst(7)); comment = false }
            else if line.hasPrefix("data: ") { data += line.dropFirst(6); comment = false }
        }
        self.id = id
        self.event = event
        self.data = JSONValue(try? JSONSerialization.jsonObject(with: Data(data.utf8)))
        self.isComment = comment
    }
}

/// A one-shot HTTP/1.1 GET on its own connection (the test client serialises requests on one connection, so
/// a held long-poll would block every other request behind it).
enum RawHTTP {
    static func get(port: Int, path: String, headers: [(String, String)]) async throws -> (status: Int, body: JSONValue) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
            for (name, value) in headers { request += "\(name): \(value)\r\n" }
            request += "\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var response = ""
            for try await buffer in inbound { response += String(buffer: buffer) }
            guard let split = response.range(of: "\r\n\r\n") else { throw TestFailure("no response head") }
            let status = Int(response.split(separator: " ").dropFirst().first ?? "") ?? 0
            let body = String(response[split.upperBound...])
            return (status, JSONValue(try? JSONSerialization.jsonObject(with: Data(body.utf8))))
        }
    }
}
