import Foundation
// SQLiteNIO's own bundled copy of SQLite, driven synchronously: the cache lives inside the sync
// engine actor, which already serialises every access, so an async thread-pool hop per statement
// would only add latency (10 000 item writes per new-device sync).
import VaporCSQLite

/// A value bound to, or read from, the local cache.
enum LocalValue: Sendable, Equatable {
    case int(Int64)
    case text(String)
    case null

    var int: Int64? { if case .int(let value) = self { value } else { nil } }
    var text: String? { if case .text(let value) = self { value } else { nil } }
}

/// A synchronous SQLite connection for the device's local cache, with cached prepared statements.
/// Not thread-safe: exactly one owner (a `LocalCache` inside the `SyncEngine` actor) uses it.
final class LocalDatabase {
    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String) throws {
        let flags = SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        guard sqlite_nio_sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK else {
            let message = handle.flatMap { sqlite_nio_sqlite3_errmsg($0) }.map { String(cString: $0) } ?? "cannot open"
            sqlite_nio_sqlite3_close_v2(handle)
            handle = nil
            throw CofferError.localStorage("cannot open the local cache \(path): \(message)")
        }
        // Another `coffer` process may hold the write lock for a moment (a `sync --watch` beside an `item add`).
        sqlite_nio_sqlite3_busy_timeout(handle, 10_000)
    }

    deinit {
        for statement in statements.values { sqlite_nio_sqlite3_finalize(statement) }
        sqlite_nio_sqlite3_close_v2(handle)
    }

    /// Runs SQL without parameters (schema, pragmas); may hold several statements.
    func execute(_ sql: String) throws {
        guard sqlite_nio_sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw failure() }
    }

    /// Runs one statement and returns its rows, each as its columns in order.
    @discardableResult
    func query(_ sql: String, _ binds: [LocalValue] = []) throws -> [[LocalValue]] {
        let statement = try prepared(sql)
        defer { sqlite_nio_sqlite3_reset(statement) }
        for (index, bind) in binds.enumerated() {
            let position = Int32(index + 1)
            let status: Int32 = switch bind {
            case .int(let value): sqlite_nio_sqlite3_bind_int64(statement, position, value)
            case .text(let value): sqlite_nio_sqlite3_bind_text64(statement, position, value, UInt64(value.utf8.count), localTransient, UInt8(SQLITE_UTF8))
            case .null: sqlite_nio_sqlite3_bind_null(statement, position)
            }
            guard status == SQLITE_OK else { throw failure() }
        }
        var rows: [[LocalValue]] = []
        let columns = sqlite_nio_sqlite3_column_count(statement)
        while true {
            let status = sqlite_nio_sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw failure() }
            var row: [LocalValue] = []
            row.reserveCapacity(Int(columns))
            for column in 0..<columns {
                switch sqlite_nio_sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.int(sqlite_nio_sqlite3_column_int64(statement, column)))
                case SQLITE_TEXT:
                    let count = Int(sqlite_nio_sqlite3_column_bytes(statement, column))
                    if let text = sqlite_nio_sqlite3_column_text(statement, column) {
                        row.append(.text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)))
                    } else {
                        row.append(.null)
                    }
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Runs `body` in one transaction, rolling back if it throws. The commit is flushed to disk
    /// before this returns, unless `relaxed`: then a power cut (not a crash) may undo it, which
    /// is right only for what the server can give again.
    func transaction<T>(relaxed: Bool = false, _ body: () throws -> T) throws -> T {
        if relaxed { try execute("PRAGMA synchronous=NORMAL") }
        defer { if relaxed { try? execute("PRAGMA synchronous=FULL") } }
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite_nio_sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil) == SQLITE_OK, let statement else {
            throw failure()
        }
        statements[sql] = statement
        return statement
    }

    private func failure() -> CofferError {
        .localStorage("local cache: \(handle.map { String(cString: sqlite_nio_sqlite3_errmsg($0)) } ?? "closed")")
    }
}

/// SQLite's "copy this buffer now" destructor marker, which Swift cannot import as a macro.
private let localTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
