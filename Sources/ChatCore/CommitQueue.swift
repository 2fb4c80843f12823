import Synchronization

/// Group commit: writes that arrive while a transaction is committing wait and are then committed together in
/// the next transaction. Each caller resumes only after the transaction holding its write has committed and its
/// events have been published; the events of every batch are published in commit order.
///
/// There is no background task: the first caller to find the queue idle becomes the leader and commits; as soon as
/// its transaction has committed it hands leadership to the oldest waiting caller, which commits everything queued
/// by then while the previous leader publishes its batch (the one writer never waits for fan-out). A ticket per
/// batch keeps publication in commit order.
public final class CommitQueue: Sendable {
    private enum Signal: Sendable {
        case done(Result<AppliedWrite, any Error>)
        case lead
    }

    private struct Waiter {
        let command: WriteCommand
        let continuation: CheckedContinuation<Signal, Never>
    }

    private struct State {
        var waiting: [Waiter] = []
        var leaderActive = false
        /// Batches are numbered in commit order; `publishedThrough` is the last one whose events went out.
        var lastTicket = 0
        var publishedThrough = 0
        var turnWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var batches = 0
        var commands = 0
        var applyNanoseconds: UInt64 = 0
    }

    private let store: any ChatStore
    private let broker: any EventBroker
    private let recent: RecentEvents?
    private let maxBatch: Int
    private let state = Mutex(State())

    public init(store: any ChatStore, broker: any EventBroker, recent: RecentEvents? = nil, maxBatch: Int = 1024) {
        self.store = store
        self.broker = broker
        self.recent = recent
        self.maxBatch = maxBatch
    }

    /// Commits `command` (with whatever else is queued) and returns its outcome once it is durable.
    public func submit(_ command: WriteCommand) async throws -> AppliedWrite {
        let signal = await withCheckedContinuation { (continuation: CheckedContinuation<Signal, Never>) in
            let leadNow = state.withLock { s -> Bool in
                if s.leaderActive {
                    s.waiting.append(Waiter(command: command, continuation: continuation))
                    return false
                }
                s.leaderActive = true
                return true
            }
            if leadNow { continuation.resume(returning: .lead) }
        }
        switch signal {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(with: command).get()
        }
    }

    /// Batches committed so far and the commands in them, for the bench's rows-per-commit figure.
    public var statistics: (batches: Int, commands: Int) { state.withLock { ($0.batches, $0.commands) } }

    /// Time spent in the store's transactions (statements, commit and fsync), for the bench's writer-busy figure.
    public var applySeconds: Double { state.withLock { Double($0.applyNanoseconds) / 1e9 } }

    private func lead(with own: WriteCommand) async -> Result<AppliedWrite, any Error> {
        let (others, ticket) = state.withLock { s -> ([Waiter], Int) in
            let count = min(s.waiting.count, maxBatch - 1)
            let taken = Array(s.waiting.prefix(count))
            s.waiting.removeFirst(count)
            s.batches += 1
            s.commands += count + 1
            s.lastTicket += 1
            return (taken, s.lastTicket)
        }
        var results: [Result<AppliedWrite, any Error>]
        var logged: [LoggedEvent] = []
        do {
            let began = ContinuousClock.now
            let applied = try await store.apply([own] + others.map(\.command))
            let spent = ContinuousClock.now - began
            let nanoseconds = UInt64(spent.components.seconds) * 1_000_000_000 + UInt64(spent.components.attoseconds / 1_000_000_000)
            state.withLock { $0.applyNanoseconds += nanoseconds }
            ChatMetrics.commitDuration.recordNanoseconds(Int64(nanoseconds))
            ChatMetrics.commitBatchSize.record(others.count + 1)
            results = applied.map { $0.mapError { $0 as any Error } }
            for case .success(let write) in applied { logged += write.events }
        } catch {
            results = Array(repeating: .failure(error), count: others.count + 1)
        }
        // Committed: the next batch may start its transaction now.
        let next = state.withLock { s -> Waiter? in
            if s.waiting.isEmpty {
                s.leaderActive = false
                return nil
            }
            return s.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        // Framed here, while the next leader's transaction runs, not inside the writer's.
        let events = logged.map(ChatEvent.init)

        // Publish in commit order: wait for the batch before this one.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.publishedThrough == ticket - 1 { return true }
                s.turnWaiters[ticket] = continuation
                return false
            }
            if now { continuation.resume() }
        }
        // The ring first: a feed that subscribes after this publish finds these events there.
        recent?.append(events)
        await broker.publishCommitted(events)
        if !events.isEmpty { ChatMetrics.eventsPublished.increment(by: events.count) }
        let following = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.publishedThrough = ticket
            return s.turnWaiters.removeValue(forKey: ticket + 1)
        }
        following?.resume()
        for (index, waiter) in others.enumerated() {
            waiter.continuation.resume(returning: .done(results[index + 1]))
        }
        return results[0]
    }
}
