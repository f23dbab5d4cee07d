import CofferProtocol
import PostgresNIO

extension PostgresStore {
    private typealias ShareRow = (String, String, String, String, String, String, String, Int64, Int64)
    private static let shareSelect = """
        SELECT m.share_id, m.vault_id, m.user_id, u.email, m.role, m.granted_by, g.email, m.created_at, COALESCE(m.updated_at, m.created_at)
        FROM vault_members m JOIN users u ON u.id = m.user_id JOIN users g ON g.id = m.granted_by
        """

    public func addShare(_ share: Share, wrappedKey: String, keyEpoch: Int, grant: String?) async throws {
        try await transaction { connection in
            // The vault row lock orders the share with any rotation: it is sealed under the epoch that is current when it lands.
            var locked: Int64?
            for try await epoch in try await connection.query("SELECT key_epoch::int8 FROM vaults WHERE id = \(share.vaultId) FOR UPDATE", logger: logger).decode(Int64.self) {
                locked = epoch
            }
            if let locked, Int(locked) != keyEpoch { throw StoreError.staleKey(current: Int(locked)) }
            let inserted = try await connection.query(
                """
                INSERT INTO vault_members (vault_id, user_id, role, wrapped_key, created_at, share_id, granted_by, updated_at, key_sealed_by, grant_statement)
                VALUES (\(share.vaultId), \(share.userId), \(share.role.rawValue), \(wrappedKey), \(share.createdAt.milliseconds), \(share.id),
                        \(share.grantedBy), \(share.updatedAt.milliseconds), \(share.grantedBy), \(grant))
                ON CONFLICT (vault_id, user_id) DO NOTHING RETURNING user_id
                """,
                logger: logger
            ).collect()
            guard !inserted.isEmpty else { throw StoreError.alreadyMember }
        }
    }

    public func share(id: String) async throws -> Share? {
        try await shares("\(unescaped: Self.shareSelect) WHERE m.share_id = \(id)").first
    }

    public func shares(userId: String) async throws -> (incoming: [Share], outgoing: [Share]) {
        let incoming = try await shares(
            "\(unescaped: Self.shareSelect) WHERE m.user_id = \(userId) AND m.share_id IS NOT NULL ORDER BY m.created_at, m.share_id"
        )
        let outgoing = try await shares(
            """
            \(unescaped: Self.shareSelect) JOIN vault_members me ON me.vault_id = m.vault_id AND me.user_id = \(userId) AND me.role IN ('owner', 'admin')
            WHERE m.share_id IS NOT NULL AND m.user_id <> \(userId) ORDER BY m.created_at, m.share_id
            """
        )
        return (incoming, outgoing)
    }

    private func shares(_ query: PostgresQuery) async throws -> [Share] {
        var shares: [Share] = []
        for try await row in try await client.query(query, logger: logger).decode(ShareRow.self) {
            if let share = Self.share(row) { shares.append(share) }
        }
        return shares
    }

    private static func share(_ row: ShareRow) -> Share? {
        guard let role = VaultRole(rawValue: row.4) else { return nil }
        return Share(
            id: row.0, vaultId: row.1, userId: row.2, email: row.3, role: role, grantedBy: row.5, grantedByEmail: row.6,
            createdAt: Timestamp(milliseconds: row.7), updatedAt: Timestamp(milliseconds: row.8)
        )
    }

    public func members(vaultId: String) async throws -> [VaultMember] {
        var members: [VaultMember] = []
        for try await row in try await client.query(
            """
            SELECT m.user_id, u.email, m.role, u.public_key, m.share_id, m.granted_by, m.created_at, u.identity_key, u.sharing_key_certificate,
                   m.grant_statement
            FROM vault_members m JOIN users u ON u.id = m.user_id WHERE m.vault_id = \(vaultId)
            ORDER BY m.role = 'owner' DESC, m.created_at, m.user_id
            """,
            logger: logger
        ).decode((String, String, String, String, String?, String?, Int64, String?, String?, String?).self) {
            guard let role = VaultRole(rawValue: row.2) else { continue }
            members.append(
                VaultMember(
                    userId: row.0, email: row.1, role: role, publicKey: row.3, shareId: row.4, grantedBy: row.5, since: Timestamp(milliseconds: row.6),
                    identityKey: row.7, sharingKeyCertificate: row.8, grant: row.9
                )
            )
        }
        return members
    }

    public func updateShareRole(id: String, role: VaultRole, grant: String?, at: Timestamp) async throws {
        try await client.query(
            "UPDATE vault_members SET role = \(role.rawValue), grant_statement = \(grant), updated_at = \(at.milliseconds) WHERE share_id = \(id)",
            logger: logger
        )
    }

    public func removeShare(id: String) async throws {
        try await client.query("DELETE FROM vault_members WHERE share_id = \(id)", logger: logger)
    }

    public func rotateVaultKey(
        vaultId: String, sealedBy: String, encryptedMetadata: String, wrappedKeys: [String: String], keyEpoch: Int, keyHistory: String?,
        removing: [String], at: Timestamp
    ) async throws -> [Share] {
        try await transaction { connection in
            // The vault row lock keeps shares, revokes, item writes and other rotations of this vault out until the rotation commits.
            var locked: Int64?
            for try await epoch in try await connection.query("SELECT key_epoch::int8 FROM vaults WHERE id = \(vaultId) FOR UPDATE", logger: logger).decode(Int64.self) {
                locked = epoch
            }
            guard let current = locked else { throw StoreError.membersChanged }
            guard current.addingReportingOverflow(1) == (Int64(keyEpoch), false) else { throw StoreError.keyEpochChanged(current: Int(current)) }
            var removed: [Share] = []
            if !removing.isEmpty {
                // The owner's membership has no share id, so it can never be removed here.
                for try await row in try await connection.query(
                    "\(unescaped: Self.shareSelect) WHERE m.vault_id = \(vaultId) AND m.user_id = ANY(\(removing)) AND m.share_id IS NOT NULL", logger: logger
                ).decode(ShareRow.self) {
                    if let share = Self.share(row) { removed.append(share) }
                }
                try await connection.query(
                    "DELETE FROM vault_members WHERE vault_id = \(vaultId) AND user_id = ANY(\(removing)) AND share_id IS NOT NULL", logger: logger
                )
            }
            var members: [String] = []
            for try await userId in try await connection.query("SELECT user_id FROM vault_members WHERE vault_id = \(vaultId)", logger: logger).decode(String.self) {
                members.append(userId)
            }
            guard Set(members) == Set(wrappedKeys.keys), members.count == wrappedKeys.count else { throw StoreError.membersChanged }
            let userIds = Array(wrappedKeys.keys)
            try await connection.query(
                """
                UPDATE vault_members m SET wrapped_key = k.key, key_sealed_by = NULLIF(\(sealedBy), m.user_id) FROM UNNEST(\(userIds)::text[], \(userIds.map { wrappedKeys[$0] ?? "" })::text[]) AS k(user_id, key)
                WHERE m.vault_id = \(vaultId) AND m.user_id = k.user_id
                """,
                logger: logger
            )
            try await connection.query(
                """
                UPDATE vaults SET encrypted_metadata = \(encryptedMetadata), key_epoch = \(keyEpoch), key_history = \(keyHistory),
                    revision = revision + 1, updated_at = \(at.milliseconds) WHERE id = \(vaultId)
                """,
                logger: logger
            )
            return removed
        }
    }
}
