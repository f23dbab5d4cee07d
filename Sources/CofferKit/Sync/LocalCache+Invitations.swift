import CofferProtocol
import Foundation

/// That the person accepted a vault someone shared with this account, on this device, and whom
/// they accepted it from (the sharer pinned at that moment).
public struct VaultAcceptance: Sendable, Equatable {
    public var vaultId: String
    /// The sharer accepted; nil for a vault this device held before invitations existed.
    public var sharerId: String?
    public var fingerprint: String?
    public var acceptedAt: Timestamp
}

extension LocalCache {
    /// The acceptance table, created without a schema version (like the key tables). A cache
    /// that predates it has every vault it holds seeded as accepted: those were written into
    /// before, and upgrading must not turn them into invitations.
    func createInvitationTables() throws {
        let exists = { try !self.database.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_acceptances'").isEmpty }
        guard try !exists() else { return }
        // Checked again under the write lock: another process may have created it meanwhile.
        try database.transaction {
            guard try !exists() else { return }
            try database.execute("""
                CREATE TABLE IF NOT EXISTS vault_acceptances (
                    vault_id TEXT PRIMARY KEY, sharer_id TEXT, fingerprint TEXT, accepted_at INTEGER NOT NULL);
                """)
            // A file that lacks the vaults table holds no vault to seed.
            guard try !database.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vaults'").isEmpty else { return }
            try database.query(
                "INSERT INTO vault_acceptances (vault_id, sharer_id, fingerprint, accepted_at) SELECT id, NULL, NULL, ? FROM vaults",
                [.int(Timestamp.now.milliseconds)]
            )
        }
    }

    func acceptance(vaultId: String) throws -> VaultAcceptance? {
        try database.query("SELECT sharer_id, fingerprint, accepted_at FROM vault_acceptances WHERE vault_id = ?", [.text(vaultId)]).first.map {
            VaultAcceptance(vaultId: vaultId, sharerId: $0[0].text, fingerprint: $0[1].text, acceptedAt: Timestamp(milliseconds: $0[2].int ?? 0))
        }
    }

    func saveAcceptance(_ acceptance: VaultAcceptance) throws {
        try database.query(
            """
            INSERT INTO vault_acceptances (vault_id, sharer_id, fingerprint, accepted_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (vault_id) DO UPDATE SET sharer_id = excluded.sharer_id, fingerprint = excluded.fingerprint, accepted_at = excluded.accepted_at
            """,
            [.text(acceptance.vaultId), acceptance.sharerId.map(LocalValue.text) ?? .null, acceptance.fingerprint.map(LocalValue.text) ?? .null,
             .int(acceptance.acceptedAt.milliseconds)]
        )
    }

    func removeAcceptance(vaultId: String) throws {
        try database.query("DELETE FROM vault_acceptances WHERE vault_id = ?", [.text(vaultId)])
    }
}
