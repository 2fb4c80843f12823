@testable import ChatServer
import ChatCore
import ChatSQLite
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite struct ChatAPITests {
    @Test func conversationLifecycleThroughTheAPI() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let bobId = try await client.userId("bob", as: alice)

            let started = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "  Release  ", "participantIds": [bobId]])
            #expect(started.status == .created)
            let conversation = started.json["conversation"]
            #expect(conversation["title"].string == "Release")
            #expect(conversation["participants"].array.count == 2)
            #expect(conversation["lastMessageAt"].isNull && conversation["closedAt"].isNull)
            #expect(conversation.keys.isSuperset(of: ["id", "tenantId", "title", "participants", "createdBy", "createdAt", "updatedAt", "lastMessageAt", "closedAt", "unreadCount"]))
            let room = try #require(conversation["id"].string)

            let sent = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "hello <b>bob</b>", "clientMessageId": "a-1"])
            #expect(sent.status == .created)
            let message = sent.json["message"]
            #expect(message["seq"].int == 1)
            #expect(message["threadParentId"].isNull)
            #expect(message["sender"]["username"].string == "alice")
            #expect(message["content"].string == "hello <b>bob</b>")
            #expect(Timestamp(rfc3339: message["createdAt"].string ?? "")?.description == message["createdAt"].string)
            let messageId = try #require(message["id"].string)

            let resent = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "hello <b>bob</b>", "clientMessageId": "a-1"])
            #expect(resent.status == .ok)
            #expect(resent.json["message"]["id"].string == messageId)

            // Bob sees it unread, most recent conversation first.
            let list = try await client.call(.get, "/api/chat/conversations", as: bob)
            #expect(list.json["conversations"][0]["id"].string == room)
            #expect(list.json["conversations"][0]["unreadCount"].int == 1)
            #expect(try await client.call(.post, "/api/chat/\(room)/read", as: bob, json: ["messageId": messageId]).status == .noContent)
            #expect(try await client.call(.get, "/api/chat/conversations", as: bob).json["conversations"][0]["unreadCount"].int == 0)

            // Threads.
            let reply = try await client.call(.post, "/api/chat/thread/\(messageId)/reply", as: bob, json: ["content": "hi!"])
            #expect(reply.status == .created)
            #expect(reply.json["message"]["threadParentId"].string == messageId)
            let replyId = try #require(reply.json["message"]["id"].string)
            let nested = try await client.call(.post, "/api/chat/thread/\(replyId)/reply", as: alice, json: ["content": "nested"])
            #expect(nested.json["message"]["threadParentId"].string == messageId)
            let viaSend = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "via send", "threadParentId": messageId])
            #expect(viaSend.json["message"]["threadParentId"].string == messageId)
            let thread = try await client.call(.get, "/api/chat/thread/\(messageId)", as: bob)
            #expect(thread.json["parent"]["replyCount"].int == 3)
            #expect(thread.json["replies"].array.map { $0["content"].string ?? "" } == ["hi!", "nested", "via send"])
            let top = try await client.call(.get, "/api/chat/\(room)/messages", as: bob)
            #expect(top.json["messages"].array.count == 1)
            #expect(top.json["nextCursor"].isNull)

            // Close and reopen.
            let closed = try await client.call(.post, "/api/chat/\(room)/close", as: bob)
            #expect(closed.status == .ok)
            #expect(closed.json["conversation"]["closedAt"].string != nil)
            let refused = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "too late"])
            #expect(refused.status == .conflict)
            #expect(refused.json["error"]["code"].string == "conversation_closed")
            #expect(try await client.call(.post, "/api/chat/thread/\(messageId)/reply", as: alice, json: ["content": "late"]).status == .conflict)
            let reopened = try await client.call(.post, "/api/chat/\(room)/reopen", as: alice)
            #expect(reopened.json["conversation"]["closedAt"].isNull)
            #expect(try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "again"]).status == .created)
            #expect(try await client.call(.post, "/api/chat/\(room)/typing", as: alice).status == .noContent)
        }
    }

    @Test func usersAndMeStayInTheCallersTenant() async throws {
        try await withApp { client, _ in
            let dave = try await client.tokenSignIn("globex", "dave")
            let users = try await client.call(.get, "/api/users", as: dave)
            #expect(Set(users.json["users"].array.compactMap { $0["username"].string }) == ["assistant", "dave", "erin"])
            let conversations = try await client.call(.get, "/api/chat/conversations", as: dave)
            #expect(conversations.json["conversations"].array.map { $0["title"].string } == ["Assistant", "Ops"])
        }
    }

    @Test func theDirectorySearchesAndPages() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let all = try await client.call(.get, "/api/users", as: alice)
            #expect(all.json["users"].array.compactMap { $0["username"].string } == ["alice", "assistant", "bob", "carol"])
            #expect(all.json["users"].array.map { $0["isBot"].bool } == [false, true, false, false])
            #expect(all.json["nextCursor"].isNull)
            let found = try await client.call(.get, "/api/users?q=\("BÓ".addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", as: alice)
            #expect(found.json["users"].array.compactMap { $0["username"].string } == ["bob"])
            let first = try await client.call(.get, "/api/users?limit=3", as: alice)
            #expect(first.json["users"].array.count == 3)
            let cursor = try #require(first.json["nextCursor"].string)
            let second = try await client.call(.get, "/api/users?limit=2&cursor=\(cursor)", as: alice)
            #expect(second.json["users"].array.compactMap { $0["username"].string } == ["carol"])
            #expect(second.json["nextCursor"].isNull)
            #expect(try await client.call(.get, "/api/users?limit=0", as: alice).json["error"]["code"].string == "invalid_limit")
            #expect(try await client.call(.get, "/api/users?cursor=%25", as: alice).json["error"]["code"].string == "invalid_cursor")
            #expect(try await client.call(.get, "/api/users?q=%00", as: alice).json["error"]["code"].string == "invalid_query")
            // Another tenant's directory never answers with acme's people.
            let dave = try await client.tokenSignIn("globex", "dave")
            #expect(try await client.call(.get, "/api/users?q=al", as: dave).json["users"].array.isEmpty)
        }
    }

    @Test func conversationsAndMembersArePaged() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let general = try await client.conversationId("General", as: alice)
            let first = try await client.call(.get, "/api/chat/conversations?limit=1", as: alice)
            #expect(first.json["conversations"].array.count == 1)
            #expect(first.json["conversations"][0]["participantCount"].int != nil)
            let cursor = try #require(first.json["nextCursor"].string)
            let rest = try await client.call(.get, "/api/chat/conversations?cursor=\(cursor)", as: alice)
            #expect(rest.json["nextCursor"].isNull)
            let ids = (first.json["conversations"].array + rest.json["conversations"].array).compactMap { $0["id"].string }
            #expect(ids.count == Set(ids).count && ids.contains(general))
            #expect(try await client.call(.get, "/api/chat/conversations?cursor=nope", as: alice).json["error"]["code"].string == "invalid_cursor")
            var members: [String] = []
            var next: String? = nil
            repeat {
                let page = try await client.call(.get, "/api/chat/\(general)/members?limit=1" + (next.map { "&cursor=\($0)" } ?? ""), as: alice)
                #expect(page.status == .ok)
                members += page.json["members"].array.compactMap { $0["username"].string }
                next = page.json["nextCursor"].string
            } while next != nil && members.count < 10
            #expect(Set(members) == ["alice", "bob", "carol"] && members.count == 3)
            let dave = try await client.tokenSignIn("globex", "dave")
            #expect(try await client.call(.get, "/api/chat/\(general)/members", as: dave).status == .notFound)
        }
    }

    @Test func summariesOverTheAPI() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let bob = try await client.tokenSignIn("acme", "bob")
            let carol = try await client.tokenSignIn("acme", "carol")
            let bobId = try await client.call(.get, "/api/auth/me", as: bob).json["user"]["id"].string!
            let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "plans", "participantIds": [bobId]]).json["conversation"]["id"].string!
            let root = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "Is the deploy window on Friday?"]).json["message"]["id"].string!
            _ = try await client.call(.post, "/api/chat/thread/\(root)/reply", as: bob, json: ["content": "Friday at ten, yes."])
            let first = try await client.call(.get, "/api/chat/\(room)/summary", as: alice)
            #expect(first.status == .ok)
            let summary = first.json["summary"]
            #expect(summary["conversationId"].string == room && summary["method"].string == "extractive" && summary["model"].isNull)
            #expect(summary["fromSeq"].int == 1 && summary["throughSeq"].int == 2 && summary["messageCount"].int == 2 && summary["cached"].bool == false)
            #expect(summary["highlights"].array.map { $0["messageId"].string } == [root])
            #expect(summary["openQuestions"].array.isEmpty)
            #expect(summary["participants"].array.map { $0["messageCount"].int } == [1, 1])
            #expect(summary["timeSpan"]["from"].string != nil && summary["generatedAt"].string != nil && summary["text"].string?.isEmpty == false)
            #expect(try await client.call(.get, "/api/chat/\(room)/summary", as: bob).json["summary"]["cached"].bool == true)
            #expect(try await client.call(.get, "/api/chat/\(room)/summary?refresh=1", as: bob).json["summary"]["cached"].bool == false)
            let bad = try await client.call(.get, "/api/chat/\(room)/summary?refresh=yes", as: alice)
            #expect(bad.status == .badRequest && bad.json["error"]["code"].string == "invalid_refresh")
            // The same 404 as every conversation endpoint: not a participant, another tenant, no such conversation.
            #expect(try await client.call(.get, "/api/chat/\(room)/summary", as: carol).status == .notFound)
            let dave = try await client.tokenSignIn("globex", "dave")
            #expect(try await client.call(.get, "/api/chat/\(room)/summary", as: dave).status == .notFound)
            #expect(try await client.call(.get, "/api/chat/cnv_nothing/summary", as: alice).status == .notFound)
        }
    }

    @Test func pagingAndLimits() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            let room = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": "pages", "participantIds": [] as [String]]).json["conversation"]["id"].string!
            for i in 1...5 { _ = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "m\(i)"]) }
            let first = try await client.call(.get, "/api/chat/\(room)/messages?limit=2", as: alice)
            #expect(first.json["messages"].array.map { $0["content"].string } == ["m4", "m5"])
            let cursor = try #require(first.json["nextCursor"].string)
            let second = try await client.call(.get, "/api/chat/\(room)/messages?limit=2&before=\(cursor)", as: alice)
            #expect(second.json["messages"].array.map { $0["content"].string } == ["m2", "m3"])
            let big = try await client.call(.get, "/api/chat/\(room)/messages?limit=100000", as: alice)
            #expect(big.status == .ok)
            #expect(big.json["messages"].array.count == 5)
            for bad in ["limit=0", "limit=-3", "limit=abc", "before=xyz", "before=-1", "before=+5", "before=1234567890123456789"] {
                let response = try await client.call(.get, "/api/chat/\(room)/messages?\(bad)", as: alice)
                #expect(response.status == .badRequest, "\(bad)")
            }
        }
    }

    @Test func contentLimits() async throws {
        try await withApp { client, deps in
            let alice = try await client.tokenSignIn("acme", "alice")
            let room = try await client.conversationId("General", as: alice)
            let long = String(repeating: "é", count: 8000)
            #expect(try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": long]).status == .created)
            let before = try await snapshot(deps.store)
            // A well-formed body with a field out of bounds is a 400 with a code saying which bound (413 is only for
            // a body over the byte limit). Content counts Unicode scalars, as JSON Schema's maxLength does.
            let combining = String(repeating: "e\u{301}", count: 5_001)  // 5,001 graphemes, 10,002 scalars
            for (body, code) in [
                (["conversationId": room, "content": String(repeating: "x", count: 10_001)] as [String: Any], "content_too_long"),
                (["conversationId": room, "content": combining], "content_too_long"),
                (["conversationId": room, "content": "hi", "clientMessageId": String(repeating: "k", count: 129)], "invalid_client_message_id"),
                (["conversationId": room, "content": "hi", "clientMessageId": ""], "invalid_client_message_id"),
                (["conversationId": room, "content": "hi", "clientMessageId": "tab\there"], "invalid_client_message_id"),
            ] {
                let response = try await client.call(.post, "/api/chat/send", as: alice, json: body)
                #expect(response.status == .badRequest, "\(code)")
                #expect(response.json["error"]["code"].string == code)
            }
            let longTitle = try await client.call(.post, "/api/chat/start", as: alice, json: ["title": String(repeating: "t", count: 201), "participantIds": []])
            #expect(longTitle.status == .badRequest)
            #expect(longTitle.json["error"]["code"].string == "title_too_long")
            let crowd = try await client.call(
                .post, "/api/chat/start", as: alice, json: ["participantIds": (0...500).map { "usr_\($0)" }])
            #expect(crowd.status == .badRequest)
            #expect(crowd.json["error"]["code"].string == "too_many_participants")
            let longPoll = try await client.call(.get, "/api/chat/poll?cursor=0&timeout=61", as: alice)
            #expect(longPoll.status == .badRequest)
            #expect(longPoll.json["error"]["code"].string == "invalid_timeout")
            for blank in ["", "   ", "\n\t ", "\u{3000}", "\u{FEFF}\u{85}", "\u{0}"] {
                let response = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": blank])
                #expect(response.status == .badRequest)
                #expect(response.json["error"]["code"].string == "empty_content")
            }
            #expect(try await snapshot(deps.store) == before)
        }
    }

    @Test func malformedInputIsA4xxAndStoresNothing() async throws {
        try await withApp { client, deps in
            let alice = try await client.tokenSignIn("acme", "alice")
            let room = try await client.conversationId("General", as: alice)
            let message = try await client.call(.get, "/api/chat/\(room)/messages", as: alice).json["messages"][0]["id"].string!
            let before = try await snapshot(deps.store)
            let raw: [(String, String)] = [
                ("/api/chat/send", "{not json"), ("/api/chat/send", "[]"), ("/api/chat/send", "\"text\""), ("/api/chat/send", "null"),
                ("/api/chat/send", "{\"conversationId\": 5, \"content\": \"x\"}"),
                ("/api/chat/send", "{\"conversationId\": \"\(room)\", \"content\": 7}"),
                ("/api/chat/send", "{\"conversationId\": \"\(room)\", \"content\": null}"),
                ("/api/chat/send", "{\"conversationId\": \"\(room)\", \"content\": \"x\", \"clientMessageId\": 3}"),
                ("/api/chat/send", "{\"conversationId\": \"\(room)\", \"content\": \"x\", \"clientMessageId\": \"\"}"),
                ("/api/chat/send", "{\"content\": \"x\"}"), ("/api/chat/send", "{\"conversationId\": \"\(room)\"}"),
                ("/api/chat/send", "{\"conversationId\": \"../../etc\", \"content\": \"x\"}"),
                ("/api/chat/send", "{\"conversationId\": \"\(room)\", \"content\": \"x\", \"threadParentId\": \"msg_nope\"}"),
                ("/api/chat/start", "{\"participantIds\": \"bob\"}"), ("/api/chat/start", "{\"title\": \"x\"}"),
                ("/api/chat/start", "{\"title\": [], \"participantIds\": []}"),
                ("/api/chat/start", "{\"title\": \"\(String(repeating: "t", count: 300))\", \"participantIds\": []}"),
                ("/api/chat/start", "{\"title\": \"x\", \"participantIds\": [\"usr_unknown\"]}"),
                ("/api/chat/\(room)/read", "{}"), ("/api/chat/\(room)/read", "{\"messageId\": \"msg_nope\"}"),
                ("/api/chat/thread/\(message)/reply", "{\"content\": {}}"),
                ("/api/auth/login", "{\"tenant\": \"acme\"}"), ("/api/auth/login", "{\"tenant\": 1, \"username\": 2, \"password\": 3}"),
                ("/api/chat/send", "\u{FEFF}\u{0}"),
            ]
            for (path, body) in raw {
                let response = try await client.call(.post, path, as: alice, rawBody: body)
                #expect((400..<500).contains(response.status.code), "\(path) \(body): \(response.status)")
                #expect(response.json["error"]["code"].string != nil, "\(path) \(body)")
            }
            let huge = String(repeating: "a", count: 300_000)
            let tooBig = try await client.call(.post, "/api/chat/send", as: alice, rawBody: "{\"conversationId\": \"\(room)\", \"content\": \"\(huge)\"}")
            #expect(tooBig.status == .contentTooLarge)
            let wrongType = try await client.call(
                .post, "/api/chat/send", as: alice, rawBody: "conversationId=\(room)&content=x", headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(wrongType.status == .unsupportedMediaType)
            #expect(try await snapshot(deps.store) == before)
        }
    }

    @Test func anotherTenantGetsNotFoundEverywhereAndChangesNothing() async throws {
        try await withApp { client, deps in
            let alice = try await client.tokenSignIn("acme", "alice")
            let room = try await client.conversationId("General", as: alice)
            let bobId = try await client.userId("bob", as: alice)
            let message = try await client.call(.get, "/api/chat/\(room)/messages", as: alice).json["messages"][0]["id"].string!
            let before = try await snapshot(deps.store)

            // Dave (globex) replays acme's ids against every endpoint, as an API client and as a browser.
            for dave in [try await client.tokenSignIn("globex", "dave"), try await client.browserSignIn("globex", "dave")] {
                let attempts: [(HTTPRequest.Method, String, [String: Any]?)] = [
                    (.get, "/api/chat/\(room)/messages", nil),
                    (.get, "/api/chat/thread/\(message)", nil),
                    (.post, "/api/chat/send", ["conversationId": room, "content": "leak?"]),
                    (.post, "/api/chat/send", ["conversationId": room, "content": "leak?", "threadParentId": message]),
                    (.post, "/api/chat/thread/\(message)/reply", ["content": "leak?"]),
                    (.post, "/api/chat/\(room)/close", nil),
                    (.post, "/api/chat/\(room)/reopen", nil),
                    (.post, "/api/chat/\(room)/read", ["messageId": message]),
                    (.post, "/api/chat/\(room)/typing", nil),
                    (.post, "/api/chat/start", ["title": "steal", "participantIds": [bobId]]),
                ]
                for (method, path, body) in attempts {
                    let response = try await client.call(method, path, as: dave, json: body)
                    #expect(response.status == .notFound, "\(method) \(path)")
                    #expect(response.json["error"]["code"].string == "not_found", "\(method) \(path)")
                }
                let list = try await client.call(.get, "/api/chat/conversations", as: dave)
                #expect(!list.json["conversations"].array.contains { $0["id"].string == room })
                let users = try await client.call(.get, "/api/users", as: dave)
                #expect(!users.json["users"].array.contains { $0["id"].string == bobId })
            }
            #expect(try await snapshot(deps.store) == before)

            // A non-participant of the same tenant is also told "not found".
            let carol = try await client.tokenSignIn("acme", "carol")
            let plan = try await client.conversationId("Launch plan", as: alice)
            #expect(try await client.call(.get, "/api/chat/\(plan)/messages", as: carol).status == .notFound)
            #expect(try await client.call(.post, "/api/chat/send", as: carol, json: ["conversationId": plan, "content": "hi"]).status == .notFound)
        }
    }

    @Test func errorsHaveTheContractShape() async throws {
        try await withApp { client, _ in
            let response = try await client.call(.get, "/api/does-not-exist")
            #expect(response.status == .notFound)
            #expect(response.json["error"]["code"].string == "not_found")
            #expect(response.json["error"]["message"].string?.isEmpty == false)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
        }
    }

    @Test func openAPIDocumentAndAPIGuideListEveryRoute() async throws {
        try await withApp { client, _ in
            let response = try await client.call(.get, "/api/openapi.json")
            #expect(response.status == .ok)
            #expect(response.json["openapi"].string == "3.1.0")
            let paths = response.json["paths"]
            let guide = try String(contentsOf: packageRoot.appendingPathComponent("docs/API.md"), encoding: .utf8)
            let router = try await buildRoutes(testConfiguration(), dependencies: ChatDependencies.make(testConfiguration(), store: try SQLiteChatStore(path: try testDatabasePath())))
            var checked = 0
            for route in router.routes where route.path.description.hasPrefix("/api/") {
                // The router writes captures as `{name}`, as OpenAPI does; docs/API.md writes them `:name`.
                let path = route.path.description
                let method = route.method.rawValue.lowercased()
                #expect(paths[path][method].exists, "\(route.method) \(path) is not in openapi.json")
                let guidePath = path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
                #expect(guide.contains("`\(route.method.rawValue) \(guidePath)"), "\(route.method) \(guidePath) is not in docs/API.md")
                checked += 1
            }
            #expect(checked >= 15)
            // And nothing is documented that the router does not serve.
            let served = Set(router.routes.map { "\($0.method.rawValue.lowercased()) \($0.path.description)" })
            for (path, operations) in paths.object {
                for method in operations.keys {
                    #expect(served.contains("\(method) \(path)"), "\(method) \(path) is documented but not served")
                }
            }
        }
    }

    @Test func aKnownPathWithAnUnsupportedMethodIs405WithAllow() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            for (method, path, allow) in [
                (HTTPRequest.Method.get, "/api/chat/send", "POST"), (.delete, "/api/chat/conversations", "GET, HEAD"),
                (.put, "/api/chat/cnv_x/messages", "GET, HEAD, POST"), (.patch, "/api/auth/login", "POST"),
                (.post, "/api/openapi.json", "GET, HEAD"),
            ] {
                let response = try await client.call(method, path, as: alice)
                #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                #expect(response.headers[.allow] == allow, "\(method) \(path)")
                #expect(response.json["error"]["code"].string == "method_not_allowed")
            }
            // Pages answer the same status with an HTML page.
            let page = try await client.call(.delete, "/login")
            #expect(page.status == .methodNotAllowed)
            #expect(page.headers[.allow] == "GET, HEAD, POST")
            // HEAD is served wherever GET is; an unknown path is still 404.
            #expect(try await client.call(.head, "/api/chat/conversations", as: alice).status == .ok)
            #expect(try await client.call(.get, "/api/nothing-here", as: alice).status == .notFound)
        }
    }
}
