@testable import ChatServer
import ChatCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct MembershipAPITests {
    @Test func renameAddRemoveAndLeaveOverTheAPIWithTheirRefusals() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let carol = try await client.tokenSignIn("acme", "carol")
            let dave = try await client.tokenSignIn("globex", "dave")
            let bobId = try await client.userId("bob", as: alice), carolId = try await client.userId("carol", as: alice)
            let daveId = try await client.userId("dave", as: dave)
            let started = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Plans", "participantIds": [bobId]])
            let room = try #require(started.json["conversation"]["id"].string)

            let renamed = try await client.call(.patch, "/api/chat/\(room)", as: bob, json: ["title": "Launch"])
            #expect(renamed.status == .ok && renamed.json["conversation"]["title"].string == "Launch")
            #expect(try await client.call(.patch, "/api/chat/\(room)", as: carol, json: ["title": "x"]).status == .notFound)
            #expect(try await client.call(.patch, "/api/chat/\(room)", as: dave, json: ["title": "x"]).status == .notFound)
            #expect(try await client.call(.patch, "/api/chat/\(room)", as: bob, json: ["title": 5]).status == .badRequest)
            #expect(try await client.call(.patch, "/api/chat/\(room)", as: bob, json: ["title": String(repeating: "t", count: 201)]).json["error"]["code"].string == "title_too_long")

            // A user of another tenant is as unknown as a made-up id; nobody is added then.
            #expect(try await client.call(.post, "/api/chat/\(room)/members", as: bob, json: ["userIds": [carolId, daveId]]).status == .notFound)
            #expect(try await client.call(.post, "/api/chat/\(room)/members", as: bob, json: ["userIds": []]).status == .badRequest)
            #expect(try await client.call(.post, "/api/chat/\(room)/members", as: dave, json: ["userIds": [daveId]]).status == .notFound)
            let added = try await client.call(.post, "/api/chat/\(room)/members", as: bob, json: ["userIds": [carolId]])
            #expect(added.status == .ok && added.json["conversation"]["participantCount"].int == 3)
            let history = try await client.call(.get, "/api/chat/\(room)/members", as: carol)
            #expect(history.status == .ok && history.json["members"].array.count == 3)

            let notAllowed = try await client.call(.delete, "/api/chat/\(room)/members/\(carolId)", as: bob)
            #expect(notAllowed.status == .forbidden && notAllowed.json["error"]["code"].string == "not_allowed")
            #expect(try await client.call(.delete, "/api/chat/\(room)/members/\(carolId)", as: dave).status == .notFound)
            #expect(try await client.call(.delete, "/api/chat/\(room)/members/\(carolId)", as: alice).status == .noContent)
            #expect(try await client.call(.delete, "/api/chat/\(room)/members/\(carolId)", as: alice).status == .noContent)
            #expect(try await client.call(.get, "/api/chat/\(room)/messages", as: carol).status == .notFound)
            #expect(try await client.call(.post, "/api/chat/send", as: carol, json: ["conversationId": room, "content": "hi"]).status == .notFound)
            #expect(try await client.call(.delete, "/api/chat/\(room)/members/\(bobId)", as: bob).status == .noContent)
            #expect(try await client.call(.get, "/api/chat/\(room)", as: bob).status != .ok)
            let conversations = try await client.call(.get, "/api/chat/conversations", as: bob)
            #expect(!conversations.json["conversations"].array.contains { $0["id"].string == room })
            // A cookie session needs its CSRF token.
            guard case .browser(let cookie, _) = try await client.browserSignIn("acme", "alice") else { return }
            #expect(try await client.call(.patch, "/api/chat/\(room)", as: .browser(cookie: cookie, csrf: nil), json: ["title": "x"]).status == .forbidden)
        }
    }

    @Test func aRemovalReachesEveryTransportAndIsTheLastEventOfTheConversation() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let carol = try await client.tokenSignIn("acme", "carol")
            let bobId = try await client.userId("bob", as: alice), carolId = try await client.userId("carol", as: alice)
            let started = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Streams", "participantIds": [bobId]])
            let room = try #require(started.json["conversation"]["id"].string)
            let cursor = try await client.currentCursor(as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                socket.send(["type": "join_all"])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                try await withWebSocket(client, headers: authHeaders(carol)) { carolSocket in
                    carolSocket.send(["type": "join_all"])
                    #expect(await carolSocket.inbox.nextJSON()?["type"].string == "joined")
                    try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)", headers: headerPairs(bob)) { sse in
                        #expect(await sse.inbox.next()?.contains("connected") == true)
                        _ = try await client.call(.post, "/api/chat/\(room)/members", as: alice, json: ["userIds": [carolId]])
                        #expect(await carolSocket.inbox.nextJSON()?["type"].string == "participants_added")
                        #expect(try await client.call(.delete, "/api/chat/\(room)/members/\(bobId)", as: alice).status == .noContent)
                        _ = try await client.send("after bob left", to: room, as: alice)
                        // Carol's all-conversations socket follows the room from the add on.
                        #expect(await carolSocket.inbox.nextJSON()?["type"].string == "participant_removed")
                        #expect(await carolSocket.inbox.nextJSON()?["data"]["content"].string == "after bob left")
                        // Bob's SSE stream of the room: the two events, then the end of the stream.
                        var sseTypes: [String] = []
                        while let text = await sse.inbox.next() { if let type = SSEMessage(text).event { sseTypes.append(type) } }
                        #expect(sseTypes == ["participants_added", "participant_removed"])
                        #expect(sse.inbox.isClosed)
                    }
                }
                // Bob's socket: from the room and from join_all, then `left` for the room, and nothing of the new message.
                let frames = await socket.inbox.drain()
                #expect(!frames.contains { $0.contains("after bob left") })
                let kinds = frames.map { JSONValue(try? JSONSerialization.jsonObject(with: Data($0.utf8)))["type"].string ?? "" }
                #expect(kinds.filter { $0 == "participant_removed" }.count == 2)
                #expect(kinds.firstIndex(of: "left").map { $0 > kinds.firstIndex(of: "participant_removed")! } == true)
                socket.send(["type": "new_message", "conversationId": room, "content": "let me in"])
                #expect(await socket.inbox.nextJSON()?["code"].string == "not_found")
            }
            // Resuming from before: nothing of the conversation any more.
            let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&timeout=0", headers: headerPairs(bob))
            #expect(polled.status == 200 && !polled.body["events"].array.contains { $0["conversationId"].string == room })
            #expect(try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob)).status == 404)
        }
    }
}

