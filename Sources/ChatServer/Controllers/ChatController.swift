import ChatCore
import Hummingbird

/// The JSON endpoints under `/api/chat` for conversations, messages, threads and receipts.
struct ChatController {
    let chat: ChatService
    let summaries: SummaryService
    let maxBodyBytes: Int

    struct StartBody: Decodable {
        let title: String?
        let participantIds: [String]
    }

    struct SendBody: Decodable {
        let conversationId: String
        let content: String
        let threadParentId: String?
        let clientMessageId: String?
    }

    struct ReplyBody: Decodable {
        let content: String
        let clientMessageId: String?
    }

    struct ReadBody: Decodable {
        let messageId: String
    }

    struct ConversationBody: Encodable { let conversation: Conversation }
    struct ThreadBody: Encodable {
        let parent: Message
        let replies: [Message]
    }

    func addRoutes(to group: RouterGroup<ChatRequestContext>) {
        group.post("start", use: start)
        group.get("conversations", use: conversations)
        group.post("send", use: send)
        group.get(":conversationId/messages", use: messages)
        group.post(":conversationId/messages", use: upload)
        group.get("files/:fileId", use: download)
        group.get(":conversationId/members", use: members)
        group.post(":conversationId/members", use: addMembers)
        group.delete(":conversationId/members/:userId", use: removeMember)
        group.patch(":conversationId", use: rename)
        group.get(":conversationId/summary", use: summary)
        group.get("search", use: search)
        group.get("presence", use: presence)
        group.post("presence", use: setPresence)
        group.patch("messages/:messageId", use: edit)
        group.delete("messages/:messageId", use: delete)
        group.put("messages/:messageId/reactions/:emoji") { try await react($0, $1, on: true) }
        group.delete("messages/:messageId/reactions/:emoji") { try await react($0, $1, on: false) }
        group.post("thread/:messageId/reply", use: reply)
        group.get("thread/:messageId", use: thread)
        group.post(":conversationId/close") { try await setClosed($0, $1, closed: true) }
        group.post(":conversationId/reopen") { try await setClosed($0, $1, closed: false) }
        group.post(":conversationId/read", use: read)
        group.post(":conversationId/typing", use: typing)
    }

    @Sendable func start(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(StartBody.self, limit: maxBodyBytes)
        let conversation = try await chat.startConversation(caller, title: body.title, participantIds: body.participantIds)
        return try JSONResponse.make(ConversationBody(conversation: conversation), status: .created)
    }

    @Sendable func conversations(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let page = try await chat.conversations(
            caller, cursor: request.uri.queryParameters.get("cursor"), limit: try request.integerQuery("limit"))
        // Written by hand: the shared encoder was half of this request's time for a page of 50.
        return JSONResponse.make(bytes: JSONText.conversationPage(page))
    }

    @Sendable func members(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let page = try await chat.members(
            try context.requirePrincipal(), conversationId: try context.parameters.require("conversationId"),
            cursor: request.uri.queryParameters.get("cursor"), limit: try request.integerQuery("limit"))
        return try JSONResponse.make(PagedBody(key: "members", items: page.users, nextCursor: page.nextCursor))
    }

    struct RenameBody: Decodable { let title: String }
    struct AddMembersBody: Decodable { let userIds: [String] }

    @Sendable func rename(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(RenameBody.self, limit: maxBodyBytes)
        let conversation = try await chat.rename(caller, conversationId: try context.parameters.require("conversationId"), title: body.title)
        return try JSONResponse.make(ConversationBody(conversation: conversation))
    }

    @Sendable func addMembers(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(AddMembersBody.self, limit: maxBodyBytes)
        let conversation = try await chat.addMembers(
            caller, conversationId: try context.parameters.require("conversationId"), userIds: body.userIds)
        return try JSONResponse.make(ConversationBody(conversation: conversation))
    }

    /// Removes someone, or with one's own id, leaves. 204 also when they were not in it (idempotent).
    @Sendable func removeMember(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        try await chat.removeMember(
            caller, conversationId: try context.parameters.require("conversationId"), userId: try context.parameters.require("userId"))
        return Response(status: .noContent)
    }

