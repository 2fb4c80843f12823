@testable import ChatServer
import ChatCore
import ChatSQLite
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

extension TestClientProtocol {
    /// Posts an HTML form the way a browser without JavaScript does.
    func form(_ path: String, _ fields: [(String, String)], cookie: String? = nil, headers extra: HTTPFields = [:]) async throws -> APIResponse {
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        if let cookie { headers[.cookie] = "chat_session=\(cookie)" }
        let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
        return try await execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            APIResponse(status: response.status, headers: response.headers, json: JSONValue(nil), raw: response.body)
        }
    }

    func page(_ path: String, cookie: String?) async throws -> (HTTPResponse.Status, HTTPFields, String) {
        var headers = HTTPFields()
        if let cookie { headers[.cookie] = "chat_session=\(cookie)" }
        return try await execute(uri: path, method: .get, headers: headers) { ($0.status, $0.headers, String(buffer: $0.body)) }
    }
}

@Suite struct PageTests {
    @Test func pagesNeedASessionAndLoginWorksWithAPlainForm() async throws {
        try await withApp { client, _ in
            let (status, headers, _) = try await client.page("/chat", cookie: nil)
            #expect(status == .seeOther)
            #expect(headers[.location] == "/login?next=%2Fchat")

            let wrong = try await client.form("/login", [("tenant", "acme"), ("username", "alice"), ("password", "nope"), ("next", "/chat")])
            #expect(wrong.status == .unauthorized)
            #expect(String(buffer: wrong.raw).contains("role=\"alert\""))

            let ok = try await client.form("/login", [("tenant", "acme"), ("username", "alice"), ("password", "demo-password"), ("next", "//evil.example/x")])
            #expect(ok.status == .seeOther)
            #expect(ok.headers[.location] == "/chat")  // no open redirect
            let cookie = try #require(sessionCookie(ok.headers))
            let (listStatus, listHeaders, html) = try await client.page("/chat", cookie: cookie)
            #expect(listStatus == .ok)
            #expect(html.contains("data-transport=\"off\""))
            #expect(html.contains("General"))
            let csp = try #require(listHeaders[.contentSecurityPolicy])
            #expect(!csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"))
            #expect(!html.contains("<script>") && !html.contains("style="))  // no inline scripts or styles
        }
    }

    @Test func formsNeedTheCSRFFieldAndThenStoreAndRedirect() async throws {
        try await withApp { client, deps in
            let ok = try await client.form("/login", [("tenant", "acme"), ("username", "alice"), ("password", "demo-password")])
            let cookie = try #require(sessionCookie(ok.headers))
            let (_, _, html) = try await client.page("/chat", cookie: cookie)
            let csrf = try #require(html.firstMatch(of: /name="_csrf" value="([^"]+)"/)?.1).description
            let room = try #require(html.firstMatch(of: /data-conversation-id="(cnv_[a-z0-9]+)"/)?.1).description
            let before = try await snapshot(deps.store)

            let forged = try await client.form("/chat/\(room)/send", [("content", "forged")], cookie: cookie)
            #expect(forged.status == .forbidden)
            let crossSite = try await client.form(
                "/chat/\(room)/send", [("_csrf", csrf), ("content", "cross")], cookie: cookie, headers: [.origin: "https://evil.example"])
            #expect(crossSite.status == .forbidden)
            #expect(try await snapshot(deps.store) == before)

            let xss = "<img src=x onerror=alert(1)>"
            let sent = try await client.form("/chat/\(room)/send", [("_csrf", csrf), ("content", xss), ("clientMessageId", "form-1")], cookie: cookie)
            #expect(sent.status == .seeOther)
            #expect(sent.headers[.location]?.hasPrefix("/chat/\(room)#m-msg_") == true)
            // Submitting the same form twice stores one message.
            _ = try await client.form("/chat/\(room)/send", [("_csrf", csrf), ("content", xss), ("clientMessageId", "form-1")], cookie: cookie)
            let (_, _, chat) = try await client.page("/chat/\(room)", cookie: cookie)
            #expect(chat.contains("&lt;img src=x onerror=alert(1)&gt;"))
            #expect(!chat.contains(xss))
            let stored = try await (deps.store as! SQLiteChatStore).pool.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages WHERE client_message_id = 'form-1'")
            }
            #expect(stored == 1)

            let closed = try await client.form("/chat/\(room)/close", [("_csrf", csrf)], cookie: cookie)
            #expect(closed.status == .seeOther)
            let (_, _, closedPage) = try await client.page("/chat/\(room)", cookie: cookie)
            #expect(closedPage.contains(/<textarea id="content"[^>]* disabled>/))
        }
    }

    @Test func everyRenderedMessageCarriesItsIdAndSeq() async throws {
        try await withApp { client, _ in
            let ok = try await client.form("/login", [("tenant", "acme"), ("username", "bob"), ("password", "demo-password")])
            let cookie = try #require(sessionCookie(ok.headers))
            let (_, _, list) = try await client.page("/chat", cookie: cookie)
            let room = try #require(list.firstMatch(of: /href="\/chat\/(cnv_[a-z0-9]+)"/)?.1).description
            let (_, _, page) = try await client.page("/chat/\(room)", cookie: cookie)
            let chat = String(page[..<page.range(of: "<template")!.lowerBound])  // the client-side template is not a message
            let bubbles = chat.matches(of: /<li class="message[^"]*"[^>]*data-message-id="msg_[a-z0-9]+" data-seq="\d+"/).count
            #expect(bubbles == chat.matches(of: /<li class="message/).count)
            #expect(bubbles > 0)
            #expect(chat.contains("name=\"content\""))
            #expect(chat.contains("aria-live=\"polite\""))
            #expect(try await client.page("/chat/cnv_doesnotexist", cookie: cookie).0 == .notFound)
        }
    }

    @Test func startupFailsWhenTemplatesAreMissing() async throws {
        var config = testConfiguration()
        config.templatesDirectory = "/nonexistent/templates"
        await #expect(throws: (any Error).self) {
            _ = try await buildApplication(config, dependencies: ChatDependencies.make(config, store: try SQLiteChatStore(path: try testDatabasePath())))
        }
    }
}

