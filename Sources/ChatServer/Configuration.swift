import ChatCore

/// Everything the server can be told from the command line; tests build one directly.
public struct AppConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Seed demo tenants and users when the database is empty.
    public var seedDemoData = false
    /// bcrypt cost for new password hashes (4 in tests, 10 or more in production).
    public var bcryptCost: UInt8 = 10
    /// Origins besides the server's own that may use cookie-authenticated requests and WebSocket upgrades.
    public var allowedOrigins: [String] = []
    /// Peers whose `X-Forwarded-For`/`-Host`/`-Proto` headers are believed (the operator's reverse proxies).
    public var proxyTrust = ProxyTrust.none
    /// PEM files of a certificate chain and its private key: the server then speaks HTTPS and WSS itself.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Record per-request metrics (a metrics backend is bootstrapped and served on the metrics listener).
    public var metricsEnabled = false
    /// When to mark the session cookie `Secure`.
    public var secureCookies: CookieSecurity = .auto
    public var sessionCookieName = "chat_session"
    /// Largest accepted JSON body in bytes.
    public var maxBodyBytes = 256 * 1024
    /// Durable events older than this are pruned; clients behind that get `resync_required`.
    public var eventRetentionDays = 30
    public var limits = ChatLimits()
    public var loginPerAccount = LoginRateLimiter.Rule(maxFailures: 10, windowSeconds: 900)
    public var loginPerAddress = LoginRateLimiter.Rule(maxFailures: 100, windowSeconds: 900)
    /// Folders for templates and static files (pages).
    public var templatesDirectory = "templates"
    public var publicDirectory = "Public"

    public var realtime = RealtimeSettings()

    public init() {}

    /// `Secure` cookie attribute policy.
    public enum CookieSecurity: String, Sendable {
        /// Secure when the request came over HTTPS (directly, or `X-Forwarded-Proto: https` from a trusted proxy).
        case auto
        case always
        case never
    }
}

/// Bounds and timings of the realtime transports (see the README for why these values).
public struct RealtimeSettings: Sendable {
    /// Events queued for one WebSocket or SSE client before it is disconnected as a slow consumer.
    public var queueCapacity = 1024
    /// ... and at most this many bytes of them.
    public var queueBytes = 1 << 20
    /// Largest WebSocket message accepted from a client.
    public var maxFrameBytes = 64 * 1024
    /// Seconds between WebSocket pings; a peer that misses one is closed.
    public var pingSeconds = 30
    /// Seconds between SSE comment lines (API.md: at most 15).
    public var sseHeartbeatSeconds = 15
    /// SSE `retry:` hint to browsers, in milliseconds.
    public var sseRetryMilliseconds = 2000
    public var pollDefaultTimeoutSeconds = 25
    public var pollMaxTimeoutSeconds = 60
    /// At most this many events in one long-poll answer; the client polls again from the returned cursor.
    public var pollMaxEvents = 500
    /// Client frames per second a WebSocket may send on average, and the burst it may save up.
    public var framesPerSecond = 20.0
    public var frameBurst = 60.0
    /// Frames over the rate a client may send (each answered with `rate_limited`) before it is disconnected.
    public var floodTolerance = 100
    public var maxRoomsPerSocket = 1000

    public init() {}
}
