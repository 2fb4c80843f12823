import NIOConcurrencyHelpers
import NIOCore

/// Pings and session expiry for the WebSockets of one event loop, driven by one timer per loop instead of two per
/// connection: a NIO repeated task and a scheduled task with their promises and heap entries cost about 1 KB per
/// socket (measured with heaptrack on 18,000 idle sockets).
///
/// Each socket sits in one of `periodSeconds` one-second slots, picked at random so that sockets opened in the same
/// second do not ping in the same second ever after; every second the clock visits one slot. A socket is visited once
/// per period: it pings, closes a peer that did not answer the last ping, and schedules an exact timer for its
/// session's expiry once that falls within the next period (few sockets are that close to expiring).
final class ConnectionClock: @unchecked Sendable {
    // @unchecked: the slots and the ticker are only touched on `eventLoop` (asserted).
    let eventLoop: any EventLoop
    let periodSeconds: Int
    private var slots: [[ObjectIdentifier: WebSocketConnectionHandler]]
    private var members = 0
    private var cursor = 0
    private var ticker: RepeatedTask?

    private init(eventLoop: any EventLoop, periodSeconds: Int) {
        self.eventLoop = eventLoop
        self.periodSeconds = periodSeconds
        self.slots = Array(repeating: [:], count: periodSeconds)
    }

    private struct Key: Hashable {
        let loop: ObjectIdentifier
        let period: Int
    }

    private static let clocks = NIOLockedValueBox<[Key: ConnectionClock]>([:])

    /// The clock of `eventLoop` for sockets pinged every `periodSeconds` (one per loop and period, for the life of the
    /// process; servers in one process may use different periods).
    static func of(_ eventLoop: any EventLoop, periodSeconds: Int) -> ConnectionClock {
        let period = max(1, periodSeconds)
        return clocks.withLockedValue { clocks in
            let key = Key(loop: ObjectIdentifier(eventLoop), period: period)
            if let clock = clocks[key] { return clock }
            let clock = ConnectionClock(eventLoop: eventLoop, periodSeconds: period)
            clocks[key] = clock
            return clock
        }
    }

    /// Starts visiting `handler` once per period; returns its slot, for `remove`.
    func add(_ handler: WebSocketConnectionHandler) -> Int {
        eventLoop.assertInEventLoop()
        let slot = Int.random(in: 0..<periodSeconds)
        slots[slot][ObjectIdentifier(handler)] = handler
        members += 1
        if ticker == nil {
            ticker = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in tick() }
        }
        return slot
    }

    func remove(_ handler: WebSocketConnectionHandler, slot: Int) {
        eventLoop.assertInEventLoop()
        guard slots[slot].removeValue(forKey: ObjectIdentifier(handler)) != nil else { return }
        members -= 1
        // An idle loop does not wake every second.
        if members == 0 {
            ticker?.cancel()
            ticker = nil
        }
    }

    private func tick() {
        cursor = (cursor + 1) % periodSeconds
        // A copy: a visit may close its socket, which removes it from the slot.
        let visiting = slots[cursor]
        for handler in visiting.values { handler.clockVisit() }
    }
}
