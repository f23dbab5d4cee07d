import CofferCrypto
import CofferProtocol
import Foundation

/// The one place that decides what this device may believe about vault keys and members the
/// server presents. Today it rests on the account's own key wrapping and on pinned sharing keys;
/// signed identity keys and membership statements slot in here (the sealer of a key copy, a
/// member a rotation seals to) without changing the callers.
public enum SharingTrust {
    /// Refuses a key copy whose origin cannot be right: the key of a vault this account owns
    /// comes only from its own account-key wrapping (HPKE base mode lets anyone seal to our
    /// public key and name any sealer, so a "sealed" copy of an owned vault is the server's key),
    /// and no copy is ever sealed by this account to itself.
    public static func requireKeySource(of summary: VaultSummary, userId: String) throws {
        guard let sealer = summary.keySealedBy else { return }
        if summary.ownerId == userId {
            throw CofferError.tampered(
                "vault \(summary.id) is owned by this account, but the server served its key as sealed by \(sealer): "
                    + "the key of an owned vault comes only from this account's own key wrapping, so this one is refused"
            )
        }
        if sealer == userId {
            throw CofferError.tampered(
                "the key of vault \(summary.id) is presented as sealed by this account to itself: this account never does that, so it is refused"
            )
        }
    }

    /// Whether a rotation may seal the new key to `member`: pinned with the same key, or new
    /// and confirmed by the person (`confirmed` holds what was shown to them). A key that changed
    /// since it was pinned is always refused (`CofferError.contactKeyChanged`), an unconfirmed
    /// new member with `SharingTrustError.unconfirmedMembers`.
    public static func sealable(_ check: ContactCheck, confirmed: [PinnedContact]) throws -> PinnedContact {
        switch check {
        case .pinned(let pinned): return pinned
        case .changed(let pinned, let offered):
            throw CofferError.contactKeyChanged(email: offered.email, pinned: pinned.fingerprint, offered: offered.fingerprint)
        case .new(let offered):
            guard confirmed.contains(where: { $0.userId == offered.userId && $0.publicKey == offered.publicKey }) else {
                throw SharingTrustError.unconfirmedMembers([offered])
            }
            return offered
        }
    }
}

/// What `SharingTrust` refuses beyond `CofferError`.
public enum SharingTrustError: Error, Equatable, CustomStringConvertible {
    /// Members not pinned on this device whom the person has not confirmed: a new key is never sealed to them.
    case unconfirmedMembers([PinnedContact])
    /// Only the owner rotates a vault's key: the owner takes its key only from its own wrapping,
    /// so a key sealed to it by anyone else would be refused and the owner locked out.
    case notOwner(vaultId: String)

    public var description: String {
        switch self {
        case .unconfirmedMembers(let members):
            "the vault key was not rotated: "
                + members.map { "\($0.email) (fingerprint \($0.fingerprint))" }.joined(separator: ", ")
                + (members.count == 1 ? " is a member" : " are members")
                + " not confirmed on this device; run `coffer vault revoke` again to confirm them after comparing fingerprints"
        case .notOwner(let vaultId):
            "only the owner of vault \(vaultId) can rotate its key (the owner takes its key only from its own account key)"
        }
    }
}

/// What a member's signed grant says about it, for a device that knows the owner's identity.
public enum GrantCheck: Sendable, Equatable {
    /// Granted by the owner, or by an admin whose own grant verifies, to this very identity.
    case verified(MembershipGrant)
    /// A grant that does not hold: malformed, not for this vault or member, or naming another
    /// identity than the one listed (the reason says which).
    case mismatch(String)
}

extension SharingTrust {
    /// The grants of `members` that chain to the owner's identity: a grant by the owner (with
    /// `ownerIdentity`), or by an admin whose own grant verifies (signed with the identity that
    /// grant names), to the identity the member list gives. Members without a grant are absent.
    public static func grants(of members: [VaultMember], vaultId: String, ownerId: String, ownerIdentity: String) -> [String: GrantCheck] {
        var opened: [String: MembershipGrant] = [:]
        var checks: [String: GrantCheck] = [:]
        for member in members where member.userId != ownerId {
            guard let wire = member.grant else { continue }
            guard let grant = try? MembershipGrant.open(wire) else {
                checks[member.userId] = .mismatch("the membership statement of \(member.email) is malformed or its signature does not verify")
                continue
            }
            guard grant.vaultId == vaultId, grant.memberId == member.userId else {
                checks[member.userId] = .mismatch("the membership statement of \(member.email) is another vault's or another member's")
                continue
            }
            guard grant.memberIdentityKey == member.identityKey else {
                checks[member.userId] = .mismatch(
                    "the member list gives \(member.email) another identity key than the one its signed membership names: the server changed it, so nothing is sealed to it"
                )
                continue
            }
            opened[member.userId] = grant
        }
        // Grants by the owner first, then by admins verified so far, until nothing more verifies.
        var verifiedAdmins: [String: String] = [ownerId: ownerIdentity]
        var pending = opened
        while true {
            let ready = pending.filter { verifiedAdmins[$0.value.granterId] == $0.value.granterIdentityKey }
            guard !ready.isEmpty else { break }
            for (memberId, grant) in ready {
                checks[memberId] = .verified(grant)
                if grant.role == VaultRole.admin.rawValue { verifiedAdmins[memberId] = grant.memberIdentityKey }
                pending[memberId] = nil
            }
        }
        // Signed by someone this device cannot verify as owner or admin (an admin granted before
        // membership statements): no verdict, so the member is treated as one without a grant.
        return checks
    }
}