    struct PresenceEntry: Encodable {
        let userId: String
        let status: PresenceStatus
    }
    struct PresenceBody: Encodable { let presence: [PresenceEntry] }
    struct SetPresenceBody: Decodable { let status: String }

    /// `?userIds=a,b,c`: each one's status (anyone outside the caller's tenant reads as offline).
    @Sendable func presence(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        guard let list = request.uri.queryParameters.get("userIds") else {
            throw ChatError.badRequest("`userIds` (comma-separated) is required.", code: "missing_field")
        }
        let ids = list.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard ids.allSatisfy(Identifier.isPlausible) else {
            throw ChatError.badRequest("`userIds` is a comma-separated list of user ids.", code: "invalid_user_ids")
        }
        let found = try chat.presence(caller, userIds: ids)
        return try JSONResponse.make(PresenceBody(presence: found.map { PresenceEntry(userId: $0.userId, status: $0.status) }))
    }

    /// Away or back, for every connection of the caller's session or token (clients without a WebSocket).
    @Sendable func setPresence(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(SetPresenceBody.self, limit: maxBodyBytes)
        await chat.presence.setAway(caller, try PresenceInput.away(body.status))
        return Response(status: .noContent)
    }

    struct EditBody: Decodable { let content: String }

    @Sendable func edit(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(EditBody.self, limit: maxBodyBytes)
        let message = try await chat.edit(caller, messageId: try context.parameters.require("messageId"), content: body.content)
        return Self.messageResponse(message, created: false)
    }

    @Sendable func delete(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let message = try await chat.delete(caller, messageId: try context.parameters.require("messageId"))
        return Self.messageResponse(message, created: false)
    }

    @Sendable func react(_ request: Request, _ context: ChatRequestContext, on: Bool) async throws -> Response {
        let caller = try context.requirePrincipal()
        let message = try await chat.react(
            caller, messageId: try context.parameters.require("messageId"), emoji: try context.parameters.require("emoji"), on: on)
        return Self.messageResponse(message, created: false)
    }

    struct SearchBody: Encodable {
        let results: [SearchHit]
        let nextCursor: String?

