import GRDB

/// A consistent copy of a live database: SQLite's online backup run inside one read transaction of the source, so
/// the copy is the database as of one moment — every commit before it, none after — while the server keeps writing
/// (WAL lets readers and the one writer run side by side, also across processes).
public enum SQLiteBackup {
    /// Copies `source` into a new file `destination`, checks the copy and returns how many messages it holds.
    public static func copy(from source: String, to destination: String) throws -> (messages: Int, events: Int) {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let reader = try DatabasePool(path: source, configuration: configuration)
        defer { try? reader.close() }
        let copy = try DatabaseQueue(path: destination)
        defer { try? copy.close() }
        try reader.backup(to: copy)
        return try copy.read { db in
            let check = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            guard check == ["ok"] else { throw BackupError(description: "the copy failed its integrity check: \(check.prefix(3))") }
            return (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM messages") ?? 0, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0)
        }
    }
}

public struct BackupError: Error, CustomStringConvertible {
    public let description: String
}
