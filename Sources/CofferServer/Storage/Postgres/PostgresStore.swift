import CofferProtocol
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL backend, for scale and for several server instances sharing one database.
/// Per-user and per-key limits are serialized by row and advisory locks inside each write
/// transaction, so concurrent instances can never pass them.
public final class PostgresStore: Store {
    /// The connection pool; `run()` must be running (see `StoreService`).
    public let client: PostgresClient
    /// For a connection of its own outside the pool (LISTEN needs one that stays open).
    public let connectionConfiguration: PostgresConnection.Configuration
    let logger: Logger

    public init(url: String, maximumConnections: Int = 16, logger: Logger) throws(ConfigurationError) {
        let target = try PostgresTarget(url: url)
        var configuration = target.clientConfiguration
        configuration.options.maximumConnections = max(1, maximumConnections)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.connectionConfiguration = try target.connectionConfiguration()
        self.logger = logger
    }

    /// Announces `payload` on `channel` to every listening instance (at most 8000 bytes).
    public func notify(channel: String, payload: String) async throws {
        try await client.query("SELECT pg_notify(\(channel), \(payload))", logger: logger)
    }

    /// The pool configuration for a `postgres://` URL (see `PostgresTarget` for what it accepts,
    /// Unix sockets included).
    public static func configuration(url: String) throws(ConfigurationError) -> PostgresClient.Configuration {
        try PostgresTarget(url: url).clientConfiguration
    }

    /// Keeps the pool alive until cancelled.
    public func run() async {
        await client.run()
    }

