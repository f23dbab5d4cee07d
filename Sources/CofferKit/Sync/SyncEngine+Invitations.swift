import CofferCrypto
import CofferProtocol
import Foundation

/// A vault someone shared with this account that the person has not accepted on this device.
public struct VaultInvitation: Sendable, Equatable {
    public var vaultId: String
    /// Who sealed the vault key to this account (the server's claim; shown, then pinned on accept).
    public var sharerId: String
    /// The sharer as pinned on this device, or as the vault's member list gives it; nil when
    /// neither knows the sharer (offline, or a sharer who is not a member).
    public var sharer: ContactCheck?
    /// Whether the vault key copy carries its sealer's signature (copies made before identity
    /// keys do not: then the fingerprint is of the sharing key the server lists).
    public var signed: Bool = false
    /// Set when this device accepted the vault before, but its current key was sealed by someone
    /// not pinned here (a rotation by the owner after an admin shared it, or a server's forgery).
    public var reconfirm: Bool = false

    /// The sharer's email, when known.
    public var email: String? { sharer?.offered.email }
    /// The fingerprint of the sharer's sharing key: the pinned one when pinned, else the one offered.
    public var fingerprint: String? {
        switch sharer {
        case .pinned(let pinned): pinned.fingerprint
        case .new(let offered): offered.fingerprint
        case .changed(let pinned, _): pinned.fingerprint
        case nil: nil
        }
    }
}

/// What the engine refuses for invitations.
public enum InvitationError: Error, Equatable, CustomStringConvertible {
    /// A change to a vault shared with this account that the person has not accepted on this device.
    case notAccepted(vaultId: String, name: String)
    /// The sharer of an invitation is unknown to this device and the server names no such member.
    case unknownSharer(vaultId: String, sharerId: String)
    /// Accepting applies only to vaults shared with this account.
    case ownVault(vaultId: String)

    public var description: String {
        switch self {
        case .notAccepted(_, let name):
            "\"\(name)\" is a vault shared with you that you have not accepted on this device (an invitation): nothing is written into it "
                + "until you compare the sharer's fingerprint (`coffer vault list`) and run `coffer vault accept \"\(name)\"` (or `coffer vault decline`)"
        case .unknownSharer(let vaultId, let sharerId):
            "the sharer \(sharerId) of vault \(vaultId) is not pinned on this device and the server names no such member: it cannot be accepted"
        case .ownVault(let vaultId):
            "vault \(vaultId) is yours: there is nothing to accept"
        }
    }
}

/// A newly shared vault is an invitation: readable, but the engine queues nothing into it until
/// the person accepts it on this device, which pins the sharer. Each device accepts on its own
/// (acceptance lives only in its local cache): a device cannot tell another device's acceptance
/// from a server's claim of one. Vaults the account owns, and vaults this device held before
/// invitations existed, count as accepted.
extension SyncEngine {
    /// Whether this device writes into `summary`'s vault (accepted here; `requireTrustedKey`
    /// checks, besides, that its current key comes from someone pinned).
    public func isAccepted(_ summary: VaultSummary) async throws -> Bool {
        let (userId, _, _) = try await vaultClient.identity()
        return try summary.ownerId == userId || cache.acceptance(vaultId: summary.id) != nil
    }

    /// The invitation `summary` is, or nil when this device already writes into the vault: one
    /// never accepted here, or one accepted whose current key was sealed by someone this device
    /// has not pinned. The sharer is the identity that signed the key copy, named by the
    /// vault's member list when that list gives the same identity.
    public func invitation(for summary: VaultSummary) async throws -> VaultInvitation? {
        let (userId, _, _) = try await vaultClient.identity()
        guard summary.ownerId != userId else { return nil }
        let vault = try await vaultClient.decrypt(summary)
        let accepted = try cache.acceptance(vaultId: summary.id) != nil
        if accepted, (try? await requireTrustedKey(vault)) != nil { return nil }
        let sharerId = summary.keySealedBy ?? summary.ownerId
        return VaultInvitation(
            vaultId: summary.id, sharerId: sharerId, sharer: try? await sealerCheck(vault, sharerId: sharerId),
            signed: vault.sealerIdentity != nil, reconfirm: accepted
        )
    }

    /// Accepts an invitation on this device: pins the sharer's identity, the one that signed the
    /// key copy (a sharer whose pinned identity changed is refused with
    /// `CofferError.contactKeyChanged`), and records the acceptance.
    @discardableResult
    public func accept(_ summary: VaultSummary) async throws -> VaultInvitation {
        let (userId, _, _) = try await vaultClient.identity()
        guard summary.ownerId != userId else { throw InvitationError.ownVault(vaultId: summary.id) }
        let vault = try await vaultClient.decrypt(summary)
        let sharerId = summary.keySealedBy ?? summary.ownerId
        guard let sharing, let check = try await sealerCheck(vault, sharerId: sharerId) else {
            throw InvitationError.unknownSharer(vaultId: summary.id, sharerId: sharerId)
        }
        let sharer = try check.trusted()
        if case .new = check { try sharing.contacts.pin(sharer) }
        try cache.transaction {
            try cache.saveAcceptance(VaultAcceptance(vaultId: summary.id, sharerId: sharerId, fingerprint: sharer.fingerprint, acceptedAt: .now))
            try cache.log("accepted", vaultId: summary.id, detail: "shared by \(sharer.email), fingerprint \(sharer.fingerprint)")
        }
        return VaultInvitation(vaultId: summary.id, sharerId: sharerId, sharer: check, signed: vault.sealerIdentity != nil)
    }

