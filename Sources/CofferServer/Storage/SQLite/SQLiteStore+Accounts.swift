import CofferProtocol
import SQLiteNIO

extension SQLiteStore {
    public func serverSecret(named name: String, create: @Sendable () -> String) async throws -> String {
        if let existing = try await read({ try $0.query("SELECT value FROM server_secrets WHERE name = ?", [.text(name)]).first?.string("value") }) {
            return existing
        }
        let candidate = create()
        return try await write { connection in
            try connection.query("INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [.text(name), .text(candidate)])
            return try connection.query("SELECT value FROM server_secrets WHERE name = ?", [.text(name)]).first?.string("value") ?? candidate
        }
    }

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await read { connection in
            try connection.query("SELECT id, secret, created_at FROM signing_keys ORDER BY created_at DESC").map {
                SigningKeyRecord(id: $0.string("id") ?? "", secret: $0.string("secret") ?? "", createdAt: $0.timestamp("created_at"))
            }
        }
    }

    public func addSigningKey(_ key: SigningKeyRecord) async throws {
        try await write { connection in
            try connection.query(
                "INSERT INTO signing_keys (id, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [.text(key.id), .text(key.secret), .timestamp(key.createdAt)]
            )
        }
    }

    public func createAccount(_ account: AccountRecord, device: DeviceRecord, session: SessionRecord) async throws {
        try await write { connection in
            let inserted = try connection.query(
                """
                INSERT INTO users (id, email, kdf, salt, login_public_key, encrypted_account_key, public_key, encrypted_private_key, created_at,
                    identity_key, sharing_key_certificate, encrypted_identity_key)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING RETURNING id
                """,
                [.text(account.id), .text(account.email), .text(account.kdf), .text(account.salt), .text(account.loginPublicKey),
                 .text(account.encryptedAccountKey), .text(account.publicKey), .text(account.encryptedPrivateKey), .timestamp(account.createdAt),
                 Self.text(account.identity?.identityKey), Self.text(account.identity?.sharingKeyCertificate),
                 Self.text(account.identity?.encryptedIdentityKey)]
            )
            guard !inserted.isEmpty else { throw StoreError.emailTaken }
            try Self.startSession(connection, device: device, session: session)
        }
    }

    public func account(email: String) async throws -> AccountRecord? {
        try await read { try $0.query("SELECT * FROM users WHERE email = ?", [.text(email)]).first.map(Self.account) }
    }

    public func account(id: String) async throws -> AccountRecord? {
        try await read { try $0.query("SELECT * FROM users WHERE id = ?", [.text(id)]).first.map(Self.account) }
    }

    private static func account(_ row: SQLiteResultRow) -> AccountRecord {
        AccountRecord(
            id: row.string("id") ?? "", email: row.string("email") ?? "", kdf: row.string("kdf") ?? "", salt: row.string("salt") ?? "",
            loginPublicKey: row.string("login_public_key") ?? "", encryptedAccountKey: row.string("encrypted_account_key") ?? "",
            publicKey: row.string("public_key") ?? "", encryptedPrivateKey: row.string("encrypted_private_key") ?? "",
            createdAt: row.timestamp("created_at"), identity: identity(row)
        )
    }

    /// The identity columns of a `users` row, or nil unless all three are set.
    static func identity(_ row: SQLiteResultRow) -> IdentityKeysPayload? {
        guard let key = row.string("identity_key"), let certificate = row.string("sharing_key_certificate"),
            let sealed = row.string("encrypted_identity_key")
        else { return nil }
        return IdentityKeysPayload(identityKey: key, sharingKeyCertificate: certificate, encryptedIdentityKey: sealed)
    }

    private static func text(_ value: String?) -> SQLiteData {
        value.map { .text($0) } ?? .null
    }

    public func setIdentity(_ identity: IdentityKeysPayload, userId: String) async throws -> IdentityUpdate {
        // One write transaction: the check and the update cannot interleave with another setIdentity.
        try await write { connection in
            guard let row = try connection.query(
                "SELECT identity_key, sharing_key_certificate, encrypted_identity_key FROM users WHERE id = ?", [.text(userId)]
            ).first else { throw StoreError.userNotFound }
            if let existing = Self.identity(row) { return existing == identity ? .unchanged : .conflict }
            // A partly set identity (never written by Coffer) counts as set: it is not replaced either.
            guard row.string("identity_key") == nil else { return .conflict }
            try connection.query(
                "UPDATE users SET identity_key = ?, sharing_key_certificate = ?, encrypted_identity_key = ? WHERE id = ? AND identity_key IS NULL",
                [.text(identity.identityKey), .text(identity.sharingKeyCertificate), .text(identity.encryptedIdentityKey), .text(userId)]
            )
            return .stored
        }
    }

