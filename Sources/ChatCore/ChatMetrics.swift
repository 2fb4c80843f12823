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
}