@Suite struct MentionAPITests {
    @Test func mentionsOverTheAPIAndEveryTransport() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let bobId = try await client.userId("bob", as: alice)
            let room = try await client.conversationId("General", as: alice)
            let cursor = try await client.currentCursor(as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_all"])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                let sent = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "@bob and @dave, look"])
                #expect(sent.json["message"]["mentions"].array.map(\.string) == [bobId])
                let event = try #require(await socket.inbox.nextJSON())
                #expect(event["type"].string == "new_message" && event["data"]["mentions"].array.map(\.string) == [bobId])
            }
            let listed = try await client.call(.get, "/api/chat/conversations", as: bob)
            #expect(listed.json["conversations"].array.first { $0["id"].string == room }?["mentionCount"].int == 1)
            let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob))
            #expect(polled.body["events"].array.first?["data"]["mentions"].array.map(\.string) == [bobId])
            try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)) { sse in
                var found = false
                while let text = await sse.inbox.next() { if text.contains(#""mentions":["\#(bobId)"]"#) { found = true; break } }
                #expect(found)
            }
        }
    }
}

@Suite struct PresenceAPITests {
    @Test func presenceFromConnectionsReachesOthersAndTheAPI() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let dave = try await client.tokenSignIn("globex", "dave")
            let aliceId = try await client.userId("alice", as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { bobSocket in
                bobSocket.send(["type": "join_all"])
                #expect(await bobSocket.inbox.nextJSON()?["type"].string == "joined")
                try await withWebSocket(client, headers: authHeaders(alice)) { aliceSocket in
                    let online = await bobSocket.inbox.nextJSON { $0["type"].string != "presence" }
                    #expect(online?["data"]["userId"].string == aliceId && online?["data"]["status"].string == "online")
                    aliceSocket.send(["type": "presence", "status": "away"])
                    let away = await bobSocket.inbox.nextJSON { $0["type"].string != "presence" }
                    #expect(away?["data"]["status"].string == "away" && away?["eventId"].isNull == true)
                    aliceSocket.send(["type": "presence", "status": "asleep"])
                    #expect(await aliceSocket.inbox.nextJSON()?["code"].string == "invalid_status")
                    let asked = try await client.call(.get, "/api/chat/presence?userIds=\(aliceId),usr_nobody", as: bob)
                    #expect(asked.json["presence"].array.map { $0["status"].string } == ["away", "offline"])
                    // Another tenant learns nothing: alice reads as offline there.
                    #expect(try await client.call(.get, "/api/chat/presence?userIds=\(aliceId)", as: dave).json["presence"][0]["status"].string == "offline")
                    // The HTTP way (clients without a WebSocket) applies to every connection of the token.
                    #expect(try await client.call(.post, "/api/chat/presence", as: alice, json: ["status": "online"]).status == .noContent)
                    #expect(await bobSocket.inbox.nextJSON { $0["type"].string != "presence" }?["data"]["status"].string == "online")
                    #expect(try await client.call(.post, "/api/chat/presence", as: alice, json: ["status": "gone"]).status == .badRequest)
                    #expect(try await client.call(.get, "/api/chat/presence", as: alice).status == .badRequest)
                }
            }
            // SSE and held long-polls of all conversations hear presence too. (Alice's socket closed moments ago: within
            // the grace she is still online, so a new connection alone would be no news; away, then back, is.)
            #expect(try await client.call(.post, "/api/chat/presence", as: alice, json: ["status": "away"]).status == .noContent)
            try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events", headers: headerPairs(bob)) { sse in
                #expect(await sse.inbox.next()?.contains("connected") == true)
                try await withWebSocket(client, headers: authHeaders(alice)) { _ in
                    var heard = false
                    while let text = await sse.inbox.next() {
                        if SSEMessage(text).event == "presence", text.contains(aliceId), text.contains("away") { heard = true; break }
                    }
                    #expect(heard)
                }
            }
            let cursor = try await client.currentCursor(as: bob)
            let held = Task { () -> Bool in
                let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&timeout=10", headers: headerPairs(bob))
                return polled.body["events"].array.contains {
                    $0["type"].string == "presence" && $0["data"]["userId"].string == aliceId && $0["data"]["status"].string == "online"
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await client.call(.post, "/api/chat/presence", as: alice, json: ["status": "online"]).status == .noContent)
            try await withWebSocket(client, headers: authHeaders(alice)) { _ in
                let heard = try await held.value
                #expect(heard)
            }
            // SSE streams count as connections too.
            try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events", headers: headerPairs(dave)) { sse in
                #expect(await sse.inbox.next()?.contains("connected") == true)
                let daveId = try await client.userId("dave", as: dave)
                #expect(try await client.call(.get, "/api/chat/presence?userIds=\(daveId)", as: dave).json["presence"][0]["status"].string == "online")
            }
        }
    }
}

