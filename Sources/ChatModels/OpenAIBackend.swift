import AsyncHTTPClient
import ChatCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// An OpenAI-compatible chat completions server (`POST {baseURL}/chat/completions`, streamed): llama.cpp's server,
/// Ollama, vLLM and hosted APIs speak it. 429 and 5xx answers, and connections that fail before an answer, are tried
/// again with backoff (honouring a short `Retry-After`); once the stream has begun, a failure ends the call.
public struct OpenAIBackend: ModelBackend {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var status: Int
        public var message: String
        public var description: String { "the model server answered \(status): \(message)" }
    }

    let client: HTTPClient
    let endpoint: String
    let model: String?
    /// Read from the environment when the backend is made; never stored or logged.
    let apiKey: String?
    var retries = 2
    var backoff: Duration = .milliseconds(500)
    /// How long to wait for the answer's head (the whole call is bounded by the caller's timeout).
    var headTimeout: TimeAmount = .seconds(30)

    public init(client: HTTPClient, baseURL: String, model: String?, apiKey: String?) {
        self.client = client
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.endpoint = base + "/chat/completions"
        self.model = model
        self.apiKey = apiKey
    }

    /// The request body (JSON).
    func body(turns: [ModelTurn], maxTokens: Int) throws -> Data {
        var object: [String: Any] = [
            "messages": turns.map { ["role": $0.role.rawValue, "content": $0.content] },
            "stream": true,
            "max_tokens": maxTokens,
            "stream_options": ["include_usage": true],
        ]
        if let model { object["model"] = model }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    public func complete(turns: [ModelTurn], maxTokens: Int, onText: @escaping @Sendable (String) async -> Void) async throws -> ModelReply {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let apiKey, !apiKey.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.body = .bytes(ByteBuffer(bytes: try body(turns: turns, maxTokens: maxTokens)))

        var attempt = 0
        while true {
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: headTimeout)
            } catch {
                guard attempt < retries, !Task.isCancelled else { throw error }
                attempt += 1
                try await Task.sleep(for: backoff * (1 << (attempt - 1)))
                continue
            }
            let status = Int(response.status.code)
            if status == 429 || status >= 500, attempt < retries {
                attempt += 1
                let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds(min($0, 5)) }
                try await Task.sleep(for: retryAfter ?? backoff * (1 << (attempt - 1)))
                continue
            }
            guard (200..<300).contains(status) else {
                let text = (try? await response.body.collect(upTo: 16 * 1024)).map { String(buffer: $0) } ?? ""
                throw Failure(status: status, message: Self.errorMessage(text))
            }
            return try await read(response.body, onText: onText)
        }
    }

    func read(_ body: HTTPClientResponse.Body, onText: @escaping @Sendable (String) async -> Void) async throws -> ModelReply {
        var parser = CompletionStream()
        var text = "", usage: ModelUsage? = nil, answeredBy: String? = nil
        func apply(_ events: [CompletionStream.Event]) async {
            var grew = false
            for event in events {
                switch event {
                case .text(let more):
                    text += more
                    grew = true
                case .usage(let reported): usage = reported
                case .model(let name): answeredBy = name
                case .done: break
                }
            }
            if grew { await onText(text) }
        }
        for try await chunk in body {
            await apply(try parser.feed(chunk.readableBytesView))
            if parser.finished { break }
        }
        await apply(try parser.finish())
        return ModelReply(text: text, usage: usage, model: answeredBy ?? model)
    }

    /// The `error.message` of an error body, or the body's start.
    static func errorMessage(_ body: String) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
           let error = object["error"] as? [String: Any], let message = error["message"] as? String
        {
            return message
        }
        return String(body.prefix(200))
    }
}

/// Backends for agents whose settings name an OpenAI-compatible server, sharing one HTTP client.
public struct OpenAIBackends: ModelBackendFactory {
    let client: HTTPClient
    let environment: [String: String]

    public init(client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.client = client
        self.environment = environment
    }

    public func backend(for agent: Agent) -> (any ModelBackend)? {
        guard agent.settings.backend == .openai, let baseURL = agent.settings.baseURL, !baseURL.isEmpty else { return nil }
        return OpenAIBackend(
            client: client, baseURL: baseURL, model: agent.settings.model, apiKey: agent.settings.apiKeyEnv.flatMap { environment[$0] })
    }
}
