import CofferProtocol
import PostgresNIO

extension PostgresStore {
    private static let accountColumns = """
        id, email, kdf, salt, login_public_key, encrypted_account_key, public_key, encrypted_private_key, created_at, \
        identity_key, sharing_key_certificate, encrypted_identity_key
        """
    private static let sessionColumns = "s.id, s.user_id, s.device_id, s.refresh_hash, s.created_at, s.expires_at"
    // Decoded by position: the same order as `accountColumns`.
    private typealias AccountRow = (String, String, String, String, String, String, String, String, Int64, String?, String?, String?)
    private typealias SessionRow = (String, String, String, String, Int64, Int64)

    public func serverSecret(named name: String, create: @Sendable () -> String) async throws -> String {
        let candidate = create()
        try await client.query("INSERT INTO server_secrets (name, value) VALUES (\(name), \(candidate)) ON CONFLICT (name) DO NOTHING", logger: logger)
        for try await value in try await client.query("SELECT value FROM server_secrets WHERE name = \(name)", logger: logger).decode(String.self) {
            return value
        }
        return candidate
    }

    public func signingKeys() async throws -> [SigningKeyRecord] {
        var keys: [SigningKeyRecord] = []
        for try await (id, secret, createdAt) in try await client.query(
            "SELECT id, secret, created_at FROM signing_keys ORDER BY created_at DESC", logger: logger
        ).decode((String, String, Int64).self) {
            keys.append(SigningKeyRecord(id: id, secret: secret, createdAt: Timestamp(milliseconds: createdAt)))
        }
        return keys
    }

    public func addSigningKey(_ key: SigningKeyRecord) async throws {
        try await client.query(
            "INSERT INTO signing_keys (id, secret, created_at) VALUES (\(key.id), \(key.secret), \(key.createdAt.milliseconds)) ON CONFLICT (id) DO NOTHING",
            logger: logger
        )
    }

