import ChatCore
import NIOCore
import Synchronization

/// The send side of one WebSocket: complete frames pushed from any thread (the hub's publisher, the session's frame
/// task), written on the channel's event loop by its connection handler. No task waits on it: the loop drains it
/// when frames arrive and again when the socket becomes writable. Bounded by count and bytes like every realtime
/// client's queue: a client that stops reading fills it and is closed with 4008 (it resumes from its last eventId).
final class WebSocketOutbox: RealtimeClient, RevocationWatcher {
    private struct State {
        var frames: [ByteBuffer] = []
        var bytes = 0
        var closed: CloseReason?
        /// A drain is scheduled on the loop, or the outbox is parked until the socket is writable again.
        var scheduled = false
        var roomWaiters: [(limit: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    let capacity: Int
    let maxBytes: Int
    let eventLoop: any EventLoop
    private let state = Mutex(State())
    /// The connection's handler while it is in the pipeline: touched on the loop only, so no lock.
    private let handler: NIOLoopBoundBox<WebSocketConnectionHandler?>

    init(capacity: Int, maxBytes: Int, eventLoop: any EventLoop) {
        self.capacity = capacity
        self.maxBytes = maxBytes
        self.eventLoop = eventLoop
        self.handler = .makeEmptyBox(valueType: WebSocketConnectionHandler.self, eventLoop: eventLoop)
    }

    /// Connects the outbox to its handler (on the loop, when the handler is added); `nil` disconnects it.
    func attach(_ handler: WebSocketConnectionHandler?) {
        self.handler.value = handler
    }

    /// Queues a complete frame (an event's shared `webSocketFrame`); false once closed or just overflowed.
    @discardableResult
    func push(frame: ByteBuffer) -> Bool {
        enum Outcome { case queued, queuedFirst, overflowed, closed }
        let outcome = state.withLock { s -> Outcome in
            guard s.closed == nil else { return .closed }
            if s.frames.count >= capacity || s.bytes + frame.readableBytes > maxBytes {
                s.closed = .overflow
                s.frames = []
                s.bytes = 0
                return .overflowed
            }
            s.frames.append(frame)
            s.bytes += frame.readableBytes
            if s.scheduled { return .queued }
            s.scheduled = true
            return .queuedFirst
        }
        switch outcome {
        case .queued: return true
        case .queuedFirst:
            LoopDrainer.of(eventLoop).schedule(self)
            return true
        case .overflowed:
            overflowed()
            return false
        case .closed:
            return false
        }
    }

    /// Queues a text frame around `payload` (a control frame: joined, ack, error).
    @discardableResult
    func push(text payload: ByteBuffer) -> Bool {
        push(frame: WebSocketFraming.frame(opcode: WebSocketFraming.text, payload: payload))
    }

    private func overflowed() {
        ChatMetrics.slowConsumersDropped.increment()
        wake()
        eventLoop.execute { self.runDrain() }
    }

    /// Closes the outbox (the first reason wins); the handler then writes what is queued (nothing after an
    /// overflow) and the close frame.
    func close(_ reason: CloseReason) {
        let first = state.withLock { s -> Bool in
            guard s.closed == nil else { return false }
            s.closed = reason
            if reason == .overflow {
                s.frames = []
                s.bytes = 0
            }
            return true
        }
        guard first else { return }
        if reason == .overflow {
            overflowed()
        } else {
            wake()
            eventLoop.execute { self.runDrain() }
        }
    }

    /// Signed out: the socket gets 4001.
    func credentialRevoked() { close(.revoked) }

    var closeReason: CloseReason? { state.withLock { $0.closed } }

    /// On the loop: what to write now. While the socket is not writable and the outbox is open, nothing (the outbox
    /// stays parked, still counting its frames against the bound); once closed, everything left.
    func take(writable: Bool) -> (frames: [ByteBuffer], closed: CloseReason?) {
        let (frames, closed, waiters) = state.withLock { s -> ([ByteBuffer], CloseReason?, [CheckedContinuation<Void, Never>]) in
            guard writable || s.closed != nil else { return ([], nil, []) }
            s.scheduled = false
            let frames = s.frames
            s.frames = []
            s.bytes = 0
            let waiters = s.roomWaiters.map(\.continuation)
            s.roomWaiters = []
            return (frames, s.closed, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return (frames, closed)
    }

    /// Runs the handler's drain (on the loop).
    func runDrain() {
        handler.value?.drain()
    }

    /// Waits until at most `count` frames are queued (or the outbox closed): a long replay goes at the pace the
    /// client reads instead of overflowing the bound.
    func waitForRoom(atMost count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.frames.count <= count || s.closed != nil { return true }
                s.roomWaiters.append((count, continuation))
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func wake() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            defer { s.roomWaiters = [] }
            return s.roomWaiters.map(\.continuation)
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Coalesces fan-out per event loop: outboxes that received frames (one commit batch reaching a room) are drained in
/// one `execute` on their loop instead of one per frame, and each socket is flushed once per drain, so several frames
/// for one socket leave in one `writev`.
final class LoopDrainer: Sendable {
    private struct Pending {
        var outboxes: [WebSocketOutbox] = []
        var scheduled = false
    }

    let eventLoop: any EventLoop
    private let pending = Mutex(Pending())

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    private static let drainers = Mutex<[ObjectIdentifier: LoopDrainer]>([:])

    /// The drainer of `eventLoop` (one per loop, for the life of the process).
    static func of(_ eventLoop: any EventLoop) -> LoopDrainer {
        drainers.withLock { drainers in
            if let drainer = drainers[ObjectIdentifier(eventLoop)] { return drainer }
            let drainer = LoopDrainer(eventLoop: eventLoop)
            drainers[ObjectIdentifier(eventLoop)] = drainer
            return drainer
        }
    }

    func schedule(_ outbox: WebSocketOutbox) {
        let first = pending.withLock { p -> Bool in
            p.outboxes.append(outbox)
            if p.scheduled { return false }
            p.scheduled = true
            return true
        }
        if first { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let outboxes = pending.withLock { p -> [WebSocketOutbox] in
            p.scheduled = false
            defer { p.outboxes = [] }
            return p.outboxes
        }
        for outbox in outboxes { outbox.runDrain() }
    }
}
