@testable import ChatSQLite
import GRDB
import Testing

/// The send path's statements bound through SQLite's C API keep every value as GRDB would: text (also empty text,
/// which has no buffer address), bytes as text, integers and NULL; errors come back as GRDB's `DatabaseError`.
@Suite struct RawStatementTests {
    @Test func valuesRoundTripAndErrorsAreDatabaseErrors() throws {
        let queue = try DatabaseQueue()
        try queue.write { db in
            try db.execute(sql: "CREATE TABLE t (a TEXT, b TEXT, c INTEGER, d TEXT, e TEXT NOT NULL UNIQUE)")
            try RawStatement(db, "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)")
                .execute(.text(""), .bytes(Array("é{\"x\":1}".utf8)), .integer(-42), .null, .text("key"))
            let row = try #require(try Row.fetchOne(db, sql: "SELECT a, b, c, d, typeof(a) AS ta FROM t"))
            #expect(row["a"] as String? == "" && row["ta"] as String == "text")
            #expect(row["b"] as String == "é{\"x\":1}")
            #expect(row["c"] as Int64 == -42)
            #expect(row["d"] as String? == nil)
            let found = try RawStatement(db, "SELECT c, d IS NULL FROM t WHERE e = ?").first(.text("key")) { ($0.integer(0), $0.integer(1)) }
            #expect(found?.0 == -42 && found?.1 == 1)
            #expect(try RawStatement(db, "SELECT c FROM t WHERE e = ?").first(.text("none")) { $0.integer(0) } == nil)
            #expect(throws: DatabaseError.self) {
                try RawStatement(db, "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)")
                    .execute(.null, .null, .null, .null, .text("key"))
            }
            // The statement was reset after the failure: it runs again. Empty bytes are empty text too.
            try RawStatement(db, "INSERT INTO t (a, b, c, d, e) VALUES (?, ?, ?, ?, ?)").execute(.null, .bytes([]), .null, .null, .text("other"))
            #expect(try String.fetchOne(db, sql: "SELECT typeof(b) FROM t WHERE e = 'other'") == "text")
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") == 2)
        }
    }
}
