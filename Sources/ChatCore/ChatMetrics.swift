import Metrics

/// The server's own metrics, through swift-metrics: nothing is recorded unless the executable bootstraps a metrics
/// backend (`--metrics-address`). Names are Prometheus-style, with their unit and `_total` on counters.
public enum ChatMetrics {
    /// Durable events published (each once, whatever the number of recipients).
    public static let eventsPublished = Counter(label: "chat_events_published_total")
    /// Sends, closes, receipts… per group-commit transaction.
    public static let commitBatchSize = Recorder(label: "chat_commit_batch_size", aggregate: true)
    /// How long the store took to apply and commit one batch.
    public static let commitDuration = Timer(label: "chat_commit_duration_seconds")
    /// Realtime clients disconnected because they read too slowly (close code 4008).
    public static let slowConsumersDropped = Counter(label: "chat_slow_consumers_dropped_total")
    /// Refusals for going too fast, by what was limited.
    public static let loginRateLimited = Counter(label: "chat_rate_limited_total", dimensions: [("limit", "sign_in")])
    public static let framesRateLimited = Counter(label: "chat_rate_limited_total", dimensions: [("limit", "websocket_frames")])
    /// Cluster: durable events committed by other nodes that this node has not published yet (after a sweep).
    public static let eventLogLag = Gauge(label: "chat_event_log_lag_events")
    /// Database calls in flight (PostgreSQL: how much of the pool is in use).
    public static let databaseCallsInFlight = Meter(label: "chat_database_calls_in_flight")
    /// Agents: model calls refused by a limit, by which (their answer falls back: a digest, or a polite message).
    public static let agentTokenBudgetRefused = Counter(label: "chat_agent_refused_total", dimensions: [("limit", "daily_tokens")])
    public static let agentRateRefused = Counter(label: "chat_agent_refused_total", dimensions: [("limit", "requests_per_minute")])
    /// Agents: model calls that failed or timed out (the fallback answered).
    public static let agentModelFailures = Counter(label: "chat_agent_model_failures_total")
    /// Agents: tokens the model servers reported, by kind.
    public static let agentPromptTokens = Counter(label: "chat_agent_tokens_total", dimensions: [("kind", "prompt")])
    public static let agentCompletionTokens = Counter(label: "chat_agent_tokens_total", dimensions: [("kind", "completion")])
    /// Agents: replies posted.
    public static let agentReplies = Counter(label: "chat_agent_replies_total")

    static func refused(_ refusal: ModelRefusal) {
        switch refusal {
        case .overTokenBudget: agentTokenBudgetRefused.increment()
        case .overRequestRate: agentRateRefused.increment()
        }
    }

    static func used(_ usage: ModelUsage?) {
        guard let usage else { return }
        agentPromptTokens.increment(by: usage.promptTokens)
        agentCompletionTokens.increment(by: usage.completionTokens)
    }
}
