import ChatCore
import Foundation
import HTTPTypes
import Hummingbird

/// The server-rendered pages: everything works with plain forms (POST, then redirect); `Public/app.js` adds live
/// updates on top.
struct PageController {
    let chat: ChatService
    let auth: AuthService
    let summaries: SummaryService
    let renderer: PageRenderer
    let cookies: SessionCookies
    let maxBodyBytes: Int

    func addRoutes(to router: Router<ChatRequestContext>, forms: RouterGroup<ChatRequestContext>) {
        router.get("/") { _, _ in Response.redirect(to: "/chat", type: .normal) }
        let router = forms
        router.get("login", use: loginPage)
        router.post("login", use: login)
        router.post("logout", use: logout)
        router.get("chat", use: listPage)
        router.post("chat/start", use: start)
        router.get("chat/:conversationId", use: chatPage)
        router.post("chat/:conversationId/send", use: send)
        router.post("chat/:conversationId/close") { try await setClosed($0, $1, closed: true) }
        router.post("chat/:conversationId/reopen") { try await setClosed($0, $1, closed: false) }
        router.get("chat/:conversationId/thread/:messageId", use: chatPage)
        router.get("chat/:conversationId/members", use: membersPage)
        router.post("chat/:conversationId/rename", use: rename)
        router.post("chat/:conversationId/members/add", use: addMembers)
        router.post("chat/:conversationId/members/:userId/remove", use: removeMember)
        router.get("search", use: searchPage)
        router.get("chat/:conversationId/summary", use: summaryPage)
        router.post("chat/:conversationId/thread/:messageId/reply", use: reply)
        router.get("chat/:conversationId/messages/:messageId/edit", use: editPage)
        router.post("chat/:conversationId/messages/:messageId/edit", use: edit)
        router.post("chat/:conversationId/messages/:messageId/delete", use: delete)
        router.get("chat/:conversationId/messages/:messageId/react", use: reactPage)
        router.post("chat/:conversationId/messages/:messageId/react", use: react)
    }

    // MARK: Sign-in

