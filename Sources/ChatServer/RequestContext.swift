import ChatCore
import Hummingbird
import NIOCore
import Synchronization

/// The request context of every route: who is calling (set by `AuthMiddleware`) and from where.
public struct ChatRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set on the context of a WebSocket upgrade request only: where the route leaves the accepted connection.
    var upgradeSlot: UpgradeSlot?
    /// The authenticated caller, if any.
    public var principal: Principal?
    /// The TCP peer's IP address (a proxy's, when there is one).
    public let peerAddress: String?
    /// The client as the operator's edge saw it (see `ProxyTrust`); set by `ForwardedHeadersMiddleware`.
    var client: ForwardedClient
    /// The client's IP address, for login rate limits and logs: forwarded by a trusted proxy, else the peer's.
    public var remoteAddress: String? { client.address }
    /// The connection, so that a stuck realtime stream can be closed from outside its writer.
    public let channel: any Channel
    /// The id on this request's log lines and in its `X-Request-Id` answer; set by `ForwardedHeadersMiddleware`.
    var requestId: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
        self.client = ForwardedClient(address: peerAddress, host: nil, scheme: "http", viaTrustedProxy: false)
        self.channel = source.channel
    }

    /// The caller, or 401 `unauthenticated`.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw ChatError.unauthenticated }
        return principal
    }
}

/// Carries an accepted WebSocket connection from the `api/chat/ws` route back to the upgrade (the context itself is
/// passed by value through the middleware).
final class UpgradeSlot: Sendable {
    private let value = Mutex<WebSocketAcceptance?>(nil)

    func accept(_ acceptance: WebSocketAcceptance) { value.withLock { $0 = acceptance } }
    var accepted: WebSocketAcceptance? { value.withLock { $0 } }
}
