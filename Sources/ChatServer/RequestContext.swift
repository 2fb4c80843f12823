import ChatCore
import Hummingbird
import HummingbirdWebSocket
import NIOCore

/// The request context of every route: who is calling (set by `AuthMiddleware`) and from where.
public struct ChatRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<ChatRequestContext>
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

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
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
