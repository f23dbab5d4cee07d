import CofferProtocol
import Foundation

/// A vault the last round kept out because it failed verification (a key, history or name that
/// does not open, a key older than one this device holds, a claim that this account lost a vault
/// it owns). Its local copy is left as it was and its queued changes stay queued.
public struct RefusedVault: Sendable, Codable, Equatable {
    public var vaultId: String
    /// The name from the local copy; nil when this device never opened the vault.
    public var name: String?
    /// What was wrong, in words.
    public var reason: String

    public init(vaultId: String, name: String?, reason: String) {
        self.vaultId = vaultId
        self.name = name
        self.reason = reason
    }

    /// `"Name" (id)`, or the id alone when the name cannot be read.
    public var label: String { name.map { "\"\($0)\" (\(vaultId))" } ?? vaultId }
}

extension LocalCache {
    /// Tables added without a schema version (see `createKeyTables`): vaults kept after the server
    /// said access was lost, and the vaults the last round refused.
    func createRefusalTables() throws {
        try database.execute("""
            CREATE TABLE IF NOT EXISTS kept_vaults (vault_id TEXT PRIMARY KEY, at INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS refused_vaults (vault_id TEXT PRIMARY KEY, name TEXT, reason TEXT NOT NULL);
            """)
    }

    /// Vaults whose access the server says was lost, kept read-only on this device.
    func keptVaultIds() throws -> Set<String> {
        Set(try database.query("SELECT vault_id FROM kept_vaults").compactMap { $0[0].text })
    }

    func markKept(vaultId: String, at time: Timestamp) throws {
        try database.query("INSERT INTO kept_vaults (vault_id, at) VALUES (?, ?) ON CONFLICT (vault_id) DO NOTHING", [.text(vaultId), .int(time.milliseconds)])
    }

    func unmarkKept(vaultId: String) throws {
        try database.query("DELETE FROM kept_vaults WHERE vault_id = ?", [.text(vaultId)])
    }

    func refusedVaults() throws -> [RefusedVault] {
        try database.query("SELECT vault_id, name, reason FROM refused_vaults ORDER BY vault_id").map {
            RefusedVault(vaultId: $0[0].text ?? "", name: $0[1].text, reason: $0[2].text ?? "")
        }
    }

    /// Records what a round refused; `replacing`: the round read every vault, so earlier
    /// refusals it did not repeat are over.
    func saveRefusedVaults(_ refused: [RefusedVault], replacing: Bool) throws {
        if replacing { try database.query("DELETE FROM refused_vaults") }
        for vault in refused {
            try database.query(
                "INSERT INTO refused_vaults (vault_id, name, reason) VALUES (?, ?, ?) ON CONFLICT (vault_id) DO UPDATE SET name = excluded.name, reason = excluded.reason",
                [.text(vault.vaultId), vault.name.map { .text($0) } ?? .null, .text(vault.reason)]
            )
        }
    }

    func removeRefusedVault(id: String) throws {
        try database.query("DELETE FROM refused_vaults WHERE vault_id = ?", [.text(id)])
    }
}
