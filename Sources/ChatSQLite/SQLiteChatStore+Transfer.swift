import Foundation
import ChatCore
import GRDB

extension SQLiteChatStore: TransferSource {
    /// Reads every table batch by batch in rowid or key order. No server may write meanwhile: `migrate-data` holds
    /// the file's serve lock while it copies.
    public func exportBatches(batchSize: Int, _ receive: (StoreTransfer.Batch) async throws -> Void) async throws {
        for (table, columns) in StoreTransfer.tables {
            // Messages: thread roots first, since a reply's foreign key points at its root.
            let order = switch table {
            case "messages": "(thread_parent_id IS NOT NULL), rowid"
            case "events": "id"
            case "participants": "conversation_id, user_id"  // WITHOUT ROWID tables
            case "user_terms": "tenant_id, term, user_id"
            case "conversation_memory": "tenant_id, conversation_id, kind"
            case "reactions": "tenant_id, message_id, emoji, user_id"
            case "mentions": "tenant_id, message_id, user_id"
            case "agents": "tenant_id, user_id"
            case "agent_usage": "tenant_id, agent_id, day"
            default: "rowid"
            }
            var offset = 0
            while true {
                let rows = try await pool.read { db in
                    try Row.fetchAll(
                        db, sql: "SELECT \(columns.joined(separator: ", ")) FROM \(table) ORDER BY \(order) LIMIT ? OFFSET ?",
                        arguments: [batchSize, offset])
                }
                if rows.isEmpty { break }
                let values = rows.map { row in
                    columns.map { column -> StoreTransfer.Value in
                        switch row[column] as DatabaseValue {
                        case let value where value.isNull: .null
                        case let value where { if case .blob = value.storage { true } else { false } }():
                            .bytes(Array(Data.fromDatabaseValue(value) ?? Data()))
                        case let value: Int64.fromDatabaseValue(value).map(StoreTransfer.Value.integer)
                            ?? .text(String.fromDatabaseValue(value) ?? "")
                        }
                    }
                }
                try await receive(StoreTransfer.Batch(table: table, columns: columns, rows: values))
                offset += rows.count
            }
        }
    }

    public func exportLogState() async throws -> StoreTransfer.LogState {
        let bounds = try await eventLogBounds(tenantId: "")
        return StoreTransfer.LogState(latest: bounds.latest, pruned: bounds.pruned)
    }
}
