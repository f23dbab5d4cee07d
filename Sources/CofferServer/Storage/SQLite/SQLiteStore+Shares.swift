import CofferProtocol
import SQLiteNIO

extension SQLiteStore {
    private static let shareSelect = """
        SELECT m.share_id, m.vault_id, m.user_id, u.email, m.role, m.granted_by, g.email AS granted_by_email, m.created_at,
               COALESCE(m.updated_at, m.created_at) AS updated_at
        FROM vault_members m JOIN users u ON u.id = m.user_id JOIN users g ON g.id = m.granted_by
        """

    public func addShare(_ share: Share, wrappedKey: String, keyEpoch: Int, grant: String?) async throws {
        try await write { connection in
            if let current = try connection.query("SELECT key_epoch FROM vaults WHERE id = ?", [.text(share.vaultId)]).first?.int("key_epoch"), current != keyEpoch {
                throw StoreError.staleKey(current: current)
            }
            let inserted = try connection.query(
                """
                INSERT INTO vault_members (vault_id, user_id, role, wrapped_key, created_at, share_id, granted_by, updated_at, key_sealed_by, grant_statement)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (vault_id, user_id) DO NOTHING RETURNING user_id
                """,
                [
                    .text(share.vaultId), .text(share.userId), .text(share.role.rawValue), .text(wrappedKey), .timestamp(share.createdAt),
                    .text(share.id), .text(share.grantedBy), .timestamp(share.updatedAt), .text(share.grantedBy), grant.map { .text($0) } ?? .null,
                ]
            )
            guard !inserted.isEmpty else { throw StoreError.alreadyMember }
        }
    }

    public func share(id: String) async throws -> Share? {
        try await read { try $0.query("\(Self.shareSelect) WHERE m.share_id = ?", [.text(id)]).first.flatMap(Self.share) }
    }

    public func shares(userId: String) async throws -> (incoming: [Share], outgoing: [Share]) {
        try await read { connection in
            let incoming = try connection.query(
                "\(Self.shareSelect) WHERE m.user_id = ? AND m.share_id IS NOT NULL ORDER BY m.created_at, m.share_id", [.text(userId)]
            ).compactMap(Self.share)
            let outgoing = try connection.query(
                """
                \(Self.shareSelect) JOIN vault_members me ON me.vault_id = m.vault_id AND me.user_id = ? AND me.role IN ('owner', 'admin')
                WHERE m.share_id IS NOT NULL AND m.user_id <> ? ORDER BY m.created_at, m.share_id
                """,
                [.text(userId), .text(userId)]
            ).compactMap(Self.share)
            return (incoming, outgoing)
        }
    }

    private static func share(_ row: SQLiteResultRow) -> Share? {
        guard let id = row.string("share_id"), let role = row.string("role").flatMap(VaultRole.init(rawValue:)) else { return nil }
        return Share(
            id: id, vaultId: row.string("vault_id") ?? "", userId: row.string("user_id") ?? "", email: row.string("email") ?? "", role: role,
            grantedBy: row.string("granted_by") ?? "", grantedByEmail: row.string("granted_by_email") ?? "",
            createdAt: row.timestamp("created_at"), updatedAt: row.timestamp("updated_at")
        )
    }

    public func members(vaultId: String) async throws -> [VaultMember] {
        try await read { connection in
            try connection.query(
                """
                SELECT m.user_id, u.email, m.role, u.public_key, m.share_id, m.granted_by, m.created_at, u.identity_key, u.sharing_key_certificate,
                       m.grant_statement
                FROM vault_members m JOIN users u ON u.id = m.user_id WHERE m.vault_id = ?
                ORDER BY m.role = 'owner' DESC, m.created_at, m.user_id
                """,
                [.text(vaultId)]
            ).compactMap { row in
                guard let role = row.string("role").flatMap(VaultRole.init(rawValue:)) else { return nil }
                return VaultMember(
                    userId: row.string("user_id") ?? "", email: row.string("email") ?? "", role: role, publicKey: row.string("public_key") ?? "",
                    shareId: row.string("share_id"), grantedBy: row.string("granted_by"), since: row.timestamp("created_at"),
                    identityKey: row.string("identity_key"), sharingKeyCertificate: row.string("sharing_key_certificate"),
                    grant: row.string("grant_statement")
                )
            }
        }
    }

    public func updateShareRole(id: String, role: VaultRole, grant: String?, at: Timestamp) async throws {
        try await write { connection in
            try connection.query(
                "UPDATE vault_members SET role = ?, grant_statement = ?, updated_at = ? WHERE share_id = ?",
                [.text(role.rawValue), grant.map { .text($0) } ?? .null, .timestamp(at), .text(id)]
            )
        }
    }

    public func removeShare(id: String) async throws {
        try await write { connection in
            try connection.query("DELETE FROM vault_members WHERE share_id = ?", [.text(id)])
        }
    }

    public func rotateVaultKey(
        vaultId: String, sealedBy: String, encryptedMetadata: String, wrappedKeys: [String: String], keyEpoch: Int, keyHistory: String?,
        removing: [String], at: Timestamp
    ) async throws -> [Share] {
        try await write { connection in
            guard let current = try connection.query("SELECT key_epoch FROM vaults WHERE id = ?", [.text(vaultId)]).first?.int("key_epoch") else {
                throw StoreError.membersChanged
            }
            guard current.addingReportingOverflow(1) == (keyEpoch, false) else { throw StoreError.keyEpochChanged(current: current) }
            var removed: [Share] = []
            for userId in removing {
                // The owner's membership has no share id, so it can never be removed here.
                if let share = try connection.query("\(Self.shareSelect) WHERE m.vault_id = ? AND m.user_id = ? AND m.share_id IS NOT NULL", [.text(vaultId), .text(userId)])
                    .first.flatMap(Self.share) {
                    removed.append(share)
                    try connection.query("DELETE FROM vault_members WHERE share_id = ?", [.text(share.id)])
                }
            }
            let members = try connection.query("SELECT user_id FROM vault_members WHERE vault_id = ?", [.text(vaultId)]).compactMap { $0.string("user_id") }
            guard Set(members) == Set(wrappedKeys.keys), members.count == wrappedKeys.count else { throw StoreError.membersChanged }
            for (userId, key) in wrappedKeys {
                try connection.query(
                    "UPDATE vault_members SET wrapped_key = ?, key_sealed_by = ? WHERE vault_id = ? AND user_id = ?",
                    [.text(key), userId == sealedBy ? .null : .text(sealedBy), .text(vaultId), .text(userId)]
                )
            }
            try connection.query(
                "UPDATE vaults SET encrypted_metadata = ?, key_epoch = ?, key_history = ?, revision = revision + 1, updated_at = ? WHERE id = ?",
                [.text(encryptedMetadata), .integer(keyEpoch), keyHistory.map { .text($0) } ?? .null, .timestamp(at), .text(vaultId)]
            )
            return removed
        }
    }
}
