import ChatCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle

/// The long-lived parts of a running server, made once and shared by routes, transports and tests.
public struct ChatDependencies: Sendable {
    public let store: any ChatStore
    public let hub: RoomHub
    public let chat: ChatService
    public let auth: AuthService
    /// Conversation summaries, cached per conversation.
    public let summaries: SummaryService
    /// Agents answering in conversations (installed on `chat`).
    public let agents: AgentRuntime
    /// Open WebSockets and SSE streams (for graceful shutdown).
    public let connections: LiveConnections

    /// Wires the core around a store the caller opened (the executable picks SQLite or PostgreSQL) and, for a
    /// store shared by several nodes, a broker that relays between them (`broker` wraps `hub`).
    public static func make(
        _ config: AppConfiguration, store: any ChatStore, hub: RoomHub = RoomHub(), broker: (any EventBroker)? = nil,
        models: any ModelBackendFactory = NoModelBackends(), agentLimits: AgentRuntime.Limits = AgentRuntime.Limits(), logger: Logger? = nil
    ) -> ChatDependencies {
        let chat = ChatService(store: store, broker: broker ?? hub, limits: config.limits)
        var auth = AuthService(
            store: store, hasher: BcryptHasher(cost: config.bcryptCost),
            limiter: LoginRateLimiter(
                perAccount: config.loginPerAccount, perAddress: config.loginPerAddress,
                // Nodes sharing a database count failures there, so the limits hold across them.
                log: store.eventLogIsLocal ? InMemoryLoginFailures() : (store as? any LoginFailureLog) ?? InMemoryLoginFailures()))
        auth.sessionLifetimeSeconds = 30 * 86_400
        let budget = AgentBudget(store: store)
        let summaries = SummaryService(chat: chat, backends: models, budget: budget)
        let agents = AgentRuntime(
            chat: chat, summaries: summaries, backends: models, budget: budget, limits: agentLimits,
            logger: logger ?? Logger(label: "chat-server.agents"))
        agents.install()
        return ChatDependencies(store: store, hub: hub, chat: chat, auth: auth, summaries: summaries, agents: agents, connections: LiveConnections())
    }
}

/// Builds the application around its dependencies: seeds demo data if asked, wires routes and services. The store's
/// own services (connections, checkpoints, closing) are the caller's to run around it.
public func buildApplication(_ config: AppConfiguration, dependencies: ChatDependencies, logger: Logger? = nil) async throws -> some ApplicationProtocol {
    let logger = logger ?? {
        var logger = Logger(label: "chat-server")
        logger.logLevel = .info
        return logger
    }()
    if config.seedDemoData, try await DemoData.seedIfEmpty(chat: dependencies.chat, hasher: dependencies.auth.hasher) {
        dependencies.agents.agentsChanged()
        logger.info("seeded demo data: tenants acme (alice, bob, carol) and globex (dave, erin), password \(DemoData.password)")
    }
    let router = try await buildRouter(config, dependencies: dependencies)
    // WebSocket upgrades go through the same router (auth, Origin, the `api/chat/ws` route), then live on as channel
    // handlers.
    let upgradeResponder = router.buildResponder()
    var server = ChatServerChannel.builder { request, channel, logger in
        var context = ChatRequestContext(source: .init(channel: channel, logger: logger))
        let slot = UpgradeSlot()
        context.upgradeSlot = slot
        guard let response = try? await upgradeResponder.respond(to: request, context: context), response.status == .ok else { return nil }
        return slot.accepted
    }
    if let certificate = config.tlsCertificatePath, let key = config.tlsKeyPath {
        server = try .tls(server, tlsConfiguration: try TLSFiles.serverConfiguration(certificate: certificate, key: key))
    }
    var app = Application(
        router: router,
        server: server,
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "chat-server", backlog: 4096),
        onServerRunning: { channel in
            // Ramp-up: accept up to 64 connections per readable event of the listening socket (NIO's default is 4),
            // with a 4,096-deep backlog, so thousands of clients reconnecting at once are let in quickly.
            _ = try? await channel.setOption(ChannelOptions.maxMessagesPerRead, value: 64).get()
        },
        logger: logger)
    app.addServices(MaintenanceService(dependencies: dependencies, retentionDays: config.eventRetentionDays, logger: logger))
    return app
}

/// The router with every middleware and route, and 405 answers for the methods a path does not serve; shared by HTTP
/// and the WebSocket upgrade.
func buildRouter(_ config: AppConfiguration, dependencies: ChatDependencies) async throws -> Router<ChatRequestContext> {
    let router = try await buildRoutes(config, dependencies: dependencies)
    router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
    return router
}