    /// Refuses to use a vault key this device cannot attribute: a shared vault's key of an epoch
    /// it held before must be the very key it holds; a new one, for a vault accepted here, must
    /// carry the signature of an identity pinned for its sealer (a new epoch sealed unsigned, by
    /// a changed identity, or by someone not pinned here is refused by name, and the vault is
    /// kept out until the person confirms the sealer with `coffer vault accept`). A vault not
    /// accepted here is an invitation: read, never written, and after its first key only signed keys.
    public func requireTrustedKey(_ vault: DecryptedVault) async throws {
        guard let sealer = vault.summary.keySealedBy else { return }
        let summary = vault.summary
        let (userId, accountKey, _) = try await vaultClient.identity()
        let kept = try cache.vaultKeys(vaultId: summary.id)
        if let held = kept.first(where: { $0.epoch == summary.keyEpoch }) {
            let heldKey = try VaultCrypto.unwrap(held.wrapped, vaultId: summary.id, epoch: held.epoch, accountKey: accountKey, userId: userId)
            guard heldKey.key == vault.key.key else {
                throw CofferError.tampered("the server's copy of key \(summary.keyEpoch) of vault \(summary.id) is not the key this device holds for it: refused")
            }
            return
        }
        guard try cache.acceptance(vaultId: summary.id) != nil else {
            // An invitation is read, never written; still, once this device holds a key of the
            // vault, a newer one must be signed (an unsigned copy is only ever the first key a
            // device sees of a vault shared before identity keys), so that a key swapped in
            // before the person accepts is not what accepting makes writable.
            if !kept.isEmpty, vault.sealerIdentity == nil {
                throw CofferError.tampered(
                    "key \(summary.keyEpoch) of vault \(summary.id) arrived without its sealer's signature after this device held an earlier key: refused"
                )
            }
            return
        }
        guard let identity = vault.sealerIdentity else {
            throw CofferError.tampered(
                "key \(summary.keyEpoch) of vault \(summary.id) arrived without its sealer's signature: a new key is taken only signed by an identity pinned on this device, so it is refused"
            )
        }
        switch try await sealerCheck(vault, sharerId: sealer) {
        case .pinned?: return
        case .changed(let pinned, let offered)?:
            throw CofferError.contactKeyChanged(email: pinned.email, pinned: pinned.fingerprint, offered: offered.fingerprint)
        case .new(let offered)?:
            throw CofferError.tampered(
                "key \(summary.keyEpoch) of vault \(summary.id) was sealed by \(offered.email), whose identity (fingerprint \(offered.fingerprint)) is not pinned on this device: "
                    + "nothing is written under it until you compare fingerprints and run `coffer vault accept \(summary.id)`"
            )
        case nil:
            throw CofferError.tampered(
                "key \(summary.keyEpoch) of vault \(summary.id) was sealed by \(sealer) with identity fingerprint \(KeyFingerprint.of(userId: sealer, identityKey: identity)), "
                    + "which is not pinned on this device and which the vault's member list does not give: refused"
            )
        }
    }

    /// Declines (or leaves) a vault shared with this account: the share ends on the server and
    /// this device's acceptance is dropped; the next sync forgets the vault.
    public func decline(_ summary: VaultSummary) async throws {
        guard let sharing else { throw CofferError.localStorage("this engine has no contacts") }
        try await sharing.leave(vaultId: summary.id)
        try cache.transaction {
            try cache.removeAcceptance(vaultId: summary.id)
            try cache.log("declined", vaultId: summary.id)
        }
    }

    /// Refuses a write into a vault this device has not accepted.
    func requireAccepted(_ vault: DecryptedVault) async throws {
        guard try await isAccepted(vault.summary) else { throw InvitationError.notAccepted(vaultId: vault.summary.id, name: vault.metadata.name) }
    }

    /// The sealer of `vault`'s key copy compared with its pin. A signed copy names its identity:
    /// pinned with it is `.pinned`, pinned with another `.changed`, else the member list must give
    /// that very identity (certifying a sharing key) for a `.new` contact — or upgrade a pin made
    /// before identity keys; nil when it does not. An unsigned copy (made before identity keys)
    /// falls back on the pin, else the member list's sharing key.
    func sealerCheck(_ vault: DecryptedVault, sharerId: String) async throws -> ContactCheck? {
        guard let sharing else { return nil }
        let pinned = try sharing.contacts.contact(userId: sharerId)
        guard let identity = vault.sealerIdentity else {
            if let pinned { return .pinned(pinned) }
            guard let member = try await sharing.members(vaultId: vault.summary.id).first(where: { $0.userId == sharerId }) else { return nil }
            return try sharing.contacts.check(member)
        }
        if let pinned, let pinnedIdentity = pinned.identityKey {
            guard pinnedIdentity == identity else {
                return .changed(pinned: pinned, offered: PinnedContact(email: pinned.email, userId: sharerId, publicKey: "", identityKey: identity))
            }
            return .pinned(pinned)
        }
        guard let member = try await sharing.members(vaultId: vault.summary.id).first(where: { $0.userId == sharerId }),
            member.identityKey == identity
        else { return nil }
        return try sharing.contacts.check(member)
    }
}
