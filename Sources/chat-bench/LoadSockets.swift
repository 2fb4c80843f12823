import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// What a bench socket does with each frame it receives; called from that socket's task only.
protocol FrameReceiver: AnyObject, Sendable {
    func receive(_ frame: ByteBuffer)
}

/// One bench WebSocket: a token, frames to send once open, and frames to send later from any thread.
///
/// The client is written on plain SwiftNIO handlers: frames are parsed and handed to the receiver on the socket's
/// event loop, with no task per socket and no hop per frame. (The first version used WSClient's async sequences;
/// the generator then needed as much CPU per delivered frame as the server, on the same two cores.)
final class LoadSocket: Sendable {
    let token: String
    let initialFrames: [String]
    let receiver: (any FrameReceiver)?
    private let state = Mutex(State())

    private struct State {
        var channel: (any Channel)?
        var pending: [String] = []
        var closing = false
    }

    init(token: String, initialFrames: [String], receiver: (any FrameReceiver)?) {
        self.token = token
        self.initialFrames = initialFrames
        self.receiver = receiver
    }

    /// Sends a text frame (queued until the socket is open).
    func send(_ frame: String) {
        let channel = state.withLock { s -> (any Channel)? in
            guard !s.closing else { return nil }
            if s.channel == nil { s.pending.append(frame) }
            return s.channel
        }
        guard let channel else { return }
        channel.writeAndFlush(ClientFrames.make(opcode: 0x1, payload: Array(frame.utf8), allocator: channel.allocator), promise: nil)
    }

    /// Sends a close frame; the connection ends when the server answers (or after two seconds).
    func close() {
        let channel = state.withLock { s -> (any Channel)? in
            defer { s.closing = true }
            return s.closing ? nil : s.channel
        }
        channel.map(Self.startClose)
    }

    static func startClose(_ channel: any Channel) {
        let payload: [UInt8] = [0x03, 0xE8]  // 1000, normal closure
        channel.writeAndFlush(ClientFrames.make(opcode: 0x8, payload: payload, allocator: channel.allocator), promise: nil)
        channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    /// The handshake is done: frames sent so far, and whether `close()` came first.
    fileprivate func opened(_ channel: any Channel) -> (pending: [String], closing: Bool) {
        state.withLock { s in
            s.channel = channel
            defer { s.pending = [] }
            return (s.pending, s.closing)
        }
    }
}

/// Client-to-server frames (masked, as RFC 6455 requires of clients).
enum ClientFrames {
    static func make(opcode: UInt8, payload: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.count + 14)
        buffer.writeInteger(UInt8(0x80 | opcode))
        if payload.count < 126 {
            buffer.writeInteger(UInt8(0x80 | payload.count))
        } else if payload.count <= 0xFFFF {
            buffer.writeInteger(UInt8(0x80 | 126))
            buffer.writeInteger(UInt16(payload.count))
        } else {
            buffer.writeInteger(UInt8(0x80 | 127))
            buffer.writeInteger(UInt64(payload.count))
        }
        let mask = (UInt8.random(in: 0...255), UInt8.random(in: 0...255), UInt8.random(in: 0...255), UInt8.random(in: 0...255))
        buffer.writeMultipleIntegers(mask.0, mask.1, mask.2, mask.3)
        let masks = [mask.0, mask.1, mask.2, mask.3]
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: payload.count) { out in
            for index in 0..<payload.count { out[index] = payload[index] ^ masks[index & 3] }
            return payload.count
        }
        return buffer
    }
}

