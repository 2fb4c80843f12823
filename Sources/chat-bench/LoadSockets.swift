import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Synchronization
import WSClient

/// What a bench socket does with each frame it receives; called from that socket's task only.
protocol FrameReceiver: AnyObject, Sendable {
    func receive(_ frame: ByteBuffer)
}

/// One bench WebSocket: a token, frames to send once open, and a stream of frames to send later.
final class LoadSocket: Sendable {
    let token: String
    let initialFrames: [String]
    let receiver: (any FrameReceiver)?
    let outgoing: AsyncStream<String>.Continuation
    fileprivate let stream: AsyncStream<String>

    init(token: String, initialFrames: [String], receiver: (any FrameReceiver)?) {
        self.token = token
        self.initialFrames = initialFrames
        self.receiver = receiver
        (stream, outgoing) = AsyncStream<String>.makeStream(bufferingPolicy: .unbounded)
    }

    func send(_ frame: String) { outgoing.yield(frame) }
    func close() { outgoing.finish() }
}

/// Counts sockets that connected, joined, and ended.
final class SocketCounters: Sendable {
    let connected = Counter()
    let joined = Counter()
    let closed = Counter()
    let failed = Counter()
}

/// Opens sockets in waves of `concurrency`, runs `body` while they are open, then closes them all.
func withSockets<T: Sendable>(
    port: Int, sockets: [LoadSocket], concurrency: Int = 400, waitFor: KeyPath<SocketCounters, Counter> = \.joined,
    counters: SocketCounters = SocketCounters(), logger: Logger,
    _ body: @Sendable @escaping (SocketCounters) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            defer { for socket in sockets { socket.close() } }
            return try await body(counters)
        }
        var started = 0
        for socket in sockets {
            // Keep at most `concurrency` handshakes in flight.
            while started - counters[keyPath: waitFor].value - counters.failed.value >= concurrency {
                try await Task.sleep(for: .milliseconds(2))
            }
            started += 1
            group.addTask {
                await runSocket(port: port, socket: socket, counters: counters, logger: logger)
                return nil
            }
        }
        var result: T? = nil
        for try await value in group where value != nil { result = value }
        return result!
    }
}

private func runSocket(port: Int, socket: LoadSocket, counters: SocketCounters, logger: Logger) async {
    var headers = HTTPFields()
    headers[.authorization] = "Bearer \(socket.token)"
    do {
        try await WebSocketClient.connect(
            url: "ws://127.0.0.1:\(port)/api/chat/ws",
            configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers),
            eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger
        ) { inbound, outbound, _ in
            counters.connected.add(1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for frame in socket.initialFrames { try await outbound.write(.text(frame)) }
                    for await frame in socket.stream { try await outbound.write(.text(frame)) }
                    try await outbound.close(.normalClosure, reason: nil)
                }
                var joined = false
                for try await frame in inbound {
                    if !joined, Scan.hasPrefix(frame.data, Scan.joined) {
                        joined = true
                        counters.joined.add(1)
                    }
                    socket.receiver?.receive(frame.data)
                }
                group.cancelAll()
            }
        }
    } catch {
        counters.failed.add(1)
    }
    counters.closed.add(1)
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
