import ChatCore
import HTTPTypes
import Hummingbird

/// `/api/auth/*` and `/api/users`: sign-in with a cookie session or for an API token, sign-out, who am I.
struct AuthController {
    let auth: AuthService
    let chat: ChatService
    let cookies: SessionCookies
    let maxBodyBytes: Int

    struct Credentials: Decodable {
        let tenant: String
        let username: String
        let password: String
        static let maxName = 128
        static let maxPassword = 1024

        func validated() throws -> Credentials {
            guard !tenant.isEmpty, !username.isEmpty, !password.isEmpty, !InputRules.length(tenant, exceeds: Self.maxName),
                  !InputRules.length(username, exceeds: Self.maxName), !InputRules.length(password, exceeds: Self.maxPassword)
            else { throw ChatError.badRequest("tenant, username and password must be non-empty and not overly long.") }
            return self
        }
    }

    struct LoginResponse: Encodable {
        let user: User
        let csrfToken: String
    }

    struct TokenResponse: Encodable {
        let token: String
        let expiresAt: Timestamp
        let user: User
    }

    struct MeResponse: Encodable {
        struct TenantInfo: Encodable {
            let id: String
            let slug: String
            let name: String
        }
        let user: User
        let tenant: TenantInfo
    }

    /// Sign-in routes: their group checks the origin but asks for no CSRF token.
    func addSignInRoutes(to auth: RouterGroup<ChatRequestContext>) {
        auth.post("login", use: login)
        auth.post("token", use: token)
    }

    func addRoutes(to auth: RouterGroup<ChatRequestContext>, users: RouterGroup<ChatRequestContext>) {
        auth.post("logout", use: logout)
        auth.get("me", use: me)
        users.get(use: listUsers)
    }

    @Sendable func login(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(Credentials.self, limit: maxBodyBytes).validated()
        let signIn = try await auth.signIn(
            tenant: body.tenant, username: body.username, password: body.password, address: context.remoteAddress, method: .session)
        var response = try JSONResponse.make(LoginResponse(user: signIn.user, csrfToken: signIn.credential.csrfToken ?? ""))
        response.setCookie(cookies.session(signIn.secret, context: context))
        return response
    }

    @Sendable func token(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(Credentials.self, limit: maxBodyBytes).validated()
        let signIn = try await auth.signIn(
            tenant: body.tenant, username: body.username, password: body.password, address: context.remoteAddress, method: .token)
        return try JSONResponse.make(TokenResponse(token: signIn.secret, expiresAt: signIn.credential.expiresAt, user: signIn.user))
    }

    @Sendable func logout(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try await auth.signOut(principal)
        var response = Response(status: .noContent)
        if principal.method == .session { response.setCookie(cookies.expired(context: context)) }
        return response
    }

    @Sendable func me(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let (user, tenant) = try await chat.me(try context.requirePrincipal())
        return try JSONResponse.make(MeResponse(user: user, tenant: .init(id: tenant.id, slug: tenant.slug, name: tenant.name)))
    }

    @Sendable func listUsers(_ request: Request, context: ChatRequestContext) async throws -> Response {
        let page = try await chat.directory(
            try context.requirePrincipal(), query: request.uri.queryParameters.get("q"), cursor: request.uri.queryParameters.get("cursor"),
            limit: try request.integerQuery("limit"))
        return try JSONResponse.make(PagedBody(key: "users", items: page.users, nextCursor: page.nextCursor))
    }
}

/// Builds the session cookie with the flags API.md asks for.
struct SessionCookies: Sendable {
    let name: String
    let security: AppConfiguration.CookieSecurity
    let maxAgeSeconds: Int

    func isSecure(_ context: ChatRequestContext) -> Bool {
        switch security {
        case .always: true
        case .never: false
        case .auto: context.client.scheme == "https"
        }
    }

    func session(_ secret: String, context: ChatRequestContext) -> Cookie {
        Cookie(name: name, value: secret, maxAge: maxAgeSeconds, path: "/", secure: isSecure(context), httpOnly: true, sameSite: .lax)
    }

    func expired(context: ChatRequestContext) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: isSecure(context), httpOnly: true, sameSite: .lax)
    }
}