@Suite struct ReplyCountWordingTests {
    @Test func threadPanelAndBubblesSayHowManyRepliesInWords() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            guard case .browser(let cookie, _) = try await client.browserSignIn("acme", "alice") else { return }
            let room = try await client.conversationId("General", as: alice)
            let root = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "root"])
                .json["message"]["id"].string!
            // The text of `<span class="thread-count" data-count="N">…</span>` on the thread page.
            func panelCount() async throws -> String? {
                let (_, _, html) = try await client.page("/chat/\(room)/thread/\(root)", cookie: cookie)
                guard let tag = html.range(of: "class=\"thread-count\""), let open = html[tag.upperBound...].range(of: ">"),
                      let close = html[open.upperBound...].range(of: "</span>")
                else { return nil }
                return String(html[open.upperBound..<close.lowerBound])
            }
            #expect(try await panelCount() == "No replies yet")
            _ = try await client.call(.post, "/api/chat/thread/\(root)/reply", as: alice, json: ["content": "one"])
            #expect(try await panelCount() == "1 reply")
            _ = try await client.call(.post, "/api/chat/thread/\(root)/reply", as: alice, json: ["content": "two"])
            #expect(try await panelCount() == "2 replies")
            #expect(MessageView.replyLabel(0) == "Reply")
            #expect(MessageView.replyLabel(1) == "reply")
            #expect(MessageView.replyLabel(5) == "replies")
        }
    }

    /// The Summary control is a link to a page that works without JavaScript; what the messages say is escaped there.
    @Test func theSummaryPageListsKeyPointsAndQuestionsEscaped() async throws {
        try await withApp { client, _ in
            let alice = try await client.tokenSignIn("acme", "alice")
            guard case .browser(let cookie, _) = try await client.browserSignIn("acme", "alice") else { return }
            let room = try await client.conversationId("General", as: alice)
            let question = try await client.call(.post, "/api/chat/send", as: alice, json: ["conversationId": room, "content": "Does <script>alert(1)</script> run in the summary?"])
                .json["message"]["id"].string!
            let (_, _, chat) = try await client.page("/chat/\(room)", cookie: cookie)
            #expect(chat.contains("href=\"/chat/\(room)/summary\""))
            let (status, _, html) = try await client.page("/chat/\(room)/summary", cookie: cookie)
            #expect(status == .ok)
            #expect(html.contains("<h1 id=\"summary-title\">Summary of General</h1>"))
            #expect(html.contains("Open questions") && html.contains("href=\"/chat/\(room)/thread/\(question)\""))
            #expect(html.contains("Does &lt;script&gt;alert(1)&lt;/script&gt; run in the summary?") && !html.contains("<script>alert(1)"))
            #expect(html.contains("Extractive digest"))
            let dave = try await client.browserSignIn("globex", "dave")
            guard case .browser(let daveCookie, _) = dave else { return }
            #expect(try await client.page("/chat/\(room)/summary", cookie: daveCookie).0 == .notFound)
        }
    }
}

@Suite struct ConversationTextTests {
    @Test func aBigConversationIsNamedByItsFirstTwoAndACount() {
        let people = (0..<20).map { User(id: "usr_\($0)", username: "u\($0)", displayName: "Person \($0)", tenantId: "ten_1") }
        func conversation(_ listed: [User], count: Int) -> Conversation {
            Conversation(
                id: "cnv_1", tenantId: "ten_1", title: "", participants: listed, createdBy: "usr_0", createdAt: .now(), updatedAt: .now(),
                lastMessageAt: nil, closedAt: nil, unreadCount: 0, lastSeq: 0, participantCount: count)
        }
        #expect(ConversationText.people(conversation(people, count: 5_000)) == "Person 0, Person 1 and 4,998 others")
        #expect(ConversationText.people(conversation(Array(people.prefix(3)), count: 3)) == "Person 0, Person 1, Person 2")
        #expect(ConversationText.people(conversation(Array(people.prefix(4)), count: 4)) == "Person 0, Person 1 and 2 others")
    }
}
