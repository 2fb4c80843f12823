import Synchronization

/// Why a connection's outbound queue closed; transports map each to a close code or a final message.
public enum CloseReason: Sendable, Equatable {
    /// The client did not read fast enough and the queue bound was hit.
    case overflow
    /// The credential the connection was opened with was revoked (logout).
    case revoked
    /// The credential expired.
    case expired
    /// The server is shutting down.
    case shutdown
    /// The client sent too much, too fast, or broke the protocol.
    case policy
    /// The connection ended normally.
    case finished
}

/// A bounded, single-consumer queue between publishers (the hub, request handlers) and one connection's writer.
/// Pushing never blocks: when the bound is hit the queue closes with `.overflow`, so a client that stops reading
/// costs at most `capacity` items of memory and is then disconnected (it resumes from its last cursor).
public final class OutboundQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var waiter: CheckedContinuation<Void, Never>?
        var spaceWaiters: [CheckedContinuation<Void, Never>] = []
        var closed: CloseReason?
        /// The summed `weigh` of the queued items.
        var weight = 0
    }

    public let capacity: Int
    private let state = Mutex(State())
    private let onClose: (@Sendable (CloseReason) -> Void)?
    private let weigh: (@Sendable (Element) -> Int)?
    private let maxWeight: Int

    /// `onClose` runs once, on the task that closes the queue (e.g. to force-close a connection whose writer is
    /// stuck behind a client that does not read).
    /// `weigh` and `maxWeight` bound the queue by size (bytes) as well as by count.
    public init(
        capacity: Int, maxWeight: Int = .max, weigh: (@Sendable (Element) -> Int)? = nil,
        onClose: (@Sendable (CloseReason) -> Void)? = nil
    ) {
        self.capacity = capacity
        self.maxWeight = maxWeight
        self.weigh = weigh
        self.onClose = onClose
    }

    /// Enqueues `item`; false when the queue is closed or has just overflowed.
    @discardableResult
    public func push(_ item: Element) -> Bool {
        let (accepted, waiter, spaceWaiters) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) in
            guard s.closed == nil else { return (false, nil, []) }
            var spaceWaiters: [CheckedContinuation<Void, Never>] = []
            let weight = weigh?(item) ?? 0
            if s.items.count >= capacity || s.weight + weight > maxWeight {
                s.closed = .overflow
                s.items.removeAll()
                s.weight = 0
                spaceWaiters = s.spaceWaiters
                s.spaceWaiters = []
            } else {
                s.items.append(item)
                s.weight += weight
            }
            let waiter = s.waiter
            s.waiter = nil
            return (s.closed == nil, waiter, spaceWaiters)
        }
        waiter?.resume()
        if !accepted {
            for w in spaceWaiters { w.resume() }
            onClose?(.overflow)
        }
        return accepted
    }

    /// Waits until at most `count` items are queued (or the queue closed): lets a long replay go at the pace the
    /// client reads instead of overflowing the queue.
    public func waitForRoom(atMost count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.items.count <= count || s.closed != nil { return true }
                s.spaceWaiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Closes the queue (the first reason wins). Items already queued are still handed out, except after overflow.
    public func close(_ reason: CloseReason) {
        let (first, waiter, spaceWaiters) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>]) in
            let first = s.closed == nil
            if first { s.closed = reason }
            defer {
                s.waiter = nil
                s.spaceWaiters = []
            }
            return (first, s.waiter, s.spaceWaiters)
        }
        waiter?.resume()
        for w in spaceWaiters { w.resume() }
        if first { onClose?(reason) }
    }

    public var closeReason: CloseReason? { state.withLock { $0.closed } }

    /// How many items wait to be taken.
    public var pendingCount: Int { state.withLock { $0.items.count } }

    /// Waits until there is something to do; returns every queued item (possibly none) and the close reason once
    /// closed. Cancelling the waiting task closes the queue with `.finished`.
    public func take() async -> (items: [Element], closed: CloseReason?) {
        while true {
            if let ready = state.withLock({ s -> ([Element], CloseReason?, [CheckedContinuation<Void, Never>])? in
                guard !s.items.isEmpty || s.closed != nil else { return nil }
                defer {
                    s.items.removeAll(keepingCapacity: true)
                    s.weight = 0
                    s.spaceWaiters = []
                }
                return (s.items, s.closed, s.spaceWaiters)
            }) {
                for w in ready.2 { w.resume() }
                return (ready.0, ready.1)
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if !s.items.isEmpty || s.closed != nil { return true }
                        s.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.close(.finished)
            }
        }
    }
}
