import ChatCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// The server's child channel: HTTP/1.1, or a WebSocket upgrade that ends in channel handlers, not in a task.
///
/// An upgrade request goes through the same router as every request (auth, Origin check, draining, the
/// `api/chat/ws` route), which answers 200 and leaves the connection's session in the context's upgrade slot. Any
/// other answer refuses the upgrade (400, as NIO's upgrader does). After the 101, the connection's pipeline holds
/// one `WebSocketConnectionHandler`, which reads the frames itself; the task that ran the handshake ends.
struct ChatServerChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case webSocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case failedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Logger)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    /// What the router decides for an upgrade request: the connection to run, or nil (refused).
    typealias Accept = @Sendable (Request, any Channel, Logger) async -> WebSocketAcceptance?

    let responder: HTTPChannelHandler.Responder
    let http1: HTTP1Channel.Configuration
    let accept: Accept

    static func builder(http1: HTTP1Channel.Configuration = .init(), accept: @escaping Accept) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            ChatServerChannel(responder: upgradeAwareResponder(responder), http1: http1, accept: accept)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // Each connection keeps its receive buffer between reads; NIO's first one is 2 KiB. 1 KiB holds a
            // browser's upgrade request and a chat frame, and halves what 10,000 idle sockets keep (the buffer still
            // doubles, up to 64 KiB, for a request or upload that fills it).
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536))
            let upgradeAttempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let accepted = NIOLockedValueBox<WebSocketAcceptance?>(nil)
            let logger = logger.with(metadataKey: "hb.request.id", value: .stringConvertible(RequestID()))
            let accept = self.accept
            let handshake = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                shouldUpgrade: { channel, head in
                    upgradeAttempted.value = true
                    let promise = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                    promise.completeWithTask {
                        guard let request = try? HTTPRequest(head, secure: false, splitCookie: false),
                              let acceptance = await accept(Request(head: request, body: RequestBody(buffer: ByteBuffer())), channel, logger)
                        else { return nil }
                        accepted.withLockedValue { $0 = acceptance }
                        return HTTPHeaders()
                    }
                    return promise.futureResult
                },
                // Never called: `WebSocketHandshake` builds the pipeline itself.
                upgradePipelineHandler: { channel, _ in channel.eventLoop.makeFailedFuture(ChannelError.inappropriateOperationForState) })
            let upgrader = WebSocketHandshake(nio: handshake) { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let acceptance = accepted.withLockedValue({ $0 }) else { throw ChannelError.inappropriateOperationForState }
                    try channel.pipeline.syncOperations.addHandler(acceptance.makeHandler())
                    return UpgradeResult.webSocket
                }
            }
            let upgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return upgradeAttempted.value ? .failedUpgrade(asyncChannel, logger) : .notUpgraded(asyncChannel)
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: upgradeConfiguration)
            configuration.enablePipelining = false  // NIOAsyncChannel serves requests one at a time
            configuration.enableErrorHandling = false  // Hummingbird answers errors
            configuration.enableResponseHeaderValidation = false  // HTTPTypes validated them
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(upgradeResult: result, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http1):
                await handleHTTP(asyncChannel: http1, logger: logger)
            case .failedUpgrade(let http1, _):
                await refuseUpgrade(http1)
            case .webSocket:
                // The connection lives on in its handlers; this task ends here.
                break
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("the connection closed before its first request")
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }

    /// A refused upgrade: 400 and the connection closes (the WebSocket layer's answer since the first version).
    private func refuseUpgrade(_ channel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>) async {
        try? await channel.executeThenClose { _, outbound in
            let head = HTTPResponse(status: .badRequest, headerFields: [.connection: "close", .contentLength: "0"])
            try await outbound.write(contentsOf: [.head(head), .end(nil)])
        }
    }

    /// NIO's upgrader only looks at a connection's first request: an upgrade asked for later on a kept-alive
    /// connection gets a redirect to the same URL with the connection closed, so the client retries on a new one.
    static func upgradeAwareResponder(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        struct RedirectedUpgrade: Error {}
        return { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                try await responder(request, writer, channel)
                return
            }
            var location = request.uri.path
            if let query = request.uri.query { location += "?" + query }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: location]))
            throw RedirectedUpgrade()
        }
    }
}

/// NIO's WebSocket handshake (it checks the key and version and builds the 101), followed by a pipeline of one
/// handler of ours that reads the frames itself. NIO's own upgrade would add its frame decoder, encoder and
/// protocol-error handler, and the fragment aggregator after them: four more handlers and contexts, ~1 KB of every
/// open socket.
struct WebSocketHandshake: NIOTypedHTTPServerProtocolUpgrader {
    typealias UpgradeResult = ChatServerChannel.UpgradeResult

    let nio: NIOTypedWebSocketServerUpgrader<UpgradeResult>
    let pipeline: @Sendable (any Channel) -> EventLoopFuture<UpgradeResult>

    var supportedProtocol: String { nio.supportedProtocol }
    var requiredUpgradeHeaders: [String] { nio.requiredUpgradeHeaders }

    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        nio.buildUpgradeResponse(channel: channel, upgradeRequest: upgradeRequest, initialResponseHeaders: initialResponseHeaders)
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        pipeline(channel)
    }
}

/// An accepted upgrade: the session, whose connection handler is made on the loop after the 101.
struct WebSocketAcceptance: Sendable {
    let session: WebSocketSession

    func makeHandler() -> WebSocketConnectionHandler {
        WebSocketConnectionHandler(session: session)
    }
}

extension Logger {
    fileprivate func with(metadataKey key: String, value: MetadataValue) -> Logger {
        var logger = self
        logger[metadataKey: key] = value
        return logger
    }
}
