/// A failure a client can act on: a kind (which becomes the HTTP status), a snake_case code and a human message.
public struct ChatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, independent of transport.
    public enum Kind: Sendable, Equatable {
        case badRequest, unauthenticated, forbidden, notFound, conflict, tooLarge, rateLimited, unsupportedMediaType
        /// The server cannot take this now (shutting down): try another node or later.
        case unavailable
    }

    public var kind: Kind
    public var code: String
    public var message: String
    /// Seconds after which a rate-limited client may try again.
    public var retryAfter: Int?

    public init(_ kind: Kind, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(code): \(message)" }

    public static func badRequest(_ message: String, code: String = "invalid_request") -> ChatError {
        ChatError(.badRequest, code, message)
    }
    public static func notFound(_ what: String = "resource") -> ChatError {
        ChatError(.notFound, "not_found", "The \(what) does not exist.")
    }
    public static let unauthenticated = ChatError(.unauthenticated, "unauthenticated", "Sign in or send a bearer token.")
    public static let invalidCredentials = ChatError(.unauthenticated, "invalid_credentials", "The tenant, username or password is wrong.")
    public static let conversationClosed = ChatError(.conflict, "conversation_closed", "The conversation is closed.")
    public static func contentTooLong(limit: Int) -> ChatError {
        ChatError(.badRequest, "content_too_long", "Content is limited to \(limit) characters.")
    }
    public static let emptyContent = ChatError(.badRequest, "empty_content", "Content must not be empty.")
}

/// A store answered a command with an outcome of another kind: a bug, never the client's fault. It is not a
/// `ChatError`, so it is logged and answered 500 instead of passing for "not found".
public struct UnexpectedOutcome: Error, CustomStringConvertible {
    public let description: String
    public init(_ outcome: Any) { description = "unexpected store outcome: \(outcome)" }
}
