import ChatCore
import Hummingbird
import Logging

/// Turns every error into API.md's shape `{"error": {"code", "message"}}` with a fitting status.
/// Malformed input of any kind must end as a 4xx; anything unexpected is logged and answered 500.
/// Pages (paths outside `/api/`) get the same errors as an HTML page.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext
    let renderer: PageRenderer?
    /// Tells a database that is down or overloaded for now (503) from a bug (500).
    var isUnavailable: @Sendable (any Error) -> Bool = { _ in false }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            return try await next(request, context)
        } catch let error as ChatError {
            response = Self.response(for: error)
        } catch let error as MethodNotAllowed {
            response = Self.response(
                status: .methodNotAllowed, code: "method_not_allowed", message: "This path does not support \(request.method.rawValue).",
                headers: [.allow: error.allowHeader])
        } catch let error as any HTTPResponseError {
            let status = error.status
            let (code, message) = Self.describe(status)
            if status.code >= 500 {
                context.logger.error("request failed", metadata: ["error": "\(error)"])
            }
            response = Self.response(status: status, code: code, message: message)
        } catch where isUnavailable(error) {
            context.logger.warning("database unavailable", metadata: ["error": "\(error)"])
            response = Self.response(
                status: .serviceUnavailable, code: "unavailable", message: "The database is unavailable for now; try again shortly.",
                headers: [.retryAfter: "1"])
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            response = Self.response(status: .internalServerError, code: "internal_error", message: "Something went wrong on the server.")
        }
        guard let renderer, !request.uri.path.hasPrefix("/api/") else { return response }
        var page = renderer.errorPage(
            status: response.status, heading: response.status.reasonPhrase,
            message: Self.pageMessages[response.status.code] ?? "Something went wrong.")
        page.headers[.allow] = response.headers[.allow]
        return page
    }

    /// What an error page tells a person, by status (the JSON message is written for developers).
    private static let pageMessages: [Int: String] = [
        400: "The request was not valid.", 401: "Sign in to continue.", 403: "That action is not allowed here. Reload the page and try again.",
        404: "There is nothing here, or you cannot see it.", 405: "That page cannot be used this way.", 409: "The conversation is closed.",
        413: "That was too long.", 429: "Too many attempts. Wait a little and try again.",
    ]

    static func status(for kind: ChatError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .badRequest: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .tooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .unsupportedMediaType: .unsupportedMediaType
        case .unavailable: .serviceUnavailable
        }
    }

    static func response(for error: ChatError) -> Response {
        var headers = HTTPFields()
        if let retryAfter = error.retryAfter { headers[.retryAfter] = String(retryAfter) }
        if error.kind == .unauthenticated { headers[.wwwAuthenticate] = "Bearer" }
        if error.kind == .unavailable { headers[.retryAfter] = "1" }
        return response(status: status(for: error.kind), code: error.code, message: error.message, headers: headers)
    }

    static func response(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) -> Response {
        var body: [UInt8] = Array(#"{"error":{"code":"#.utf8)
        JSONText.appendString(code, to: &body)
        body += Array(#","message":"#.utf8)
        JSONText.appendString(message, to: &body)
        body += Array("}}".utf8)
        return JSONResponse.make(bytes: body, status: status, headers: headers)
    }

    static func describe(_ status: HTTPResponse.Status) -> (String, String) {
        switch status.code {
        case 400: ("bad_request", "The request is malformed.")
        case 404: ("not_found", "No such resource.")
        case 405: ("method_not_allowed", "This method is not allowed here.")
        case 408: ("request_timeout", "The request took too long.")
        case 413: ("body_too_large", "The request body is too large.")
        case 414: ("uri_too_long", "The request URI is too long.")
        case 415: ("unsupported_media_type", "Unsupported content type.")
        case 431: ("headers_too_large", "The request headers are too large.")
        case 400..<500: ("bad_request", status.reasonPhrase)
        default: ("internal_error", "Something went wrong on the server.")
        }
    }
}
