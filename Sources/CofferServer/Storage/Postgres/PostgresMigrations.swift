/// Versioned schema of the PostgreSQL backend. Append only: a released migration never changes.
/// Times are milliseconds since the epoch.
enum PostgresMigrations {
    static let all: [(version: Int, name: String, sql: [String])] = [
        (1, "blind backup", [
            """
            CREATE TABLE backup_users (
                id TEXT PRIMARY KEY,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE backups (
                storage_key TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES backup_users(id) ON DELETE CASCADE,
                current_version INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX backups_user_id ON backups(user_id)",
            """
            CREATE TABLE backup_versions (
                storage_key TEXT NOT NULL REFERENCES backups(storage_key) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                data TEXT NOT NULL,
                size BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (storage_key, version)
            )
            """,
            // Write log for per-key, per-user and per-address limits. No foreign key on purpose:
            // deleting and re-registering a user must not reset its limits.
            """
            CREATE TABLE backup_writes (
                storage_key TEXT NOT NULL,
                user_id TEXT NOT NULL,
                address TEXT NOT NULL,
                new_key BOOLEAN NOT NULL,
                at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX backup_writes_key ON backup_writes(storage_key, at)",
            "CREATE INDEX backup_writes_user ON backup_writes(user_id, at) WHERE new_key",
            "CREATE INDEX backup_writes_address ON backup_writes(address, at) WHERE new_key",
            "CREATE INDEX backup_writes_at ON backup_writes(at)",
            """
            CREATE TABLE request_signatures (
                signature TEXT PRIMARY KEY,
                expires_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX request_signatures_expiry ON request_signatures(expires_at)",
            // Address counters: shared by every instance, cheap to write (no WAL), and harmless to
            // lose in a crash, which is exactly what UNLOGGED gives.
            """
            CREATE UNLOGGED TABLE rate_limits (
                bucket TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                count INTEGER NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (bucket, window_start)
            )
            """,
            "CREATE INDEX rate_limits_expiry ON rate_limits(expires_at)",
        ]),
    ]
}
