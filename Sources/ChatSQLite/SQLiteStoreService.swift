import Logging
import ServiceLifecycle

/// The SQLite store's life alongside the server: checkpoints the WAL every 200 ms on its own connection (passive:
/// never blocks the writer or readers), so that no commit has to; closes the database when the service group shuts
/// down. Place it before the application in the group, so it stops after the application.
public struct SQLiteStoreService: Service {
    let store: SQLiteChatStore
    let logger: Logger
    var interval: Duration = .milliseconds(200)

    public init(store: SQLiteChatStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await store.checkpoint()
            } catch is CancellationError {
                break
            } catch {
                logger.warning("checkpoint failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        try store.close()
    }
}
