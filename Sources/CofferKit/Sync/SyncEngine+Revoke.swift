import CofferCrypto
import CofferProtocol
import Foundation

/// What a finished revoke did.
public struct RevokeOutcome: Sendable, Equatable {
    public var vaultId: String
    public var email: String
    /// The vault's key epoch after the rotation.
    public var keyEpoch: Int
    public var reencrypted: Int
}

/// `coffer vault revoke` as one recorded local operation: the removal and the rotation are one
/// server transaction (a refused rotation removes nobody), the re-encryption follows, and the
/// record stays in the local cache until both are done, so that an interruption or a failure is
/// shown by `coffer status` and finished by the next command (every round tries again).
extension SyncEngine {
    /// Removes `member` from the vault and rotates its key; then re-encrypts the vault's items.
    /// The new key is sealed only to members pinned on this device or in `confirming` (what the
    /// person confirmed when asked); `confirming` is pinned, never recorded: a revoke finished
    /// later meets any other member as unconfirmed and stays recorded with that error.
    public func revoke(member: VaultMember, vaultId: String, confirming: [PinnedContact] = []) async throws -> RevokeOutcome {
        guard sharing != nil else { throw CofferError.localStorage("this engine has no contacts to seal a new key to") }
        let vault = try await refreshVault(vaultId)
        let (userId, _, _) = try await vaultClient.identity()
        guard vault.summary.ownerId == userId else { throw SharingTrustError.notOwner(vaultId: vaultId) }
        let record = PendingRevoke(
            vaultId: vaultId, userId: member.userId, email: member.email, fromEpoch: vault.key.epoch, step: "rotate", startedAt: .now, lastError: nil
        )
        try cache.transaction {
            try cache.savePendingRevoke(record)
            try cache.log("revoke", vaultId: vaultId, detail: "recorded: remove \(member.userId), then rotate from key \(vault.key.epoch)")
        }
        publishStatus()
        return try await finish(record, confirming: confirming)
    }

    /// Revokes recorded but not finished (interrupted, offline, refused).
    public func pendingRevokes() throws -> [PendingRevoke] {
        try cache.pendingRevokes()
    }

    /// Tries to finish every recorded revoke; a failure is kept in its record (and shown by
    /// `coffer status`), never thrown, so it does not stop the round that calls this.
    @discardableResult
    public func finishPendingRevokes() async -> [RevokeOutcome] {
        var done: [RevokeOutcome] = []
        for record in (try? cache.pendingRevokes()) ?? [] {
            if let outcome = try? await finish(record) { done.append(outcome) }
        }
        return done
    }

    private func finish(_ start: PendingRevoke, confirming: [PinnedContact] = []) async throws -> RevokeOutcome {
        guard let sharing else { throw CofferError.localStorage("this engine has no contacts to seal a new key to") }
        var record = start
        do {
            var vault = try await refreshVault(record.vaultId)
            if record.step == "rotate" {
                let stillMember = try await sharing.members(vaultId: record.vaultId).contains { $0.userId == record.userId }
                if vault.key.epoch <= record.fromEpoch || stillMember {
                    let rotated = try await sharing.rotateOnly(vault, removing: [record.userId], confirming: confirming)
                    try cache.refetchableTransaction { try cache.saveVault(rotated.summary) }
                    vault = try await adopt(rotated.summary)
                }
                record.step = "reencrypt"
                record.lastError = nil
                try cache.transaction {
                    try cache.savePendingRevoke(record)
                    try cache.log("revoke", vaultId: record.vaultId, detail: "removed \(record.userId); key rotated to \(vault.key.epoch)")
                }
            }
            let reencrypted = try await sharing.reencrypt(vault)
            try cache.transaction {
                try cache.removePendingRevoke(vaultId: record.vaultId, userId: record.userId)
                try cache.log("revoke", vaultId: record.vaultId, detail: "done: \(reencrypted) items re-encrypted under key \(vault.key.epoch)")
            }
            publishStatus()
            return RevokeOutcome(vaultId: record.vaultId, email: record.email, keyEpoch: vault.key.epoch, reencrypted: reencrypted)
        } catch let error as CofferClientError where error.status == 404 {
            // The vault is gone, or this account lost it: nothing is left to rotate.
            try? cache.transaction {
                try cache.removePendingRevoke(vaultId: record.vaultId, userId: record.userId)
                try cache.log("revoke", vaultId: record.vaultId, detail: "dropped: the vault is no longer readable")
            }
            throw error
        } catch {
            record.lastError = "\(error)"
            try? cache.transaction { try cache.savePendingRevoke(record) }
            publishStatus()
            throw error
        }
    }
}
