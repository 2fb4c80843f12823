@testable import ChatServer
import ChatCore
import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import NIOCore
import NIOPosix
import Testing
import WSClient

func authHeaders(_ caller: Caller) -> HTTPFields {
    switch caller {
    case .bearer(let token): [.authorization: "Bearer \(token)"]
    case .browser(let cookie, _): [.cookie: "chat_session=\(cookie)"]
    case .anonymous: [:]
    }
}

/// A new API token of bob's that expires `milliseconds` from now, and the moment it was made.
func bobsToken(_ deps: ChatDependencies, expiringIn milliseconds: Int64) async throws -> (String, Timestamp) {
    let bob = try #require(try await deps.store.loginRecord(tenantSlug: "acme", username: "bob")?.user)
    let secret = Secret.make()
    let now = Timestamp.now()
    try await deps.store.insertCredential(Credential(
        hash: SHA256.hex(secret), tenantId: bob.tenantId, userId: bob.id, method: .token, csrfToken: nil,
        createdAt: now, expiresAt: Timestamp(milliseconds: now.milliseconds + milliseconds)))
    return (secret, now)
}

func headerPairs(_ caller: Caller) -> [(String, String)] {
    authHeaders(caller).map { ($0.name.rawName, $0.value) }
}

extension TestClientProtocol {
    func currentCursor(as caller: Caller) async throws -> String {
        try await call(.get, "/api/chat/poll", as: caller).json["cursor"].string ?? ""
    }

    @discardableResult
    func send(_ content: String, to room: String, as caller: Caller) async throws -> String {
        let response = try await call(.post, "/api/chat/send", as: caller, json: ["conversationId": room, "content": content])
        guard response.status == .created, let id = response.json["message"]["id"].string else {
            throw TestFailure("send failed: \(response.status) \(response.json)")
        }
        return id
    }
}

