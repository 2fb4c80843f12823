import ChatCore
import HTTPTypes
import Hummingbird

/// Resolves the caller from `Authorization: Bearer …` or the session cookie. It never refuses by itself
/// (pages redirect, the API answers 401 in its handlers), except that a bearer token that is present but
/// invalid is a 401: it must not silently fall back to a cookie.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext
    let auth: AuthService
    let cookieName: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let authorization = request.headers[.authorization] {
            guard let token = Self.bearerToken(authorization),
                  let principal = try await auth.authenticate(secret: token, method: .token)
            else { throw ChatError.unauthenticated }
            context.principal = principal
        } else if let secret = request.cookies[cookieName]?.value {
            context.principal = try await auth.authenticate(secret: secret, method: .session)
        }
        return try await next(request, context)
    }

    /// The token of `Bearer <token>` (scheme case-insensitive, spaces and tabs around the token ignored). Byte
    /// scanning: Foundation's `trimmingCharacters` was 7 % of a history read.
    static func bearerToken(_ header: String) -> String? {
        let bytes = Array(header.utf8)
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        var start = 0
        while start < bytes.count, isSpace(bytes[start]) { start += 1 }
        let scheme = Array("bearer".utf8)
        guard bytes.count - start > scheme.count else { return nil }
        for (offset, letter) in scheme.enumerated() where bytes[start + offset] | 0x20 != letter { return nil }
        var from = start + scheme.count
        guard isSpace(bytes[from]) else { return nil }
        while from < bytes.count, isSpace(bytes[from]) { from += 1 }
        var end = bytes.count
        while end > from, isSpace(bytes[end - 1]) { end -= 1 }
        return end > from ? String(decoding: bytes[from..<end], as: UTF8.self) : nil
    }
}

/// Decides whether a request's `Origin` is the server's own or an allowed one.
struct OriginPolicy: Sendable {
    let allowedOrigins: Set<String>

    init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins.map { $0.lowercased().trimmingSuffix("/") })
    }

    /// True when the request carries no cross-site signal, or its `Origin` is the server's own or allowed.
    func isSameSiteOrAllowed(_ request: Request) -> Bool {
        // Several Origin headers are never sent by a browser: refuse rather than pick one.
        guard request.headers[values: .origin].count <= 1 else { return false }
        if let site = request.headers[.secFetchSite]?.lowercased(), site == "cross-site" {
            if let origin = request.headers[.origin]?.lowercased(), allowedOrigins.contains(origin) { return true }
            return false
        }
        guard let origin = request.headers[.origin]?.lowercased() else { return true }
        if allowedOrigins.contains(origin) { return true }
        guard origin != "null", let host = request.head.authority?.lowercased() else { return false }
        // The origin's authority must be the Host the request was sent to.
        guard let range = origin.range(of: "://") else { return false }
        return origin[range.upperBound...] == host
    }
}

/// Refuses cookie-authenticated state changes without the session's CSRF token, and cross-site unsafe requests.
/// Bearer-token requests need neither: a browser never attaches a bearer token by itself.
struct CSRFMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext
    let origins: OriginPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let safe = request.method == .get || request.method == .head || request.method == .options
        if !safe, context.principal?.method != .token {
            guard origins.isSameSiteOrAllowed(request) else {
                throw ChatError(.forbidden, "origin_rejected", "Cross-site requests are not allowed.")
            }
            // API calls carry the token in a header; page forms carry `_csrf`, which the page handlers check.
            if let principal = context.principal, request.uri.path.hasPrefix("/api/") {
                guard principal.acceptsCSRFToken(request.headers[.csrfToken])
                else { throw ChatError(.forbidden, "csrf_failed", "Missing or wrong X-CSRF-Token header.") }
            }
        }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let csrfToken = HTTPField.Name("X-CSRF-Token")!
    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    static let xForwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
