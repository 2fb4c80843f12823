/// Rows moving from one store to another (`chat-server migrate-data`): table by table in an order that satisfies
/// every foreign key, with ids, `seq`, event ids and credentials unchanged, so clients, cursors and sessions survive.
public enum StoreTransfer {
    /// One value of a column; both stores keep text, 64-bit integers and bytes.
    public enum Value: Sendable, Equatable {
        case text(String)
        case integer(Int64)
        case bytes([UInt8])
        case null
    }

    /// Some rows of one table, with the column names in the order of each row's values.
    public struct Batch: Sendable {
        public var table: String
        public var columns: [String]
        public var rows: [[Value]]

        public init(table: String, columns: [String], rows: [[Value]]) {
            self.table = table
            self.columns = columns
            self.rows = rows
        }
    }

    /// The tables in copy order (a row's foreign keys point to tables earlier in the list) and their columns.
    public static let tables: [(name: String, columns: [String])] = [
        ("tenants", ["id", "slug", "name", "created_at"]),
        ("users", ["id", "tenant_id", "username", "display_name", "password_hash", "created_at", "is_bot"]),
        ("user_terms", ["tenant_id", "term", "user_id"]),
        ("agents", ["tenant_id", "user_id", "backend", "base_url", "model", "api_key_env", "system_prompt", "daily_token_budget", "requests_per_minute", "created_at"]),
        ("agent_usage", ["tenant_id", "agent_id", "day", "tokens", "requests"]),
        ("credentials", ["hash", "tenant_id", "user_id", "method", "csrf_token", "created_at", "expires_at"]),
        ("conversations", ["id", "tenant_id", "title", "created_by", "created_at", "updated_at", "last_message_at", "closed_at", "last_seq", "participant_count"]),
        ("participants", ["tenant_id", "conversation_id", "user_id", "joined_at", "last_read_seq", "last_read_message_id"]),
        ("messages", ["id", "tenant_id", "conversation_id", "sender_id", "thread_parent_id", "content", "created_at", "seq", "reply_count", "client_message_id", "edited_at", "deleted_at", "mention_ids", "attachments"]),
        ("events", ["id", "tenant_id", "conversation_id", "type", "data", "created_at"]),
        ("reactions", ["tenant_id", "message_id", "emoji", "user_id", "created_at"]),
        ("mentions", ["tenant_id", "message_id", "user_id", "conversation_id", "seq"]),
        ("files", ["tenant_id", "id", "message_id", "conversation_id", "name", "content_type", "size", "data", "created_at"]),
        ("conversation_memory", ["tenant_id", "conversation_id", "kind", "through_seq", "body", "updated_at"]),
    ]

    /// Where the source's event log stands: the highest event id ever issued and the highest pruned. The target
    /// continues every tenant's ids above `latest`, so a cursor from the source is never ahead of the target.
    public struct LogState: Sendable {
        public var latest: Int64
        public var pruned: Int64
        public init(latest: Int64, pruned: Int64) {
            self.latest = latest
            self.pruned = pruned
        }
    }
}

/// A store that can hand over everything it holds.
public protocol TransferSource: Sendable {
    /// Every row of every table of `StoreTransfer.tables`, in that order, in batches of at most `batchSize` rows
    /// (messages: thread roots before their replies).
    func exportBatches(batchSize: Int, _ receive: (StoreTransfer.Batch) async throws -> Void) async throws
    func exportLogState() async throws -> StoreTransfer.LogState
}

/// A store that can take everything over, into an empty database.
public protocol TransferTarget: Sendable {
    /// Checks that the target holds no tenant yet.
    func requireEmptyForImport() async throws
    /// Imports, in one transaction, every batch `produce` hands to the function it is given, then sets each tenant's
    /// event counter and pruning mark from `log`. Nothing is kept if anything fails.
    func importAll(log: StoreTransfer.LogState, _ produce: ((StoreTransfer.Batch) async throws -> Void) async throws -> Void) async throws
}
