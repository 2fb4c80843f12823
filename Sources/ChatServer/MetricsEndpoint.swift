import ChatCore
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus

/// Prometheus metrics on a listener of their own (`--metrics-address`, off by default): the public listener, and a
/// reverse proxy in front of it, expose nothing. Counters and histograms come through swift-metrics (Hummingbird's
/// request metrics and `ChatMetrics`); the gauges below are read at each scrape.
public struct MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// Makes the registry the process's metrics backend. Call once, before the application is built.
    public static func bootstrap() -> MetricsEndpoint {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]
        MetricsSystem.bootstrap(factory)
        // Made now, so that every series is in the first scrape (at zero), not only once something happened.
        _ = (ChatMetrics.eventsPublished, ChatMetrics.commitBatchSize, ChatMetrics.commitDuration, ChatMetrics.slowConsumersDropped,
             ChatMetrics.loginRateLimited, ChatMetrics.framesRateLimited, ChatMetrics.eventLogLag, ChatMetrics.databaseCallsInFlight)
        return MetricsEndpoint(registry: registry)
    }

    /// The metrics listener as an application to run in the service group.
    public func application(host: String, port: Int, dependencies: ChatDependencies, logger: Logger) -> some ApplicationProtocol {
        let router = Router()
        let gauges = (
            connections: registry.makeGauge(name: "chat_live_connections", help: "Open WebSocket and SSE connections"),
            subscriptions: registry.makeGauge(name: "chat_hub_subscriptions", help: "Room and tenant subscriptions of this node"),
            batches: registry.makeGauge(name: "chat_commit_batches", help: "Group-commit transactions since start"),
            commands: registry.makeGauge(name: "chat_commit_commands", help: "Commands in those transactions"),
            applySeconds: registry.makeGauge(name: "chat_commit_apply_seconds", help: "Time spent in the store's transactions"))
        let registry = self.registry
        router.get("metrics") { _, _ -> Response in
            let commits = dependencies.chat.commits.statistics
            gauges.connections.set(Double(dependencies.connections.count))
            gauges.subscriptions.set(Double(dependencies.hub.subscriberCount))
            gauges.batches.set(Double(commits.batches))
            gauges.commands.set(Double(commits.commands))
            gauges.applySeconds.set(dependencies.chat.commits.applySeconds)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        var metricsLogger = logger
        metricsLogger[metadataKey: "listener"] = "metrics"
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "chat-server-metrics"), logger: metricsLogger)
    }
}
