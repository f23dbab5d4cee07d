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
        (2, "accounts", [
            """
            CREATE TABLE server_secrets (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE signing_keys (
                id TEXT PRIMARY KEY,
                secret TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                kdf TEXT NOT NULL,
                salt TEXT NOT NULL,
                login_public_key TEXT NOT NULL,
                encrypted_account_key TEXT NOT NULL,
                public_key TEXT NOT NULL,
                encrypted_private_key TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE devices (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                id TEXT NOT NULL,
                name TEXT NOT NULL,
                platform TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                revoked_at BIGINT,
                PRIMARY KEY (user_id, id)
            )
            """,
            """
            CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                device_id TEXT NOT NULL,
                refresh_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT
            )
            """,
            "CREATE INDEX sessions_device ON sessions(user_id, device_id)",
            // Spent refresh tokens, kept until their session would have expired, to detect reuse.
            """
            CREATE TABLE spent_refresh_tokens (
                hash TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                expires_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE auth_challenges (
                challenge TEXT PRIMARY KEY,
                email TEXT NOT NULL,
                action TEXT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX auth_challenges_expiry ON auth_challenges(expires_at)",
            // No foreign key: the account_deleted tombstone outlives the account.
            """
            CREATE TABLE audit_events (
                id BIGSERIAL PRIMARY KEY,
                user_id TEXT NOT NULL,
                type TEXT NOT NULL,
                device_id TEXT,
                detail TEXT,
                created_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX audit_events_user ON audit_events(user_id, id)",
        ]),
        (3, "vaults", [
            """
            CREATE TABLE vaults (
                id TEXT PRIMARY KEY,
                owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                encrypted_metadata TEXT NOT NULL,
                revision BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE vault_members (
                vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                wrapped_key TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (vault_id, user_id)
            )
            """,
            "CREATE INDEX vault_members_user ON vault_members(user_id)",
            """
            CREATE TABLE items (
                id TEXT PRIMARY KEY,
                vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE,
                encrypted_data TEXT,
                version INTEGER NOT NULL,
                revision BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                device_id TEXT
            )
            """,
            // One change per revision per vault: the index also enforces it.
            "CREATE UNIQUE INDEX items_vault_revision ON items(vault_id, revision)",
            """
            CREATE TABLE item_versions (
                item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                encrypted_data TEXT,
                deleted BOOLEAN NOT NULL,
                revision BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                device_id TEXT,
                resolution TEXT,
                PRIMARY KEY (item_id, version)
            )
            """,
            """
            CREATE TABLE item_resolutions (
                item_id TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                strategy TEXT NOT NULL,
                device_id TEXT,
                created_at BIGINT NOT NULL
            )
            """,
        ]),
        (4, "sharing", [
            // A membership granted by someone else is a share: it has an id and remembers who granted it.
            "ALTER TABLE vault_members ADD COLUMN share_id TEXT",
            "ALTER TABLE vault_members ADD COLUMN granted_by TEXT",
            // Who sealed this member's copy of the vault key (the sharer, or the last to rotate it).
            "ALTER TABLE vault_members ADD COLUMN key_sealed_by TEXT",
            "ALTER TABLE vault_members ADD COLUMN updated_at BIGINT",
            "CREATE UNIQUE INDEX vault_members_share ON vault_members(share_id)",
        ]),
        (5, "key epochs", [
            // Which vault key is current: 1 for the first, one more per rotation. Items and names
            // sealed under another epoch are refused, so nothing new is written under a revoked key.
            "ALTER TABLE vaults ADD COLUMN key_epoch INTEGER NOT NULL DEFAULT 1",
            // The earlier keys sealed with the current one (opaque to the server).
            "ALTER TABLE vaults ADD COLUMN key_history TEXT",
        ]),
        (6, "identity keys", [
            // The account's Ed25519 identity (public key, its certificate of the sharing key, the
            // private half sealed under the account key). NULL for accounts made before identity
            // keys until they set one; set once, never replaced.
            "ALTER TABLE users ADD COLUMN identity_key TEXT",
            "ALTER TABLE users ADD COLUMN sharing_key_certificate TEXT",
            "ALTER TABLE users ADD COLUMN encrypted_identity_key TEXT",
        ]),
        (7, "membership grants", [
            // The granter's signed statement of the membership (opaque to the server, stored and
            // served as sent). NULL for the owner, for memberships granted before statements, and
            // after a role change that came without one.
            "ALTER TABLE vault_members ADD COLUMN grant_statement TEXT",
        ]),
    ]
}