@Suite struct FileAPITests {
    /// A multipart/form-data body of text fields and (field, filename, bytes) files.
    static func multipart(_ fields: [(String, String)], files: [(String, String, [UInt8])]) -> (String, ByteBuffer) {
        let boundary = "----chat-test-\(UUID().uuidString)"
        var body = ByteBuffer()
        for (name, value) in fields {
            body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
        }
        for (name, filename, bytes) in files {
            body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\n")
            body.writeString("Content-Type: application/octet-stream\r\n\r\n")
            body.writeBytes(bytes)
            body.writeString("\r\n")
        }
        body.writeString("--\(boundary)--\r\n")
        return ("multipart/form-data; boundary=\(boundary)", body)
    }

    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]

    func upload(_ client: any TestClientProtocol, _ room: String, as token: String, _ fields: [(String, String)], files: [(String, String, [UInt8])]) async throws -> APIResponse {
        let (type, body) = Self.multipart(fields, files: files)
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.authorization] = "Bearer \(token)"
        return try await client.execute(uri: "/api/chat/\(room)/messages", method: .post, headers: headers, body: body) { response in
            APIResponse(status: response.status, headers: response.headers, json: JSONValue(bytes: response.body), raw: response.body)
        }
    }

    @Test func uploadDownloadAndTheirRefusals() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let carol = try await client.tokenSignIn("acme", "carol")
            let dave = try await client.tokenSignIn("globex", "dave")
            guard case .bearer(let aliceToken) = alice else { return }
            let bobId = try await client.userId("bob", as: alice)
            let started = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "Files", "participantIds": [bobId]])
            let room = try #require(started.json["conversation"]["id"].string)
            let cursor = try await client.currentCursor(as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                let sent = try await upload(client, room, as: aliceToken, [("content", "The plan"), ("clientMessageId", "up-1")],
                                            files: [("file", #"plan \"v2\"; final.png"#, Self.png), ("file", "notes.txt", Array("hello\n".utf8))])
                #expect(sent.status == .created)
                let attachments = sent.json["message"]["attachments"].array
                #expect(attachments.map { $0["name"].string } == ["plan v2; final.png", "notes.txt"])
                #expect(attachments.map { $0["contentType"].string } == ["image/png", "text/plain"])
                let event = try #require(await socket.inbox.nextJSON())
                #expect(event["type"].string == "new_message" && event["data"]["attachments"].array.count == 2)

                // A resume (long-poll, SSE) has them too.
                let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob))
                #expect(polled.body["events"].array.last?["data"]["attachments"].array.count == 2)
                try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)) { sse in
                    var found = false
                    while let text = await sse.inbox.next() { if text.contains("notes.txt") { found = true; break } }
                    #expect(found)
                }
                let imageId = try #require(attachments[0]["id"].string), textId = try #require(attachments[1]["id"].string)
                let image = try await client.call(.get, "/api/chat/files/\(imageId)", as: bob)
                #expect(image.status == .ok && Array(buffer: image.raw) == Self.png)
                #expect(image.headers[.contentType] == "image/png" && image.headers[.xContentTypeOptions] == "nosniff")
                #expect(image.headers[.contentDisposition]?.hasPrefix("inline; filename=\"plan v2; final.png\"; filename*=UTF-8''plan%20v2%3B%20final%2Epng") == true)
                #expect(image.headers[.contentSecurityPolicy]?.contains("sandbox") == true)
                let text = try await client.call(.get, "/api/chat/files/\(textId)", as: bob)
                #expect(text.headers[.contentType] == "text/plain; charset=utf-8" && text.headers[.contentDisposition]?.hasPrefix("attachment;") == true)
                for outsider in [carol, dave] {
                    #expect(try await client.call(.get, "/api/chat/files/\(imageId)", as: outsider).status == .notFound)
                }
                // Refusals: a type a browser could run, a non-multipart body, too many files; nothing is stored.
                let html = try await upload(client, room, as: aliceToken, [("content", "a page")], files: [("file", "page.html", [0x4D, 0x5A, 0, 0])])
                #expect(html.status == .unsupportedMediaType && html.json["error"]["code"].string == "file_type_not_allowed")
                #expect(try await client.call(.post, "/api/chat/\(room)/messages", as: alice, json: ["content": "x"]).status == .unsupportedMediaType)
                let noContent = try await upload(client, room, as: aliceToken, [], files: [("file", "n.txt", Array("n".utf8))])
                #expect(noContent.json["error"]["code"].string == "missing_field")
                let five = try await upload(client, room, as: aliceToken, [("content", "notes")], files: Array(repeating: ("file", "n.txt", Array("n".utf8)), count: 5))
                #expect(five.json["error"]["code"].string == "too_many_files")
                let history = try await client.call(.get, "/api/chat/\(room)/messages", as: bob)
                #expect(history.json["messages"].array.count == 1)
                // Deleting the message deletes its files.
                let messageId = try #require(sent.json["message"]["id"].string)
                _ = try await client.call(.delete, "/api/chat/messages/\(messageId)", as: alice)
                #expect(try await client.call(.get, "/api/chat/files/\(imageId)", as: bob).status == .notFound)
            }
        }
    }
}

@Suite struct UploadLimitTests {
    @Test func aFileOverItsLimitOrABodyOverTheUploadBoundIs413AndStoresNothing() async throws {
        var config = testConfiguration()
        config.limits.files.maxFileBytes = 1_000
        try await withApp(config: config) { client, deps in
            let alice = try await client.tokenSignIn("acme", "alice")
            guard case .bearer(let token) = alice else { return }
            let room = try await client.conversationId("General", as: alice)
            let before = try await snapshot(deps.store)
            let tests = FileAPITests()
            let big = try await tests.upload(client, room, as: token, [("content", "big")], files: [("file", "big.txt", Array(repeating: 65, count: 1_001))])
            #expect(big.status == .contentTooLarge && big.json["error"]["code"].string == "file_too_large")
            // The body bound: every file at its limit plus 256 KiB of fields.
            let body = try await tests.upload(client, room, as: token, [("content", String(repeating: "x", count: 300_000))], files: [])
            #expect(body.status == .contentTooLarge && body.json["error"]["code"].string == "body_too_large")
            #expect(try await snapshot(deps.store) == before)
        }
    }
}