    @Sendable func loginPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        if context.principal != nil { return Response.redirect(to: "/chat", type: .normal) }
        return renderLogin(next: Self.safeNext(request.uri.queryParameters.get("next")), error: nil, tenant: "", username: "")
    }

    @Sendable func login(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let form = try await FormBody.read(request, limit: 16 * 1024)
        let tenant = form["tenant"] ?? "", username = form["username"] ?? "", password = form["password"] ?? ""
        let next = Self.safeNext(form["next"])
        guard !tenant.isEmpty, !username.isEmpty, !password.isEmpty else {
            return renderLogin(next: next, error: "Enter your workspace, username and password.", tenant: tenant, username: username, status: .badRequest)
        }
        do {
            let signIn = try await auth.signIn(tenant: tenant, username: username, password: password, address: context.remoteAddress, method: .session)
            var response = Response.redirect(to: next, type: .found)
            response.status = .seeOther
            response.setCookie(cookies.session(signIn.secret, context: context))
            return response
        } catch let error as ChatError where error.kind == .unauthenticated || error.kind == .rateLimited {
            let status: HTTPResponse.Status = error.kind == .rateLimited ? .tooManyRequests : .unauthorized
            return renderLogin(next: next, error: error.message, tenant: tenant, username: username, status: status)
        }
    }

    @Sendable func logout(_ request: Request, context: ChatRequestContext) async throws -> Response {
        if let principal = context.principal {
            _ = try await checkedForm(request, principal)
            try await auth.signOut(principal)
        }
        var response = Self.seeOther("/login")
        response.setCookie(cookies.expired(context: context))
        return response
    }

    // MARK: Pages

    @Sendable func listPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        var page = try await layout(principal, page: "list", title: "Conversations")
        page.merge(try await sidebar(principal, activeId: nil, after: request.uri.queryParameters.get("after"))) { $1 }
        // The people to pick from: a page of the directory (everyone in a small workspace), or the matches of a
        // search (the form works without JavaScript; the script turns it into a type-ahead).
        let query = request.uri.queryParameters.get("q").map { String($0.prefix(Directory.maxQueryLength)) }
        let people = try await chat.directory(principal, query: query, cursor: nil, limit: 50)
        page["others"] = people.users.filter { $0.id != principal.userId }
        page["peopleQuery"] = query
        page["morePeople"] = people.nextCursor != nil
        if let error = request.uri.queryParameters.get("error") { page["error"] = String(error.prefix(200)) }
        return renderer.render("conversation_list", page)
    }

    /// Everyone in a conversation, 100 at a time ("More members" pages on without JavaScript), with the forms that
    /// rename it, add people (found through the directory, `?q=`), remove someone (its creator) and leave.
    @Sendable func membersPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let conversation = try await chat.conversation(principal, id: conversationId)
        let members = try await chat.members(principal, conversationId: conversationId, cursor: request.uri.queryParameters.get("after"), limit: nil)
        let title = ConversationText.title(conversation, viewerId: principal.userId)
        var page = try await layout(principal, page: "members", title: "Members of \(title)")
        page.merge(try await sidebar(principal, activeId: conversationId)) { $1 }
        page["conversationId"] = conversationId
        page["title"] = title
        page["rawTitle"] = conversation.title
        page["closed"] = conversation.isClosed
        page["countText"] = conversation.participantCount == 1 ? "1 person" : "\(conversation.participantCount.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))) people"
        let removable = conversation.createdBy == principal.userId
        page["members"] = members.users.map { user -> [String: Any] in
            ["id": user.id, "displayName": user.displayName, "username": user.username, "isMe": user.id == principal.userId,
             "removable": removable && user.id != principal.userId, "conversationId": conversationId, "csrf": principal.csrfToken ?? ""]
        }
        page["nextCursor"] = members.nextCursor
        // People to add: the directory's matches (or its first page) who are not in the conversation yet.
        let query = request.uri.queryParameters.get("q").map { String($0.prefix(Directory.maxQueryLength)) }
        var candidates: [User] = []
        for user in try await chat.directory(principal, query: query, cursor: nil, limit: 30).users
        where try await !chat.store.isParticipant(tenantId: principal.tenantId, conversationId: conversationId, userId: user.id) {
            candidates.append(user)
        }
        page["candidates"] = candidates
        page["hasCandidates"] = !candidates.isEmpty
        page["peopleQuery"] = query
        return renderer.render("members", page)
    }

    @Sendable func rename(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let form = try await checkedForm(request, principal)
        _ = try await chat.rename(principal, conversationId: conversationId, title: form["title"] ?? "")
        return Self.seeOther("/chat/\(conversationId)/members")
    }

    @Sendable func addMembers(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let form = try await checkedForm(request, principal)
        _ = try await chat.addMembers(principal, conversationId: conversationId, userIds: form.all("userIds"))
        return Self.seeOther("/chat/\(conversationId)/members")
    }

    /// Removes someone, or leaves (then back to the list: the conversation is no longer the viewer's).
    @Sendable func removeMember(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let userId = try context.parameters.require("userId")
        _ = try await checkedForm(request, principal)
        try await chat.removeMember(principal, conversationId: conversationId, userId: userId)
        return Self.seeOther(userId == principal.userId ? "/chat" : "/chat/\(conversationId)/members")
    }

    /// Search results as a page (the sidebar's search box; works without JavaScript).
    @Sendable func searchPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let query = request.uri.queryParameters.get("q") ?? ""
        let conversationId = request.uri.queryParameters.get("conversationId")
        var page = try await layout(principal, page: "search", title: "Search: \(query)")
        page.merge(try await sidebar(principal, activeId: nil)) { $1 }
        page["searchQuery"] = query
        do {
            let found = try await chat.search(
                principal, query: query, conversationId: conversationId, senderId: nil, cursor: request.uri.queryParameters.get("cursor"), limit: 20)
            let now = Timestamp.now()
            page["results"] = found.results.map { hit -> [String: Any] in
                [
                    "link": Self.place(of: hit.message), "conversationTitle": hit.conversationTitle, "sender": hit.message.sender.displayName,
                    "time": TimeText.relative(hit.message.createdAt, now: now), "timeISO": hit.message.createdAt.description,
                    "segments": hit.excerpt.map { ["text": $0.text, "match": $0.match] },
                ]
            }
            page["countText"] = found.results.isEmpty ? "No messages match." : (found.nextCursor == nil ? "\(found.results.count) found" : "Best \(found.results.count)")
            if let next = found.nextCursor {
                page["nextLink"] = "/search?q=\(query.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&cursor=\(next)"
            }
        } catch let error as ChatError where error.kind == .badRequest {
            page["error"] = error.message
        }
        return renderer.render("search", page)
    }

    /// The summary as a page of its own (the ChatWindow's Summary control without JavaScript).
    @Sendable func summaryPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let conversation = try await chat.conversation(principal, id: conversationId)
        let summary = try await summaries.summary(principal, conversationId: conversationId, refresh: try request.flagQuery("refresh"))
        let title = ConversationText.title(conversation, viewerId: principal.userId)
        var page = try await layout(principal, page: "summary", title: "Summary of \(title)")
        page.merge(try await sidebar(principal, activeId: conversationId)) { $1 }
        page["conversationId"] = conversationId
        page["title"] = title
        page["summary"] = SummaryView(summary)
        return renderer.render("summary", page)
    }

    @Sendable func chatPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let conversation = try await chat.conversation(principal, id: conversationId)
        let now = Timestamp.now()
        let before = request.uri.queryParameters.get("before")
        // The live cursor is taken before the history is read: what commits in between arrives live, not lost.
        let cursor = try await chat.currentCursor(principal)
        let history = try await chat.messages(principal, conversationId: conversationId, before: before, limit: 50)
        // Looking at the newest page counts as reading it.
        if before == nil, let last = history.messages.last, conversation.unreadCount > 0 {
            try await chat.markRead(principal, conversationId: conversationId, messageId: last.id)
        }
        var page = try await layout(
            principal, page: "chat", title: ConversationText.title(conversation, viewerId: principal.userId), cursor: cursor)
        page.merge(try await sidebar(principal, activeId: conversationId)) { $1 }
        page["conversationId"] = conversationId
        page["title"] = ConversationText.title(conversation, viewerId: principal.userId)
        page["participantNames"] = ConversationText.people(conversation)
        page["participantCount"] = conversation.participantCount
        page["presenceLine"] = PresenceView.headerLine(conversation, viewerId: principal.userId) {
            chat.presence.status(tenantId: principal.tenantId, userId: $0)
        }
        let others = conversation.participants.filter { $0.id != principal.userId }
        page["presenceStatuses"] = others.map { "\($0.id):\(chat.presence.status(tenantId: principal.tenantId, userId: $0.id).rawValue)" }
            .joined(separator: " ")
        if conversation.participantCount == 2, let other = others.first { page["pairName"] = other.displayName }
        page["closed"] = conversation.isClosed
        var shown = history.messages
        var thread: ChatCore.Thread? = nil
        if let messageId = context.parameters.get("messageId") {
            thread = try await chat.thread(principal, messageId: messageId)
            shown += [thread!.parent] + thread!.replies
        }
        let names = try await usernames(principal, mentionedIn: shown)
        page["messages"] = history.messages.map { MessageView($0, viewerId: principal.userId, now: now, threadLinks: true, usernames: names) }
        page["hasMessages"] = !history.messages.isEmpty
        page["olderCursor"] = history.nextCursor
        page["newerLink"] = before != nil
        page["clientMessageId"] = UUID().uuidString.lowercased()
        if let thread {
            guard thread.parent.conversationId == conversationId else { throw ChatError.notFound("message") }
            page["threadId"] = thread.parent.id
            page["bodyClass"] = "has-thread"
            page["pageTitle"] = "Thread · " + (page["title"] as? String ?? "")
            page["thread"] = [
                "parent": MessageView(thread.parent, viewerId: principal.userId, now: now, threadLinks: false, anchor: false, usernames: names),
                "replies": thread.replies.map { MessageView($0, viewerId: principal.userId, now: now, threadLinks: false, usernames: names) },
                "replyClientMessageId": UUID().uuidString.lowercased(),
            ] as [String: Any]
        }
        return renderer.render("chat_window", page)
    }

    // MARK: Form posts (POST, then redirect)

    @Sendable func start(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let form = try await checkedForm(request, principal)
        do {
            let conversation = try await chat.startConversation(principal, title: form["title"], participantIds: form.all("participantIds"))
            return Self.seeOther("/chat/\(conversation.id)")
        } catch let error as ChatError where error.kind == .badRequest {
            return Self.seeOther("/chat?error=" + (error.message.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
        }
    }

    @Sendable func send(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        if MultipartForm.isMultipart(request) {
            // The composer with its file input (without JavaScript).
            let form = try await MultipartForm.read(request, limit: chat.limits.maxUploadBytes)
            try Self.checkCSRF(principal, sent: form.fields["_csrf"], request: request)
            let (message, _) = try await chat.send(
                principal, conversationId: conversationId, content: form.fields["content"] ?? "", threadParentId: nil,
                clientMessageId: form.fields["clientMessageId"].flatMap { $0.isEmpty ? nil : $0 },
                files: try ChatController.files(in: form, limits: chat.limits.files))
            return Self.seeOther("/chat/\(conversationId)#m-\(message.id)")
        }
        let form = try await checkedForm(request, principal)
        let (message, _) = try await chat.send(
            principal, conversationId: conversationId, content: form["content"] ?? "", threadParentId: nil,
            clientMessageId: form["clientMessageId"].flatMap { $0.isEmpty ? nil : $0 })
        return Self.seeOther("/chat/\(conversationId)#m-\(message.id)")
    }

    @Sendable func reply(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let messageId = try context.parameters.require("messageId")
        let form = try await checkedForm(request, principal)
        let (message, _) = try await chat.send(
            principal, conversationId: conversationId, content: form["content"] ?? "", threadParentId: messageId,
            clientMessageId: form["clientMessageId"].flatMap { $0.isEmpty ? nil : $0 })
        return Self.seeOther("/chat/\(conversationId)/thread/\(message.threadParentId ?? messageId)#m-\(message.id)")
    }

    /// Where a changed message is seen: its thread for a reply, the conversation for the rest.
    static func place(of message: Message) -> String {
        message.threadParentId.map { "/chat/\(message.conversationId)/thread/\($0)#m-\(message.id)" }
            ?? "/chat/\(message.conversationId)#m-\(message.id)"
    }

    /// Editing without JavaScript: a page with the message in a form.
    @Sendable func editPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let target = try await visibleMessage(principal, conversationId: conversationId, messageId: try context.parameters.require("messageId"))
        guard target.senderId == principal.userId, !target.isDeleted else {
            throw ChatError(.forbidden, "not_your_message", "Only the sender may edit a message, and not once it is deleted.")
        }
        let conversation = try await chat.conversation(principal, id: conversationId)
        var page = try await layout(principal, page: "edit", title: "Edit your message")
        page.merge(try await sidebar(principal, activeId: conversationId)) { $1 }
        page["conversationId"] = conversationId
        page["messageId"] = target.id
        page["content"] = target.content
        page["title"] = ConversationText.title(conversation, viewerId: principal.userId)
        page["back"] = Self.place(of: target)
        return renderer.render("edit_message", page)
    }

    @Sendable func edit(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let form = try await checkedForm(request, principal)
        let message = try await chat.edit(principal, messageId: try context.parameters.require("messageId"), content: form["content"] ?? "")
        return Self.seeOther(Self.place(of: message))
    }

    @Sendable func delete(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        _ = try await checkedForm(request, principal)
        let message = try await chat.delete(principal, messageId: try context.parameters.require("messageId"))
        return Self.seeOther(Self.place(of: message))
    }

    /// The message the viewer sees in a conversation, from its thread (404 otherwise).
    private func visibleMessage(_ principal: Principal, conversationId: String, messageId: String) async throws -> Message {
        let thread = try await chat.thread(principal, messageId: messageId)
        guard let message = ([thread.parent] + thread.replies).first(where: { $0.id == messageId }), message.conversationId == conversationId else {
            throw ChatError.notFound("message")
        }
        return message
    }

    /// Reacting without JavaScript: the twelve emoji as buttons of one form.
    @Sendable func reactPage(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        let message = try await visibleMessage(principal, conversationId: conversationId, messageId: try context.parameters.require("messageId"))
        guard !message.isDeleted else { throw ChatError(.conflict, "message_deleted", "A deleted message cannot be reacted to.") }
        var page = try await layout(principal, page: "react", title: "React to a message")
        page.merge(try await sidebar(principal, activeId: conversationId)) { $1 }
        page["conversationId"] = conversationId
        page["messageId"] = message.id
        page["sender"] = message.sender.displayName
        page["excerpt"] = ExtractiveDigest.excerptOf(message.content)
        page["back"] = Self.place(of: message)
        let mine = Set(message.reactions.filter { $0.userIds.contains(principal.userId) }.map(\.emoji))
        page["choices"] = Reactions.all.map { ["code": $0.code, "emoji": $0.emoji, "name": $0.name, "pressed": mine.contains($0.code) ? "true" : "false"] }
        return renderer.render("react", page)
    }

    /// A reaction button without JavaScript toggles: it takes the viewer's reaction back if they had it.
    @Sendable func react(_ request: Request, context: ChatRequestContext) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let form = try await checkedForm(request, principal)
        let conversationId = try context.parameters.require("conversationId")
        let message = try await visibleMessage(principal, conversationId: conversationId, messageId: try context.parameters.require("messageId"))
        let code = Reactions.code(form["emoji"] ?? "") ?? ""
        let had = message.reactions.contains { $0.emoji == code && $0.userIds.contains(principal.userId) }
        let changed = try await chat.react(principal, messageId: message.id, emoji: form["emoji"] ?? "", on: !had)
        return Self.seeOther(Self.place(of: changed))
    }

    @Sendable func setClosed(_ request: Request, _ context: ChatRequestContext, closed: Bool) async throws -> Response {
        guard let principal = context.principal else { return Self.toLogin(request) }
        let conversationId = try context.parameters.require("conversationId")
        _ = try await checkedForm(request, principal)
        _ = try await chat.setClosed(principal, conversationId: conversationId, closed: closed)
        return Self.seeOther("/chat/\(conversationId)")
    }

    // MARK: Helpers

    /// id → username of everyone the messages mention, and of the viewer (whose own mentions are marked).
    private func usernames(_ principal: Principal, mentionedIn messages: [Message]) async throws -> [String: String] {
        var names: [String: String] = [:]
        for id in Set(messages.flatMap(\.mentions) + [principal.userId]) {
            if let user = try await chat.store.user(tenantId: principal.tenantId, id: id) { names[id] = user.username }
        }
        return names
    }

    /// Reads the form and checks its `_csrf` field against the session's token.
    private func checkedForm(_ request: Request, _ principal: Principal) async throws -> FormBody {
        let form = try await FormBody.read(request, limit: maxBodyBytes)
        try Self.checkCSRF(principal, sent: form["_csrf"], request: request)
        return form
    }

    /// A cookie session's form must carry its CSRF token (the `_csrf` field, or the header scripts send).
    static func checkCSRF(_ principal: Principal, sent: String?, request: Request) throws {
        guard principal.method == .session else { return }
        guard principal.acceptsCSRFToken(sent ?? request.headers[.csrfToken])
        else { throw ChatError(.forbidden, "csrf_failed", "The form expired. Reload the page and try again.") }
    }

    private func layout(_ principal: Principal, page: String, title: String, cursor: Int64? = nil) async throws -> [String: Any] {
        var cursor = cursor
        if cursor == nil { cursor = try await chat.currentCursor(principal) }
        let (user, tenant) = try await chat.me(principal)
        return [
            "pageTitle": title, "page": page, "bodyClass": "", "signedIn": true, "tenantName": tenant.name,
            "displayName": user.displayName, "userId": user.id, "username": user.username, "csrf": principal.csrfToken ?? "",
            "cursor": EventCursor.format(cursor ?? 0), "conversationId": "", "threadId": "",
            "reactionChoices": Reactions.all.map { ["code": $0.code, "emoji": $0.emoji, "name": $0.name] },
        ]
    }

    /// The conversation list: its first page (50), or the page after `?after=` ("More" works without JavaScript).
    private func sidebar(_ principal: Principal, activeId: String?, after: String? = nil) async throws -> [String: Any] {
        let page = try await chat.conversations(principal, cursor: after, limit: Self.sidebarPage)
        let last = try await chat.lastMessages(principal, conversationIds: page.conversations.map(\.id))
        let now = Timestamp.now()
        var sidebar: [String: Any] = [
            "conversations": page.conversations.map {
                ConversationItemView(
                    $0, lastMessage: last[$0.id], viewerId: principal.userId, activeId: activeId, now: now,
                    presence: { chat.presence.status(tenantId: principal.tenantId, userId: $0) })
            },
            "hasConversations": !page.conversations.isEmpty,
        ]
        if let next = page.nextCursor { sidebar["moreConversations"] = next }
        return sidebar
    }

    static let sidebarPage = 50

    private func renderLogin(next: String, error: String?, tenant: String, username: String, status: HTTPResponse.Status = .ok) -> Response {
        var page: [String: Any] = ["pageTitle": "Sign in", "page": "login", "bodyClass": "login", "next": next, "tenant": tenant, "username": username, "tenantName": "Chat"]
        if let error { page["error"] = error }
        return renderer.render("login", page, status: status)
    }

    static func seeOther(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    static func toLogin(_ request: Request) -> Response {
        let next = request.uri.path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/chat"
        return seeOther("/login?next=\(next)")
    }

    /// Only local paths may be redirect targets (no open redirects).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), next.count < 512 else { return "/chat" }
        return next
    }
}
