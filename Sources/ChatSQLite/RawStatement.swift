import GRDB
import GRDBSQLite

/// One of GRDB's cached statements, driven through SQLite's C API for the statements every send runs. GRDB's
/// `execute(arguments:)` boxes each argument, checks it, and tells observers before and after each statement:
/// together with the array of arguments, close to half of the writer's time per send outside SQLite itself.
/// The statement is always reset before a call returns, so GRDB finds it idle whenever it uses it next.
struct RawStatement {
    private let statement: Statement
    private var handle: OpaquePointer { statement.sqliteStatement }

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
    }

    /// A value for one `?`, numbered from 1.
    enum Value {
        case text(String)
        case bytes([UInt8])  // UTF-8 text already encoded
        case integer(Int64)
        case null
    }

    /// Runs the statement to completion (an INSERT or UPDATE).
    func execute(_ values: Value...) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else { throw error(code) }
    }

    /// The first row's columns, read by `read`, or nil when there is no row.
    func first<T>(_ values: Value..., read: (Row) -> T) throws -> T? {
        try bind(values)
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return read(Row(handle))
        case SQLITE_DONE: return nil
        default: throw error(code)
        }
    }

    /// The current row of a stepped statement.
    struct Row {
        fileprivate let handle: OpaquePointer
        fileprivate init(_ handle: OpaquePointer) { self.handle = handle }

        func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
        func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    }

    private func bind(_ values: [Value]) throws {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32 = switch value {
            case .text(let text):
                text.utf8.withContiguousStorageIfAvailable { bindText($0, at: index) } ?? {
                    var copy = text
                    return copy.withUTF8 { bindText($0, at: index) }
                }()
            case .bytes(let bytes):
                bytes.withUnsafeBufferPointer { bindText($0, at: index) }
            case .integer(let number):
                sqlite3_bind_int64(handle, index, number)
            case .null:
                sqlite3_bind_null(handle, index)
            }
            guard code == SQLITE_OK else { throw error(code) }
        }
    }

    /// UTF-8 text; an empty buffer may have no address, which SQLite would take for NULL, so it binds "" instead.
    private func bindText(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int32) -> Int32 {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT) }
        return sqlite3_bind_text(handle, index, base, Int32(bytes.count), SQLITE_TRANSIENT)
    }

    private func error(_ code: Int32) -> DatabaseError {
        let message = sqlite3_db_handle(handle).flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }
}

/// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before the bind call returns (the C macro does not import).
private let SQLITE_TRANSIENT = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
