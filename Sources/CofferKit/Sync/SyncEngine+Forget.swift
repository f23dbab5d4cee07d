import CofferProtocol
import Foundation

/// Nothing local is deleted on a claim this device cannot verify: a vault the server says this
/// account lost is refused when the account owns it, and kept read-only when it was shared with
/// it; only the person's own action (`vault delete`, `vault forget`) drops a local copy.
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

    /// Drops the local copy of a vault the server no longer serves to this account (kept after
    /// access was lost, or refused), on the person's say-so. Queued changes become refused
    /// conflict records. Returns how many items had some.
    @discardableResult
    public func forgetKeptVault(id vaultId: String) throws -> Int {
        guard try cache.vaults().contains(where: { $0.summary.id == vaultId }) else { throw SyncError.unknownVault(vaultId) }
        guard try cache.keptVaultIds().contains(vaultId) || cache.refusedVaults().contains(where: { $0.vaultId == vaultId }) else {
            throw SyncError.stillServed(vaultId)
        }
        let kept = try cache.transaction {
            let count = try forgetVault(id: vaultId, reason: "the local copy was dropped on request", logKind: "forgotten")
            try cache.unmarkKept(vaultId: vaultId)
            try cache.removeRefusedVault(id: vaultId)
            return count
        }
        keys[vaultId] = nil
        emit(.lostVault(vaultId))
        publishStatus()
        return kept
    }

    /// Vaults kept read-only on this device after the server said access was lost.
    public func keptVaultIds() throws -> Set<String> {
        try cache.keptVaultIds()
    }

    /// The vaults the last round refused (failed verification), as recorded in the local cache.
    public func refusedVaults() throws -> [RefusedVault] {
        try cache.refusedVaults()
    }

    /// Removes a vault with its items and cursor from the cache. Its queued changes cannot be
    /// pushed any more, so each item's are kept as one refused conflict record (nothing is lost
    /// silently). Runs inside the caller's transaction. Returns how many items had queued changes.
    @discardableResult
    func forgetVault(id vaultId: String, reason: String, logKind: String) throws -> Int {
        let count = try refuseQueued(vaultId: vaultId, reason: reason)
        try cache.removeVault(id: vaultId)
        try cache.log(logKind, vaultId: vaultId)
        return count
    }

    /// A shared vault the server says this account lost: its items stay, read-only, until a
    /// verified removal exists; its queued changes cannot be pushed, so they become refused
    /// conflict records. Runs inside the caller's transaction.
    func keepLostVault(id vaultId: String) throws {
        try refuseQueued(vaultId: vaultId, reason: "access to the vault was lost")
        try cache.markKept(vaultId: vaultId, at: .now)
        try cache.log("lost", vaultId: vaultId, detail: "access lost; kept on this device, read-only")
    }

    /// Moves the queued changes of a vault into refused conflict records, one per item.
    @discardableResult
    private func refuseQueued(vaultId: String, reason: String) throws -> Int {
        let queued = Dictionary(grouping: try cache.pending(vaultId: vaultId), by: \.itemId)
        // In queue order, so that conflict numbers follow the order the changes were made in.
        for (itemId, changes) in queued.sorted(by: { $0.value[0].seq < $1.value[0].seq }) {
            try recordRejected(itemId: itemId, vaultId: vaultId, changes: changes, serverVersion: 0, reason: reason)
        }
        return queued.count
    }

    /// Whether `error` means that something the server served for one vault failed verification
    /// (the vault is then kept out of the round, the others go on).
    static func isVerificationFailure(_ error: any Error) -> Bool {
        switch error {
        case CofferError.tampered, CofferError.unknownKeyEpoch, CofferError.contactKeyChanged: true
        default: false
        }
    }

    /// Adds a refusal of `vaultId` to the round's report, named from the local copy when it has one.
    func refuse(_ vaultId: String, because reason: String, into report: inout SyncReport) async {
        guard !report.refusedVaults.contains(where: { $0.vaultId == vaultId }) else { return }
        var name: String?
        if (try? cache.vaults().contains(where: { $0.summary.id == vaultId })) ?? false {
            name = try? await vault(vaultId).metadata.name
        }
        report.refusedVaults.append(RefusedVault(vaultId: vaultId, name: name, reason: reason))
        try? cache.log("refused", vaultId: vaultId, detail: reason)
    }
}
