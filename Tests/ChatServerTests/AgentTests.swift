import AsyncHTTPClient
@testable import ChatCore
@testable import ChatModels
@testable import ChatServer
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

// MARK: The stream parser

@Suite struct CompletionStreamTests {
    /// A stream as llama.cpp's server sends it (a keep-alive comment, CRLF lines, usage in the last chunk).
    static let recorded = """
        : keep-alive\r
        \r
        data: {"id":"c1","object":"chat.completion.chunk","model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"role":"assistant"}}]}\r
        \r
        data: {"id":"c1","object":"chat.completion.chunk","model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"content":"Friday at "}}]}\r
        \r
        data: {"id":"c1","object":"chat.completion.chunk","model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{"content":"ten, é ✓."}}]}\r
        \r
        data: {"id":"c1","object":"chat.completion.chunk","model":"qwen2.5-0.5b","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\r
        \r
        data: {"id":"c1","object":"chat.completion.chunk","model":"qwen2.5-0.5b","choices":[],"usage":{"prompt_tokens":31,"completion_tokens":6,"total_tokens":37}}\r
        \r
        data: [DONE]\r
        \r

        """

    static let expected: [CompletionStream.Event] = [
        .model("qwen2.5-0.5b"), .text("Friday at "), .text("ten, é ✓."), .usage(ModelUsage(promptTokens: 31, completionTokens: 6)), .done,
    ]

    @Test func aRecordedStreamGivesTextUsageAndTheEndHoweverItIsCut() throws {
        let bytes = Array(Self.recorded.utf8)
        // Whole, then cut after every byte (inside lines and inside UTF-8 characters), then in odd pieces.
        for size in [bytes.count, 1, 7, 64] {
            var parser = CompletionStream()
            var events: [CompletionStream.Event] = []
            var start = 0
            while start < bytes.count {
                events += try parser.feed(bytes[start..<min(start + size, bytes.count)])
                start += size
            }
            events += try parser.finish()
            #expect(events == Self.expected, "pieces of \(size)")
            #expect(parser.finished)
        }
    }

    @Test func multiLineDataAndALastEventWithoutItsBlankLine() throws {
        var parser = CompletionStream()
        var events = try parser.feed(Array("event: message\ndata: {\"choices\":[{\"delta\":\ndata: {\"content\":\"hi\"}}]}\n\nid: 3\ndata: [DONE]".utf8))
        #expect(events == [.text("hi")])
        events = try parser.finish()
        #expect(events == [.done])
    }

    @Test func anErrorInTheStreamIsThrownAndGarbageIsRefused() throws {
        var parser = CompletionStream()
        #expect(try parser.feed(Array("data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n".utf8)) == [.text("par")])
        #expect(throws: CompletionStream.StreamError(message: "model overloaded")) {
            try parser.feed(Array("data: {\"error\":{\"message\":\"model overloaded\",\"type\":\"server_error\"}}\n\n".utf8))
        }
        var garbage = CompletionStream()
        #expect(throws: CompletionStream.StreamError.self) { try garbage.feed(Array("data: <html>\n\n".utf8)) }
    }
}

// MARK: The budget

