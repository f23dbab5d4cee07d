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
    /// Whether this device writes into `summary`'s vault.
    public func isAccepted(_ summary: VaultSummary) async throws -> Bool {
        let (userId, _, _) = try await vaultClient.identity()
        return try summary.ownerId == userId || cache.acceptance(vaultId: summary.id) != nil
    }

    /// The invitation `summary` is, or nil when this device already writes into the vault.
    /// The sharer is looked up among the vault's members when it is not pinned (best effort).
    public func invitation(for summary: VaultSummary) async throws -> VaultInvitation? {
        guard try await !isAccepted(summary) else { return nil }
        let sharerId = summary.keySealedBy ?? summary.ownerId
        return VaultInvitation(vaultId: summary.id, sharerId: sharerId, sharer: try? await sharerCheck(vaultId: summary.id, sharerId: sharerId))
    }

    /// Accepts an invitation on this device: pins the sharer (a sharer whose pinned key changed
    /// is refused with `CofferError.contactKeyChanged`) and records the acceptance.
    @discardableResult
    public func accept(_ summary: VaultSummary) async throws -> VaultInvitation {
        let (userId, _, _) = try await vaultClient.identity()
        guard summary.ownerId != userId else { throw InvitationError.ownVault(vaultId: summary.id) }
        let sharerId = summary.keySealedBy ?? summary.ownerId
        guard let sharing, let check = try await sharerCheck(vaultId: summary.id, sharerId: sharerId) else {
            throw InvitationError.unknownSharer(vaultId: summary.id, sharerId: sharerId)
        }
        let sharer = try check.trusted()
        if case .new = check { try sharing.contacts.pin(sharer) }
        try cache.transaction {
            try cache.saveAcceptance(VaultAcceptance(vaultId: summary.id, sharerId: sharerId, fingerprint: sharer.fingerprint, acceptedAt: .now))
            try cache.log("accepted", vaultId: summary.id, detail: "shared by \(sharer.email), fingerprint \(sharer.fingerprint)")
        }
        return VaultInvitation(vaultId: summary.id, sharerId: sharerId, sharer: check)
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

    /// The sharer as pinned, else as the vault's member list names it; nil when neither does.
    private func sharerCheck(vaultId: String, sharerId: String) async throws -> ContactCheck? {
        guard let sharing else { return nil }
        if let pinned = try sharing.contacts.contact(userId: sharerId) { return .pinned(pinned) }
        guard let member = try await sharing.members(vaultId: vaultId).first(where: { $0.userId == sharerId }) else { return nil }
        return try sharing.contacts.check(email: member.email, userId: member.userId, publicKey: member.publicKey)
    }
}
