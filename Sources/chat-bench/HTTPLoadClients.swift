import CompressNIO
import NIOCore
import NIOHTTP1
import NIOPosix

/// SSE and long-poll load clients as NIO handlers: responses are parsed on the event loop, no task per client and
/// no hop per response (the async versions made the generator, not the server, the limit of W4).
enum HTTPLoadClients {
    /// Opens an SSE stream and records every `new_message`; returns when the connection ends.
    static func sse(port: Int, token: String, conversationId: String, stats: DeliveryStats, opened: Counter) async {
        let path = "/api/chat/events?conversationId=\(conversationId)"
        await run(port: port) { SSEHandler(path: path, token: token, stats: stats, opened: opened) }
    }

    /// Long-polls on one keep-alive connection until `stop` is set.
    static func poll(
        port: Int, token: String, conversationId: String, stats: DeliveryStats, opened: Counter, polls: Counter,
        gzipBytes: Counter, plainBytes: Counter, gzipped: Counter, stop: StopFlag
    ) async {
        await run(port: port) {
            PollHandler(
                conversationId: conversationId, token: token, stats: stats, opened: opened, polls: polls,
                gzipBytes: gzipBytes, plainBytes: plainBytes, gzipped: gzipped, stop: stop)
        }
    }

    private static func run<H: ChannelInboundHandler & Sendable>(port: Int, _ makeHandler: @escaping @Sendable () -> H)
    async where H.InboundIn == HTTPClientResponsePart {
        let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(makeHandler())
                }
            }
            .connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: port)).get()
        try? await channel?.closeFuture.get()
    }

    static func request(_ path: String, token: String, gzip: Bool) -> HTTPRequestHead {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        head.headers.add(name: "Authorization", value: "Bearer \(token)")
        if gzip { head.headers.add(name: "Accept-Encoding", value: "gzip") }
        return head
    }
}

private final class SSEHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let path: String, token: String, stats: DeliveryStats, opened: Counter
    private var carry = ByteBuffer()
    private var tracker = SeqTracker()
    private static let separator = Array("\n\n".utf8)
    private static let data = Array("data: ".utf8)

    init(path: String, token: String, stats: DeliveryStats, opened: Counter) {
        self.path = path
        self.token = token
        self.stats = stats
        self.opened = opened
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(HTTPLoadClients.request(path, token: token, gzip: false))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.status == .ok { opened.add(1) } else { context.close(promise: nil) }
        case .body(var buffer):
            carry.writeBuffer(&buffer)
            while let end = carry.withUnsafeReadableBytes({ Scan.find($0, Self.separator) }) {
                let message = carry.readSlice(length: end + 2)!
                let start = message.withUnsafeReadableBytes { Scan.find($0, Self.data) }
                if let start, let event = message.getSlice(at: message.readerIndex + start + 6, length: end - start - 6),
                   let m = Scan.message(event) {
                    let now = nowNanos()
                    stats.record(latencyMicros: (now - min(now, m.sentNanos)) / 1000)
                    tracker.see(m.seq, stats: stats)
                }
            }
            carry.discardReadBytes()
        case .end:
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

private final class PollHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let conversationId: String, token: String
    let stats: DeliveryStats, opened: Counter, polls: Counter, gzipBytes: Counter, plainBytes: Counter, gzipped: Counter
    let stop: StopFlag
    private var cursor: String?
    private var body = ByteBuffer()
    private var compressed = false
    private var tracker = SeqTracker()
    /// One inflate stream per client, reset between answers (a new one per answer cost the generator ~0.1 core).
    private let inflater = try? ZlibDecompressor(algorithm: .gzip)
    private static let cursorKey = Array(#""cursor":""#.utf8)

    init(
        conversationId: String, token: String, stats: DeliveryStats, opened: Counter, polls: Counter,
        gzipBytes: Counter, plainBytes: Counter, gzipped: Counter, stop: StopFlag
    ) {
        self.conversationId = conversationId
        self.token = token
        self.stats = stats
        self.opened = opened
        self.polls = polls
        self.gzipBytes = gzipBytes
        self.plainBytes = plainBytes
        self.gzipped = gzipped
        self.stop = stop
    }

    func channelActive(context: ChannelHandlerContext) { next(context) }

    private func next(_ context: ChannelHandlerContext) {
        guard !stop.isSet else {
            context.close(promise: nil)
            return
        }
        let path = cursor.map { "/api/chat/poll?cursor=\($0)&conversationId=\(conversationId)&timeout=20" }
            ?? "/api/chat/poll?conversationId=\(conversationId)"
        context.write(wrapOutboundOut(.head(HTTPLoadClients.request(path, token: token, gzip: true))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard head.status == .ok else {
                context.close(promise: nil)
                return
            }
            compressed = head.headers["Content-Encoding"].first == "gzip"
            body.clear()
        case .body(var buffer):
            body.writeBuffer(&buffer)
        case .end:
            var text = body
            if compressed {
                gzipped.add(1)
                gzipBytes.add(body.readableBytes)
                guard let plain = inflate(body) else {
                    context.close(promise: nil)
                    return
                }
                plainBytes.add(plain.readableBytes)
                text = plain
            }
            if cursor == nil {
                opened.add(1)
            } else {
                polls.add(1)
                let now = nowNanos()
                Scan.forEachMessage(in: text) { seq, sent in
                    stats.record(latencyMicros: (now - min(now, sent)) / 1000)
                    tracker.see(seq, stats: stats)
                }
            }
            if let found = Self.cursor(in: text) { cursor = found }
            next(context)
        }
    }

    private func inflate(_ compressed: ByteBuffer) -> ByteBuffer? {
        if let inflater {
            var input = compressed
            var output = ByteBufferAllocator().buffer(capacity: max(65_536, compressed.readableBytes * 24))
            defer { try? inflater.reset() }
            if (try? inflater.inflate(from: &input, to: &output)) != nil { return output }
        }
        var again = compressed
        return try? again.decompress(with: .gzip())
    }

    private static func cursor(in buffer: ByteBuffer) -> String? {
        buffer.withUnsafeReadableBytes { bytes -> String? in
            // The cursor is the last field of the answer.
            var position: Int? = nil
            var offset = 0
            while let found = Scan.find(UnsafeRawBufferPointer(rebasing: bytes[offset...]), cursorKey) {
                position = offset + found
                offset = offset + found + 1
            }
            guard let position else { return nil }
            var digits: [UInt8] = []
            var index = position + cursorKey.count
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                digits.append(bytes[index])
                index += 1
            }
            return String(decoding: digits, as: UTF8.self)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

extension Scan {
    /// Calls `body` with the seq and send time of every `new_message` envelope in a poll answer.
    static func forEachMessage(in buffer: ByteBuffer, _ body: (Int64, UInt64) -> Void) {
        let type = Array(#"{"type":""#.utf8)
        var positions: [Int] = []
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count, let found = find(UnsafeRawBufferPointer(rebasing: bytes[offset...]), type) {
                positions.append(offset + found)
                offset += found + 1
            }
        }
        for (index, position) in positions.enumerated() {
            let end = index + 1 < positions.count ? positions[index + 1] : buffer.readableBytes
            if let slice = buffer.getSlice(at: buffer.readerIndex + position, length: end - position), let m = message(slice) {
                body(m.seq, m.sentNanos)
            }
        }
    }
}