        enum CodingKeys: String, CodingKey { case results, nextCursor }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(results, forKey: .results)
            try c.encode(nextCursor, forKey: .nextCursor)
        }
    }

    @Sendable func search(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let query = request.uri.queryParameters
        let page = try await chat.search(
            caller, query: query.get("q") ?? "", conversationId: query.get("conversationId"), senderId: query.get("senderId"),
            cursor: query.get("cursor"), limit: try request.integerQuery("limit"))
        return try JSONResponse.make(SearchBody(results: page.results, nextCursor: page.nextCursor))
    }

    struct SummaryBody: Encodable { let summary: ConversationSummary }

    @Sendable func summary(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let refresh = try request.flagQuery("refresh")
        let method = try request.uri.queryParameters.get("method").map { text in
            guard let method = SummaryService.Method(rawValue: text) else {
                throw ChatError.badRequest("`method` must be auto, extractive or llm.", code: "invalid_method")
            }
            return method
        } ?? .auto
        let summary = try await summaries.summary(
            caller, conversationId: try context.parameters.require("conversationId"), method: method, refresh: refresh)
        return try JSONResponse.make(SummaryBody(summary: summary))
    }

    @Sendable func send(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(SendBody.self, limit: maxBodyBytes)
        let (message, created) = try await chat.send(
            caller, conversationId: body.conversationId, content: body.content, threadParentId: body.threadParentId,
            clientMessageId: body.clientMessageId)
        return Self.messageResponse(message, created: created)
    }

    /// A message with files: `multipart/form-data` with `file` parts (each checked by its bytes) and the text
    /// fields `content`, `clientMessageId` and `threadParentId`.
    @Sendable func upload(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        guard MultipartForm.isMultipart(request) else {
            throw ChatError(.unsupportedMediaType, "unsupported_media_type", "Send files as multipart/form-data.")
        }
        let form = try await MultipartForm.read(request, limit: chat.limits.maxUploadBytes)
        // As for a send, the content is required (a client with nothing to say names the files).
        guard let content = form.fields["content"] else { throw ChatError.badRequest("`content` is required.", code: "missing_field") }
        try chat.validate(content: content)
        let (message, created) = try await chat.send(
            caller, conversationId: try context.parameters.require("conversationId"), content: content,
            threadParentId: form.fields["threadParentId"], clientMessageId: form.fields["clientMessageId"],
            files: try Self.files(in: form, limits: chat.limits.files))
        return Self.messageResponse(message, created: created)
    }

    /// The `file` parts, checked; a browser's file input left empty (an empty part with an empty filename) is no file.
    static func files(in form: MultipartForm, limits: FileRules.Limits) throws -> [NewFile] {
        try form.files.filter { !($0.filename == "" && $0.data.isEmpty) }.map {
            try FileRules.accept(name: $0.filename ?? "", data: $0.data, limits: limits)
        }
    }

    /// A file, only to participants of its conversation: its real type, `nosniff`, a sandboxing CSP, and a
    /// disposition that shows images in place and downloads anything else.
    @Sendable func download(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let file = try await chat.file(try context.requirePrincipal(), id: try context.parameters.require("fileId"))
        var headers = HTTPFields()
        headers[.contentType] = file.attachment.contentType == "text/plain" ? "text/plain; charset=utf-8" : file.attachment.contentType
        headers[.contentDisposition] = Self.disposition(file.attachment)
        headers[.xContentTypeOptions] = "nosniff"
        headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        headers[.cacheControl] = "private, max-age=300"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.data)))
    }

    /// `inline` for images, `attachment` otherwise; an ASCII `filename` and the exact one as `filename*` (RFC 6266).
    static func disposition(_ attachment: Attachment) -> String {
        let ascii = String(attachment.name.unicodeScalars.map { $0.isASCII && $0 != "\"" && $0 != "\\" && $0.value >= 0x20 ? Character($0) : "_" })
        let exact = attachment.name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "file"
        return "\(attachment.isImage ? "inline" : "attachment"); filename=\"\(ascii)\"; filename*=UTF-8''\(exact)"
    }

    /// `{"message": …}` with the hand-written encoding.
    static func messageResponse(_ message: Message, created: Bool) -> Response {
        var body = Array(#"{"message":"#.utf8)
        JSONText.appendMessage(message, to: &body)
        body.append(UInt8(ascii: "}"))
        return JSONResponse.make(bytes: body, status: created ? .created : .ok)
    }

    @Sendable func messages(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let page = try await chat.messages(
            caller, conversationId: try context.parameters.require("conversationId"),
            before: request.uri.queryParameters.get("before"), limit: try request.integerQuery("limit"))
        // Hand-written JSON on the history hot path (the same bytes as the shared encoder, see PrimitivesTests); the
        // store may hand it over ready with a cached page.
        // A cached page's buffer is shared, not copied, into the response.
        return JSONResponse.make(buffer: page.body ?? ByteBuffer(bytes: JSONText.messagePage(page)))
    }

    @Sendable func reply(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(ReplyBody.self, limit: maxBodyBytes)
        let (message, created) = try await chat.send(
            caller, conversationId: nil, content: body.content, threadParentId: try context.parameters.require("messageId"),
            clientMessageId: body.clientMessageId)
        return Self.messageResponse(message, created: created)
    }

    @Sendable func thread(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let thread = try await chat.thread(caller, messageId: try context.parameters.require("messageId"))
        return try JSONResponse.make(ThreadBody(parent: thread.parent, replies: thread.replies))
    }

    @Sendable func setClosed(_ request: Request, _ context: ChatRequestContext, closed: Bool) async throws -> Response {
        let caller = try context.requirePrincipal()
        let conversation = try await chat.setClosed(caller, conversationId: try context.parameters.require("conversationId"), closed: closed)
        return try JSONResponse.make(ConversationBody(conversation: conversation))
    }

    @Sendable func read(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        let body = try await request.decodeJSON(ReadBody.self, limit: maxBodyBytes)
        try await chat.markRead(caller, conversationId: try context.parameters.require("conversationId"), messageId: body.messageId)
        return Response(status: .noContent)
    }

    @Sendable func typing(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let caller = try context.requirePrincipal()
        try await chat.typing(caller, conversationId: try context.parameters.require("conversationId"))
        return Response(status: .noContent)
    }
}
