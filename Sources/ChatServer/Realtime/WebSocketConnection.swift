import ChatCore
import Logging
import NIOCore

/// One upgraded WebSocket, as the one channel handler of its connection, on its event loop: no Swift task per
/// connection (an idle socket costs its channel and this handler). Reads frames from the socket's bytes, enforces
/// the limits, answers pings, pings the client, and writes the outbox's frames as they are (pre-framed bytes).
///
/// Close codes: 1000 normal; 1001 server shutting down; 1002 protocol error; 1007 a text frame that is not UTF-8;
/// 1008 flooding; 1009 message too big; 4001 the session ended (logout or expiry); 4008 the client read too slowly
/// and its send queue overflowed (resume with `since`).
final class WebSocketConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let sessionEnded: UInt16 = 4001
    static let slowConsumer: UInt16 = 4008

    private let session: WebSocketSession
    private let outbox: WebSocketOutbox
    /// The session's (not a second copy per socket).
    private var settings: RealtimeSettings { session.settings }
    private var connections: LiveConnections { session.shared.connections }

    private var context: ChannelHandlerContext?
    private var reader: WebSocketFrameReader
    /// The client broke the protocol: nothing more it sends is read.
    private var failed = false
    private var limiter: FrameRateLimiter
    private var violations = 0
    private var awaitingPong = false
    /// The channel's writability, kept here from `channelWritabilityChanged` (asking the channel per drain showed up
    /// in profiles).
    private var writable = true
    private var closeSent = false
    private var timers: [Scheduled<Void>] = []
    /// The loop's clock pings this socket and watches its session's expiry; `slot` is where it sits on it.
    private var clock: ConnectionClock?
    private var slot = 0
    private var expiryScheduled = false

    init(session: WebSocketSession) {
        self.session = session
        self.outbox = session.outbox
        self.limiter = FrameRateLimiter(rate: session.settings.framesPerSecond, burst: session.settings.frameBurst)
        self.reader = WebSocketFrameReader(maxMessageBytes: session.settings.maxFrameBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        writable = context.channel.isWritable
        outbox.attach(self)
        connections.add(outbox)
        session.shared.revocations.add(outbox, credentialHash: session.principal.credentialHash)
        let clock = ConnectionClock.of(context.eventLoop, periodSeconds: settings.pingSeconds)
        slot = clock.add(self)
        self.clock = clock
        scheduleExpiryIfDue()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    private func tearDown() {
        session.stop()
        outbox.close(.finished)
        outbox.attach(nil)
        connections.remove(outbox)
        session.shared.revocations.remove(outbox, credentialHash: session.principal.credentialHash)
        clock?.remove(self, slot: slot)
        clock = nil
        for timer in timers { timer.cancel() }
        timers = []
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        do {
            try reader.read(unwrapInboundIn(data)) { message in handle(message, context: context) }
        } catch {
            failed = true
            closeNow(code: error.closeCode, reason: error.reason)
        }
    }

    /// One message from the client; false when nothing after it is to be read (the connection is closing).
    private func handle(_ message: WebSocketFrameReader.Message, context: ChannelHandlerContext) -> Bool {
        // After the server's close frame only the client's close matters (RFC 6455 5.5.1).
        switch message {
        case .text(let text):
            if !closeSent, admit() { session.receive(text) }
        case .binary:
            if !closeSent, admit() { outbox.push(text: ControlFrame.error(code: "invalid_frame", message: "Send JSON text frames.")) }
        case .ping(let payload):
            if !closeSent { write(WebSocketFraming.frame(opcode: WebSocketFraming.pong, payload: payload), flush: true) }
        case .pong:
            awaitingPong = false
        case .close(let code):
            if !closeSent {
                // Echo the client's code (RFC 6455 5.5.1), then close the TCP connection: the server closes first.
                sendClose(code: code ?? 1000, reason: "")
            }
            outbox.close(.finished)
            context.close(promise: nil)
            return false
        }
        return true
    }

    /// The flood limit for data frames: over the rate, an error; past the tolerance, 1008.
    private func admit() -> Bool {
        guard limiter.allow() else {
            violations += 1
            if violations > settings.floodTolerance {
                outbox.close(.policy)
            } else {
                ChatMetrics.framesRateLimited.increment()
                outbox.push(text: ControlFrame.error(code: "rate_limited", message: "Too many frames; slow down."))
            }
            return false
        }
        return true
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            outbox.close(.shutdown)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable { drain() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Writing

    /// Writes what the outbox holds (called on the loop when it has frames, and when the socket is writable again);
    /// once the outbox closed, the close frame follows its last frame.
    func drain() {
        guard context != nil else { return }
        let (frames, closed) = outbox.take(writable: writable)
        for frame in frames { write(frame, flush: false) }
        if let closed, !closeSent {
            close(for: closed)
        } else if !frames.isEmpty {
            context?.flush()
        }
    }

    private func write(_ bytes: ByteBuffer, flush: Bool) {
        guard let context else { return }
        if flush {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        } else {
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
    }

    private func close(for reason: CloseReason) {
        switch reason {
        case .overflow: sendClose(code: Self.slowConsumer, reason: "send queue overflow; resume from your last eventId", grace: .seconds(2))
        case .revoked: sendClose(code: Self.sessionEnded, reason: "signed out", grace: .seconds(2))
        case .expired: sendClose(code: Self.sessionEnded, reason: "session expired")
        case .shutdown: sendClose(code: 1001, reason: "server shutting down")
        case .policy: sendClose(code: 1008, reason: "too many frames")
        case .finished: sendClose(code: 1000, reason: "")
        }
    }

    /// Sends a close frame; the connection ends when the client answers with its own, or after `grace`.
    private func sendClose(code: UInt16, reason: String, grace: TimeAmount = .seconds(5)) {
        guard !closeSent, let context else { return }
        closeSent = true
        var payload = ByteBuffer()
        payload.writeInteger(code)
        payload.writeString(reason)
        write(WebSocketFraming.frame(opcode: WebSocketFraming.close, payload: payload), flush: true)
        let channel = context.channel
        timers.append(context.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) })
    }

    /// A protocol breach: the close frame, then the connection ends at once.
    private func closeNow(code: UInt16, reason: String) {
        sendClose(code: code, reason: reason)
        outbox.close(.finished)
        context?.close(promise: nil)
    }

    /// The clock's visit, once per ping period.
    func clockVisit() {
        ping()
        scheduleExpiryIfDue()
    }

    /// The session's expiry becomes an exact timer once it is less than a period (and the clock's second) away.
    private func scheduleExpiryIfDue() {
        guard !expiryScheduled, let context, let clock else { return }
        let remaining = session.principal.expiresAt.milliseconds - Timestamp.now().milliseconds
        guard remaining <= Int64(clock.periodSeconds + 1) * 1_000 else { return }
        expiryScheduled = true
        let outbox = self.outbox
        timers.append(context.eventLoop.scheduleTask(in: .milliseconds(max(0, remaining))) { outbox.close(.expired) })
    }

    /// Every ping period: a peer that did not answer the previous ping is gone.
    private func ping() {
        guard let context, !closeSent else { return }
        if awaitingPong {
            context.close(promise: nil)
            return
        }
        awaitingPong = true
        write(WebSocketFraming.frame(opcode: WebSocketFraming.ping, payload: [UInt8]()), flush: true)
    }
}