@Suite struct AgentBudgetTests {
    @Test func reservesSettlesAndRefuses() async throws {
        try await withApp { _, dependencies in
            let store = dependencies.store
            let tenant = try #require(try await store.tenant(slug: "acme"))
            var settings = Agent.Settings(backend: .builtin, dailyTokenBudget: 1_000, requestsPerMinute: 3)
            let agent = try await store.createAgent(tenantId: tenant.id, username: "budgeted", displayName: "Budgeted", settings: settings)
            let budget = AgentBudget(store: store)
            let now = Timestamp.now()
            let day = AgentBudget.day(now)
            let first = try await budget.reserve(agent, tokens: 600, now: now)
            #expect(try await store.tokensUsed(tenantId: tenant.id, agentId: agent.id, day: day) == 600)
            // Over the day's budget: refused, and nothing reserved.
            await #expect(throws: ModelRefusal.overTokenBudget) { try await budget.reserve(agent, tokens: 500, now: now) }
            #expect(try await store.tokensUsed(tenantId: tenant.id, agentId: agent.id, day: day) == 600)
            // Settled with what was used: the rest is free again.
            try await budget.settle(first, used: ModelUsage(promptTokens: 150, completionTokens: 50))
            #expect(try await store.tokensUsed(tenantId: tenant.id, agentId: agent.id, day: day) == 200)
            _ = try await budget.reserve(agent, tokens: 500, now: now)
            // The third call of the minute is the last (the refused one did not count); the fourth is refused.
            _ = try await budget.reserve(agent, tokens: 10, now: now)
            await #expect(throws: ModelRefusal.overRequestRate) { try await budget.reserve(agent, tokens: 10, now: now) }
            // A minute later the rate allows calls again; another day has its own budget.
            _ = try await budget.reserve(agent, tokens: 900, now: Timestamp(milliseconds: now.milliseconds + 86_400_000))
            // Another tenant's agent has its own count.
            let globex = try #require(try await store.tenant(slug: "globex"))
            settings.requestsPerMinute = 10
            let other = try await store.createAgent(tenantId: globex.id, username: "budgeted", displayName: "Other", settings: settings)
            _ = try await budget.reserve(other, tokens: 1_000, now: now)
            #expect(try await store.tokensUsed(tenantId: globex.id, agentId: other.id, day: day) == 1_000)
        }
    }
}

// MARK: A fake OpenAI-compatible server

/// Replays scripted streams on `POST /v1/chat/completions` and records every request it gets.
final class FakeModelServer: Sendable {
    enum Reply: Sendable {
        /// SSE text, written in these pieces with `delay` between them.
        case stream([String], delay: Duration)
        case status(Int, String)
        /// Never answers (until the test ends).
        case hang
    }

    struct Recorded: Sendable {
        let body: String
        let model: String?
        let authorization: String?
    }

    let requests = Mutex<[Recorded]>([])
    let script: @Sendable (Int, String) -> Reply

    init(script: @escaping @Sendable (Int, String) -> Reply) {
        self.script = script
    }

    var recorded: [Recorded] { requests.withLock { $0 } }

    /// A reply streamed in `pieces` chunks, as a server would: the model's name, deltas, usage, `[DONE]`.
    static func streamed(_ text: String, model: String = "fake-model", pieces: Int = 4, delay: Duration = .milliseconds(60)) -> Reply {
        let words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let size = max(1, (words.count + pieces - 1) / pieces)
        var chunks: [String] = []
        var index = 0
        while index < words.count {
            let part = words[index..<min(index + size, words.count)].joined(separator: " ") + (index + size < words.count ? " " : "")
            let json = try! JSONSerialization.data(withJSONObject: ["model": model, "choices": [["index": 0, "delta": ["content": part]]]])
            chunks.append("data: \(String(decoding: json, as: UTF8.self))\n\n")
            index += size
        }
        chunks.append(#"data: {"model":"\#(model)","choices":[],"usage":{"prompt_tokens":40,"completion_tokens":\#(words.count)}}"# + "\n\n")
        chunks.append("data: [DONE]\n\n")
        return .stream(chunks, delay: delay)
    }

    /// Runs the server on a free loopback port for the length of `body`.
    func run<T: Sendable>(_ body: @Sendable (String) async throws -> T) async throws -> T {
        let router = Router()
        router.post("/v1/chat/completions") { [self] request, _ -> Response in
            let text = String(buffer: try await request.body.collect(upTo: 4 << 20))
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
            let index = requests.withLock { requests in
                requests.append(Recorded(body: text, model: object?["model"] as? String, authorization: request.headers[.authorization]))
                return requests.count - 1
            }
            switch script(index, text) {
            case .status(let code, let message):
                return Response(
                    status: .init(code: code), headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"\#(message)"}}"#)))
            case .hang:
                try await Task.sleep(for: .seconds(60))
                return Response(status: .gatewayTimeout)
            case .stream(let chunks, let delay):
                return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: ResponseBody { writer in
                    for chunk in chunks {
                        try await writer.write(ByteBuffer(string: chunk))
                        try await Task.sleep(for: delay)
                    }
                    try await writer.finish(nil)
                })
            }
        }
        let port = Mutex<Int?>(nil)
        var logger = Logger(label: "fake-model-server")
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } }, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await app.runService(gracefulShutdownSignals: [])
                return nil
            }
            var bound: Int? = nil
            for _ in 0..<200 where bound == nil {
                try await Task.sleep(for: .milliseconds(10))
                bound = port.withLock { $0 }
            }
            guard let bound else { throw TestFailure("the fake model server did not start") }
            let result = try await body("http://127.0.0.1:\(bound)/v1")
            group.cancelAll()
            return result
        }
    }
}

