import Foundation

/// The OpenAPI 3.1 description of every JSON endpoint, served at `/api/openapi.json`.
/// A test checks that every route the router knows is listed here, so the two cannot drift apart.
enum OpenAPIDocument {
    typealias JSON = [String: Any]

    static func ref(_ name: String) -> JSON { ["$ref": "#/components/schemas/\(name)"] }
    static func string(_ description: String? = nil) -> JSON {
        var s: JSON = ["type": "string"]
        if let description { s["description"] = description }
        return s
    }
    static var timestamp: JSON { ["type": "string", "format": "date-time", "description": "RFC 3339 UTC with milliseconds"] }
    static var nullableTimestamp: JSON { ["type": ["string", "null"], "format": "date-time"] }
    static func object(_ properties: JSON, required: [String]? = nil) -> JSON {
        ["type": "object", "properties": properties, "required": required ?? Array(properties.keys).sorted()]
    }
    static func jsonBody(_ schema: JSON) -> JSON {
        ["required": true, "content": ["application/json": ["schema": schema]]]
    }
    static func reply(_ description: String, _ schema: JSON? = nil) -> JSON {
        var r: JSON = ["description": description]
        if let schema { r["content"] = ["application/json": ["schema": schema]] }
        return r
    }
    static var errorReply: JSON { reply("Error", ref("Error")) }
    static func errors(_ codes: [Int]) -> JSON {
        var r: JSON = [:]
        for code in codes { r[String(code)] = errorReply }
        return r
    }
    static func operation(
        _ id: String, _ summary: String, tags: [String], auth: Bool = true, parameters: [JSON] = [], body: JSON? = nil,
        responses: JSON, errorCodes: [Int] = [400, 401, 404]
    ) -> JSON {
        var op: JSON = ["operationId": id, "summary": summary, "tags": tags]
        if !parameters.isEmpty { op["parameters"] = parameters }
        if let body { op["requestBody"] = jsonBody(body) }
        var all = errors(errorCodes)
        for (k, v) in responses { all[k] = v }
        op["responses"] = all
        op["security"] = auth ? [["bearer": []], ["cookie": []]] : []
        return op
    }
    static func pathParam(_ name: String) -> JSON {
        ["name": name, "in": "path", "required": true, "schema": ["type": "string"]]
    }
    static func queryParam(_ name: String, _ schema: JSON, _ description: String) -> JSON {
        ["name": name, "in": "query", "required": false, "schema": schema, "description": description]
    }

