import CofferCrypto
import CofferProtocol
import Foundation

/// Vault key rotation as an event of the sync engine: every key a vault has had is kept (wrapped
/// with the account key) in the local cache, so nothing this device holds ever becomes
/// unreadable; a key it has not seen is fetched and verified; whatever is queued under an older
/// key is sealed again under the current one before it is pushed.
extension SyncEngine {
    /// Opens `summary` (a tampered key, history or name stops here), refuses a key older than one
    /// this device already holds, merges in every key kept locally, and keeps any new one.
    @discardableResult
    func adopt(_ summary: VaultSummary) async throws -> DecryptedVault {
        var opened = try await vaultClient.decrypt(summary)
        try await requireTrustedKey(opened)
        let (userId, accountKey, _) = try await vaultClient.identity()
        let kept = try cache.vaultKeys(vaultId: summary.id)
        if let newest = kept.map(\.epoch).max(), summary.keyEpoch < newest {
            throw CofferError.tampered(
                "the server presented key \(summary.keyEpoch) of vault \(summary.id) as current, but this device already holds its key \(newest)"
            )
        }
        for key in kept where opened.keys.key(epoch: key.epoch) == nil {
            opened.keys.add(try VaultCrypto.unwrap(key.wrapped, vaultId: summary.id, epoch: key.epoch, accountKey: accountKey, userId: userId))
        }
        let known = Set(kept.map(\.epoch))
        let fresh = opened.keys.all.filter { !known.contains($0.epoch) }
        if !fresh.isEmpty {
            try cache.transaction {
                for key in fresh {
                    try cache.saveVaultKey(CachedVaultKey(
                        vaultId: summary.id, epoch: key.epoch, wrapped: try VaultCrypto.wrap(key, vaultId: summary.id, accountKey: accountKey, userId: userId)
                    ))
                }
            }
        }
        keys[summary.id] = opened
        return opened
    }

    /// Reads a vault's current summary from the server (after a rotation elsewhere, or a
    /// `stale_key` refusal), verifies it and stores it.
    @discardableResult
    func refreshVault(_ vaultId: String) async throws -> DecryptedVault {
        let summary = try await transport.vault(id: vaultId)
        let opened = try await adopt(summary)
        try cache.refetchableTransaction {
            try cache.saveVault(summary)
            try cache.log("vault", vaultId: vaultId, detail: "key \(summary.keyEpoch)")
        }
        return opened
    }

    /// Queued (or conflict-record) `data` sealed under the vault's current key for the version it
    /// is pushed as.
    func sealedForPush(_ data: String, itemId: String, vaultId: String, version: Int) async throws -> String {
        try VaultCrypto.rebindQueued(data, itemId: itemId, vaultId: vaultId, version: version, keys: try await vault(vaultId).keys)
    }

    /// Every key of a vault this device holds. For a vault it lost or deleted, the keys kept in the
    /// local cache, so that its refused changes and conflicts still open.
    func keyRing(_ vaultId: String) async throws -> VaultKeyRing {
        do {
            return try await vault(vaultId).keys
        } catch SyncError.unknownVault(let id) {
            let (userId, accountKey, _) = try await vaultClient.identity()
            let kept = try cache.vaultKeys(vaultId: vaultId).map {
                try VaultCrypto.unwrap($0.wrapped, vaultId: vaultId, epoch: $0.epoch, accountKey: accountKey, userId: userId)
            }
            guard let newest = kept.max(by: { $0.epoch < $1.epoch }) else { throw SyncError.unknownVault(id) }
            return VaultKeyRing(current: newest, earlier: kept)
        }
    }

    /// The key epoch of each vault in the local copy (for status displays and tests).
    public func keyEpoch(vaultId: String) async throws -> Int {
        try await vault(vaultId).key.epoch
    }
}