    public func createAccount(_ account: AccountRecord, device: DeviceRecord, session: SessionRecord) async throws {
        try await transaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO users (id, email, kdf, salt, login_public_key, encrypted_account_key, public_key, encrypted_private_key, created_at,
                    identity_key, sharing_key_certificate, encrypted_identity_key)
                VALUES (\(account.id), \(account.email), \(account.kdf), \(account.salt), \(account.loginPublicKey),
                        \(account.encryptedAccountKey), \(account.publicKey), \(account.encryptedPrivateKey), \(account.createdAt.milliseconds),
                        \(account.identity?.identityKey), \(account.identity?.sharingKeyCertificate), \(account.identity?.encryptedIdentityKey))
                ON CONFLICT (email) DO NOTHING RETURNING id
                """,
                logger: logger
            ).collect()
            guard !inserted.isEmpty else { throw StoreError.emailTaken }
            try await Self.startSession(connection, device: device, session: session, logger: logger)
        }
    }

    public func account(email: String) async throws -> AccountRecord? {
        try await account(where: "email", equals: email)
    }

    public func account(id: String) async throws -> AccountRecord? {
        try await account(where: "id", equals: id)
    }

    private func account(where column: String, equals value: String) async throws -> AccountRecord? {
        var query = PostgresQuery(unsafeSQL: "SELECT \(Self.accountColumns) FROM users WHERE \(column) = $1")
        query.binds.append(value, context: .default)
        for try await row in try await client.query(query, logger: logger).decode(AccountRow.self) {
            return AccountRecord(
                id: row.0, email: row.1, kdf: row.2, salt: row.3, loginPublicKey: row.4, encryptedAccountKey: row.5,
                publicKey: row.6, encryptedPrivateKey: row.7, createdAt: Timestamp(milliseconds: row.8),
                identity: Self.identity(row.9, row.10, row.11)
            )
        }
        return nil
    }

    /// The identity columns of a `users` row, or nil unless all three are set.
    static func identity(_ key: String?, _ certificate: String?, _ sealed: String?) -> IdentityKeysPayload? {
        guard let key, let certificate, let sealed else { return nil }
        return IdentityKeysPayload(identityKey: key, sharingKeyCertificate: certificate, encryptedIdentityKey: sealed)
    }

    public func setIdentity(_ identity: IdentityKeysPayload, userId: String) async throws -> IdentityUpdate {
        try await transaction { connection in
            // The row lock makes check and update one step: a concurrent setIdentity waits, then sees this one's identity.
            var current: (String?, String?, String?)?
            for try await row in try await connection.query(
                "SELECT identity_key, sharing_key_certificate, encrypted_identity_key FROM users WHERE id = \(userId) FOR UPDATE", logger: logger
            ).decode((String?, String?, String?).self) {
                current = row
            }
            guard let current else { throw StoreError.userNotFound }
            if let existing = Self.identity(current.0, current.1, current.2) { return existing == identity ? .unchanged : .conflict }
            // A partly set identity (never written by Coffer) counts as set: it is not replaced either.
            guard current.0 == nil else { return .conflict }
            try await connection.query(
                """
                UPDATE users SET identity_key = \(identity.identityKey), sharing_key_certificate = \(identity.sharingKeyCertificate),
                    encrypted_identity_key = \(identity.encryptedIdentityKey)
                WHERE id = \(userId)
                """,
                logger: logger
            )
            return .stored
        }
    }

    public func storeChallenge(_ challenge: String, email: String, action: String, expiresAt: Timestamp) async throws {
        try await client.query(
            "INSERT INTO auth_challenges (challenge, email, action, expires_at) VALUES (\(challenge), \(email), \(action), \(expiresAt.milliseconds))",
            logger: logger
        )
    }

    public func consumeChallenge(_ challenge: String, email: String, action: String, at: Timestamp) async throws -> Bool {
        for try await (storedEmail, storedAction, expiresAt) in try await client.query(
            "DELETE FROM auth_challenges WHERE challenge = \(challenge) RETURNING email, action, expires_at", logger: logger
        ).decode((String, String, Int64).self) {
            return storedEmail == email && storedAction == action && expiresAt > at.milliseconds
        }
        return false
    }

    public func startSession(device: DeviceRecord, session: SessionRecord) async throws {
        try await transaction { try await Self.startSession($0, device: device, session: session, logger: logger) }
    }

    private static func startSession(_ connection: PostgresConnection, device: DeviceRecord, session: SessionRecord, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO devices (user_id, id, name, platform, created_at, last_seen_at, revoked_at)
            VALUES (\(device.userId), \(device.id), \(device.name), \(device.platform), \(device.createdAt.milliseconds), \(device.lastSeenAt.milliseconds), NULL)
            ON CONFLICT (user_id, id) DO UPDATE SET name = excluded.name, platform = excluded.platform,
                last_seen_at = excluded.last_seen_at, revoked_at = NULL
            """,
            logger: logger
        )
        try await connection.query(
            """
            INSERT INTO sessions (id, user_id, device_id, refresh_hash, created_at, expires_at)
            VALUES (\(session.id), \(session.userId), \(session.deviceId), \(session.refreshHash), \(session.createdAt.milliseconds), \(session.expiresAt.milliseconds))
            """,
            logger: logger
        )
    }

    private static func session(_ row: SessionRow) -> SessionRecord {
        SessionRecord(
            id: row.0, userId: row.1, deviceId: row.2, refreshHash: row.3,
            createdAt: Timestamp(milliseconds: row.4), expiresAt: Timestamp(milliseconds: row.5)
        )
    }

    public func rotateRefreshToken(hash: String, newHash: String, newExpiresAt: Timestamp, at: Timestamp) async throws -> RefreshOutcome {
        try await transaction { connection in
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.sessionColumns) FROM sessions s WHERE s.refresh_hash = \(hash) AND s.revoked_at IS NULL AND s.expires_at > \(at.milliseconds) FOR UPDATE",
                logger: logger
            ).decode(SessionRow.self) {
                var session = Self.session(row)
                try await connection.query(
                    "INSERT INTO spent_refresh_tokens (hash, session_id, expires_at) VALUES (\(hash), \(session.id), \(session.expiresAt.milliseconds))",
                    logger: logger
                )
                try await connection.query(
                    "UPDATE sessions SET refresh_hash = \(newHash), expires_at = \(newExpiresAt.milliseconds) WHERE id = \(session.id)", logger: logger
                )
                session.refreshHash = newHash
                session.expiresAt = newExpiresAt
                return .rotated(session)
            }
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.sessionColumns) FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = \(hash)",
                logger: logger
            ).decode(SessionRow.self) {
                let session = Self.session(row)
                try await connection.query(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, \(at.milliseconds)) WHERE id = \(session.id)", logger: logger
                )
                return .reused(session)
            }
            return .unknown
        }
    }

    public func activeSession(id: String, at: Timestamp) async throws -> SessionRecord? {
        for try await row in try await client.execute(PostgresStatements.ActiveSession(id: id, at: at.milliseconds), logger: logger) {
            return Self.session(row)
        }
        return nil
    }

    public func revokeSession(id: String, at: Timestamp) async throws {
        try await client.query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, \(at.milliseconds)) WHERE id = \(id)", logger: logger)
    }

    public func revokeDevice(userId: String, deviceId: String, at: Timestamp) async throws -> Bool {
        try await transaction { connection in
            let rows = try await connection.query(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, \(at.milliseconds)) WHERE user_id = \(userId) AND id = \(deviceId) RETURNING id",
                logger: logger
            ).collect()
            guard !rows.isEmpty else { return false }
            try await connection.query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, \(at.milliseconds)) WHERE user_id = \(userId) AND device_id = \(deviceId)",
                logger: logger
            )
            return true
        }
    }

    public func devices(userId: String) async throws -> [DeviceRecord] {
        var devices: [DeviceRecord] = []
        for try await (id, name, platform, createdAt, lastSeenAt, revokedAt) in try await client.query(
            "SELECT id, name, platform, created_at, last_seen_at, revoked_at FROM devices WHERE user_id = \(userId) ORDER BY created_at, id",
            logger: logger
        ).decode((String, String, String, Int64, Int64, Int64?).self) {
            devices.append(
                DeviceRecord(
                    id: id, userId: userId, name: name, platform: platform, createdAt: Timestamp(milliseconds: createdAt),
                    lastSeenAt: Timestamp(milliseconds: lastSeenAt), revokedAt: revokedAt.map(Timestamp.init(milliseconds:))
                )
            )
        }
        return devices
    }

    public func touchDevice(userId: String, deviceId: String, at: Timestamp) async throws {
        try await client.query(
            "UPDATE devices SET last_seen_at = \(at.milliseconds) WHERE user_id = \(userId) AND id = \(deviceId)", logger: logger
        )
    }

    public func changePassword(_ update: PasswordUpdate, keepSession: String, at: Timestamp) async throws {
        try await transaction { connection in
            try await connection.query(
                """
                UPDATE users SET kdf = \(update.kdf), salt = \(update.salt), login_public_key = \(update.loginPublicKey),
                    encrypted_account_key = \(update.encryptedAccountKey), encrypted_private_key = \(update.encryptedPrivateKey)
                WHERE id = \(update.userId)
                """,
                logger: logger
            )
            try await connection.query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, \(at.milliseconds)) WHERE user_id = \(update.userId) AND id <> \(keepSession)",
                logger: logger
            )
        }
    }

    public func deleteAccount(userId: String, at: Timestamp) async throws {
        try await transaction { connection in
            try await connection.query("DELETE FROM users WHERE id = \(userId)", logger: logger)
            try await connection.query("DELETE FROM audit_events WHERE user_id = \(userId)", logger: logger)
            try await connection.query(
                "INSERT INTO audit_events (user_id, type, device_id, detail, created_at) VALUES (\(userId), 'account_deleted', NULL, NULL, \(at.milliseconds))",
                logger: logger
            )
        }
    }

    public func appendAudit(_ event: AuditEventRecord) async throws {
        try await client.query(
            """
            INSERT INTO audit_events (user_id, type, device_id, detail, created_at)
            VALUES (\(event.userId), \(event.type), \(event.deviceId), \(event.detail), \(event.createdAt.milliseconds))
            """,
            logger: logger
        )
    }

    public func auditEvents(userId: String, before: Int64?, limit: Int) async throws -> [AuditEventRecord] {
        var events: [AuditEventRecord] = []
        for try await (id, type, deviceId, detail, createdAt) in try await client.query(
            """
            SELECT id, type, device_id, detail, created_at FROM audit_events
            WHERE user_id = \(userId) AND id < \(before ?? Int64.max) ORDER BY id DESC LIMIT \(limit)
            """,
            logger: logger
        ).decode((Int64, String, String?, String?, Int64).self) {
            events.append(AuditEventRecord(id: id, userId: userId, type: type, deviceId: deviceId, detail: detail, createdAt: Timestamp(milliseconds: createdAt)))
        }
        return events
    }
}