    static var document: JSON {
        let bounded: (Int, String?) -> JSON = { max, description in
            var s: JSON = ["type": "string", "minLength": 1, "maxLength": max]
            if let description { s["description"] = description }
            return s
        }
        let credentials = object(["tenant": bounded(128, "Tenant slug"), "username": bounded(128, nil), "password": bounded(1024, nil)])
        let content: JSON = ["type": "string", "minLength": 1, "maxLength": 10_000, "pattern": "\\S", "description": "At least one non-space character"]
        let conversationReply = object(["conversation": ref("Conversation")])
        let messageReply = object(["message": ref("Message")])
        let chat = ["chat"]
        let paths: JSON = [
            "/api/auth/login": ["post": operation(
                "login", "Sign in with a cookie session", tags: ["auth"], auth: false, body: credentials,
                responses: ["200": reply("Signed in; sets the session cookie", object(["user": ref("User"), "csrfToken": string()]))],
                errorCodes: [400, 401, 403, 413, 415, 429])],
            "/api/auth/token": ["post": operation(
                "createToken", "Get a bearer token for an API client", tags: ["auth"], auth: false, body: credentials,
                responses: ["200": reply("Token issued", object(["token": string(), "expiresAt": timestamp, "user": ref("User")]))],
                errorCodes: [400, 401, 413, 415, 429])],
            "/api/auth/logout": ["post": operation(
                "logout", "End the session or token on the server", tags: ["auth"],
                responses: ["204": reply("Signed out")], errorCodes: [401, 403])],
            "/api/auth/me": ["get": operation(
                "me", "The caller and their tenant", tags: ["auth"],
                responses: ["200": reply("The caller", object([
                    "user": ref("User"),
                    "tenant": object(["id": string(), "slug": string(), "name": string()]),
                ]))], errorCodes: [401])],
            "/api/users": ["get": operation(
                "listUsers", "Users of the caller's tenant", tags: ["users"],
                responses: ["200": reply("Users", object(["users": ["type": "array", "items": ref("User")]]))], errorCodes: [401])],
            "/api/chat/start": ["post": operation(
                "startConversation", "Start a conversation; the caller always participates", tags: chat,
                body: object(["title": string(), "participantIds": ["type": "array", "items": ["type": "string"]]], required: ["participantIds"]),
                responses: ["201": reply("Created", conversationReply)], errorCodes: [400, 401, 403, 404, 413, 415])],
            "/api/chat/conversations": ["get": operation(
                "listConversations", "The caller's conversations, most recent activity first", tags: chat,
                responses: ["200": reply("Conversations", object(["conversations": ["type": "array", "items": ref("Conversation")]]))],
                errorCodes: [401])],
            "/api/chat/send": ["post": operation(
                "sendMessage", "Send a message (idempotent per clientMessageId)", tags: chat,
                body: object([
                    "conversationId": string(), "content": content, "threadParentId": ["type": ["string", "null"]],
                    "clientMessageId": ["type": ["string", "null"]],
                ], required: ["conversationId", "content"]),
                responses: ["201": reply("Stored", messageReply), "200": reply("Already stored under this clientMessageId", messageReply)],
                errorCodes: [400, 401, 403, 404, 409, 413, 415])],
            "/api/chat/{conversationId}/messages": ["get": operation(
                "listMessages", "Top-level messages, oldest first within the page, newest page first", tags: chat,
                parameters: [
                    pathParam("conversationId"),
                    queryParam("limit", ["type": "integer", "minimum": 1, "maximum": 200, "default": 50], "Page size"),
                    queryParam("before", ["type": "string"], "nextCursor of the previous page"),
                ],
                responses: ["200": reply("A page", object([
                    "messages": ["type": "array", "items": ref("Message")], "nextCursor": ["type": ["string", "null"]],
                ]))])],
            "/api/chat/thread/{messageId}/reply": ["post": operation(
                "replyInThread", "Reply in a thread; a reply to a reply lands on the root", tags: chat,
                parameters: [pathParam("messageId")],
                body: object(["content": content, "clientMessageId": ["type": ["string", "null"]]], required: ["content"]),
                responses: ["201": reply("Stored", messageReply), "200": reply("Already stored", messageReply)],
                errorCodes: [400, 401, 403, 404, 409, 413, 415])],
            "/api/chat/thread/{messageId}": ["get": operation(
                "getThread", "A thread's root and its replies, oldest first", tags: chat, parameters: [pathParam("messageId")],
                responses: ["200": reply("The thread", object(["parent": ref("Message"), "replies": ["type": "array", "items": ref("Message")]]))])],
            "/api/chat/{conversationId}/close": ["post": operation(
                "closeConversation", "Close a conversation", tags: chat, parameters: [pathParam("conversationId")],
                responses: ["200": reply("Closed", conversationReply)], errorCodes: [401, 403, 404])],
            "/api/chat/{conversationId}/reopen": ["post": operation(
                "reopenConversation", "Reopen a conversation", tags: chat, parameters: [pathParam("conversationId")],
                responses: ["200": reply("Open", conversationReply)], errorCodes: [401, 403, 404])],
            "/api/chat/{conversationId}/read": ["post": operation(
                "markRead", "Durable read receipt up to a message", tags: chat, parameters: [pathParam("conversationId")],
                body: object(["messageId": string()]), responses: ["204": reply("Recorded")], errorCodes: [400, 401, 403, 404, 413, 415])],
            "/api/chat/{conversationId}/typing": ["post": operation(
                "typing", "Ephemeral typing event", tags: chat, parameters: [pathParam("conversationId")],
                responses: ["204": reply("Sent")], errorCodes: [401, 403, 404])],
            "/api/chat/ws": ["get": operation(
                "webSocket", "WebSocket upgrade: join_room/leave_room/new_message/typing/read_receipt frames; events, acks, errors",
                tags: ["realtime"], responses: ["101": reply("Switching protocols")], errorCodes: [400])],
            "/api/chat/events": ["get": [
                "operationId": "serverSentEvents", "summary": "Server-Sent Events of the caller's conversations, resumable",
                "tags": ["realtime"], "security": [["bearer": []], ["cookie": []]],
                "parameters": [
                    queryParam("conversationId", ["type": "string"], "Only this conversation"),
                    queryParam("lastEventId", ["type": "string"], "Resume after this eventId (or the Last-Event-ID header)"),
                    ["name": "Last-Event-ID", "in": "header", "required": false, "schema": ["type": "string"]],
                ],
                "responses": [
                    "200": ["description": "An endless text/event-stream", "content": ["text/event-stream": ["schema": ["type": "string"]]]],
                    "400": errorReply, "401": errorReply, "404": errorReply,
                ],
            ]],
            "/api/chat/poll": ["get": operation(
                "longPoll", "Long-poll for events after a cursor (gzip when accepted)", tags: ["realtime"],
                parameters: [
                    queryParam("cursor", ["type": "string"], "The cursor of the previous answer; none answers at once with the current one"),
                    queryParam("conversationId", ["type": "string"], "Only this conversation"),
                    queryParam("timeout", ["type": "integer", "minimum": 0, "maximum": 60, "default": 25], "Seconds to hold"),
                ],
                responses: ["200": reply("Events and the next cursor", object([
                    "events": ["type": "array", "items": ref("Event")], "cursor": string(),
                ]))])],
            "/api/openapi.json": ["get": operation(
                "openapi", "This document", tags: ["meta"], auth: false, responses: ["200": reply("OpenAPI 3.1", ["type": "object"])],
                errorCodes: [])],
        ]
        let user = object(["id": string(), "username": string(), "displayName": string(), "tenantId": string()])
        let conversation = object([
            "id": string(), "tenantId": string(), "title": string(), "participants": ["type": "array", "items": ref("User")],
            "createdBy": string(), "createdAt": timestamp, "updatedAt": timestamp, "lastMessageAt": nullableTimestamp,
            "closedAt": nullableTimestamp, "unreadCount": ["type": "integer", "minimum": 0],
            "lastSeq": ["type": "integer", "minimum": 0],
        ])
        let message = object([
            "id": string(), "tenantId": string(), "conversationId": string(), "senderId": string(), "sender": ref("User"),
            "threadParentId": ["type": ["string", "null"]], "content": string(), "createdAt": timestamp,
            "seq": ["type": "integer", "minimum": 1], "replyCount": ["type": "integer", "minimum": 0],
            "clientMessageId": ["type": ["string", "null"]],
        ])
        let error = object(["error": object(["code": string("snake_case code"), "message": string()])])
        let event = object([
            "type": ["type": "string", "enum": ["new_message", "read_receipt", "conversation_created", "conversation_updated", "typing", "resync_required"]],
            "eventId": ["type": ["string", "null"]], "room": string("tenantId:conversationId"), "conversationId": ["type": ["string", "null"]],
            "data": ["type": "object"],
        ], required: ["type", "eventId", "conversationId"])
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Chat server API", "version": "1.0.0",
                "description": "Multi-tenant chat: conversations, messages, threads, receipts. Realtime events: see README.",
            ],
            "paths": paths,
            "components": [
                "schemas": ["User": user, "Conversation": conversation, "Message": message, "Error": error, "Event": event],
                "securitySchemes": [
                    "bearer": ["type": "http", "scheme": "bearer"],
                    "cookie": ["type": "apiKey", "in": "cookie", "name": "chat_session"],
                ],
            ],
        ]
    }

    /// The document as JSON bytes, made once.
    static let bytes: [UInt8] = {
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data)
    }()
}