// MARK: Agents on a live server

/// An openai agent in tenant `tenant` on the fake server, in a new conversation of alice (or dave), bob and it.
func addModelAgent(
    _ dependencies: ChatDependencies, tenant: String, name: String, baseURL: String, model: String, budget: Int = 100_000
) async throws -> Agent {
    let store = dependencies.store
    let tenantId = try #require(try await store.tenant(slug: tenant)).id
    let agent = try await store.createAgent(
        tenantId: tenantId, username: name, displayName: name.capitalized,
        settings: Agent.Settings(backend: .openai, baseURL: baseURL, model: model, apiKeyEnv: "CHAT_TEST_MODEL_KEY", dailyTokenBudget: budget))
    dependencies.agents.agentsChanged()
    return agent
}

func waitFor<T>(_ what: String, timeout: Duration = .seconds(10), _ probe: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await probe() { return value }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestFailure("timed out waiting for \(what)")
}

extension TestClientProtocol {
    /// The conversation's messages (top level) as (sender username, content, clientMessageId).
    func history(_ room: String, as caller: Caller) async throws -> [(String, String, String?)] {
        try await call(.get, "/api/chat/\(room)/messages?limit=200", as: caller).json["messages"].array.map {
            ($0["sender"]["username"].string ?? "", $0["content"].string ?? "", $0["clientMessageId"].string)
        }
    }
}

@Suite(.serialized) struct AgentLiveTests {
    static let models = OpenAIBackends(client: .shared, environment: ["CHAT_TEST_MODEL_KEY": "sk-test-secret"])

