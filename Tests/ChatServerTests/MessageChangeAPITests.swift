@testable import ChatServer
import ChatCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct MessageChangeAPITests {
    @Test func editAndDeleteOverTheAPIWithTheirRefusals() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let dave = try await client.tokenSignIn("globex", "dave")
            let room = try await client.conversationId("General", as: alice)
            let id = try await client.send("Lunch at noon", to: room, as: alice)
            let edited = try await client.call(.patch, "/api/chat/messages/\(id)", as: alice, json: ["content": "Lunch at one"])
            #expect(edited.status == .ok && edited.json["message"]["content"].string == "Lunch at one")
            #expect(edited.json["message"]["editedAt"].string != nil && edited.json["message"]["deletedAt"].isNull)
            let notYours = try await client.call(.patch, "/api/chat/messages/\(id)", as: bob, json: ["content": "mine"])
            #expect(notYours.status == .forbidden && notYours.json["error"]["code"].string == "not_your_message")
            #expect(try await client.call(.delete, "/api/chat/messages/\(id)", as: bob).status == .forbidden)
            #expect(try await client.call(.patch, "/api/chat/messages/\(id)", as: dave, json: ["content": "x"]).status == .notFound)
            #expect(try await client.call(.delete, "/api/chat/messages/\(id)", as: dave).status == .notFound)
            #expect(try await client.call(.patch, "/api/chat/messages/\(id)", as: alice, json: ["content": ""]).json["error"]["code"].string == "empty_content")
            #expect(try await client.call(.patch, "/api/chat/messages/\(id)", as: alice, rawBody: "{").status == .badRequest)
            #expect(try await client.call(.patch, "/api/chat/messages/msg_nothing", as: alice, json: ["content": "x"]).status == .notFound)
            let deleted = try await client.call(.delete, "/api/chat/messages/\(id)", as: alice)
            #expect(deleted.status == .ok && deleted.json["message"]["content"].string == "" && deleted.json["message"]["deletedAt"].string != nil)
            #expect(try await client.call(.delete, "/api/chat/messages/\(id)", as: alice).json["message"]["deletedAt"] .string == deleted.json["message"]["deletedAt"].string)
            let again = try await client.call(.patch, "/api/chat/messages/\(id)", as: alice, json: ["content": "back"])
            #expect(again.status == .conflict && again.json["error"]["code"].string == "message_deleted")
            // A cookie session needs its CSRF token for both.
            guard case .browser(let cookie, _) = try await client.browserSignIn("acme", "alice") else { return }
            let other = try await client.send("another", to: room, as: alice)
            #expect(try await client.call(.delete, "/api/chat/messages/\(other)", as: .browser(cookie: cookie, csrf: nil)).status == .forbidden)
        }
    }

    @Test func editsAndDeletesReachEveryTransportAndAResumeShowsNoDeletedContent() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let room = try await client.conversationId("General", as: alice)
            let cursor = try await client.currentCursor(as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)) { sse in
                    let id = try await client.send("the secret is 4417", to: room, as: alice)
                    _ = try await client.call(.patch, "/api/chat/messages/\(id)", as: alice, json: ["content": "the secret is 4417, no 4418"])
                    _ = try await client.call(.delete, "/api/chat/messages/\(id)", as: alice)
                    var types: [String] = []
                    while types.count < 3, let event = await socket.inbox.nextJSON() { types.append(event["type"].string ?? "") }
                    #expect(types == ["new_message", "message_updated", "message_deleted"])
                    var sseTypes: [String] = []
                    while sseTypes.count < 3, let text = await sse.inbox.next() {
                        if let type = SSEMessage(text).event { sseTypes.append(type) }
                    }
                    #expect(sseTypes == ["new_message", "message_updated", "message_deleted"])
                }
            }
            // Long-poll and a WebSocket resume from before the send: the events, none with the deleted content (the
            // log and the in-memory ring were rewritten).
            let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob))
            #expect(polled.body["events"].array.map { $0["type"].string ?? "" } == ["new_message", "message_updated", "message_deleted"])
            #expect(!polled.body.description.contains("4417"))
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room, "since": cursor])
                var replayed: [String] = []
                while let text = await socket.inbox.next(timeout: .seconds(2)) {
                    #expect(!text.contains("4417"))
                    replayed.append(text)
                    if text.contains("message_deleted") { break }
                }
                #expect(replayed.contains { $0.contains("message_deleted") })
            }
        }
    }
}

