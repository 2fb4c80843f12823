import ChatCore
import Foundation

/// The OpenAPI 3.1 description of every JSON endpoint, served at `/api/openapi.json`.
///
/// It states exactly what the server enforces: formats and bounds come from `InputRules`, `Identifier`,
/// `EventCursor` and the configured limits, and each operation lists every status it can answer. A test checks that
/// every route the router serves is listed here (and in docs/API.md), and the fuzz test runs schemathesis with every
/// check against it.
struct OpenAPIDocument {
    typealias JSON = [String: Any]

    let limits: ChatLimits
    let realtime: RealtimeSettings

    /// The document as JSON bytes.
    var bytes: [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data)
    }

    // MARK: Schemas

    static func ref(_ name: String) -> JSON { ["$ref": "#/components/schemas/\(name)"] }
    static func string(_ description: String? = nil) -> JSON {
        var s: JSON = ["type": "string"]
        if let description { s["description"] = description }
        return s
    }
    static func nullable(_ schema: JSON) -> JSON {
        var s = schema
        s["type"] = ["string", "null"]
        return s
    }
    static var id: JSON { ["type": "string", "pattern": Identifier.pattern, "description": "An id as the server issues them"] }
    static var cursor: JSON { ["type": "string", "pattern": EventCursor.pattern, "description": "A cursor as the server issues them"] }
    static var timestamp: JSON { ["type": "string", "format": "date-time", "description": "RFC 3339 UTC with milliseconds"] }
    static var nullableTimestamp: JSON { ["type": ["string", "null"], "format": "date-time"] }
    static func bounded(_ max: Int, _ description: String? = nil) -> JSON {
        var s: JSON = ["type": "string", "minLength": 1, "maxLength": max]
        if let description { s["description"] = description }
        return s
    }
    static func array(_ items: JSON, maxItems: Int? = nil) -> JSON {
        var s: JSON = ["type": "array", "items": items]
        if let maxItems { s["maxItems"] = maxItems }
        return s
    }
    static func object(_ properties: JSON, required: [String]? = nil) -> JSON {
        ["type": "object", "properties": properties, "required": required ?? Array(properties.keys).sorted()]
    }

    var content: JSON {
        [
            "type": "string", "minLength": 1, "maxLength": limits.maxContentLength, "pattern": InputRules.notBlankPattern,
            "description": "1 to \(limits.maxContentLength) characters, not only white space",
        ]
    }
    var clientMessageId: JSON {
        [
            "type": ["string", "null"], "minLength": 1, "maxLength": limits.maxClientMessageIdLength, "pattern": InputRules.noControlPattern,
            "description": "The client's key for this message: a resend with the same key stores nothing new",
        ]
    }

    // MARK: Operations

    static func reply(_ description: String, _ schema: JSON? = nil) -> JSON {
        var r: JSON = ["description": description]
        if let schema { r["content"] = ["application/json": ["schema": schema]] }
        return r
    }

    static let errorDescriptions: [Int: String] = [
        400: "Malformed input, or a field out of its bounds (the code says which)",
        401: "Not signed in, or a wrong token or password",
        403: "A cookie session without the CSRF token, or a cross-site request",
        404: "No such resource, or not one the caller may see",
        409: "The conversation is closed",
        413: "The body is over the byte limit",
        415: "The body is not application/json",
        429: "Too many failed sign-ins; see Retry-After",
    ]

    static func operation(
        _ id: String, _ summary: String, tags: [String], auth: Bool = true, parameters: [JSON] = [], body: JSON? = nil,
        responses: JSON, errors: [Int], links: JSON? = nil
    ) -> JSON {
        var op: JSON = ["operationId": id, "summary": summary, "tags": tags]
        if !parameters.isEmpty { op["parameters"] = parameters }
        if let body { op["requestBody"] = ["required": true, "content": ["application/json": ["schema": body]]] }
        var all: JSON = [:]
        for code in errors { all[String(code)] = reply(errorDescriptions[code] ?? "Error", ref("Error")) }
        for (status, value) in responses {
            var response = value as! JSON
            if let links, status.hasPrefix("2") { response["links"] = links }
            all[status] = response
        }
        op["responses"] = all
        op["security"] = auth ? [["bearer": []], ["cookie": []]] : []
        return op
    }

    static func pathParam(_ name: String) -> JSON {
        ["name": name, "in": "path", "required": true, "schema": id]
    }
    static func queryParam(_ name: String, _ schema: JSON, _ description: String) -> JSON {
        ["name": name, "in": "query", "required": false, "schema": schema, "description": description]
    }
    /// A link that feeds `value` (a runtime expression) into `parameter` of another operation.
    static func link(_ operationId: String, _ parameter: String, _ value: String) -> JSON {
        ["operationId": operationId, "parameters": [parameter: value]]
    }

    // MARK: The document

    var document: JSON {
        let credentials = Self.object([
            "tenant": Self.bounded(128, "Tenant slug"), "username": Self.bounded(128), "password": Self.bounded(1024),
        ])
        let conversationReply = Self.object(["conversation": Self.ref("Conversation")])
        let messageReply = Self.object(["message": Self.ref("Message")])
        let chat = ["chat"]
        // A cookie-authenticated state change can also be refused as cross-site or without its CSRF token (403).
        let bodyErrors = [400, 401, 403, 404, 413, 415]
        // The directory, conversation and member listings page alike.
        let listLimit = Self.queryParam(
            "limit", ["type": "integer", "minimum": 1, "default": Directory.defaultLimit],
            "Page size; values above \(Directory.maxLimit) are served as \(Directory.maxLimit)")
        let nextCursor: JSON = ["type": ["string", "null"]]
        let conversationLinks: JSON = [
            "ReadItsMessages": Self.link("listMessages", "conversationId", "$response.body#/conversation/id"),
            "CloseIt": Self.link("closeConversation", "conversationId", "$response.body#/conversation/id"),
            "ReopenIt": Self.link("reopenConversation", "conversationId", "$response.body#/conversation/id"),
            "TypeInIt": Self.link("typing", "conversationId", "$response.body#/conversation/id"),
            "SendFilesToIt": Self.link("sendMessageWithFiles", "conversationId", "$response.body#/conversation/id"),
            "RenameIt": Self.link("renameConversation", "conversationId", "$response.body#/conversation/id"),
            "AddPeopleToIt": Self.link("addMembers", "conversationId", "$response.body#/conversation/id"),
        ]
        let messageLinks: JSON = [
            "ReadItsThread": Self.link("getThread", "messageId", "$response.body#/message/id"),
            "ReplyToIt": Self.link("replyInThread", "messageId", "$response.body#/message/id"),
            "ReadItsMessages": Self.link("listMessages", "conversationId", "$response.body#/message/conversationId"),
            "MarkItRead": [
                "operationId": "markRead",
                "parameters": ["conversationId": "$response.body#/message/conversationId"],
                "requestBody": ["messageId": "$response.body#/message/id"],
            ] as JSON,
        ]
        // Files: each a text (UTF-8 without control characters, read as text/plain) or the bytes of a PNG, JPEG,
        // GIF, WebP image or a PDF, which a schema cannot spell: the schema gives the text form.
        var upload = Self.operation(
            "sendMessageWithFiles", "Send a message with up to \(limits.files.maxFilesPerMessage) files (multipart/form-data)", tags: chat,
            parameters: [Self.pathParam("conversationId")],
            responses: [
                "201": Self.reply("Stored, with its attachments", messageReply),
                "200": Self.reply("Already stored under this clientMessageId", messageReply),
            ],
            errors: bodyErrors + [409],
            links: messageLinks.merging(["DownloadItsFile": Self.link("downloadFile", "fileId", "$response.body#/message/attachments/0/id")]) { $1 })
        upload["requestBody"] = ["required": true, "content": ["multipart/form-data": ["schema": Self.object([
            "content": content,
            "clientMessageId": ["type": "string", "minLength": 1, "maxLength": limits.maxClientMessageIdLength, "pattern": InputRules.noControlPattern],
            "threadParentId": Self.id,
            "file": Self.array(
                ["type": "string", "minLength": 1, "maxLength": limits.files.maxFileBytes, "pattern": "^[^\\u0000-\\u0008\\u000B\\u000E-\\u001F]+$"],
                maxItems: limits.files.maxFilesPerMessage),
        ], required: ["content"])]]]
        let uploadOperation = upload
        let paths: JSON = [
            "/api/auth/login": ["post": Self.operation(
                "login", "Sign in with a cookie session (a session cookie already present is neither needed nor ended)",
                tags: ["auth"], auth: false, body: credentials,
                responses: ["200": Self.reply("Signed in; sets the session cookie", Self.object(["user": Self.ref("User"), "csrfToken": Self.string()]))],
                errors: [400, 401, 403, 413, 415, 429])],
            "/api/auth/token": ["post": Self.operation(
                "createToken", "Get a bearer token for an API client", tags: ["auth"], auth: false, body: credentials,
                responses: ["200": Self.reply("Token issued", Self.object([
                    "token": Self.string(), "expiresAt": Self.timestamp, "user": Self.ref("User"),
                ]))],
                errors: [400, 401, 403, 413, 415, 429])],
            "/api/auth/logout": ["post": Self.operation(
                "logout", "End the session or token on the server; its realtime connections close", tags: ["auth"],
                responses: ["204": Self.reply("Signed out")], errors: [401, 403])],
            "/api/auth/me": ["get": Self.operation(
                "me", "The caller and their tenant", tags: ["auth"],
                responses: ["200": Self.reply("The caller", Self.object([
                    "user": Self.ref("User"),
                    "tenant": Self.object(["id": Self.string(), "slug": Self.string(), "name": Self.string()]),
                ]))], errors: [401])],
            "/api/users": ["get": Self.operation(
                "listUsers", "The caller's tenant's directory, in username order, paged", tags: ["users"],
                parameters: [
                    Self.queryParam(
                        "q", ["type": "string", "pattern": InputRules.noControlPattern],
                        "Prefix of a username, a display name or a word of it; case and accents ignored (at most \(Directory.maxQueryLength) characters are used)"),
                    listLimit,
                    Self.queryParam("cursor", ["type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 1024], "nextCursor of the previous page"),
                ],
                responses: ["200": Self.reply("A page of users", Self.object([
                    "users": Self.array(Self.ref("User")), "nextCursor": nextCursor,
                ]))], errors: [400, 401])],
            "/api/agents": ["get": Self.operation(
                "listAgents", "The caller's tenant's agents, without secrets", tags: ["users"],
                responses: ["200": Self.reply("The agents", Self.object(["agents": Self.array(Self.object([
                    "id": Self.id, "username": Self.string(), "displayName": Self.string(),
                    "backend": ["type": "string", "enum": Agent.Backend.allCases.map(\.rawValue)], "model": ["type": ["string", "null"]],
                    "dailyTokenBudget": ["type": "integer", "minimum": 0], "requestsPerMinute": ["type": "integer", "minimum": 0],
                    "tokensUsedToday": ["type": "integer", "minimum": 0], "createdAt": Self.timestamp,
                ]))]))], errors: [401])],
            "/api/chat/start": ["post": Self.operation(
                "startConversation", "Start a conversation; the caller always participates", tags: chat,
                body: Self.object([
                    "title": ["type": ["string", "null"], "maxLength": limits.maxTitleLength],
                    "participantIds": Self.array(Self.id, maxItems: limits.maxParticipants),
                ], required: ["participantIds"]),
                responses: ["201": Self.reply("Created", conversationReply)], errors: bodyErrors, links: conversationLinks)],
            "/api/chat/conversations": ["get": Self.operation(
                "listConversations", "The caller's conversations, most recent activity first, paged", tags: chat,
                parameters: [
                    listLimit,
                    Self.queryParam("cursor", ["type": "string", "pattern": ListCursor.pattern], "nextCursor of the previous page"),
                ],
                responses: ["200": Self.reply("A page of conversations", Self.object([
                    "conversations": Self.array(Self.ref("Conversation")), "nextCursor": nextCursor,
                ]))],
                errors: [400, 401])],
            "/api/chat/{conversationId}": ["patch": Self.operation(
                "renameConversation", "Rename a conversation (any participant; a blank title clears it)", tags: chat,
                parameters: [Self.pathParam("conversationId")],
                body: Self.object(["title": ["type": "string", "maxLength": limits.maxTitleLength]]),
                responses: ["200": Self.reply("Renamed (or unchanged)", conversationReply)], errors: bodyErrors + [409])],
            "/api/chat/{conversationId}/members/{userId}": ["delete": Self.operation(
                "removeMember", "Remove a participant (the creator only) or, with your own id, leave; idempotent", tags: chat,
                parameters: [Self.pathParam("conversationId"), Self.pathParam("userId")],
                responses: ["204": Self.reply("Not (or no longer) a participant")], errors: [401, 403, 404])],
            "/api/chat/{conversationId}/members": [
              "post": Self.operation(
                "addMembers", "Add people of the tenant (any participant); those already in are skipped", tags: chat,
                parameters: [Self.pathParam("conversationId")],
                body: Self.object(["userIds": Self.array(Self.id, maxItems: limits.maxParticipants).merging(["minItems": 1]) { $1 }]),
                responses: ["200": Self.reply("The conversation with its participants", conversationReply)], errors: bodyErrors + [409]),
              "get": Self.operation(
                "listMembers", "A conversation's participants in the order they joined, paged", tags: chat,
                parameters: [
                    Self.pathParam("conversationId"),
                    listLimit,
                    Self.queryParam("cursor", ["type": "string", "pattern": ListCursor.pattern], "nextCursor of the previous page"),
                ],
                responses: ["200": Self.reply("A page of members", Self.object([
                    "members": Self.array(Self.ref("User")), "nextCursor": nextCursor,
                ]))],
                errors: [400, 401, 404]),
            ],
            "/api/chat/{conversationId}/summary": ["get": Self.operation(
                "conversationSummary", "A digest of the conversation, cached until a newer message", tags: chat,
                parameters: [
                    Self.pathParam("conversationId"),
                    Self.queryParam("refresh", ["type": "string", "enum": ["0", "1", "true", "false"]], "1: summarize again from the messages"),
                    Self.queryParam("method", ["type": "string", "enum": SummaryService.Method.allCases.map(\.rawValue)], "auto (default), extractive or llm"),
                ],
                responses: ["200": Self.reply("The summary", Self.object(["summary": Self.ref("Summary")]))],
                errors: [400, 401, 404])],
            "/api/chat/messages/{messageId}": [
                "patch": Self.operation(
                    "editMessage", "Replace the content of your own message", tags: chat, parameters: [Self.pathParam("messageId")],
                    body: Self.object(["content": content]),
                    responses: ["200": Self.reply("Edited (or unchanged: the same content)", messageReply)], errors: bodyErrors + [409]),
                "delete": Self.operation(
                    "deleteMessage", "Turn your own message into a tombstone (idempotent)", tags: chat, parameters: [Self.pathParam("messageId")],
                    responses: ["200": Self.reply("The tombstone", messageReply)], errors: [401, 403, 404]),
            ],
            "/api/chat/messages/{messageId}/reactions/{emoji}": [
                "put": Self.operation(
                    "addReaction", "React to a message (idempotent)", tags: chat,
                    parameters: [Self.pathParam("messageId"), ["name": "emoji", "in": "path", "required": true, "schema": ["type": "string", "pattern": Reactions.pattern]]],
                    responses: ["200": Self.reply("The message with its reactions", messageReply)], errors: [400, 401, 403, 404, 409]),
                "delete": Self.operation(
                    "removeReaction", "Take your reaction back (idempotent)", tags: chat,
                    parameters: [Self.pathParam("messageId"), ["name": "emoji", "in": "path", "required": true, "schema": ["type": "string", "pattern": Reactions.pattern]]],
                    responses: ["200": Self.reply("The message with its reactions", messageReply)], errors: [400, 401, 403, 404]),
            ],
            "/api/chat/search": ["get": Self.operation(
                "searchMessages", "Full-text search over the caller's conversations, best matches first", tags: chat,
                parameters: [
                    Self.queryParam("q", ["type": "string", "minLength": 1, "maxLength": Search.maxQueryLength, "pattern": InputRules.noControlPattern], "Words to find (each a prefix)")
                        .merging(["required": true]) { $1 },
                    Self.queryParam("conversationId", Self.id, "Only this conversation"),
                    Self.queryParam("senderId", Self.id, "Only this sender's messages"),
                    Self.queryParam("limit", ["type": "integer", "minimum": 1], "Results per page (default 20, at most 100)"),
                    Self.queryParam("cursor", ["type": "string", "pattern": "^o[0-9]{1,5}$"], "nextCursor of the previous page"),
                ],
                responses: ["200": Self.reply("Results", Self.object([
                    "results": Self.array(Self.object([
                        "message": Self.ref("Message"), "conversationTitle": Self.string(),
                        "excerpt": Self.array(Self.object(["text": Self.string(), "match": ["type": "boolean"]])),
                    ])),
                    "nextCursor": ["type": ["string", "null"]],
                ]))], errors: [400, 401, 404])],
            "/api/chat/presence": [
                "get": Self.operation(
                    "getPresence", "Online, away or offline for each of some people", tags: chat,
                    parameters: [
                        Self.queryParam("userIds", ["type": "string", "pattern": "^[A-Za-z0-9_]{1,64}(,[A-Za-z0-9_]{1,64}){0,499}$"], "Comma-separated user ids (at most 500)")
                            .merging(["required": true]) { $1 },
                    ],
                    responses: ["200": Self.reply("Each one's status", Self.object([
                        "presence": Self.array(Self.object([
                            "userId": ["type": "string"], "status": ["type": "string", "enum": PresenceStatus.allCases.map(\.rawValue)],
                        ])),
                    ]))], errors: [400, 401]),
                "post": Self.operation(
                    "setPresence", "Away or back for every connection of this session or token", tags: chat,
                    body: Self.object(["status": ["type": "string", "enum": ["online", "away"]]]),
                    responses: ["204": Self.reply("Recorded")], errors: bodyErrors),
            ],
            "/api/chat/send": ["post": Self.operation(
                "sendMessage", "Send a message (idempotent per clientMessageId)", tags: chat,
                body: Self.object([
                    "conversationId": Self.id, "content": content, "threadParentId": Self.nullable(Self.id), "clientMessageId": clientMessageId,
                ], required: ["conversationId", "content"]),
                responses: [
                    "201": Self.reply("Stored", messageReply),
                    "200": Self.reply("Already stored under this clientMessageId", messageReply),
                ],
                errors: bodyErrors + [409], links: messageLinks)],
            "/api/chat/files/{fileId}": ["get": Self.operation(
                "downloadFile", "A file of a message in one of the caller's conversations", tags: chat,
                parameters: [Self.pathParam("fileId")],
                responses: ["200": [
                    "description": "The file, with its type read from its bytes, nosniff and a sandboxing CSP",
                    "content": Dictionary(uniqueKeysWithValues: FileRules.allowedTypes.map { ($0, ["schema": ["type": "string", "format": "binary"]] as JSON) }),
                ] as JSON],
                errors: [401, 404])],
            "/api/chat/{conversationId}/messages": ["post": uploadOperation, "get": Self.operation(
                "listMessages", "Top-level messages, oldest first within the page, newest page first", tags: chat,
                parameters: [
                    Self.pathParam("conversationId"),
                    Self.queryParam(
                        "limit", ["type": "integer", "minimum": 1, "default": limits.defaultPageSize],
                        "Page size; values above \(limits.maxPageSize) are served as \(limits.maxPageSize)"),
                    Self.queryParam("before", Self.cursor, "nextCursor of the previous page"),
                ],
                responses: ["200": Self.reply("A page", Self.object([
                    "messages": Self.array(Self.ref("Message")), "nextCursor": Self.nullable(Self.cursor),
                ]))], errors: [400, 401, 404])],
            "/api/chat/thread/{messageId}/reply": ["post": Self.operation(
                "replyInThread", "Reply in a thread; a reply to a reply lands on the root", tags: chat,
                parameters: [Self.pathParam("messageId")],
                body: Self.object(["content": content, "clientMessageId": clientMessageId], required: ["content"]),
                responses: ["201": Self.reply("Stored", messageReply), "200": Self.reply("Already stored", messageReply)],
                errors: bodyErrors + [409], links: messageLinks)],
            "/api/chat/thread/{messageId}": ["get": Self.operation(
                "getThread", "A thread's root and its replies, oldest first", tags: chat, parameters: [Self.pathParam("messageId")],
                responses: ["200": Self.reply("The thread", Self.object([
                    "parent": Self.ref("Message"), "replies": Self.array(Self.ref("Message")),
                ]))], errors: [401, 404])],
            "/api/chat/{conversationId}/close": ["post": Self.operation(
                "closeConversation", "Close a conversation (no new messages until reopened)", tags: chat,
                parameters: [Self.pathParam("conversationId")],
                responses: ["200": Self.reply("Closed", conversationReply)], errors: [401, 403, 404])],
            "/api/chat/{conversationId}/reopen": ["post": Self.operation(
                "reopenConversation", "Reopen a conversation", tags: chat, parameters: [Self.pathParam("conversationId")],
                responses: ["200": Self.reply("Open", conversationReply)], errors: [401, 403, 404])],
            "/api/chat/{conversationId}/read": ["post": Self.operation(
                "markRead", "Durable read receipt up to a message", tags: chat, parameters: [Self.pathParam("conversationId")],
                body: Self.object(["messageId": Self.id]), responses: ["204": Self.reply("Recorded")], errors: bodyErrors)],
            "/api/chat/{conversationId}/typing": ["post": Self.operation(
                "typing", "Ephemeral typing event", tags: chat, parameters: [Self.pathParam("conversationId")],
                responses: ["204": Self.reply("Sent")], errors: [401, 403, 404])],
            "/api/chat/ws": ["get": Self.operation(
                "webSocket", "WebSocket upgrade: join_room/leave_room/new_message/typing/read_receipt frames; events, acks, errors",
                tags: ["realtime"], responses: ["101": Self.reply("Switching protocols")], errors: [400, 401, 403])],
            "/api/chat/events": ["get": [
                "operationId": "serverSentEvents", "summary": "Server-Sent Events of the caller's conversations, resumable",
                "tags": ["realtime"], "security": [["bearer": []], ["cookie": []]],
                "parameters": [
                    Self.queryParam("conversationId", Self.id, "Only this conversation"),
                    Self.queryParam("lastEventId", Self.cursor, "Resume after this eventId (or the Last-Event-ID header)"),
                    ["name": "Last-Event-ID", "in": "header", "required": false, "schema": Self.cursor],
                ],
                "responses": [
                    "200": ["description": "An endless text/event-stream", "content": ["text/event-stream": ["schema": ["type": "string"]]]],
                    "400": Self.reply(Self.errorDescriptions[400]!, Self.ref("Error")),
                    "401": Self.reply(Self.errorDescriptions[401]!, Self.ref("Error")),
                    "404": Self.reply(Self.errorDescriptions[404]!, Self.ref("Error")),
                ],
            ]],
            "/api/chat/poll": ["get": Self.operation(
                "longPoll", "Long-poll for events after a cursor (gzip when accepted)", tags: ["realtime"],
                parameters: [
                    Self.queryParam("cursor", Self.cursor, "The cursor of the previous answer; none answers at once with the current one"),
                    Self.queryParam("conversationId", Self.id, "Only this conversation"),
                    Self.queryParam(
                        "timeout", ["type": "integer", "minimum": 0, "maximum": realtime.pollMaxTimeoutSeconds, "default": realtime.pollDefaultTimeoutSeconds],
                        "Seconds to hold"),
                ],
                responses: ["200": Self.reply("Events and the next cursor", Self.object([
                    "events": Self.array(Self.ref("Event")), "cursor": Self.cursor,
                ]))], errors: [400, 401, 404])],
            "/api/openapi.json": ["get": Self.operation(
                "openapi", "This document", tags: ["meta"], auth: false, responses: ["200": Self.reply("OpenAPI 3.1", ["type": "object"])],
                errors: [])],
        ]
        let user = Self.object(
            ["id": Self.id, "username": Self.string(), "displayName": Self.string(), "tenantId": Self.id, "isBot": ["type": "boolean"]],
            required: ["id", "username", "displayName", "tenantId"])
        let conversation = Self.object([
            "id": Self.id, "tenantId": Self.id, "title": Self.string(), "participants": Self.array(Self.ref("User")),
            "participantCount": ["type": "integer", "minimum": 1], "createdBy": Self.id, "createdAt": Self.timestamp, "updatedAt": Self.timestamp, "lastMessageAt": Self.nullableTimestamp,
            "closedAt": Self.nullableTimestamp, "unreadCount": ["type": "integer", "minimum": 0],
            "mentionCount": ["type": "integer", "minimum": 0], "lastSeq": ["type": "integer", "minimum": 0],
        ], required: [
            "id", "tenantId", "title", "participants", "participantCount", "createdBy", "createdAt", "updatedAt", "lastMessageAt", "closedAt",
            "unreadCount", "lastSeq",
        ])
        let message = Self.object([
            "id": Self.id, "tenantId": Self.id, "conversationId": Self.id, "senderId": Self.id, "sender": Self.ref("User"),
            "threadParentId": Self.nullable(Self.id), "content": Self.string(), "createdAt": Self.timestamp,
            "seq": ["type": "integer", "minimum": 1], "replyCount": ["type": "integer", "minimum": 0],
            "clientMessageId": ["type": ["string", "null"]], "editedAt": Self.nullableTimestamp, "deletedAt": Self.nullableTimestamp,
            "reactions": Self.array(Self.object(["emoji": Self.string(), "count": ["type": "integer", "minimum": 1], "userIds": Self.array(Self.id)])),
            "mentions": Self.array(Self.id),
        ], required: ["id", "tenantId", "conversationId", "senderId", "sender", "threadParentId", "content", "createdAt", "seq", "replyCount", "clientMessageId"])
        let cited = { (extra: JSON) -> JSON in
            Self.object(["messageId": Self.id, "seq": ["type": "integer", "minimum": 1], "excerpt": Self.string()].merging(extra) { $1 })
        }
        let summary = Self.object([
            "conversationId": Self.id, "fromSeq": ["type": "integer", "minimum": 0], "throughSeq": ["type": "integer", "minimum": 0],
            "messageCount": ["type": "integer", "minimum": 0], "method": ["type": "string", "enum": ["extractive", "llm"]],
            "model": ["type": ["string", "null"]], "text": Self.string(),
            "highlights": Self.array(cited(["senderId": Self.id])), "openQuestions": Self.array(cited([:])),
            "participants": Self.array(Self.object([
                "userId": Self.id, "displayName": Self.string(), "messageCount": ["type": "integer", "minimum": 1],
            ])),
            "timeSpan": ["type": ["object", "null"], "properties": ["from": Self.timestamp, "to": Self.timestamp], "required": ["from", "to"]],
            "cached": ["type": "boolean"], "generatedAt": Self.timestamp,
        ])
        let error = Self.object(["error": Self.object(["code": Self.string("snake_case code"), "message": Self.string()])])
        let event = Self.object([
            "type": ["type": "string", "enum": EventType.allCases.map(\.rawValue) + ["resync_required"]],
            "eventId": Self.nullable(Self.cursor), "room": Self.string("tenantId:conversationId"),
            "conversationId": ["type": ["string", "null"]], "data": ["type": "object"],
        ], required: ["type", "eventId", "conversationId"])
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Chat server API", "version": "1.0.0",
                "description": "Multi-tenant chat: conversations, messages, threads, receipts. Realtime events and guarantees: docs/API.md.",
            ],
            "paths": paths,
            "components": [
                "schemas": ["User": user, "Conversation": conversation, "Message": message, "Summary": summary, "Error": error, "Event": event],
                "securitySchemes": [
                    "bearer": ["type": "http", "scheme": "bearer"],
                    "cookie": ["type": "apiKey", "in": "cookie", "name": "chat_session"],
                ],
            ],
        ]
    }
}