@Suite struct RealtimeTests {
    @Test func webSocketCarriesMessagesTypingAndReceiptsBetweenUsers() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: alice)
            try await withWebSocket(client, headers: authHeaders(bob)) { bobSocket in
                bobSocket.send(["type": "join_room", "conversationId": room])
                let joined = try #require(await bobSocket.inbox.nextJSON())
                #expect(joined["type"].string == "joined")
                #expect(joined["room"].string?.hasSuffix(":\(room)") == true)

                let restId = try await client.send("over REST", to: room, as: alice)
                let restEvent = try #require(await bobSocket.inbox.nextJSON())
                #expect(restEvent["type"].string == "new_message")
                #expect(restEvent["data"]["id"].string == restId)
                #expect(restEvent["eventId"].string != nil)
                #expect(restEvent["room"].string == joined["room"].string)

                try await withWebSocket(client, headers: authHeaders(alice)) { aliceSocket in
                    aliceSocket.send(["type": "new_message", "conversationId": room, "content": "over WebSocket", "clientMessageId": "ws-1"])
                    let ack = try #require(await aliceSocket.inbox.nextJSON())
                    #expect(ack["type"].string == "ack")
                    #expect(ack["clientMessageId"].string == "ws-1")
                    let socketEvent = try #require(await bobSocket.inbox.nextJSON())
                    #expect(socketEvent["data"]["id"].string == ack["message"]["id"].string)
                    #expect(socketEvent["data"]["content"].string == "over WebSocket")
                    // The ack carries the message exactly as its event does.
                    let acked = try #require(ack["message"].raw as? NSDictionary)
                    #expect(acked == socketEvent["data"].raw as? NSDictionary)
                    // A resend of the same clientMessageId is acknowledged with the first message and announces nothing
                    // (Bob's next frame below is the typing event).
                    aliceSocket.send(["type": "new_message", "conversationId": room, "content": "over WebSocket", "clientMessageId": "ws-1"])
                    let again = try #require(await aliceSocket.inbox.nextJSON())
                    #expect(again["type"].string == "ack")
                    #expect(again["message"].raw as? NSDictionary == acked)

                    aliceSocket.send(["type": "typing", "conversationId": room])
                    let typing = try #require(await bobSocket.inbox.nextJSON())
                    #expect(typing["type"].string == "typing")
                    #expect(typing["eventId"].isNull)
                    #expect(typing["data"]["displayName"].string == "Alice Anders")

                    aliceSocket.send(["type": "read_receipt", "conversationId": room, "messageId": restId])
                    let receipt = try #require(await bobSocket.inbox.nextJSON())
                    #expect(receipt["type"].string == "read_receipt")
                    #expect(receipt["data"]["messageId"].string == restId)

                    // A bad frame gets an error and the connection lives on.
                    aliceSocket.sendRaw("{not json")
                    #expect(await aliceSocket.inbox.nextJSON()?["type"].string == "error")
                    aliceSocket.send(["type": "new_message", "conversationId": room, "content": "   ", "clientMessageId": "ws-2"])
                    let refused = try #require(await aliceSocket.inbox.nextJSON())
                    #expect(refused["code"].string == "empty_content")
                    #expect(refused["clientMessageId"].string == "ws-2")
                    aliceSocket.send(["type": "new_message", "conversationId": room, "content": "still here"])
                    #expect(await aliceSocket.inbox.nextJSON()?["type"].string == "ack")
                }
            }
        }
    }

    @Test func strangersNeverReceiveAndCannotJoin() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let dave = try await client.tokenSignIn("globex", "dave")
            let carol = try await client.tokenSignIn("acme", "carol")
            let general = try await client.conversationId("General", as: alice)
            let plan = try await client.conversationId("Launch plan", as: alice)  // carol is not in it
            try await withWebSocket(client, headers: authHeaders(dave)) { daveSocket in
                daveSocket.send(["type": "join_room", "conversationId": general])
                let error = try #require(await daveSocket.inbox.nextJSON())
                #expect(error["type"].string == "error")
                #expect(error["code"].string == "not_found")
                try await withWebSocket(client, headers: authHeaders(carol)) { carolSocket in
                    carolSocket.send(["type": "join_room", "conversationId": plan, "since": "0"])
                    #expect(await carolSocket.inbox.nextJSON()?["code"].string == "not_found")
                    try await client.send("private", to: plan, as: alice)
                    try await client.send("acme only", to: general, as: alice)
                    #expect(await carolSocket.inbox.drain().isEmpty)
                }
                #expect(await daveSocket.inbox.drain().isEmpty)
            }
            // Nor over SSE or long-poll.
            let cursor = try await client.currentCursor(as: dave)
            try await client.send("still acme only", to: general, as: alice)
            let poll = try await client.call(.get, "/api/chat/poll?cursor=\(cursor)&timeout=1", as: dave)
            #expect(poll.json["events"].array.isEmpty)
            #expect(try await client.call(.get, "/api/chat/poll?conversationId=\(general)", as: dave).status == .notFound)
            #expect(try await client.call(.get, "/api/chat/events?conversationId=\(general)", as: dave).status == .notFound)
        }
    }

    @Test func crossSiteCookieUpgradesAreRefused() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.browserSignIn("acme", "alice")
            let port = client.port!
            func status(_ headers: [(String, String)]) async throws -> Int {
                let socket = try await RawWebSocket.connect(port: port, headers: headers)
                return try await socket.handshakeStatus()
            }
            // The WebSocket layer answers every refused upgrade with 400 and closes.
            #expect(try await status(headerPairs(alice) + [("Origin", "https://evil.example")]) == 400)
            #expect(try await status(headerPairs(alice) + [("Origin", "http://127.0.0.1:\(port)"), ("Origin", "https://evil.example")]) == 400)
            #expect(try await status(headerPairs(alice) + [("Sec-Fetch-Site", "cross-site")]) == 400)
            #expect(try await status([("Origin", "http://127.0.0.1:\(port)")]) == 400)
            #expect(try await status(headerPairs(alice) + [("Origin", "http://127.0.0.1:\(port)")]) == 101)
            // API clients with a bearer token are not browsers: no Origin rules.
            let token = try await client.tokenSignIn("acme", "alice")
            #expect(try await status(headerPairs(token) + [("Origin", "https://elsewhere.example")]) == 101)
        }
    }

    @Test func webSocketResumeDeliversExactlyTheMissedEventsOnce() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: alice)
            let cursor = try await client.currentCursor(as: bob)
            var sent: [String] = []
            for i in 1...5 { sent.append(try await client.send("missed \(i)", to: room, as: alice)) }
            let missed = sent
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room, "since": cursor])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                var replayed: [JSONValue] = []
                for _ in 0..<5 { if let event = await socket.inbox.nextJSON() { replayed.append(event) } }
                #expect(replayed.map { $0["data"]["id"].string ?? "" } == missed)
                let ids = replayed.compactMap { Int($0["eventId"].string ?? "") }
                #expect(ids == ids.sorted() && Set(ids).count == 5)
                let live = try await client.send("live", to: room, as: alice)
                #expect(await socket.inbox.nextJSON()?["data"]["id"].string == live)
                #expect(await socket.inbox.drain().isEmpty)
            }
        }
    }

    @Test func serverSentEventsReplayThenFollowEveryConversation() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let bobId = try await client.userId("bob", as: alice)
            let room = try await client.conversationId("General", as: alice)
            let cursor = try await client.currentCursor(as: bob)
            let missed = [try await client.send("one", to: room, as: alice), try await client.send("two", to: room, as: alice)]
            try await StreamingHTTPClient.stream(
                port: client.port!, path: "/api/chat/events", headers: headerPairs(bob) + [("Last-Event-ID", cursor)]
            ) { stream in
                let first = SSEMessage(try #require(await stream.inbox.next()))
                #expect(!first.isComment || first.id == nil)  // retry + comment preamble
                let head = stream.head.withLock { $0 }.lowercased()
                #expect(head.contains("content-type: text/event-stream"))
                #expect(head.contains("cache-control: no-cache"))
                #expect(head.contains("x-accel-buffering: no"))
                var got: [SSEMessage] = []
                while got.count < 2, let text = await stream.inbox.next() {
                    let message = SSEMessage(text)
                    if !message.isComment { got.append(message) }
                }
                #expect(got.map { $0.data["data"]["id"].string ?? "" } == missed)
                #expect(got.allSatisfy { $0.event == "new_message" && $0.id == $0.data["eventId"].string })

                // Live: a message, typing (no id), and a conversation created after connecting.
                let live = try await client.send("three", to: room, as: alice)
                _ = try await client.call(.post, "/api/chat/\(room)/typing", as: alice)
                let created = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "later", "participantIds": [bobId]])
                let newRoom = created.json["conversation"]["id"].string!
                let inNewRoom = try await client.send("in the new room", to: newRoom, as: alice)
                _ = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "not bob's", "participantIds": [] as [String]])
                var liveMessages: [SSEMessage] = []
                for text in await stream.inbox.drain(quiet: .milliseconds(500)) {
                    let message = SSEMessage(text)
                    if !message.isComment { liveMessages.append(message) }
                }
                #expect(liveMessages.map { $0.event ?? "" } == ["new_message", "typing", "conversation_created", "new_message"])
                #expect(liveMessages[0].data["data"]["id"].string == live)
                #expect(liveMessages[1].id == nil)
                #expect(liveMessages[2].data["conversationId"].string == newRoom)
                #expect(liveMessages[3].data["data"]["id"].string == inNewRoom)
            }
            // `lastEventId` in the query works like the header, narrowed to one conversation.
            try await StreamingHTTPClient.stream(
                port: client.port!, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)
            ) { stream in
                // Waits for the three events (a loaded machine may take longer than a quiet spell to send the first),
                // then for anything more that should not come.
                var ids: [String] = []
                while ids.count < 3, let text = await stream.inbox.next() {
                    if !SSEMessage(text).isComment { ids.append(SSEMessage(text).data["data"]["id"].string ?? "") }
                }
                for text in await stream.inbox.drain() where !SSEMessage(text).isComment {
                    ids.append(SSEMessage(text).data["data"]["id"].string ?? "")
                }
                #expect(Array(ids.prefix(2)) == missed)
                #expect(ids.count == 3)
            }
        }
    }

    @Test func longPollAnswersAtOnceOrHoldsAndGzips() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: alice)
            let start = try await client.call(.get, "/api/chat/poll", as: bob)
            #expect(start.json["events"].array.isEmpty)
            let cursor = try #require(start.json["cursor"].string)

            let sent = try await client.send("poll me", to: room, as: alice)
            let immediate = try await client.call(.get, "/api/chat/poll?cursor=\(cursor)", as: bob)
            #expect(immediate.json["events"].array.map { $0["data"]["id"].string } == [sent])
            let next = try #require(immediate.json["cursor"].string)
            #expect(Int(next)! > Int(cursor)!)

            // Held: a message sent while the poll waits ends it.
            let port = client.port!
            async let held = RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(next)&timeout=10", headers: headerPairs(bob))
            try await Task.sleep(for: .milliseconds(300))
            let late = try await client.send("while you waited", to: room, as: alice)
            let heldResponse = try await held
            #expect(heldResponse.body["events"][0]["data"]["id"].string == late)

            // Typing comes through a held poll but does not move the cursor.
            let afterLate = heldResponse.body["cursor"].string!
            async let typingPoll = RawHTTP.get(
                port: port, path: "/api/chat/poll?cursor=\(afterLate)&timeout=10&conversationId=\(room)", headers: headerPairs(bob))
            try await Task.sleep(for: .milliseconds(300))
            _ = try await client.call(.post, "/api/chat/\(room)/typing", as: alice)
            let typing = try await typingPoll
            #expect(typing.body["events"][0]["type"].string == "typing")
            #expect(typing.body["cursor"].string == afterLate)

            // Nothing happens: the poll ends empty at its timeout.
            let clock = ContinuousClock()
            let began = clock.now
            let empty = try await client.call(.get, "/api/chat/poll?cursor=\(afterLate)&timeout=1", as: bob)
            #expect(empty.json["events"].array.isEmpty)
            #expect(clock.now - began >= .milliseconds(900))

            let gzipped = try await client.call(.get, "/api/chat/poll?cursor=\(cursor)", as: bob, headers: [.acceptEncoding: "gzip, deflate"])
            #expect(gzipped.raw.readableBytes > 0)
            #expect(gzipped.headers[.contentEncoding] == "gzip")
            #expect(Array(gzipped.raw.readableBytesView.prefix(2)) == [0x1f, 0x8b])
            // Small answers too (API.md: gzip whenever accepted), and the pooled compressors give valid streams
            // one after another.
            for _ in 0..<3 {
                let small = try await client.call(.get, "/api/chat/poll?cursor=\(afterLate)&timeout=0", as: bob, headers: [.acceptEncoding: "gzip"])
                #expect(small.headers[.contentEncoding] == "gzip")
                var raw = small.raw
                let plain = try raw.decompress(with: .gzip())
                #expect(String(buffer: plain).hasPrefix(#"{"events":[]"#))
            }
            let identity = try await client.call(.get, "/api/chat/poll?cursor=\(afterLate)&timeout=0", as: bob, headers: [.acceptEncoding: "identity"])
            #expect(identity.headers[.contentEncoding] == nil)
            for bad in ["cursor=abc", "cursor=-1", "timeout=soon&cursor=1"] {
                #expect(try await client.call(.get, "/api/chat/poll?\(bad)", as: bob).status == .badRequest, "\(bad)")
            }
        }
    }

    @Test func everyTransportResumesAfterARestart() async throws {
        let database = try testDatabasePath()
        let (cursor, missed) = try await withApp(.live, database: database) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let room = try await client.conversationId("General", as: alice)
            let cursor = try await client.currentCursor(as: alice)
            var missed: [String] = []
            for i in 1...3 { missed.append(try await client.send("before restart \(i)", to: room, as: alice)) }
            return (cursor, missed)
        }
        try await withApp(.live, database: database) { client, _ in
            let bob = try await client.tokenSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: bob)
            let poll = try await client.call(.get, "/api/chat/poll?cursor=\(cursor)", as: bob)
            #expect(poll.json["events"].array.map { $0["data"]["id"].string ?? "" } == missed)
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room, "since": cursor])
                _ = await socket.inbox.nextJSON()
                var ids: [String] = []
                for _ in 0..<3 { ids.append(await socket.inbox.nextJSON()?["data"]["id"].string ?? "") }
                #expect(ids == missed)
            }
            try await StreamingHTTPClient.stream(port: client.port!, path: "/api/chat/events?lastEventId=\(cursor)", headers: headerPairs(bob)) { stream in
                var ids: [String] = []
                while ids.count < missed.count, let text = await stream.inbox.next() {
                    if !SSEMessage(text).isComment { ids.append(SSEMessage(text).data["data"]["id"].string ?? "") }
                }
                ids += await stream.inbox.drain().map(SSEMessage.init).filter { !$0.isComment }.map { $0.data["data"]["id"].string ?? "" }
                #expect(ids == missed)
            }
        }
    }

    @Test func logoutClosesTheSessionsWebSocketsAndStreams() async throws {
        // The test WebSocket client always sends `Origin: ws://localhost`; allow it like a deployment would.
        var config = testConfiguration()
        config.allowedOrigins = ["ws://localhost"]
        try await withApp(.live, config: config) { client, _ in
            let bob = try await client.browserSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: bob)
            let close = try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                #expect(try await client.call(.post, "/api/auth/logout", as: bob).status == .noContent)
                // The server closes the socket; wait for it rather than closing ourselves.
                for _ in 0..<100 where !socket.inbox.isClosed { try await Task.sleep(for: .milliseconds(20)) }
                #expect(socket.inbox.isClosed)
            }
            #expect(close?.closeCode == .unknown(4001))

            let carol = try await client.browserSignIn("acme", "carol")
            try await StreamingHTTPClient.stream(port: client.port!, path: "/api/chat/events", headers: headerPairs(carol)) { stream in
                _ = await stream.inbox.next()
                #expect(try await client.call(.post, "/api/auth/logout", as: carol).status == .noContent)
                for _ in 0..<100 where !stream.inbox.isClosed { try await Task.sleep(for: .milliseconds(20)) }
                #expect(stream.inbox.isClosed)
            }
        }
    }

    /// The session's end closes its WebSocket with 4001 on time: an expiry near at connect gets its exact timer at once
    /// (30 s pings); one several ping periods away is found by the loop's clock (1 s pings: seen three times before),
    /// and closes then, not at a ping before, and not a period late.
    @Test(arguments: zip([30, 1], [2_000, 3_500] as [Int64]))
    func anExpiringSessionClosesItsWebSocketOnTime(pingSeconds: Int, expiresIn: Int64) async throws {
        var config = testConfiguration()
        config.realtime.pingSeconds = pingSeconds
        try await withApp(.live, config: config) { client, deps in
            let (secret, now) = try await bobsToken(deps, expiringIn: expiresIn)
            let close = try await withWebSocket(client, headers: [.authorization: "Bearer \(secret)"]) { socket in
                socket.send(["type": "join_all"])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                for _ in 0..<600 where !socket.inbox.isClosed { try await Task.sleep(for: .milliseconds(10)) }
                #expect(socket.inbox.isClosed)
                let closedAfter = Timestamp.now().milliseconds - now.milliseconds
                #expect(closedAfter >= expiresIn - 100 && closedAfter < expiresIn + 900, "closed after \(closedAfter) ms")
            }
            #expect(close?.closeCode == .unknown(4001))
        }
    }

    @Test func anSSEStreamSendsHeartbeatsAndEndsWhenItsSessionExpires() async throws {
        var config = testConfiguration()
        config.realtime.sseHeartbeatSeconds = 1
        try await withApp(.live, config: config) { client, deps in
            let (secret, now) = try await bobsToken(deps, expiringIn: 4_000)
            try await StreamingHTTPClient.stream(
                port: client.port!, path: "/api/chat/events", headers: [("Authorization", "Bearer \(secret)")]
            ) { stream in
                // A quiet stream still carries a comment every heartbeat, so proxies keep it open.
                var keepalives = 0
                while keepalives < 2, let text = await stream.inbox.next(timeout: .seconds(3)) {
                    if text == ": keepalive" { keepalives += 1 }
                }
                #expect(keepalives == 2)
                #expect(!stream.inbox.isClosed)
                // Once the token expires the server ends the stream by itself.
                for _ in 0..<200 where !stream.inbox.isClosed { try await Task.sleep(for: .milliseconds(20)) }
                #expect(stream.inbox.isClosed)
                #expect(Timestamp.now().milliseconds >= now.milliseconds + 4000)
            }
        }
    }

    @Test func aWebSocketThatStopsReadingIsClosedWhileOthersKeepReceiving() async throws {
        var config = testConfiguration()
        config.realtime.queueCapacity = 32
        try await withApp(.live, config: config) { client, deps in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let carol = try await client.tokenSignIn("acme", "carol")
            let room = try await client.conversationId("General", as: alice)
            let stalled = try await RawWebSocket.connect(port: client.port!, headers: headerPairs(carol))
            try await stalled.sendText(#"{"type":"join_room","conversationId":"\#(room)"}"#)
            try await withWebSocket(client, headers: authHeaders(bob)) { bobSocket in
                bobSocket.send(["type": "join_room", "conversationId": room])
                #expect(await bobSocket.inbox.nextJSON()?["type"].string == "joined")
                for _ in 0..<100 where deps.hub.subscriberCount < 2 { try await Task.sleep(for: .milliseconds(10)) }
                let big = String(repeating: "x", count: 8000)
                var sent = 0
                // Keep the room busy until the stalled reader's queue bound is hit and it is dropped.
                while deps.hub.subscriberCount >= 2 && sent < 3000 {
                    try await client.send(big, to: room, as: alice)
                    sent += 1
                }
                #expect(deps.hub.subscriberCount == 1, "the stalled socket was never dropped after \(sent) messages")
                // Bob, who reads, got every message, in order, without gaps.
                var seqs: [Int] = []
                while seqs.count < sent, let event = await bobSocket.inbox.nextJSON(timeout: .seconds(10)) {
                    if let seq = event["data"]["seq"].int { seqs.append(seq) }
                }
                #expect(seqs.count == sent)
                #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 })
            }
            // The server closed the stalled connection (it sees EOF once it reads again).
            #expect(try await stalled.readUntilClosed(timeout: .seconds(15)))
        }
    }
}

/// A bare WebSocket client that can stop reading, to play a slow consumer.
struct RawWebSocket: Sendable {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(port: Int, headers: [(String, String)]) async throws -> RawWebSocket {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4096)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 2)))
                }
            }
        var request = "GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await channel.channel.writeAndFlush(ByteBuffer(string: request))
        return RawWebSocket(channel: channel)
    }

    /// Sends one masked text frame (clients must mask).
    func sendText(_ text: String) async throws {
        try await channel.channel.writeAndFlush(FrameSocket.maskedFrame(opcode: 0x1, Array(text.utf8)))
    }

    /// The status code of the server's answer to the upgrade request.
    func handshakeStatus() async throws -> Int {
        var text = ""
        for try await buffer in channel.inbound {
            text += String(buffer: buffer)
            if text.contains("\r\n") { break }
        }
        try? await channel.channel.close()
        return Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// Reads (and discards) until the server closes the connection; false on timeout.
    func readUntilClosed(timeout: Duration) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    for try await _ in channel.inbound {}
                } catch {}
                return true
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return false
            }
            let result = try await group.next() ?? false
            group.cancelAll()
            try? await channel.channel.close()
            return result
        }
    }
}