    @Test func aMentionStreamsProgressThenOneDurableReplyOnEveryTransport() async throws {
        let fake = FakeModelServer { _, _ in FakeModelServer.streamed("The launch is on Friday at ten, in the big room.", pieces: 5) }
        try await fake.run { baseURL in
            try await withApp(.live, models: Self.models) { client, dependencies in
                let agent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model")
                let alice = try await client.tokenSignIn("acme", "alice")
                let bob = try await client.tokenSignIn("acme", "bob")
                let bobId = try await client.userId("bob", as: alice)
                let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Launch", "participantIds": [bobId, agent.id]])
                    .json["conversation"]["id"].string!
                let cursor = try await client.currentCursor(as: bob)
                let port = client.port!
                try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                    socket.send(["type": "join_room", "conversationId": room])
                    #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                    try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)) { sse in
                        let trigger = try await client.send("@helper when is the launch?", to: room, as: alice)
                        // WebSocket: the question, progress that grows, the end of the preview, the reply (in some order
                        // for the last two).
                        var progress: [String] = []
                        var reply: JSONValue? = nil
                        var done = false
                        while reply == nil || !done {
                            guard let event = await socket.inbox.nextJSON(timeout: .seconds(10)) else { break }
                            switch event["type"].string {
                            case "agent_progress":
                                #expect(event["eventId"].isNull && event["data"]["triggerMessageId"].string == trigger)
                                if event["data"]["done"].bool == true { done = true } else { progress.append(event["data"]["text"].string ?? "") }
                            case "new_message" where event["data"]["senderId"].string == agent.id:
                                reply = event["data"]
                            default: break
                            }
                        }
                        #expect(!progress.isEmpty)
                        #expect(zip(progress, progress.dropFirst()).allSatisfy { $1.hasPrefix($0) }, "\(progress)")
                        let stored = try #require(reply)
                        #expect(stored["content"].string == "The launch is on Friday at ten, in the big room.")
                        #expect(stored["clientMessageId"].string == "agent:\(trigger)")
                        #expect(stored["sender"]["isBot"].bool == true)
                        // SSE: progress and the same reply.
                        var sseTypes: [String] = []
                        while !sseTypes.contains("new_message:bot") {
                            guard let text = await sse.inbox.next(timeout: .seconds(5)) else { break }
                            let message = SSEMessage(text)
                            guard let type = message.event else { continue }
                            sseTypes.append(type == "new_message" && message.data["data"]["senderId"].string == agent.id ? "new_message:bot" : type)
                        }
                        #expect(sseTypes.contains("agent_progress") && sseTypes.contains("new_message:bot"), "\(sseTypes)")
                    }
                }
                // Long-poll from the cursor: the question and exactly one reply, durable.
                let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob))
                let replies = polled.body["events"].array.filter { $0["type"].string == "new_message" && $0["data"]["senderId"].string == agent.id }
                #expect(replies.count == 1)
                #expect(try await client.history(room, as: bob).filter { $0.0 == "helper" }.count == 1)
                // The model saw the conversation as quoted data under the agent's instructions, with the key.
                let request = try #require(fake.recorded.first)
                #expect(request.authorization == "Bearer sk-test-secret" && request.model == "fake-model")
                #expect(request.body.contains(#"@helper when is the launch?"#) && request.body.contains("quoted data"))
                #expect(request.body.contains(#""stream":true"#))
                // Usage recorded against the day's budget, settled to the server's figures (40 prompt, one token a word).
                let used = try await dependencies.store.tokensUsed(tenantId: agent.tenantId, agentId: agent.id, day: AgentBudget.day(.now()))
                #expect(used == 40 + 11)
            }
        }
    }

    @Test func aResentTriggerOrARestartMidReplyNeverPostsTwice() async throws {
        let slow = Mutex(true)
        let fake = FakeModelServer { _, _ in
            slow.withLock { $0 } ? .hang : FakeModelServer.streamed("Answer once.", pieces: 2, delay: .milliseconds(10))
        }
        let database = try testDatabasePath()
        try await fake.run { baseURL in
            var limits = AgentRuntime.Limits()
            limits.replyTimeout = .seconds(30)
            // First server: the model hangs; the server goes away mid-reply.
            let (room, agentId) = try await withApp(.live, database: database, models: Self.models, agentLimits: limits) { client, dependencies in
                let agent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model")
                let alice = try await client.tokenSignIn("acme", "alice")
                let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Direct", "participantIds": [agent.id]])
                    .json["conversation"]["id"].string!
                _ = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "hello there", "clientMessageId": "q-1"])
                _ = try await waitFor("the model to be asked") { fake.recorded.isEmpty ? nil : true }
                return (room, agent.id)
            }
            slow.withLock { $0 = false }
            // Second server on the same database: the client retries its send (same clientMessageId).
            try await withApp(.live, database: database, models: Self.models, agentLimits: limits) { client, _ in
                let alice = try await client.tokenSignIn("acme", "alice")
                for _ in 0..<3 {
                    let resend = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "hello there", "clientMessageId": "q-1"])
                    #expect(resend.status == .ok)
                }
                _ = try await waitFor("the reply") { try await client.history(room, as: alice).contains { $0.1 == "Answer once." } ? true : nil }
                try await Task.sleep(for: .milliseconds(500))
                let history = try await client.history(room, as: alice)
                #expect(history.filter { $0.0 == "helper" }.count == 1, "\(history)")
                #expect(history.filter { $0.1 == "hello there" }.count == 1)
                _ = agentId
            }
        }
    }

    @Test func aTimeoutOrAServerErrorGivesTheFallbackAndSummariesFallBackToTheDigest() async throws {
        let fake = FakeModelServer { index, _ in index == 0 ? .hang : .status(500, "boom") }
        try await fake.run { baseURL in
            var limits = AgentRuntime.Limits()
            // Long enough for the two retries of a 500 (0.5 s and 1 s apart), short for a hang.
            limits.replyTimeout = .seconds(3)
            try await withApp(.live, models: Self.models, agentLimits: limits) { client, dependencies in
                let agent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model")
                let alice = try await client.tokenSignIn("acme", "alice")
                let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Direct", "participantIds": [agent.id]])
                    .json["conversation"]["id"].string!
                try await client.send("are you there?", to: room, as: alice)
                let timedOut = try await waitFor("the timeout answer") { try await client.history(room, as: alice).first { $0.0 == "helper" } }
                #expect(timedOut.1 == "My model took too long to answer. Please try again later.")
                try await client.send("and now?", to: room, as: alice)
                let failed = try await waitFor("the failure answer") {
                    try await client.history(room, as: alice).filter { $0.0 == "helper" }.dropFirst().first
                }
                #expect(failed.1 == "My model could not answer just now. Please try again later.")
                // 500s are retried (twice) before giving up.
                #expect(fake.recorded.count == 1 + 3)
                // A summary asked of the model falls back to the digest, and says so.
                let summary = try await client.call(.get, "/api/chat/\(room)/summary?method=llm", as: alice).json["summary"]
                #expect(summary["method"].string == "extractive" && summary["model"].isNull)
            }
        }
    }

    @Test func overBudgetTheModelIsNotAskedAndTheAgentSaysSo() async throws {
        let fake = FakeModelServer { _, _ in FakeModelServer.streamed("should not be asked") }
        try await fake.run { baseURL in
            try await withApp(.live, models: Self.models) { client, dependencies in
                let agent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model", budget: 10)
                let alice = try await client.tokenSignIn("acme", "alice")
                let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Direct", "participantIds": [agent.id]])
                    .json["conversation"]["id"].string!
                try await client.send("tell me a long story", to: room, as: alice)
                let reply = try await waitFor("the refusal") { try await client.history(room, as: alice).first { $0.0 == "helper" } }
                #expect(reply.1.hasPrefix("I have used up today's model budget"))
                #expect(fake.recorded.isEmpty)
                let summary = try await client.call(.get, "/api/chat/\(room)/summary", as: alice).json["summary"]
                #expect(summary["method"].string == "extractive")
                // The built-in commands still answer.
                try await client.send("/usage", to: room, as: alice)
                let usage = try await waitFor("/usage") { try await client.history(room, as: alice).first { $0.1.hasPrefix("Today (UTC) I have used") } }
                #expect(usage.1.contains("of my 10 tokens"))
            }
        }
    }

    @Test func aModelsSummaryIsCachedThenUpdatedFromItsOwnTextAndTheNewerMessagesOnly() async throws {
        let fake = FakeModelServer { index, _ in FakeModelServer.streamed("Summary number \(index + 1).", model: "fake-model", pieces: 1, delay: .zero) }
        try await fake.run { baseURL in
            try await withApp(.live, models: Self.models) { client, dependencies in
                _ = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model")
                let alice = try await client.tokenSignIn("acme", "alice")
                let room = try await client.conversationId("General", as: alice)
                let first = try await client.call(.get, "/api/chat/\(room)/summary", as: alice).json["summary"]
                #expect(first["method"].string == "llm" && first["model"].string == "fake-model" && first["text"].string == "Summary number 1.")
                #expect(first["cached"].bool == false && first["highlights"].array.count > 0)
                #expect(fake.recorded.count == 1 && fake.recorded[0].body.contains("Welcome to Acme chat!"))
                // Nothing new: the stored text, no call.
                #expect(try await client.call(.get, "/api/chat/\(room)/summary", as: alice).json["summary"]["cached"].bool == true)
                #expect(fake.recorded.count == 1)
                // A new message: the model gets its previous text and only what came after.
                try await client.send("Moving the launch to Monday.", to: room, as: alice)
                let second = try await client.call(.get, "/api/chat/\(room)/summary", as: alice).json["summary"]
                #expect(second["text"].string == "Summary number 2." && second["cached"].bool == false)
                let update = fake.recorded[1].body
                #expect(update.contains("Summary number 1.") && update.contains("Moving the launch to Monday."))
                #expect(!update.contains("Welcome to Acme chat!"))
                // refresh=1: written afresh from the messages.
                let third = try await client.call(.get, "/api/chat/\(room)/summary?refresh=1", as: alice).json["summary"]
                #expect(third["text"].string == "Summary number 3.")
                #expect(fake.recorded[2].body.contains("Welcome to Acme chat!") && !fake.recorded[2].body.contains("Summary number 2."))
                // method=extractive never asks the model.
                #expect(try await client.call(.get, "/api/chat/\(room)/summary?method=extractive", as: alice).json["summary"]["method"].string == "extractive")
                #expect(fake.recorded.count == 3)
                #expect(try await client.call(.get, "/api/chat/\(room)/summary?method=best", as: alice).status == .badRequest)
            }
        }
    }

    @Test func aHangingModelDelaysNoSendAndNoOtherTenantAndItsQueueIsBounded() async throws {
        let fake = FakeModelServer { _, body in
            body.contains("model-acme") ? .hang : FakeModelServer.streamed("Globex answers.", model: "model-globex", pieces: 1, delay: .zero)
        }
        try await fake.run { baseURL in
            var limits = AgentRuntime.Limits()
            limits.perTenantConcurrency = 1
            limits.perTenantQueue = 1
            limits.replyTimeout = .seconds(30)
            try await withApp(.live, models: Self.models, agentLimits: limits) { client, dependencies in
                let acmeAgent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "model-acme")
                let globexAgent = try await addModelAgent(dependencies, tenant: "globex", name: "helper", baseURL: baseURL, model: "model-globex")
                let alice = try await client.tokenSignIn("acme", "alice")
                let dave = try await client.tokenSignIn("globex", "dave")
                let acmeRoom = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Direct", "participantIds": [acmeAgent.id]])
                    .json["conversation"]["id"].string!
                // The first question is being answered (the model hangs), the second waits, the third finds the queue full.
                for question in ["first?", "second?", "third?"] {
                    let started = ContinuousClock.now
                    try await client.send(question, to: acmeRoom, as: alice)
                    #expect(ContinuousClock.now - started < .seconds(2), "a send waited for the model")
                }
                let busy = try await waitFor("the busy answer") { try await client.history(acmeRoom, as: alice).first { $0.0 == "helper" } }
                #expect(busy.1.hasPrefix("I have too many requests from this workspace"))
                #expect(busy.2?.hasPrefix("agent:") == true)
                #expect(dependencies.agents.load(tenantId: acmeAgent.tenantId) == (running: 1, queued: 1))
                // Globex's agent answers at once meanwhile.
                let globexRoom = try await client.call(.post, "/api/chat/start", as: dave, json: ["title": "Direct", "participantIds": [globexAgent.id]])
                    .json["conversation"]["id"].string!
                let started = ContinuousClock.now
                try await client.send("hello?", to: globexRoom, as: dave)
                let reply = try await waitFor("globex's answer") { try await client.history(globexRoom, as: dave).first { $0.0 == "helper" } }
                #expect(reply.1 == "Globex answers." && ContinuousClock.now - started < .seconds(5))
            }
        }
    }

    @Test func olderMessagesAreFoldedIntoAStoredMemoryTheModelIsShown() async throws {
        let fake = FakeModelServer { _, _ in FakeModelServer.streamed("Got it.", pieces: 1, delay: .zero) }
        try await fake.run { baseURL in
            var limits = AgentRuntime.Limits()
            limits.contextTokens = 30
            try await withApp(.live, models: Self.models, agentLimits: limits) { client, dependencies in
                let agent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "fake-model")
                let alice = try await client.tokenSignIn("acme", "alice")
                let bob = try await client.tokenSignIn("acme", "bob")
                let bobId = try await client.userId("bob", as: alice)
                let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Planning", "participantIds": [bobId, agent.id]])
                    .json["conversation"]["id"].string!
                try await client.send("The database migration for release 2.4 needs a review before Thursday.", to: room, as: bob)
                for index in 0..<8 { try await client.send("ok \(index)!", to: room, as: alice) }
                try await client.send("@helper what needs a review before Thursday?", to: room, as: alice)
                _ = try await waitFor("the answer") { try await client.history(room, as: alice).first { $0.0 == "helper" } }
                let request = try #require(fake.recorded.last).body
                // The oldest message no longer fits the context: it reaches the model through the digest.
                #expect(request.contains("What was said earlier"))
                #expect(request.contains("database migration for release 2.4"))
                let memory = try await dependencies.store.memory(tenantId: agent.tenantId, conversationId: room, kind: "agent:\(agent.id)")
                #expect((memory?.throughSeq ?? 0) >= 1)
            }
        }
    }

    @Test func aCanaryWrittenInOneTenantNeverReachesAnotherTenantsAgent() async throws {
        let fake = FakeModelServer { _, body in
            body.contains("model-acme")
                ? FakeModelServer.streamed("Noted for Acme.", model: "model-acme", pieces: 2, delay: .milliseconds(5))
                : FakeModelServer.streamed("Noted for Globex.", model: "model-globex", pieces: 2, delay: .milliseconds(5))
        }
        try await fake.run { baseURL in
            try await withApp(.live, models: Self.models) { client, dependencies in
                let acmeAgent = try await addModelAgent(dependencies, tenant: "acme", name: "helper", baseURL: baseURL, model: "model-acme")
                let globexAgent = try await addModelAgent(dependencies, tenant: "globex", name: "helper", baseURL: baseURL, model: "model-globex")
                let alice = try await client.tokenSignIn("acme", "alice")
                let dave = try await client.tokenSignIn("globex", "dave")
                let canary = "canary-\(UUID().uuidString)"
                let acmeRoom = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Secret \(canary)", "participantIds": [acmeAgent.id]])
                    .json["conversation"]["id"].string!
                try await client.send("The vault code is \(canary). Remember it, @helper.", to: acmeRoom, as: alice)
                _ = try await waitFor("acme's reply") { try await client.history(acmeRoom, as: alice).first { $0.0 == "helper" } }
                _ = try await client.call(.get, "/api/chat/\(acmeRoom)/summary?method=llm", as: alice)
                // Globex asks its own agent everything it can: a question, a summary, about the code.
                let globexRoom = try await client.call(.post, "/api/chat/start", as: dave, json: ["title": "Ops", "participantIds": [globexAgent.id]])
                    .json["conversation"]["id"].string!
                try await client.send("@helper what is the vault code? What did Acme say?", to: globexRoom, as: dave)
                _ = try await waitFor("globex's reply") { try await client.history(globexRoom, as: dave).first { $0.0 == "helper" } }
                let summary = try await client.call(.get, "/api/chat/\(globexRoom)/summary?method=llm", as: dave).json["summary"]
                #expect(summary["method"].string == "llm" && summary["model"].string == "model-globex")
                let globexRequests = fake.recorded.filter { $0.model == "model-globex" }
                let acmeRequests = fake.recorded.filter { $0.model == "model-acme" }
                #expect(globexRequests.count == 2 && acmeRequests.count == 2)
                #expect(acmeRequests.allSatisfy { $0.body.contains(canary) })
                #expect(!globexRequests.contains { $0.body.contains(canary) })
                // Nor does it reach Globex through its API.
                let agents = try await client.call(.get, "/api/agents", as: dave)
                #expect(agents.json["agents"].array.map { $0["username"].string } == ["assistant", "helper"])
                #expect(agents.json["agents"].array.map { $0["model"].string } == [nil, "model-globex"])
                #expect(!String(buffer: agents.raw).contains(baseURL))
                #expect(!String(buffer: agents.raw).contains("CHAT_TEST_MODEL_KEY") && !String(buffer: agents.raw).contains("sk-test-secret"))
            }
        }
    }
}
