import ChatCore
import PostgresNIO

extension PostgresChatStore: TransferTarget {
    public func requireEmptyForImport() async throws {
        try await guarded { [self] in
            guard try await isEmpty() else {
                throw PostgresSettingsError("the PostgreSQL database already holds tenants: migrate-data copies into an empty database only")
            }
        }
    }

    public func importAll(log: StoreTransfer.LogState, _ produce: ((StoreTransfer.Batch) async throws -> Void) async throws -> Void) async throws {
        let logger = self.logger
        try await client.withTransaction(logger: logger) { connection in
            try await produce { batch in
                guard !batch.rows.isEmpty else { return }
                // One multi-row INSERT per batch; PostgreSQL takes at most 65,535 parameters per statement.
                let width = batch.columns.count
                let perStatement = max(1, 60_000 / width)
                var start = 0
                while start < batch.rows.count {
                    let rows = batch.rows[start..<min(start + perStatement, batch.rows.count)]
                    var bindings = PostgresBindings(capacity: rows.count * width)
                    var tuples: [String] = []
                    tuples.reserveCapacity(rows.count)
                    for row in rows {
                        let first = bindings.count
                        for value in row {
                            switch value {
                            case .text(let text): bindings.append(text)
                            case .integer(let number): bindings.append(number)
                            case .bytes(let bytes): bindings.append(ByteBuffer(bytes: bytes))
                            case .null: bindings.appendNull()
                            }
                        }
                        tuples.append("(" + (1...width).map { "$\(first + $0)" }.joined(separator: ", ") + ")")
                    }
                    let sql = "INSERT INTO \(batch.table) (\(batch.columns.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", "))"
                    try await connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger)
                    start += rows.count
                }
            }
            // Every tenant continues above the source's highest id, so no cursor a client holds is ever ahead of
            // the log, and the pruning mark keeps telling clients behind it to resync.
            try await connection.query(
                "UPDATE tenants SET last_event_id = GREATEST(\(log.latest), COALESCE((SELECT MAX(id) FROM events e WHERE e.tenant_id = tenants.id), 0)), pruned_through = \(log.pruned)",
                logger: logger)
            // The one column a SQLite database has no copy of.
            try await connection.query(
                "UPDATE user_terms t SET username_key = lower(u.username) FROM users u WHERE u.tenant_id = t.tenant_id AND u.id = t.user_id AND t.username_key IS NULL",
                logger: logger)
        }
        // Statistics and visibility for the planner now, not when autovacuum gets to the new rows: until then it
        // prices every table as nearly empty and cannot answer from an index alone.
        try await client.query("VACUUM (ANALYZE)", logger: logger)
    }
}
