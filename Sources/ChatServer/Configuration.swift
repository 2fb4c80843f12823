import ChatCore

/// Everything the server can be told from the command line; tests build one directly.
public struct AppConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// SQLite file; created with its folder when missing.
    public var databasePath = "data/chat.sqlite"
    /// Seed demo tenants and users when the database is empty.
    public var seedDemoData = false
    /// bcrypt cost for new password hashes (4 in tests, 10 or more in production).
    public var bcryptCost: UInt8 = 10
    /// Origins besides the server's own that may use cookie-authenticated requests and WebSocket upgrades.
    public var allowedOrigins: [String] = []
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

    public init() {}

    /// `Secure` cookie attribute policy.
    public enum CookieSecurity: String, Sendable {
        /// Secure when the request came over HTTPS (`X-Forwarded-Proto: https` from a proxy).
        case auto
        case always
        case never
    }
}