/// Every route the server serves (what the OpenAPI document and docs/API.md must describe).
func buildRoutes(_ config: AppConfiguration, dependencies: ChatDependencies) async throws -> Router<ChatRequestContext> {
    let renderer = try await PageRenderer.load(directory: config.templatesDirectory)
    let assets = try StaticAssets.load(directory: config.publicDirectory)
    let router = Router(context: ChatRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: SecurityHeadersMiddleware())
    let store = dependencies.store
    // Outside the error middleware: error answers carry the request id too, and its log lines have it.
    router.add(middleware: ForwardedHeadersMiddleware(trust: config.proxyTrust, overTLS: config.tlsCertificatePath != nil))
    router.add(middleware: ErrorMiddleware(renderer: renderer, isUnavailable: { store.isUnavailable($0) }))
    // Method and path of every request at debug level; never a header (they carry cookies and tokens).
    router.add(middleware: LogRequestsMiddleware(.debug, includeHeaders: .none))
    // Requests by route, method and status, and their durations (only with a metrics backend: they cost per request).
    if config.metricsEnabled { router.add(middleware: RequestMetricsMiddleware()) }
    router.add(middleware: AuthMiddleware(auth: dependencies.auth, cookieName: config.sessionCookieName))

    // Cross-site and CSRF checks by route group: the JSON API wants the session's token in a header (signing in
    // wants none: it is not an action of the old session); pages check `_csrf` in their handlers.
    let origins = OriginPolicy(allowedOrigins: config.allowedOrigins)
    let signIn = router.group("api/auth").add(middleware: CSRFMiddleware(origins: origins, requireToken: false))
    let api = router.group("api").add(middleware: CSRFMiddleware(origins: origins, requireToken: true))
    let pages = router.group().add(middleware: CSRFMiddleware(origins: origins, requireToken: false))

    let cookies = SessionCookies(
        name: config.sessionCookieName, security: config.secureCookies, maxAgeSeconds: Int(dependencies.auth.sessionLifetimeSeconds))
    let auth = AuthController(auth: dependencies.auth, chat: dependencies.chat, cookies: cookies, maxBodyBytes: config.maxBodyBytes)
    auth.addSignInRoutes(to: signIn)
    auth.addRoutes(to: api.group("auth"), users: api.group("users"))
    api.get("agents") { [chat = dependencies.chat] _, context in
        struct Body: Encodable { let agents: [AgentListing] }
        return try JSONResponse.make(Body(agents: try await chat.agents(try context.requirePrincipal())))
    }
    ChatController(chat: dependencies.chat, summaries: dependencies.summaries, maxBodyBytes: config.maxBodyBytes).addRoutes(to: api.group("chat"))
    RealtimeController(
        chat: dependencies.chat, auth: dependencies.auth, origins: origins, settings: config.realtime, connections: dependencies.connections
    ).addRoutes(to: router)
    let openAPI = OpenAPIDocument(limits: config.limits, realtime: config.realtime).bytes
    router.get("api/openapi.json") { _, _ in JSONResponse.make(bytes: openAPI) }
    PageController(chat: dependencies.chat, auth: dependencies.auth, summaries: dependencies.summaries, renderer: renderer, cookies: cookies, maxBodyBytes: config.maxBodyBytes)
        .addRoutes(to: router, forms: pages)
    assets.addRoutes(to: router)
    // Alive: the process answers. Ready: it may be sent traffic (the database answers; not shutting down).
    router.get("health") { _, _ in JSONResponse.make(bytes: Array(#"{"status":"ok"}"#.utf8)) }
    let connections = dependencies.connections
    router.get("ready") { _, _ -> Response in
        if connections.isDraining { return JSONResponse.make(bytes: Array(#"{"status":"draining"}"#.utf8), status: .serviceUnavailable) }
        do {
            try await store.checkReady()
            return JSONResponse.make(bytes: Array(#"{"status":"ready"}"#.utf8))
        } catch {
            return JSONResponse.make(bytes: Array(#"{"status":"unavailable"}"#.utf8), status: .serviceUnavailable)
        }
    }
    return router
}

/// Headers every response carries.
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = ChatRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "same-origin"
        response.headers[.xFrameOptions] = "DENY"
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        }
        return response
    }
}

/// Hourly housekeeping: prunes the event log past its retention and deletes expired credentials.
struct MaintenanceService: Service, CustomStringConvertible {
    var description: String { "MaintenanceService" }
    let dependencies: ChatDependencies
    let retentionDays: Int
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let cutoff = Timestamp.now().adding(seconds: -Int64(retentionDays) * 86_400)
                let pruned = try await dependencies.chat.pruneEvents(createdBefore: cutoff)
                let expired = try await dependencies.store.deleteExpiredCredentials(now: .now())
                if pruned + expired > 0 { logger.info("maintenance", metadata: ["prunedEvents": "\(pruned)", "expiredCredentials": "\(expired)"]) }
            } catch is CancellationError {
                break
            } catch {
                logger.error("maintenance failed", metadata: ["error": "\(error)"])
            }
            try? await gracefulShutdownSleep(seconds: 3600)
        }
    }

    private func gracefulShutdownSleep(seconds: Int) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: .seconds(seconds))
        }
    }
}
