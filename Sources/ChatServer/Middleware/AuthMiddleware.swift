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

/// Decides whether a cookie-authenticated request comes from one of the server's own pages (or an allowed origin).
///
/// A browser says where a request comes from in `Sec-Fetch-Site`, which page scripts cannot set or change: that
/// answer is trusted as given. Only when it is absent (older browsers, non-browser clients) is `Origin` (or
/// `Referer`) compared with the host the browser addressed. That host is the request's `Host`, or
/// `X-Forwarded-Host` when a trusted proxy sent it; behind a plain `proxy_pass` the `Host` is the upstream's own
/// address, which is why the header a browser sets comes first.
struct OriginPolicy: Sendable {
    let allowedOrigins: Set<String>

    init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins.map { Self.normalized($0) })
    }

    func isSameSiteOrAllowed(_ request: Request, client: ForwardedClient) -> Bool {
        // Several Origin headers are never sent by a browser: refuse rather than pick one.
        guard request.headers[values: .origin].count <= 1 else { return false }
        let origin = request.headers[.origin].map { Self.normalized($0) }
        if let origin, allowedOrigins.contains(origin) { return true }
        switch request.headers[.secFetchSite]?.lowercased() {
        case "same-origin": return true
        case "cross-site", "same-site": return false
        case "none", nil: break  // a user-typed navigation, or no fetch metadata: judge by Origin
        default: return false
        }
        guard let source = origin ?? request.headers[.referer].flatMap(Self.origin(ofURL:)) else {
            // No cross-site signal at all (curl, an old browser's same-origin GET-turned-POST): the CSRF token
            // still has to match.
            return true
        }
        guard source != "null", let host = client.host, let schemeEnd = source.range(of: "://") else { return false }
        // A trusted proxy tells the scheme the browser used; without one only the host can be compared (a TLS
        // terminator in front changes the scheme without saying so).
        let scheme = client.viaTrustedProxy ? client.scheme : String(source[..<schemeEnd.lowerBound])
        return source == Self.normalized("\(scheme)://\(host)")
    }

    /// `scheme://host[:port]`, lower-cased, without a trailing slash or the scheme's default port.
    static func normalized(_ origin: String) -> String {
        var text = origin.lowercased().trimmingSuffix("/")
        if text.hasPrefix("http://"), text.hasSuffix(":80") { text.removeLast(3) }
        if text.hasPrefix("https://"), text.hasSuffix(":443") { text.removeLast(4) }
        return text
    }

    /// The origin of an absolute URL (`Referer`), or nil when it is not one.
    static func origin(ofURL url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty else { return nil }
        return normalized(String(url[..<schemeEnd.upperBound]) + authority)
    }
}

/// Refuses cookie-authenticated state changes from other sites, and (with `requireToken`) without the session's
/// CSRF token in `X-CSRF-Token`. Bearer-token requests need neither: a browser never attaches a bearer token by
/// itself. Page forms carry `_csrf`, which the page handlers check; signing in needs no token, since it is not an
/// action of whatever session the browser still holds.
struct CSRFMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext
    let origins: OriginPolicy
    let requireToken: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let safe = request.method == .get || request.method == .head || request.method == .options
        if !safe, context.principal?.method != .token {
            guard origins.isSameSiteOrAllowed(request, client: context.client) else {
                throw ChatError(.forbidden, "origin_rejected", "Cross-site requests are not allowed.")
            }
            if requireToken, let principal = context.principal {
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