    public func migrate() async throws {
        try await client.withConnection { connection in
            // One instance migrates at a time; the others wait and then find nothing to do.
            try await connection.query("SELECT pg_advisory_lock(7310411)", logger: logger)
            do {
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                    logger: logger
                )
                for migration in PostgresMigrations.all {
                    try await connection.withTransaction(logger: logger) { connection in
                        let rows = try await connection.query(
                            "SELECT 1 FROM schema_migrations WHERE version = \(migration.version)", logger: logger
                        ).collect()
                        guard rows.isEmpty else { return }
                        for statement in migration.sql {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await connection.query(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(Timestamp.now.milliseconds))",
                            logger: logger
                        )
                        logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                    }
                }
                try await connection.query("SELECT pg_advisory_unlock(7310411)", logger: logger)
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(7310411)", logger: logger)
                throw error
            }
        }
    }

    public func ping() async throws {
        try await client.query("SELECT 1", logger: logger)
    }

    public func close() async throws {}

    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            // Surface the domain error thrown inside the closure, not the wrapper.
            if let closureError = error.closureError { throw Self.retryable(closureError) ?? closureError }
            if let commitError = error.commitError, let busy = Self.retryable(commitError) { throw busy }
            throw error
        }
    }

    /// Deadlock and serialization failures roll the whole transaction back: the caller may retry.
    private static func retryable(_ error: any Error) -> StoreError? {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return nil }
        return state == "40P01" || state == "40001" ? .busy : nil
    }

    // MARK: Blind backup

    public func registerBackupUser(id: String, at: Timestamp) async throws -> Bool {
        let rows = try await client.query(
            "INSERT INTO backup_users (id, created_at) VALUES (\(id), \(at.milliseconds)) ON CONFLICT (id) DO NOTHING RETURNING id",
            logger: logger
        ).collect()
        return !rows.isEmpty
    }

    public func saveBackup(_ save: BackupSave) async throws -> SavedBackup {
        try await transaction { connection in
            let now = save.at.milliseconds
            // The user row lock serializes every write of this user (and so of each of its keys).
            // The key is read by a second statement on purpose: under READ COMMITTED a statement that
            // waited for the lock still joins rows from its own, older snapshot.
            guard try await !connection.query(
                "SELECT 1 FROM backup_users WHERE id = \(save.userId) FOR UPDATE", logger: logger
            ).collect().isEmpty else {
                throw StoreError.userNotFound
            }
            var existing: (owner: String, version: Int)?
            for try await (owner, version) in try await connection.query(
                "SELECT user_id, current_version FROM backups WHERE storage_key = \(save.storageKey)", logger: logger
            ).decode((String, Int).self) {
                existing = (owner, version)
            }
            if let existing, existing.owner != save.userId {
                throw StoreError.storageKeyForbidden
            }
            try await enforce(
                connection,
                query: "SELECT at FROM backup_writes WHERE storage_key = \(save.storageKey) AND at > \(now - WriteLog.longestWindow(save.writeLimits))",
                limits: save.writeLimits, now: now, scope: "storage key"
            )
            let isNewKey = existing == nil
            if isNewKey {
                try await enforce(
                    connection,
                    query: "SELECT at FROM backup_writes WHERE user_id = \(save.userId) AND new_key AND at > \(now - WriteLog.longestWindow(save.newKeyLimits))",
                    limits: save.newKeyLimits, now: now, scope: "new storage keys for this user"
                )
                if !save.newKeyAddressLimits.isEmpty {
                    // Different users from one address are not serialized by the user lock; this is.
                    try await connection.query(
                        "SELECT pg_advisory_xact_lock(hashtextextended(\("address:" + save.addressHash), 0))", logger: logger
                    )
                }
                try await enforce(
                    connection,
                    query: "SELECT at FROM backup_writes WHERE address = \(save.addressHash) AND new_key AND at > \(now - WriteLog.longestWindow(save.newKeyAddressLimits))",
                    limits: save.newKeyAddressLimits, now: now, scope: "new storage keys from this address"
                )
                try await connection.query(
                    "INSERT INTO backups (storage_key, user_id, current_version, created_at, updated_at) VALUES (\(save.storageKey), \(save.userId), 0, \(now), \(now))",
                    logger: logger
                )
            }
            let version = (existing?.version ?? 0) + 1
            try await connection.query(
                "INSERT INTO backup_versions (storage_key, version, data, size, created_at) VALUES (\(save.storageKey), \(version), \(save.data), \(Int64(save.size)), \(now))",
                logger: logger
            )
            try await connection.query(
                "UPDATE backups SET current_version = \(version), updated_at = \(now) WHERE storage_key = \(save.storageKey)",
                logger: logger
            )
            if version > save.versionsKept {
                try await connection.query(
                    "DELETE FROM backup_versions WHERE storage_key = \(save.storageKey) AND version <= \(version - save.versionsKept)",
                    logger: logger
                )
            }
            // The write log only feeds limits; with every backup limit off there is nothing to count.
            if !(save.writeLimits.isEmpty && save.newKeyLimits.isEmpty && save.newKeyAddressLimits.isEmpty) {
                try await connection.query(
                    "INSERT INTO backup_writes (storage_key, user_id, address, new_key, at) VALUES (\(save.storageKey), \(save.userId), \(save.addressHash), \(isNewKey), \(now))",
                    logger: logger
                )
            }
            return SavedBackup(version: version, updatedAt: save.at, size: save.size)
        }
    }

    private func enforce(_ connection: PostgresConnection, query: PostgresQuery, limits: [RateLimit], now: Int64, scope: String) async throws {
        guard !limits.isEmpty else { return }
        var events: [Int64] = []
        for try await at in try await connection.query(query, logger: logger).decode(Int64.self) {
            events.append(at)
        }
        if case .limited(let retryAfter) = WriteLog.decide(events: events, limits: limits, now: now) {
            throw StoreError.rateLimited(retryAfter: retryAfter, scope: scope)
        }
    }

    public func backup(userId: String, storageKey: String, version: Int?) async throws -> StoredBackup {
        // One statement, so head and version come from one snapshot.
        let rows = try await client.query(
            """
            SELECT b.user_id, b.created_at, v.version, v.data, v.size, v.created_at
            FROM backups b LEFT JOIN backup_versions v
              ON v.storage_key = b.storage_key AND v.version = COALESCE(\(version), b.current_version)
            WHERE b.storage_key = \(storageKey)
            """,
            logger: logger
        )
        for try await (owner, createdAt, foundVersion, data, size, updatedAt) in rows.decode(
            (String, Int64, Int?, String?, Int64?, Int64?).self
        ) {
            guard owner == userId else { throw StoreError.backupNotFound }
            guard let foundVersion, let data, let size, let updatedAt else {
                throw version == nil ? StoreError.backupNotFound : StoreError.versionNotFound
            }
            return StoredBackup(
                data: data, createdAt: Timestamp(milliseconds: createdAt), updatedAt: Timestamp(milliseconds: updatedAt),
                version: foundVersion, size: Int(size)
            )
        }
        throw StoreError.backupNotFound
    }

    public func backupVersions(userId: String, storageKey: String) async throws -> [BackupVersionSummary] {
        let rows = try await client.query(
            """
            SELECT b.user_id, v.version, v.size, v.created_at
            FROM backups b LEFT JOIN backup_versions v ON v.storage_key = b.storage_key
            WHERE b.storage_key = \(storageKey)
            ORDER BY v.version DESC
            """,
            logger: logger
        )
        var found = false
        var versions: [BackupVersionSummary] = []
        for try await (owner, version, size, createdAt) in rows.decode((String, Int?, Int64?, Int64?).self) {
            guard owner == userId else { throw StoreError.backupNotFound }
            found = true
            if let version, let size, let createdAt {
                versions.append(BackupVersionSummary(version: version, updatedAt: Timestamp(milliseconds: createdAt), size: Int(size)))
            }
        }
        guard found else { throw StoreError.backupNotFound }
        return versions
    }

    public func deleteBackupUser(userId: String, storageKey: String?) async throws -> Int {
        try await transaction { connection in
            guard try await !connection.query(
                "SELECT 1 FROM backup_users WHERE id = \(userId) FOR UPDATE", logger: logger
            ).collect().isEmpty else {
                throw StoreError.userNotFound
            }
            var count = 0
            for try await n in try await connection.query(
                "SELECT COUNT(*) FROM backups WHERE user_id = \(userId)", logger: logger
            ).decode(Int.self) {
                count = n
            }
            if let storageKey {
                var owner: String?
                for try await value in try await connection.query(
                    "SELECT user_id FROM backups WHERE storage_key = \(storageKey)", logger: logger
                ).decode(String.self) {
                    owner = value
                }
                guard owner == userId else { throw StoreError.storageKeyForbidden }
            } else if count > 0 {
                throw StoreError.storageKeyRequired
            }
            try await connection.query("DELETE FROM backup_users WHERE id = \(userId)", logger: logger)
            return count
        }
    }

    // MARK: Abuse control

    public func consumeRateLimit(bucket: String, limits: [RateLimit], at: Timestamp) async throws -> RateLimitDecision {
        var retryAfter: Int64 = 0
        let now = at.milliseconds
        for limit in limits {
            let length = limit.seconds * 1000
            let windowStart = now - now % length
            let key = "\(bucket)|\(limit.seconds)"
            let rows = try await client.query(
                """
                WITH current AS (
                    INSERT INTO rate_limits (bucket, window_start, count, expires_at)
                    VALUES (\(key), \(windowStart), 1, \(windowStart + 2 * length))
                    ON CONFLICT (bucket, window_start) DO UPDATE SET count = rate_limits.count + 1
                    RETURNING count
                )
                SELECT current.count,
                       COALESCE((SELECT count FROM rate_limits WHERE bucket = \(key) AND window_start = \(windowStart - length)), 0)
                FROM current
                """,
                logger: logger
            )
            for try await (current, previous) in rows.decode((Int, Int).self) {
                let decision = SlidingWindow.decide(current: current, previous: previous, limit: limit, elapsed: now - windowStart)
                if case .limited(let seconds) = decision { retryAfter = max(retryAfter, seconds) }
            }
        }
        return retryAfter == 0 ? .allowed : .limited(retryAfter: retryAfter)
    }

    public func recordSignature(_ signature: String, expiresAt: Timestamp, at: Timestamp) async throws -> Bool {
        let rows = try await client.query(
            "INSERT INTO request_signatures (signature, expires_at) VALUES (\(signature), \(expiresAt.milliseconds)) ON CONFLICT (signature) DO NOTHING RETURNING signature",
            logger: logger
        ).collect()
        return !rows.isEmpty
    }

    public func purgeExpired(at: Timestamp) async throws {
        let now = at.milliseconds
        try await client.query("DELETE FROM request_signatures WHERE expires_at < \(now)", logger: logger)
        try await client.query("DELETE FROM auth_challenges WHERE expires_at < \(now)", logger: logger)
        try await client.query("DELETE FROM spent_refresh_tokens WHERE expires_at < \(now)", logger: logger)
        try await client.query("DELETE FROM rate_limits WHERE expires_at < \(now)", logger: logger)
        try await client.query(
            "DELETE FROM backup_writes WHERE at < \(now - RateLimit.Window.day.rawValue * 1000)", logger: logger
        )
    }
}
