import CofferProtocol
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// The embedded backend: one SQLite file in WAL mode, one writer connection (every write
/// transaction is serialized through it, which also makes check-and-count limits exact) and a few
/// reader connections. Commits use `synchronous=FULL`, so a 2xx survives a crash or power loss.
public final class SQLiteStore: Store {
    private let writer: SQLiteWriteQueue
    private let readers: SQLiteReadPool
    private let writerThread: NIOThreadPool
    private let readerThreads: NIOThreadPool
    private let rateLimiter = MemoryRateLimiter()
    private let logger: Logger

    /// Opens (creating if needed) the database at `path`; `:memory:` is not supported because readers need a shared file.
    /// Connections for reads run on the caller's thread: one per core can be in use at once.
    static let pointReaderCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    public static func open(path: String, readers readerCount: Int = 4, logger: Logger) async throws -> SQLiteStore {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The writer gets a thread of its own, so writes never queue behind reads.
        let writerThread = NIOThreadPool(numberOfThreads: 1)
        writerThread.start()
        let readerThreads = NIOThreadPool(numberOfThreads: max(1, readerCount))
        readerThreads.start()
        let writer = try await writerThread.runIfActive { () throws -> SQLiteWriterHandle in
            let connection = try SQLiteDirectConnection(path: path)
            for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"] {
                try connection.query(pragma)
            }
            return SQLiteWriterHandle(connection)
        }
        var readerConnections: [SQLiteConnectionBox] = []
        // One point-read connection per core: the most that can run inline at once.
        for _ in 0..<(max(1, readerCount) + pointReaderCount) {
            readerConnections.append(try await readerThreads.runIfActive {
                let reader = try SQLiteDirectConnection(path: path)
                for pragma in ["PRAGMA foreign_keys=ON", "PRAGMA query_only=ON"] {
                    try reader.query(pragma)
                }
                return SQLiteConnectionBox(reader)
            })
        }
        return SQLiteStore(
            writer: writer, readers: readerConnections, writerThread: writerThread, readerThreads: readerThreads, logger: logger
        )
    }

    private init(
        writer: SQLiteWriterHandle, readers: [SQLiteConnectionBox], writerThread: NIOThreadPool, readerThreads: NIOThreadPool, logger: Logger
    ) {
        self.writer = SQLiteWriteQueue(connection: writer.connection, thread: writerThread)
        let threadCount = readers.count - Self.pointReaderCount
        self.readers = SQLiteReadPool(
            connections: Array(readers.prefix(threadCount)), pointReaders: Array(readers.dropFirst(threadCount)), threads: readerThreads
        )
        self.writerThread = writerThread
        self.readerThreads = readerThreads
        self.logger = logger
    }

    // MARK: Plumbing

    /// Runs `body` in a write transaction (group-committed), returning once it is durable.
    @discardableResult
    func write<T: Sendable>(_ body: @escaping SQLiteWriteQueue.Body<T>) async throws -> T {
        try await writer.write(body)
    }

    /// Runs a read of a few rows by key inside one read transaction, usually without a thread hop.
    func pointRead<T: Sendable>(_ body: @escaping @Sendable (SQLiteDirectConnection) throws -> T) async throws -> T {
        try await readers.pointRead(body)
    }

    /// Runs `body` on a reader inside one read transaction, so it sees one consistent snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteDirectConnection) throws -> T) async throws -> T {
        try await readers.read(body)
    }

    public func migrate() async throws {
        try await write { connection in
            try connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
        }
        for migration in SQLiteMigrations.all {
            let applied: Bool = try await write { connection in
                let rows = try connection.query("SELECT 1 FROM schema_migrations WHERE version = ?", [.integer(migration.version)])
                guard rows.isEmpty else { return false }
                for statement in migration.sql {
                    try connection.query(statement)
                }
                try connection.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(migration.name), .integer(Int(Timestamp.now.milliseconds))]
                )
                return true
            }
            if applied {
                logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
        }
    }

    public func ping() async throws {
        _ = try await read { try $0.query("SELECT 1") }
    }

    public func close() async throws {
        // The future-based close ignores task cancellation, so a cancelled shutdown still closes.
        await writer.close()
        await readers.close()
        try? await writerThread.shutdownGracefully()
        try? await readerThreads.shutdownGracefully()
    }

    // MARK: Blind backup

    public func registerBackupUser(id: String, at: Timestamp) async throws -> Bool {
        try await write { connection in
            let rows = try connection.query(
                "INSERT INTO backup_users (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                [.text(id), .integer(Int(at.milliseconds))]
            )
            return !rows.isEmpty
        }
    }

    public func saveBackup(_ save: BackupSave) async throws -> SavedBackup {
        // Few statements on purpose: every one is a hop to the writer thread, and the writer is
        // the one resource all saves share.
        try await write { connection in
            let now = save.at.milliseconds
            let head = try connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM backup_users WHERE id = ?1) AS registered,
                       (SELECT user_id FROM backups WHERE storage_key = ?2) AS owner
                """,
                [.text(save.userId), .text(save.storageKey)]
            ).first
            guard head?.int("registered") == 1 else { throw StoreError.userNotFound }
            let owner = head?.string("owner")
            if let owner, owner != save.userId { throw StoreError.storageKeyForbidden }
            try Self.enforce(
                connection: connection,
                sql: "SELECT at FROM backup_writes WHERE storage_key = ? AND at > ?",
                key: save.storageKey, limits: save.writeLimits, now: now, scope: "storage key"
            )
            let isNewKey = owner == nil
            if isNewKey {
                try Self.enforce(
                    connection: connection,
                    sql: "SELECT at FROM backup_writes WHERE user_id = ? AND new_key = 1 AND at > ?",
                    key: save.userId, limits: save.newKeyLimits, now: now, scope: "new storage keys for this user"
                )
                try Self.enforce(
                    connection: connection,
                    sql: "SELECT at FROM backup_writes WHERE address = ? AND new_key = 1 AND at > ?",
                    key: save.addressHash, limits: save.newKeyAddressLimits, now: now, scope: "new storage keys from this address"
                )
            }
            let version = try connection.query(
                """
                INSERT INTO backups (storage_key, user_id, current_version, created_at, updated_at) VALUES (?1, ?2, 1, ?3, ?3)
                ON CONFLICT (storage_key) DO UPDATE SET current_version = current_version + 1, updated_at = excluded.updated_at
                RETURNING current_version
                """,
                [.text(save.storageKey), .text(save.userId), .integer(Int(now))]
            ).first?.int("current_version") ?? 1
            try connection.query(
                "INSERT INTO backup_versions (storage_key, version, data, size, created_at) VALUES (?, ?, ?, ?, ?)",
                [.text(save.storageKey), .integer(version), .text(save.data), .integer(save.size), .integer(Int(now))]
            )
            if version > save.versionsKept {
                try connection.query(
                    "DELETE FROM backup_versions WHERE storage_key = ? AND version <= ?",
                    [.text(save.storageKey), .integer(version - save.versionsKept)]
                )
            }
            // The write log only feeds limits; with every backup limit off there is nothing to count.
            if !(save.writeLimits.isEmpty && save.newKeyLimits.isEmpty && save.newKeyAddressLimits.isEmpty) {
                try connection.query(
                    "INSERT INTO backup_writes (storage_key, user_id, address, new_key, at) VALUES (?, ?, ?, ?, ?)",
                    [.text(save.storageKey), .text(save.userId), .text(save.addressHash), .integer(isNewKey ? 1 : 0), .integer(Int(now))]
                )
            }
            return SavedBackup(version: version, updatedAt: save.at, size: save.size)
        }
    }

    /// Refuses with `rateLimited` when one more event for `key` would pass a limit.
    private static func enforce(
        connection: SQLiteDirectConnection, sql: String, key: String, limits: [RateLimit], now: Int64, scope: String
    ) throws {
        guard !limits.isEmpty else { return }
        let since = now - WriteLog.longestWindow(limits)
        let rows = try connection.query(sql, [.text(key), .integer(Int(since))])
        let events = rows.compactMap { $0.int64("at") }
        if case .limited(let retryAfter) = WriteLog.decide(events: events, limits: limits, now: now) {
            throw StoreError.rateLimited(retryAfter: retryAfter, scope: scope)
        }
    }

    public func backup(userId: String, storageKey: String, version: Int?) async throws -> StoredBackup {
        try await read { connection in
            guard let head = try connection.query(
                "SELECT user_id, current_version, created_at FROM backups WHERE storage_key = ?", [.text(storageKey)]
            ).first, head.string("user_id") == userId else {
                throw StoreError.backupNotFound
            }
            let wanted = version ?? head.int("current_version") ?? 0
            guard let row = try connection.query(
                "SELECT data, size, created_at FROM backup_versions WHERE storage_key = ? AND version = ?",
                [.text(storageKey), .integer(wanted)]
            ).first else {
                throw version == nil ? StoreError.backupNotFound : StoreError.versionNotFound
            }
            return StoredBackup(
                data: row.string("data") ?? "",
                createdAt: Timestamp(milliseconds: head.int64("created_at") ?? 0),
                updatedAt: Timestamp(milliseconds: row.int64("created_at") ?? 0),
                version: wanted,
                size: row.int("size") ?? 0
            )
        }
    }

    public func backupVersions(userId: String, storageKey: String) async throws -> [BackupVersionSummary] {
        try await read { connection in
            guard let head = try connection.query(
                "SELECT user_id FROM backups WHERE storage_key = ?", [.text(storageKey)]
            ).first, head.string("user_id") == userId else {
                throw StoreError.backupNotFound
            }
            return try connection.query(
                "SELECT version, size, created_at FROM backup_versions WHERE storage_key = ? ORDER BY version DESC",
                [.text(storageKey)]
            ).map { row in
                BackupVersionSummary(
                    version: row.int("version") ?? 0,
                    updatedAt: Timestamp(milliseconds: row.int64("created_at") ?? 0),
                    size: row.int("size") ?? 0
                )
            }
        }
    }

    public func deleteBackupUser(userId: String, storageKey: String?) async throws -> Int {
        try await write { connection in
            guard try !connection.query("SELECT 1 FROM backup_users WHERE id = ?", [.text(userId)]).isEmpty else {
                throw StoreError.userNotFound
            }
            let count = try connection.query(
                "SELECT COUNT(*) AS n FROM backups WHERE user_id = ?", [.text(userId)]
            ).first?.int("n") ?? 0
            if let storageKey {
                let owner = try connection.query(
                    "SELECT user_id FROM backups WHERE storage_key = ?", [.text(storageKey)]
                ).first?.string("user_id")
                guard owner == userId else { throw StoreError.storageKeyForbidden }
            } else if count > 0 {
                throw StoreError.storageKeyRequired
            }
            try connection.query("DELETE FROM backup_users WHERE id = ?", [.text(userId)])
            return count
        }
    }

    // MARK: Abuse control

    /// Address counters stay in memory: an SQLite database serves exactly one instance, and these
    /// counters need not survive a restart (backup write limits, which must, live in `backup_writes`).
    public func consumeRateLimit(bucket: String, limits: [RateLimit], at: Timestamp) async throws -> RateLimitDecision {
        rateLimiter.consume(bucket: bucket, limits: limits, at: at)
    }

    public func recordSignature(_ signature: String, expiresAt: Timestamp, at: Timestamp) async throws -> Bool {
        try await write { connection in
            let rows = try connection.query(
                "INSERT INTO request_signatures (signature, expires_at) VALUES (?, ?) ON CONFLICT (signature) DO NOTHING RETURNING signature",
                [.text(signature), .integer(Int(expiresAt.milliseconds))]
            )
            return !rows.isEmpty
        }
    }

    public func purgeExpired(at: Timestamp) async throws {
        rateLimiter.purge(at: at)
        try await write { connection in
            for table in ["request_signatures", "auth_challenges", "spent_refresh_tokens"] {
                try connection.query("DELETE FROM \(table) WHERE expires_at < ?", [.integer(Int(at.milliseconds))])
            }
            // One day is the longest window a write limit can have.
            try connection.query(
                "DELETE FROM backup_writes WHERE at < ?", [.integer(Int(at.milliseconds - RateLimit.Window.day.rawValue * 1000))]
            )
        }
    }
}

/// Hands the writer connection from the thread that opened it to the queue; used once, before
/// any write, so it is never shared (the unchecked Sendable is safe).
private struct SQLiteWriterHandle: @unchecked Sendable {
    let connection: SQLiteDirectConnection
    init(_ connection: SQLiteDirectConnection) { self.connection = connection }
}

