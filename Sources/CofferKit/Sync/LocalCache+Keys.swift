import CofferProtocol
import Foundation

/// A vault key this device has held, wrapped with the account key exactly as the owner's copy
/// is on the server. Kept for every epoch, so that whatever the server later serves or omits,
/// what this device queued, keeps in conflicts, or pulled before a rotation still opens.
struct CachedVaultKey: Sendable, Equatable {
    var vaultId: String
    var epoch: Int
    var wrapped: String
}

/// A revoke in progress: the member's removal and the key rotation are one server call, then the
/// items are re-encrypted. Recorded before the first step, so an interrupted or failed revoke is
/// shown by `coffer status` and finished by the next command.
public struct PendingRevoke: Sendable, Codable, Equatable {
    public var vaultId: String
    public var userId: String
    public var email: String
    /// The vault's key epoch when the revoke began; a current epoch above it means the rotation is done.
    public var fromEpoch: Int
    /// `rotate` until the server has rotated the key, then `reencrypt`.
    public var step: String
    public var startedAt: Timestamp
    public var lastError: String?
}

extension LocalCache {
    /// Tables added without a schema version: created if missing on every open, so they never
    /// collide with numbered migrations.
    func createKeyTables() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS vault_keys (vault_id TEXT NOT NULL, epoch INTEGER NOT NULL, wrapped TEXT NOT NULL, PRIMARY KEY (vault_id, epoch));
            CREATE TABLE IF NOT EXISTS pending_revokes (vault_id TEXT NOT NULL, user_id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (vault_id, user_id));
            """)
    }

    func vaultKeys(vaultId: String) throws -> [CachedVaultKey] {
        try database.query("SELECT epoch, wrapped FROM vault_keys WHERE vault_id = ? ORDER BY epoch", [.text(vaultId)]).map {
            CachedVaultKey(vaultId: vaultId, epoch: Int($0[0].int ?? 0), wrapped: $0[1].text ?? "")
        }
    }

    func saveVaultKey(_ key: CachedVaultKey) throws {
        try database.query(
            "INSERT INTO vault_keys (vault_id, epoch, wrapped) VALUES (?, ?, ?) ON CONFLICT (vault_id, epoch) DO NOTHING",
            [.text(key.vaultId), .int(Int64(key.epoch)), .text(key.wrapped)]
        )
    }

    func pendingRevokes() throws -> [PendingRevoke] {
        try database.query("SELECT record FROM pending_revokes ORDER BY vault_id, user_id").compactMap { row in
            try? JSONDecoder().decode(PendingRevoke.self, from: Data((row[0].text ?? "").utf8))
        }
    }

    func savePendingRevoke(_ revoke: PendingRevoke) throws {
        try database.query(
            "INSERT INTO pending_revokes (vault_id, user_id, record) VALUES (?, ?, ?) ON CONFLICT (vault_id, user_id) DO UPDATE SET record = excluded.record",
            [.text(revoke.vaultId), .text(revoke.userId), .text(String(decoding: try JSONEncoder().encode(revoke), as: UTF8.self))]
        )
    }

    func removePendingRevoke(vaultId: String, userId: String) throws {
        try database.query("DELETE FROM pending_revokes WHERE vault_id = ? AND user_id = ?", [.text(vaultId), .text(userId)])
    }
}