@Suite struct ReactionAPITests {
    @Test func reactionsOverTheAPIAndEveryTransport() async throws {
        try await withApp(.live) { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let dave = try await client.tokenSignIn("globex", "dave")
            let room = try await client.conversationId("General", as: alice)
            let id = try await client.send("Shipped!", to: room, as: alice)
            let cursor = try await client.currentCursor(as: bob)
            let port = client.port!
            try await withWebSocket(client, headers: authHeaders(bob)) { socket in
                socket.send(["type": "join_room", "conversationId": room])
                #expect(await socket.inbox.nextJSON()?["type"].string == "joined")
                let added = try await client.call(.put, "/api/chat/messages/\(id)/reactions/tada", as: alice)
                #expect(added.status == .ok && added.json["message"]["reactions"].array.map { $0["count"].int } == [1])
                #expect(try await client.call(.put, "/api/chat/messages/\(id)/reactions/tada", as: alice).json["message"]["reactions"][0]["count"].int == 1)
                let event = try #require(await socket.inbox.nextJSON())
                #expect(event["type"].string == "reaction_added" && event["data"]["messageId"].string == id && event["data"]["emoji"].string == "tada")
                #expect(event["data"]["reactions"].array.first?["userIds"].array.count == 1)
                #expect(try await client.call(.delete, "/api/chat/messages/\(id)/reactions/tada", as: alice).json["message"]["reactions"].array.isEmpty)
                #expect(await socket.inbox.nextJSON()?["type"].string == "reaction_removed")
            }
            #expect(try await client.call(.put, "/api/chat/messages/\(id)/reactions/unicorn", as: alice).json["error"]["code"].string == "invalid_emoji")
            #expect(try await client.call(.put, "/api/chat/messages/\(id)/reactions/tada", as: dave).status == .notFound)
            // History shows them; SSE and long-poll replay them from a cursor.
            _ = try await client.call(.put, "/api/chat/messages/\(id)/reactions/heart", as: bob)
            let history = try await client.call(.get, "/api/chat/\(room)/messages", as: alice)
            let shown = history.json["messages"].array.first { $0["id"].string == id }
            #expect(shown?["reactions"].array.map { $0["emoji"].string } == ["heart"])
            let polled = try await RawHTTP.get(port: port, path: "/api/chat/poll?cursor=\(cursor)&conversationId=\(room)&timeout=0", headers: headerPairs(bob))
            #expect(polled.body["events"].array.map { $0["type"].string ?? "" } == ["reaction_added", "reaction_removed", "reaction_added"])
            try await StreamingHTTPClient.stream(port: port, path: "/api/chat/events?conversationId=\(room)&lastEventId=\(cursor)", headers: headerPairs(bob)) { sse in
                var types: [String] = []
                while types.count < 3, let text = await sse.inbox.next() { if let type = SSEMessage(text).event { types.append(type) } }
                #expect(types == ["reaction_added", "reaction_removed", "reaction_added"])
            }
        }
    }
}

@Suite struct SearchAPITests {
    @Test func searchOverTheAPI() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let dave = try await client.tokenSignIn("globex", "dave")
            let room = try await client.conversationId("General", as: alice)
            let id = try await client.send("Quarterly forecast ready", to: room, as: alice)
            let found = try await client.call(.get, "/api/chat/search?q=forec", as: alice)
            #expect(found.status == .ok && found.json["results"].array.map { $0["message"]["id"].string } == [id])
            #expect(found.json["results"][0]["excerpt"].array.contains { $0["match"].bool == true && $0["text"].string == "forecast" })
            #expect(found.json["results"][0]["conversationTitle"].string == "General" && found.json["nextCursor"].isNull)
            #expect(try await client.call(.get, "/api/chat/search?q=forec", as: dave).json["results"].array.isEmpty)
            #expect(try await client.call(.get, "/api/chat/search?q=forec&conversationId=\(room)", as: dave).status == .notFound)
            #expect(try await client.call(.get, "/api/chat/search?q=%20", as: alice).json["results"].array.isEmpty)
            #expect(try await client.call(.get, "/api/chat/search", as: alice).status == .badRequest)
            #expect(try await client.call(.get, "/api/chat/search?q=a&cursor=zzz", as: alice).json["error"]["code"].string == "invalid_cursor")
            #expect(try await client.call(.get, "/api/chat/search?q=a&limit=0", as: alice).json["error"]["code"].string == "invalid_limit")
        }
    }
}
