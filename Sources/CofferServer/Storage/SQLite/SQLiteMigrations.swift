/// Versioned schema of the SQLite backend. Append only: a released migration never changes.
/// Times are milliseconds since the epoch.
enum SQLiteMigrations {
    static let all: [(version: Int, name: String, sql: [String])] = [
        (1, "blind backup", [
            """
            CREATE TABLE backup_users (
                id TEXT PRIMARY KEY,
                created_at INTEGER NOT NULL
            ) STRICT
            """,
            """
            CREATE TABLE backups (
                storage_key TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES backup_users(id) ON DELETE CASCADE,
                current_version INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX backups_user_id ON backups(user_id)",
            """
            CREATE TABLE backup_versions (
                storage_key TEXT NOT NULL REFERENCES backups(storage_key) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                data TEXT NOT NULL,
                size INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (storage_key, version)
            ) STRICT, WITHOUT ROWID
            """,
            // Write log for per-key, per-user and per-address limits. No foreign key on purpose:
            // deleting and re-registering a user must not reset its limits.
            """
            CREATE TABLE backup_writes (
                storage_key TEXT NOT NULL,
                user_id TEXT NOT NULL,
                address TEXT NOT NULL,
                new_key INTEGER NOT NULL,
                at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX backup_writes_key ON backup_writes(storage_key, at)",
            "CREATE INDEX backup_writes_user ON backup_writes(user_id, at) WHERE new_key = 1",
            "CREATE INDEX backup_writes_address ON backup_writes(address, at) WHERE new_key = 1",
            "CREATE INDEX backup_writes_at ON backup_writes(at)",
            """
            CREATE TABLE request_signatures (
                signature TEXT PRIMARY KEY,
                expires_at INTEGER NOT NULL
            ) STRICT
            """,
            "CREATE INDEX request_signatures_expiry ON request_signatures(expires_at)",
        ]),
    ]
}
