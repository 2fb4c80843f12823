import Synchronization

/// The newest durable events, in log order, kept in memory so that a resume from a recent cursor (every long-poll,
/// every reconnect) is served without reading the database, with the envelopes already encoded.
///
/// It is fed by the commit queue with each batch's events, in commit order, before they are published. Once the
/// first batch arrives it covers every event with an id above `floor`: nothing is written to the log except
/// through the commit queue, so no id above `floor` can be missing. Older cursors go to the store.
public final class RecentEvents: Sendable {
    private struct State {
        var ring: [ChatEvent?]
        var head = 0  // index of the oldest
        var count = 0
        var bytes = 0
        /// Every durable event with an id above this is in the ring; nil until the first batch.
        var floor: Int64?
        var latest: Int64 = 0

        func at(_ logical: Int) -> ChatEvent { ring[(head + logical) % ring.count]! }

        @discardableResult
        mutating func dropOldest() -> ChatEvent {
            let oldest = ring[head]!
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
            bytes -= RecentEvents.size(of: oldest)
            return oldest
        }
    }

    private let state: Mutex<State>
    private let maxBytes: Int

    /// At most `capacity` events and about `maxBytes` of encoded envelopes.
    public init(capacity: Int = 10_000, maxBytes: Int = 16 << 20) {
        precondition(capacity > 0)
        state = Mutex(State(ring: Array(repeating: nil, count: capacity)))
        self.maxBytes = maxBytes
    }

    /// Appends a committed batch's durable events (ids ascending).
    public func append(_ events: [ChatEvent]) {
        state.withLock { s in
            for event in events {
                guard let id = event.eventId, id > s.latest || s.floor == nil else { continue }
                if s.floor == nil { s.floor = id - 1 }
                let size = Self.size(of: event)
                while s.count > 0 && (s.count == s.ring.count || s.bytes + size > maxBytes) {
                    s.floor = s.dropOldest().eventId
                }
                s.ring[(s.head + s.count) % s.ring.count] = event
                s.count += 1
                s.bytes += size
                s.latest = id
            }
        }
    }

    /// Replaces the data of the `new_message` and `message_updated` events that carry a message (a delete: the store
    /// rewrote them the same way), so a replay from the ring shows what one from the store shows.
    public func rewrite(_ message: Message) {
        let marker = Array(MessageChange.idMarker(message.id).utf8)
        let data = JSONText.message(message)
        state.withLock { s in
            for logical in 0..<s.count {
                let index = (s.head + logical) % s.ring.count
                guard let event = s.ring[index], event.conversationId == message.conversationId,
                      event.type == .newMessage || event.type == .messageUpdated,
                      event.envelope.readableBytesView.firstRange(of: marker) != nil
                else { continue }
                let replacement = ChatEvent(
                    type: event.type, eventId: event.eventId, tenantId: event.tenantId, conversationId: event.conversationId, data: data)
                s.bytes += Self.size(of: replacement) - Self.size(of: event)
                s.ring[index] = replacement
            }
        }
    }

    /// Forgets events up to `id` (pruned from the log), so that their cursors get the same answer as from the store.
    public func discard(through id: Int64) {
        state.withLock { s in
            guard let floor = s.floor, id > floor else { return }
            while s.count > 0, s.at(0).eventId! <= id { s.dropOldest() }
            s.floor = id
            s.latest = max(s.latest, id)
        }
    }

    /// The newest event id seen, when the ring has started.
    public var latest: Int64? { state.withLock { $0.floor == nil ? nil : $0.latest } }

    /// Up to `limit` events after `cursor` that `include` accepts, in order; nil when the ring does not cover
    /// `cursor` (older than its oldest event, or newer than its newest, which a database read may know of already).
    public func events(after cursor: Int64, limit: Int, include: (ChatEvent) -> Bool) -> [ChatEvent]? {
        state.withLock { s -> [ChatEvent]? in
            guard let floor = s.floor, cursor >= floor, cursor <= s.latest else { return nil }
            // First event with an id above the cursor (ids ascend along the ring).
            var low = 0, high = s.count
            while low < high {
                let mid = (low + high) / 2
                if s.at(mid).eventId! <= cursor { low = mid + 1 } else { high = mid }
            }
            var result: [ChatEvent] = []
            var index = low
            while index < s.count && result.count < limit {
                let event = s.at(index)
                if include(event) { result.append(event) }
                index += 1
            }
            return result
        }
    }

    fileprivate static func size(of event: ChatEvent) -> Int {
        event.webSocketFrame.readableBytes + event.ssePrefix.readableBytes + 128
    }
}
