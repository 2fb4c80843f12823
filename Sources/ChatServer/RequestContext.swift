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
    /// The peer's IP address, for login rate limiting.
    public let remoteAddress: String?
    /// The connection, so that a stuck realtime stream can be closed from outside its writer.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
        self.channel = source.channel
    }

    /// The caller, or 401 `unauthenticated`.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw ChatError.unauthenticated }
        return principal
    }
}
