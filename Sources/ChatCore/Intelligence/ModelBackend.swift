import Synchronization

/// One message of a model conversation.
public struct ModelTurn: Sendable, Equatable {
    public enum Role: String, Sendable { case system, user, assistant }
    public var role: Role
    public var content: String

    public init(_ role: Role, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// Tokens a call used, as the server reported them.
public struct ModelUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var total: Int { promptTokens + completionTokens }

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

public struct ModelReply: Sendable, Equatable {
    public var text: String
    /// nil when the server did not say (the reservation then stands as the use).
    public var usage: ModelUsage?
    /// The model that answered, as the server named it.
    public var model: String?

    public init(text: String, usage: ModelUsage?, model: String?) {
        self.text = text
        self.usage = usage
        self.model = model
    }
}

/// A language model behind an agent. Implementations stream: `onText` gets the reply so far as it grows.
public protocol ModelBackend: Sendable {
    func complete(turns: [ModelTurn], maxTokens: Int, onText: @escaping @Sendable (String) async -> Void) async throws -> ModelReply
}

/// Makes the backend for an agent's settings (the server module knows HTTP; the core does not).
public protocol ModelBackendFactory: Sendable {
    /// nil for the built-in backend, or when the settings name no usable server.
    func backend(for agent: Agent) -> (any ModelBackend)?
}

/// Why a model was not asked.
public enum ModelRefusal: Error, Sendable, Equatable {
    case overTokenBudget
    case overRequestRate
}

/// An agent's limits: model calls per minute (counted in this process) and tokens per UTC day (counted in the
/// database, so every node shares them). Tokens are reserved before a call (the prompt's estimate plus the most the
/// reply may use) and settled after with what the server reports.
public final class AgentBudget: Sendable {
    let store: any ChatStore
    private let calls = Mutex<[String: [Int64]]>([:])

    public init(store: any ChatStore) {
        self.store = store
    }

    /// A rough token count for text (about four characters a token for English), used only to reserve.
    public static func estimateTokens(_ text: String) -> Int { text.utf8.count / 4 + 1 }

    public static func day(_ time: Timestamp) -> String { String(time.description.prefix(10)) }

    /// Reserves `tokens` for one call of `agent` at `now`; throws `ModelRefusal` when a limit is reached.
    public func reserve(_ agent: Agent, tokens: Int, now: Timestamp = .now()) async throws -> Reservation {
        let window = now.milliseconds - 60_000
        let allowed = calls.withLock { calls -> Bool in
            var recent = (calls[agent.id] ?? []).filter { $0 > window }
            defer { calls[agent.id] = recent }
            guard recent.count < agent.settings.requestsPerMinute else { return false }
            recent.append(now.milliseconds)
            return true
        }
        guard allowed else { throw ModelRefusal.overRequestRate }
        let day = Self.day(now)
        guard try await store.reserveTokens(
            tenantId: agent.tenantId, agentId: agent.id, day: day, tokens: tokens, budget: agent.settings.dailyTokenBudget)
        else {
            // The call was not made: it does not count against the rate either.
            calls.withLock { calls in
                if let index = calls[agent.id]?.lastIndex(of: now.milliseconds) { calls[agent.id]?.remove(at: index) }
            }
            throw ModelRefusal.overTokenBudget
        }
        return Reservation(tenantId: agent.tenantId, agentId: agent.id, day: day, tokens: tokens)
    }

    /// Replaces the reservation by what was used (nothing known: the reservation stands).
    public func settle(_ reservation: Reservation, used: ModelUsage?) async throws {
        guard let used else { return }
        try await store.settleTokens(
            tenantId: reservation.tenantId, agentId: reservation.agentId, day: reservation.day, delta: used.total - reservation.tokens)
    }

    public struct Reservation: Sendable {
        public let tenantId: String
        public let agentId: String
        public let day: String
        public let tokens: Int
    }
}

/// The model's answer did not come in time.
public struct ModelTimeout: Error, Sendable {}

extension AgentBudget {
    /// One budgeted call: reserves, asks within `timeout`, settles with the reported use and records it. Throws
    /// `ModelRefusal` (nothing was asked), `ModelTimeout`, or what the backend threw (the reservation then stands).
    public func call(
        _ agent: Agent, backend: any ModelBackend, turns: [ModelTurn], maxTokens: Int, timeout: Duration,
        onText: @escaping @Sendable (String) async -> Void = { _ in }
    ) async throws -> ModelReply {
        let estimate = turns.reduce(0) { $0 + Self.estimateTokens($1.content) + 4 } + maxTokens
        let reservation: Reservation
        do {
            reservation = try await reserve(agent, tokens: estimate)
        } catch let refusal as ModelRefusal {
            ChatMetrics.refused(refusal)
            throw refusal
        }
        do {
            let reply = try await withThrowingTaskGroup(of: ModelReply.self) { group in
                group.addTask { try await backend.complete(turns: turns, maxTokens: maxTokens, onText: onText) }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw ModelTimeout()
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            ChatMetrics.used(reply.usage)
            try? await settle(reservation, used: reply.usage)
            return reply
        } catch {
            ChatMetrics.agentModelFailures.increment()
            throw error
        }
    }
}

/// No models: every agent is built in (tests, and servers without an HTTP client).
public struct NoModelBackends: ModelBackendFactory {
    public init() {}
    public func backend(for agent: Agent) -> (any ModelBackend)? { nil }
}