    public func storeChallenge(_ challenge: String, email: String, action: String, expiresAt: Timestamp) async throws {
        try await write { connection in
            try connection.query(
                "INSERT INTO auth_challenges (challenge, email, action, expires_at) VALUES (?, ?, ?, ?)",
                [.text(challenge), .text(email), .text(action), .timestamp(expiresAt)]
            )
        }
    }

    public func consumeChallenge(_ challenge: String, email: String, action: String, at: Timestamp) async throws -> Bool {
        try await write { connection in
            let rows = try connection.query(
                "DELETE FROM auth_challenges WHERE challenge = ? RETURNING email, action, expires_at", [.text(challenge)]
            )
            guard let row = rows.first else { return false }
            return row.string("email") == email && row.string("action") == action && row.timestamp("expires_at") > at
        }
    }

    public func startSession(device: DeviceRecord, session: SessionRecord) async throws {
        try await write { try Self.startSession($0, device: device, session: session) }
    }

    private static func startSession(_ connection: SQLiteDirectConnection, device: DeviceRecord, session: SessionRecord) throws {
        try connection.query(
            """
            INSERT INTO devices (user_id, id, name, platform, created_at, last_seen_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)
            ON CONFLICT (user_id, id) DO UPDATE SET name = excluded.name, platform = excluded.platform,
                last_seen_at = excluded.last_seen_at, revoked_at = NULL
            """,
            [.text(device.userId), .text(device.id), .text(device.name), .text(device.platform), .timestamp(device.createdAt), .timestamp(device.lastSeenAt)]
        )
        try connection.query(
            "INSERT INTO sessions (id, user_id, device_id, refresh_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            [.text(session.id), .text(session.userId), .text(session.deviceId), .text(session.refreshHash), .timestamp(session.createdAt), .timestamp(session.expiresAt)]
        )
    }

    public func rotateRefreshToken(hash: String, newHash: String, newExpiresAt: Timestamp, at: Timestamp) async throws -> RefreshOutcome {
        try await write { connection in
            if let row = try connection.query(
                "SELECT * FROM sessions WHERE refresh_hash = ? AND revoked_at IS NULL AND expires_at > ?", [.text(hash), .timestamp(at)]
            ).first {
                var session = Self.session(row)
                try connection.query(
                    "INSERT INTO spent_refresh_tokens (hash, session_id, expires_at) VALUES (?, ?, ?)",
                    [.text(hash), .text(session.id), .timestamp(session.expiresAt)]
                )
                try connection.query(
                    "UPDATE sessions SET refresh_hash = ?, expires_at = ? WHERE id = ?", [.text(newHash), .timestamp(newExpiresAt), .text(session.id)]
                )
                session.refreshHash = newHash
                session.expiresAt = newExpiresAt
                return .rotated(session)
            }
            if let row = try connection.query(
                "SELECT s.* FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ?", [.text(hash)]
            ).first {
                let session = Self.session(row)
                try connection.query(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", [.timestamp(at), .text(session.id)]
                )
                return .reused(session)
            }
            return .unknown
        }
    }

    private static func session(_ row: SQLiteResultRow) -> SessionRecord {
        SessionRecord(
            id: row.string("id") ?? "", userId: row.string("user_id") ?? "", deviceId: row.string("device_id") ?? "",
            refreshHash: row.string("refresh_hash") ?? "", createdAt: row.timestamp("created_at"), expiresAt: row.timestamp("expires_at")
        )
    }

    public func activeSession(id: String, at: Timestamp) async throws -> SessionRecord? {
        // Every authenticated request asks this; see `pointRead`.
        try await pointRead { try Self.activeSession(id: id, at: at, on: $0) }
    }

