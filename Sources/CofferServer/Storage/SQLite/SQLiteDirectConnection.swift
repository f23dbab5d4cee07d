import CofferProtocol
import Foundation
import SQLiteNIO
// SQLiteNIO runs every statement as its own hop to a thread pool and back. For the writer, where
// every save waits its turn, that hop dominated (4–6 per save, measured in docs/benchmarks.md), so
// the writer drives the same bundled SQLite library directly and runs a whole group commit in one
// hop. VaporCSQLite is SQLiteNIO's own copy of SQLite; importing it adds no second SQLite.
import VaporCSQLite

/// A synchronous SQLite connection for the single writer thread, with a prepared-statement cache.
///
/// Not thread-safe by design: `SQLiteWriteQueue` only ever uses it from its one writer thread,
/// one batch at a time.
final class SQLiteDirectConnection {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String) throws {
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let status = sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let message = handle.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "status \(status)"
            sqlite_nio_sqlite3_close_v2(handle)
            throw SQLiteWriteError(message: "cannot open \(path): \(message)")
        }
        sqlite_nio_sqlite3_busy_timeout(handle, 10_000)
    }

    deinit {
        close()
    }

    func close() {
        for statement in statements.values {
            sqlite_nio_sqlite3_finalize(statement)
        }
        statements.removeAll()
        if let handle {
            sqlite_nio_sqlite3_close_v2(handle)
            self.handle = nil
        }
    }

    var isClosed: Bool { handle == nil }

    /// Runs one statement and returns its rows.
    @discardableResult
    func query(_ sql: String, _ binds: [SQLiteData] = []) throws -> [SQLiteResultRow] {
        guard let handle else { throw SQLiteWriteError(message: "the database is closed") }
        let statement = try prepared(sql, handle: handle)
        // No sqlite3_clear_bindings: every call binds all parameters again (copied, so nothing
        // dangles), and clearing expires any statement whose plan looked at a bound value, which
        // made SQLite re-prepare such statements on every use.
        defer { sqlite_nio_sqlite3_reset(statement) }
        for (index, bind) in binds.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch bind {
            case .integer(let value): status = sqlite_nio_sqlite3_bind_int64(statement, position, Int64(value))
            case .float(let value): status = sqlite_nio_sqlite3_bind_double(statement, position, value)
            case .text(let value):
                status = sqlite_nio_sqlite3_bind_text64(statement, position, value, UInt64(value.utf8.count), SQLITE_TRANSIENT_DESTRUCTOR, UInt8(SQLITE_UTF8))
            case .blob(let value):
                status = value.withUnsafeReadableBytes {
                    sqlite_nio_sqlite3_bind_blob64(statement, position, $0.baseAddress, UInt64($0.count), SQLITE_TRANSIENT_DESTRUCTOR)
                }
            case .null: status = sqlite_nio_sqlite3_bind_null(statement, position)
            }
            guard status == SQLITE_OK else { throw error(handle) }
        }
        var rows: [SQLiteResultRow] = []
        let columnCount = sqlite_nio_sqlite3_column_count(statement)
        var names: [String] = []
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw error(handle) }
            if names.isEmpty {
                names = (0..<columnCount).map { String(cString: sqlite_nio_sqlite3_column_name(statement, $0)) }
            }
            var values: [String: SQLiteData] = [:]
            for column in 0..<columnCount {
                values[names[Int(column)]] = Self.value(statement, column)
            }
            rows.append(SQLiteResultRow(values: values))
        }
        return rows
    }

    private func prepared(_ sql: String, handle: OpaquePointer) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK, let statement else {
            throw error(handle)
        }
        statements[sql] = statement
        return statement
    }

    private static func value(_ statement: OpaquePointer, _ column: Int32) -> SQLiteData {
        switch sqlite_nio_sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER: return .integer(Int(sqlite_nio_sqlite3_column_int64(statement, column)))
        case SQLITE_FLOAT: return .float(sqlite_nio_sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            guard let text = sqlite_nio_sqlite3_column_text(statement, column) else { return .null }
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
            guard let bytes = sqlite_nio_sqlite3_column_blob(statement, column) else { return .blob(ByteBuffer()) }
            return .blob(ByteBuffer(bytes: UnsafeRawBufferPointer(start: bytes, count: count)))
        default: return .null
        }
    }

    private func error(_ handle: OpaquePointer) -> SQLiteWriteError {
        SQLiteWriteError(
            message: String(cString: sqlite_nio_sqlite3_errmsg(handle)),
            extendedCode: sqlite_nio_sqlite3_extended_errcode(handle)
        )
    }
}

/// SQLite's "copy this buffer now" destructor marker, which Swift cannot import as a macro.
private let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A row of a writer query, by column name.
struct SQLiteResultRow: Sendable {
    let values: [String: SQLiteData]

    func string(_ name: String) -> String? { values[name]?.string }
    func int(_ name: String) -> Int? { values[name]?.integer.map { Int($0) } }
    func int64(_ name: String) -> Int64? { values[name]?.integer.map { Int64($0) } }
    func timestamp(_ name: String) -> Timestamp { Timestamp(milliseconds: int64(name) ?? 0) }
}

/// A failure of the SQLite writer, with SQLite's own message (never request data).
struct SQLiteWriteError: Error, CustomStringConvertible {
    var message: String
    var extendedCode: Int32 = 0
    var description: String { "SQLite: \(message) (\(extendedCode))" }
}