/// Handshake, then frame parsing on the event loop.
private final class LoadSocketHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let socket: LoadSocket
    private let counters: SocketCounters
    private let port: Int
    private var upgraded = false
    private var joined = false
    private var pending: ByteBuffer?

    init(socket: LoadSocket, counters: SocketCounters, port: Int) {
        self.socket = socket
        self.counters = counters
        self.port = port
    }

    func channelActive(context: ChannelHandlerContext) {
        let request = "GET /api/chat/ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer \(socket.token)\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if pending == nil || pending!.readableBytes == 0 {
            pending = incoming
        } else {
            pending!.writeBuffer(&incoming)
        }
        if !upgraded {
            guard let view = pending?.readableBytesView, let end = Self.headerEnd(view) else { return }
            let statusOK = view.starts(with: Array("HTTP/1.1 101".utf8))
            pending!.moveReaderIndex(forwardBy: end)
            guard statusOK else {
                context.close(promise: nil)
                return
            }
            upgraded = true
            counters.connected.add(1)
            let (queued, closing) = socket.opened(context.channel)
            for frame in socket.initialFrames + queued {
                context.write(wrapOutboundOut(ClientFrames.make(opcode: 0x1, payload: Array(frame.utf8), allocator: context.channel.allocator)), promise: nil)
            }
            context.flush()
            if closing { LoadSocket.startClose(context.channel) }
        }
        parseFrames(context: context)
    }

    private func parseFrames(context: ChannelHandlerContext) {
        guard var buffer = pending else { return }
        defer { pending = buffer.readableBytes > 0 ? buffer : nil }
        while buffer.readableBytes >= 2 {
            let start = buffer.readerIndex
            let first = buffer.getInteger(at: start, as: UInt8.self)!
            let second = buffer.getInteger(at: start + 1, as: UInt8.self)!
            var length = Int(second & 0x7F)
            var header = 2
            if length == 126 {
                guard let value = buffer.getInteger(at: start + 2, as: UInt16.self) else { return }
                length = Int(value)
                header = 4
            } else if length == 127 {
                guard let value = buffer.getInteger(at: start + 2, as: UInt64.self) else { return }
                length = Int(value)
                header = 10
            }
            guard buffer.readableBytes >= header + length else { return }
            let payload = buffer.getSlice(at: start + header, length: length)!
            buffer.moveReaderIndex(forwardBy: header + length)
            switch first & 0x0F {
            case 0x0, 0x1, 0x2:
                if !joined, Scan.hasPrefix(payload, Scan.joined) {
                    joined = true
                    counters.joined.add(1)
                }
                socket.receiver?.receive(payload)
            case 0x9:
                context.writeAndFlush(
                    wrapOutboundOut(ClientFrames.make(opcode: 0xA, payload: Array(payload.readableBytesView), allocator: context.channel.allocator)),
                    promise: nil)
            case 0x8:
                context.close(promise: nil)
                return
            default:
                break
            }
        }
    }

    private static func headerEnd(_ view: ByteBufferView) -> Int? {
        let bytes = Array(view.prefix(4096))
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count where bytes[index] == 10 && bytes[index - 1] == 13 && bytes[index - 2] == 10 && bytes[index - 3] == 13 {
            return index + 1
        }
        return nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !upgraded { counters.failed.add(1) }
        counters.closed.add(1)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Counts sockets that connected, joined, and ended.
final class SocketCounters: Sendable {
    let connected = Counter()
    let joined = Counter()
    let closed = Counter()
    let failed = Counter()
}

/// Opens sockets with at most `concurrency` handshakes in flight, runs `body` while they are open, then closes
/// them all and waits until they are gone.
func withSockets<T: Sendable>(
    port: Int, sockets: [LoadSocket], concurrency: Int = 400, waitFor: KeyPath<SocketCounters, Counter> = \.joined,
    counters: SocketCounters = SocketCounters(), logger: Logger,
    _ body: @Sendable @escaping (SocketCounters) async throws -> T
) async throws -> T {
    try await withSockets(ports: [port], sockets: sockets, concurrency: concurrency, waitFor: waitFor, counters: counters, logger: logger, body)
}

/// The same over several nodes: socket i connects to `ports[i % ports.count]` (a round-robin balancer's spread).
func withSockets<T: Sendable>(
    ports: [Int], sockets: [LoadSocket], concurrency: Int = 400, waitFor: KeyPath<SocketCounters, Counter> = \.joined,
    counters: SocketCounters = SocketCounters(), logger: Logger,
    _ body: @Sendable @escaping (SocketCounters) async throws -> T
) async throws -> T {
    let started = Counter()
    let stop = StopFlag()
    let gate = counters[keyPath: waitFor]
    let addresses = try ports.map { try SocketAddress(ipAddress: "127.0.0.1", port: $0) }
    let opener = Task {
        for (index, socket) in sockets.enumerated() {
            let (port, address) = (ports[index % ports.count], addresses[index % ports.count])
            while started.value - gate.value - counters.failed.value >= concurrency && !stop.isSet {
                try? await Task.sleep(for: .milliseconds(2))
            }
            if stop.isSet { break }
            started.add(1)
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(LoadSocketHandler(socket: socket, counters: counters, port: port))
                    }
                }
            // A resolved address: `connect(host:port:)` runs a name resolution and Happy Eyeballs for every socket,
            // which made the generator's connects cost nearly as much CPU as the server's.
            bootstrap.connect(to: address).whenFailure { _ in
                counters.failed.add(1)
                counters.closed.add(1)
            }
        }
    }
    defer { opener.cancel() }
    let result: T
    do {
        result = try await body(counters)
    } catch {
        stop.set()
        await opener.value
        for socket in sockets { socket.close() }
        throw error
    }
    stop.set()
    await opener.value
    for socket in sockets { socket.close() }
    _ = await waitUntil(timeout: .seconds(30)) { counters.closed.value >= started.value }
    return result
}

/// Waits until `condition` holds or `timeout` passes; returns whether it held.
func waitUntil(timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

/// A receiver of room events: records fan-out latency and checks seq order.
final class RoomReceiver: FrameReceiver, @unchecked Sendable {
    // @unchecked: `tracker` is only touched by the one socket task that calls `receive`.
    private var tracker = SeqTracker()
    let stats: Mutex<DeliveryStats>
    let acks: Counter?

    init(stats: DeliveryStats, acks: Counter? = nil) {
        self.stats = Mutex(stats)
        self.acks = acks
    }

    func receive(_ frame: ByteBuffer) {
        if let message = Scan.message(frame) {
            let now = nowNanos()
            let current = stats.withLock { $0 }
            current.record(latencyMicros: now > message.sentNanos ? (now - message.sentNanos) / 1000 : 0)
            tracker.see(message.seq, stats: current)
        } else if let acks, Scan.hasPrefix(frame, Scan.ack) {
            acks.add(1)
        }
    }

    func use(_ next: DeliveryStats) { stats.withLock { $0 = next } }
    var lastSeq: Int64 { tracker.last }
}

/// A shared counter.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    func add(_ n: Int) { atomic.add(n, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}

/// A shared stop flag.
final class StopFlag: Sendable {
    private let atomic = Atomic<Bool>(false)
    func set() { atomic.store(true, ordering: .relaxed) }
    var isSet: Bool { atomic.load(ordering: .relaxed) }
}