    /// The session if active, inside a read that may go on to use it (a pull checks its own session).
    static func activeSession(id: String, at: Timestamp, on connection: SQLiteDirectConnection) throws -> SessionRecord? {
        try connection.query(
            """
            SELECT s.* FROM sessions s JOIN devices d ON d.user_id = s.user_id AND d.id = s.device_id
            WHERE s.id = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND d.revoked_at IS NULL
            """,
            [.text(id), .timestamp(at)]
        ).first.map(Self.session)
    }

    public func revokeSession(id: String, at: Timestamp) async throws {
        try await write { connection in
            try connection.query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", [.timestamp(at), .text(id)])
        }
    }

    public func revokeDevice(userId: String, deviceId: String, at: Timestamp) async throws -> Bool {
        try await write { connection in
            let rows = try connection.query(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE user_id = ? AND id = ? RETURNING id",
                [.timestamp(at), .text(userId), .text(deviceId)]
            )
            guard !rows.isEmpty else { return false }
            try connection.query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE user_id = ? AND device_id = ?",
                [.timestamp(at), .text(userId), .text(deviceId)]
            )
            return true
        }
    }

    public func devices(userId: String) async throws -> [DeviceRecord] {
        try await read { connection in
            try connection.query("SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, id", [.text(userId)]).map { row in
                DeviceRecord(
                    id: row.string("id") ?? "", userId: row.string("user_id") ?? "", name: row.string("name") ?? "",
                    platform: row.string("platform") ?? "", createdAt: row.timestamp("created_at"), lastSeenAt: row.timestamp("last_seen_at"),
                    revokedAt: row.int64("revoked_at").map(Timestamp.init(milliseconds:))
                )
            }
        }
    }

    public func touchDevice(userId: String, deviceId: String, at: Timestamp) async throws {
        try await write { connection in
            try connection.query(
                "UPDATE devices SET last_seen_at = ? WHERE user_id = ? AND id = ?", [.timestamp(at), .text(userId), .text(deviceId)]
            )
        }
    }

    public func changePassword(_ update: PasswordUpdate, keepSession: String, at: Timestamp) async throws {
        try await write { connection in
            try connection.query(
                """
                UPDATE users SET kdf = ?, salt = ?, login_public_key = ?, encrypted_account_key = ?, encrypted_private_key = ?
                WHERE id = ?
                """,
                [.text(update.kdf), .text(update.salt), .text(update.loginPublicKey), .text(update.encryptedAccountKey),
                 .text(update.encryptedPrivateKey), .text(update.userId)]
            )
            try connection.query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?) WHERE user_id = ? AND id <> ?",
                [.timestamp(at), .text(update.userId), .text(keepSession)]
            )
        }
    }

    public func deleteAccount(userId: String, at: Timestamp) async throws {
        try await write { connection in
            try connection.query("DELETE FROM users WHERE id = ?", [.text(userId)])
            try connection.query("DELETE FROM audit_events WHERE user_id = ?", [.text(userId)])
            try connection.query(
                "INSERT INTO audit_events (user_id, type, device_id, detail, created_at) VALUES (?, 'account_deleted', NULL, NULL, ?)",
                [.text(userId), .timestamp(at)]
            )
        }
    }

    public func appendAudit(_ event: AuditEventRecord) async throws {
        try await write { connection in
            try connection.query(
                "INSERT INTO audit_events (user_id, type, device_id, detail, created_at) VALUES (?, ?, ?, ?, ?)",
                [.text(event.userId), .text(event.type), event.deviceId.map { .text($0) } ?? .null, event.detail.map { .text($0) } ?? .null, .timestamp(event.createdAt)]
            )
        }
    }

    public func auditEvents(userId: String, before: Int64?, limit: Int) async throws -> [AuditEventRecord] {
        try await read { connection in
            try connection.query(
                "SELECT * FROM audit_events WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                [.text(userId), .integer(Int(before ?? Int64.max)), .integer(limit)]
            ).map { row in
                AuditEventRecord(
                    id: row.int64("id") ?? 0, userId: row.string("user_id") ?? "", type: row.string("type") ?? "",
                    deviceId: row.string("device_id"), detail: row.string("detail"), createdAt: row.timestamp("created_at")
                )
            }
        }
    }
}

extension SQLiteData {
    static func timestamp(_ value: Timestamp) -> SQLiteData { .integer(Int(value.milliseconds)) }
}
