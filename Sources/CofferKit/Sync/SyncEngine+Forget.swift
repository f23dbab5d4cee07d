import CofferProtocol
import Foundation

extension SyncEngine {
    /// Forgets a vault the server has confirmed deleted, at once rather than at the next pull;
    /// its queued changes are kept as refused conflict records. Returns how many items had some.
    @discardableResult
    public func forgetDeletedVault(id vaultId: String) throws -> Int {
        // Durable: the queued changes move into conflict records, and the next pull would not
        // repeat this (a deleted vault is no longer among the ones it reads).
        let kept = try cache.transaction {
            try forgetVault(id: vaultId, reason: "the vault was deleted", logKind: "deleted")
        }
        keys[vaultId] = nil
        emit(.lostVault(vaultId))
        publishStatus()
        return kept
    }

    /// Removes a vault with its items and cursor from the cache. Its queued changes cannot be
    /// pushed any more, so each item's are kept as one refused conflict record (nothing is lost
    /// silently). Runs inside the caller's transaction; the pull uses it for `lost` vaults.
    /// Returns how many items had queued changes.
    @discardableResult
    func forgetVault(id vaultId: String, reason: String, logKind: String) throws -> Int {
        let queued = Dictionary(grouping: try cache.pending(vaultId: vaultId), by: \.itemId)
        // In queue order, so that conflict numbers follow the order the changes were made in.
        for (itemId, changes) in queued.sorted(by: { $0.value[0].seq < $1.value[0].seq }) {
            try recordRejected(itemId: itemId, vaultId: vaultId, changes: changes, serverVersion: 0, reason: reason)
        }
        try cache.removeVault(id: vaultId)
        try cache.log(logKind, vaultId: vaultId)
        return queued.count
    }
}
