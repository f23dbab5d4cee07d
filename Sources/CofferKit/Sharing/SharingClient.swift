import CofferCrypto
import CofferProtocol
import Crypto
import Foundation

/// Sharing vaults (SPEC.md §8) with the vault key sealed on this device to each recipient's
/// pinned sharing key, so the server cannot slip its own key in.
public struct SharingClient: Sendable {
    public let vaults: VaultClient
    public let contacts: ContactStore

    public init(vaults: VaultClient, contacts: ContactStore) {
        self.vaults = vaults
        self.contacts = contacts
    }

    private var client: CofferClient { vaults.client }

    /// The user behind `email` and how its key compares with the one pinned for it.
    public func lookup(email: String) async throws -> ContactCheck {
        var query = URLComponents()
        query.queryItems = [URLQueryItem(name: "email", value: email)]
        let found: UserLookupResponse = try await client.authorized(.GET, "/api/users/lookup?\(query.percentEncodedQuery ?? "")", body: Optional<Int>.none)
        return try contacts.check(
            email: found.email, userId: found.userId, publicKey: found.publicKey, identityKey: found.identityKey, certificate: found.sharingKeyCertificate
        )
    }

    /// Seals the vault key to the contact and shares the vault. A key that changed since it was
    /// pinned is refused unless `acceptChangedKey`; a new contact is pinned.
    public func share(_ vault: DecryptedVault, with check: ContactCheck, role: VaultRole, acceptChangedKey: Bool = false) async throws -> Share {
        let contact = try check.trusted(acceptChanged: acceptChangedKey)
        let (userId, _, _) = try await vaults.identity()
        let signer = try await client.identityKey()
        let grant = try Self.grant(vaultId: vault.summary.id, to: contact, role: role, by: userId, signer: signer)
        var key = vault.key
        var share: Share?
        for attempt in 1...2 {
            let sealed = try SealedVaultKey.seal(
                key.key, to: contact.publicKey, vaultId: vault.summary.id, sealerId: userId, recipientId: contact.userId, keyEpoch: key.epoch, signer: signer
            )
            do {
                share = try await client.authorized(
                    .POST, "/api/vaults/\(vault.summary.id)/share", body: ShareVaultRequest(userId: contact.userId, role: role, wrappedKey: sealed, keyEpoch: key.epoch, grant: grant)
                )
                break
            } catch let error as CofferClientError where error.code == ErrorCode.staleKey && attempt == 1 {
                // The key was rotated since this copy of the vault was read: seal the current one.
                key = try await vaults.vault(id: vault.summary.id).key
            }
        }
        guard let share else { throw CofferClientError.server(status: 409, code: ErrorCode.staleKey, message: "the vault key kept changing") }
        // Shared again by this device: no longer one it removed.
        try contacts.clearRemoval(vaultId: vault.summary.id, memberId: contact.userId)
        switch check {
        case .pinned: break
        case .new: try contacts.pin(contact)
        case .changed: try contacts.pin(PinnedContact(email: contact.email, userId: contact.userId, publicKey: contact.publicKey, identityKey: contact.identityKey, verified: true))
        }
        return share
    }

    public func members(vaultId: String) async throws -> [VaultMember] {
        let response: VaultMembersResponse = try await client.authorized(.GET, "/api/vaults/\(vaultId)/members", body: Optional<Int>.none)
        return response.members
    }

    public func shares() async throws -> SharesResponse {
        try await client.authorized(.GET, "/api/shares", body: Optional<Int>.none)
    }

    /// Changes a member's role, with a new signed statement of it when the member has an identity.
    public func changeRole(shareId: String, to role: VaultRole) async throws -> Share {
        var grant: String?
        if let share = try await shares().outgoing.first(where: { $0.id == shareId }),
            let member = try await members(vaultId: share.vaultId).first(where: { $0.shareId == shareId }),
            let contact = try? contacts.check(member).offered {
            let (userId, _, _) = try await vaults.identity()
            grant = try Self.grant(vaultId: share.vaultId, to: contact, role: role, by: userId, signer: try await client.identityKey())
        }
        return try await client.authorized(.PUT, "/api/shares/\(shareId)", body: UpdateShareRequest(role: role, grant: grant))
    }

    /// Upgrade in place: every member of a vault this account owns who has no verified grant
    /// but is pinned on this device with the very identity the server lists gets a signed grant
    /// (the owner's next login signs the memberships it can vouch for). Returns how many.
    public func signMissingGrants() async throws -> Int {
        let (userId, _, _) = try await vaults.identity()
        var signed = 0
        for vaultId in Set(try await shares().outgoing.map(\.vaultId)).sorted() {
            let members = try await members(vaultId: vaultId)
            guard members.contains(where: { $0.userId == userId && $0.role == .owner }) else { continue }
            let grants = try await grants(of: members, vaultId: vaultId, ownerId: userId)
            for member in members where member.userId != userId && grants[member.userId] == nil {
                guard let shareId = member.shareId, case .pinned(let contact)? = try? contacts.check(member), contact.identityKey != nil,
                    let grant = try Self.grant(vaultId: vaultId, to: contact, role: member.role, by: userId, signer: try await client.identityKey())
                else { continue }
                let _: Share = try await client.authorized(.PUT, "/api/shares/\(shareId)", body: UpdateShareRequest(role: member.role, grant: grant))
                signed += 1
            }
        }
        return signed
    }

    /// Refuses a member this device removed from the vault, listed again by the server, unless a
    /// verified grant made after the removal names it (someone really shared the vault again).
    func requireNotRemoved(_ member: VaultMember, vaultId: String, grants: [String: GrantCheck]) throws {
        guard let removedAt = try contacts.removal(vaultId: vaultId, memberId: member.userId) else { return }
        if case .verified(let grant)? = grants[member.userId], grant.issuedAt >= removedAt { return }
        throw CofferError.tampered(
            "\(member.email) was removed from vault \(vaultId) by this device (\(Timestamp(milliseconds: removedAt).iso8601)), "
                + "and the server lists them as a member again without a signed grant made since: nothing is sealed to them"
        )
    }

    /// The members' grants as checked against this account's own identity (the owner's, for an owner's device).
    func grants(of members: [VaultMember], vaultId: String, ownerId: String) async throws -> [String: GrantCheck] {
        let identity = Base64URL.encode(try await client.identityKey().publicKey.rawRepresentation)
        return SharingTrust.grants(of: members, vaultId: vaultId, ownerId: ownerId, ownerIdentity: identity)
    }

    /// The signed statement that `contact` (its identity) holds `role`; nil for a contact without
    /// an identity key (an account not logged in since identity keys came).
    static func grant(vaultId: String, to contact: PinnedContact, role: VaultRole, by granterId: String, signer: Curve25519.Signing.PrivateKey) throws -> String? {
        guard let identityKey = contact.identityKey else { return nil }
        return try MembershipGrant(
            vaultId: vaultId, memberId: contact.userId, memberIdentityKey: identityKey, role: role.rawValue, granterId: granterId,
            granterIdentityKey: Base64URL.encode(signer.publicKey.rawRepresentation), issuedAt: Timestamp.now.milliseconds
        ).signed(by: signer)
    }

    /// Removes a member and gives the vault a new key in one server transaction (unless `rotate`
    /// is false: then only the share is removed), then re-encrypts its items, so the removed
    /// member's copy of the old key opens nothing new.
    @discardableResult
    public func revoke(_ vault: DecryptedVault, member userId: String, rotate: Bool = true, confirming: [PinnedContact] = []) async throws -> RotationResult? {
        guard let member = try await members(vaultId: vault.summary.id).first(where: { $0.userId == userId }), let shareId = member.shareId else {
            throw CofferClientError.server(status: 404, code: ErrorCode.notFound, message: "that user is not a member of this vault (or is its owner)")
        }
        guard rotate else {
            let _: SuccessResponse = try await client.authorized(.DELETE, "/api/shares/\(shareId)", body: Optional<Int>.none)
            try contacts.recordRemoval(vaultId: vault.summary.id, memberIds: [userId])
            return nil
        }
        return try await rotateKey(of: vault, removing: [userId], confirming: confirming)
    }

    /// Leaves a vault someone shared with this account.
    public func leave(vaultId: String) async throws {
        guard let share = try await shares().incoming.first(where: { $0.vaultId == vaultId }) else {
            throw CofferClientError.server(status: 404, code: ErrorCode.notFound, message: "no vault with this id was shared with you")
        }
        let _: SuccessResponse = try await client.authorized(.DELETE, "/api/shares/\(share.id)", body: Optional<Int>.none)
    }

    public struct RotationResult: Sendable {
        public var vault: DecryptedVault
        public var reencrypted: Int
    }

    /// A new vault key for every member who stays (each sealed to its pinned key), `removing`
    /// taken out in the same server transaction, then every live item re-encrypted with it.
    public func rotateKey(of vault: DecryptedVault, removing: [String] = [], confirming: [PinnedContact] = []) async throws -> RotationResult {
        let fresh = try await rotateOnly(vault, removing: removing, confirming: confirming)
        let reencrypted = try await reencrypt(fresh)
        return RotationResult(vault: fresh, reencrypted: reencrypted)
    }

    /// Members who stay after `removing`, are not pinned on this device and have no grant that
    /// chains to this owner, as the server offers them (each with its fingerprint), for the
    /// person to confirm before a rotation seals to them. A member whose pinned key changed
    /// throws `CofferError.contactKeyChanged`; a grant that names another identity, or a member
    /// this device removed, a tamper error.
    public func unconfirmedMembers(vaultId: String, removing: [String] = []) async throws -> [PinnedContact] {
        let (userId, _, _) = try await vaults.identity()
        let members = try await members(vaultId: vaultId)
        let grants = try await grants(of: members, vaultId: vaultId, ownerId: userId)
        var unconfirmed: [PinnedContact] = []
        for member in members where member.userId != userId && !removing.contains(member.userId) {
            let check = try contacts.check(member)
            if case .changed(let pinned, let offered) = check {
                throw CofferError.contactKeyChanged(email: offered.email, pinned: pinned.fingerprint, offered: offered.fingerprint)
            }
            try requireNotRemoved(member, vaultId: vaultId, grants: grants)
            switch grants[member.userId] {
            case .mismatch(let reason)?: throw CofferError.tampered(reason)
            case .verified?: continue
            case nil: break
            }
            if case .new(let offered) = check { unconfirmed.append(offered) }
        }
        return unconfirmed
    }

    /// The rotation itself: a new key of the next epoch, sealed to every member who stays, with
    /// every earlier key in its history. Retried when the members or the epoch changed meanwhile.
    /// Seals only to members pinned on this device or in `confirming` (what the person confirmed,
    /// pinned here before anything is sent); any other member refuses the whole rotation
    /// (`SharingTrustError.unconfirmedMembers`, all of them named), as does a changed key.
    public func rotateOnly(_ vault: DecryptedVault, removing: [String] = [], confirming: [PinnedContact] = []) async throws -> DecryptedVault {
        let (userId, accountKey, _) = try await vaults.identity()
        guard vault.summary.ownerId == userId else { throw SharingTrustError.notOwner(vaultId: vault.summary.id) }
        let signer = try await client.identityKey()
        var vault = vault
        for attempt in 1...3 {
            let newKey = VaultKey.random(epoch: try ServerNumbers.keyEpoch(after: vault.summary.keyEpoch, of: vault.summary.id))
            var wrappedKeys: [String: String] = [:]
            var sealTo: [(VaultMember, PinnedContact, ContactCheck)] = []
            var unconfirmed: [PinnedContact] = []
            let members = try await members(vaultId: vault.summary.id)
            let grants = try await grants(of: members, vaultId: vault.summary.id, ownerId: userId)
            for member in members where !removing.contains(member.userId) {
                if member.userId == userId {
                    wrappedKeys[member.userId] = try VaultCrypto.wrap(newKey, vaultId: vault.summary.id, accountKey: accountKey, userId: userId)
                    continue
                }
                let check = try contacts.check(member)
                if case .changed(let pinned, let offered) = check {
                    throw CofferError.contactKeyChanged(email: offered.email, pinned: pinned.fingerprint, offered: offered.fingerprint)
                }
                try requireNotRemoved(member, vaultId: vault.summary.id, grants: grants)
                switch grants[member.userId] {
                case .mismatch(let reason)?: throw CofferError.tampered(reason)
                case .verified?:
                    // Granted by this owner (or a verified admin) to this very identity: sealable without a pin.
                    sealTo.append((member, check.offered, check))
                    continue
                case nil: break
                }
                do {
                    sealTo.append((member, try SharingTrust.sealable(check, confirmed: confirming), check))
                } catch SharingTrustError.unconfirmedMembers(let members) {
                    unconfirmed += members
                }
            }
            guard unconfirmed.isEmpty else { throw SharingTrustError.unconfirmedMembers(unconfirmed) }
            for (member, contact, check) in sealTo {
                if case .new = check { try contacts.pin(contact) }
                wrappedKeys[member.userId] = try SealedVaultKey.seal(
                    newKey.key, to: contact.publicKey, vaultId: vault.summary.id, sealerId: userId, recipientId: member.userId, keyEpoch: newKey.epoch,
                    signer: signer
                )
            }
            let request = RotateVaultKeyRequest(
                encryptedMetadata: try VaultCrypto.sealMetadata(vault.metadata, vaultId: vault.summary.id, key: newKey), wrappedKeys: wrappedKeys,
                keyEpoch: newKey.epoch, keyHistory: try VaultCrypto.sealKeyHistory(vault.keys.all, vaultId: vault.summary.id, key: newKey),
                removeUserIds: removing.isEmpty ? nil : removing
            )
            do {
                let rotated: VaultSummary = try await client.authorized(.POST, "/api/vaults/\(vault.summary.id)/keys", body: request)
                try contacts.recordRemoval(vaultId: vault.summary.id, memberIds: removing)
                // Upgrade in place: members this owner just sealed to (pinned or confirmed) who have
                // no verified grant yet get one now (best effort: the rotation stands either way).
                for (member, contact, _) in sealTo where grants[member.userId] == nil {
                    if let shareId = member.shareId, let grant = try? Self.grant(vaultId: vault.summary.id, to: contact, role: member.role, by: userId, signer: signer) {
                        let _: Share? = try? await client.authorized(.PUT, "/api/shares/\(shareId)", body: UpdateShareRequest(role: member.role, grant: grant))
                    }
                }
                var keys = vault.keys
                keys.add(newKey)
                return DecryptedVault(summary: rotated, metadata: vault.metadata, keys: keys)
            } catch let error as CofferClientError where attempt < 3 && (error.code == ErrorCode.membersChanged || error.code == ErrorCode.keyEpochChanged) {
                // Someone joined, left or rotated meanwhile: read the vault again and seal for what it is now.
                let current = try await vaults.vault(id: vault.summary.id)
                var keys = current.keys
                for key in vault.keys.all { keys.add(key) }
                vault = DecryptedVault(summary: current.summary, metadata: current.metadata, keys: keys)
            }
        }
        throw CofferClientError.server(status: 409, code: ErrorCode.membersChanged, message: "the vault's members or key kept changing")
    }

    /// Re-encrypts every live item not yet sealed with the vault's current key, in batch pushes;
    /// an edit made meanwhile is re-read and retried. Safe to run again after an interruption.
    public func reencrypt(_ vault: DecryptedVault) async throws -> Int {
        let current = vault.key.epoch
        var pending = try await vaults.items(in: vault).filter { $0.item.encryptedData.flatMap(Envelope.keyEpoch(of:)) != current }
        var reencrypted = 0
        for _ in 0..<5 where !pending.isEmpty {
            var retry: [DecryptedItem] = []
            for batch in stride(from: 0, to: pending.count, by: 500).map({ Array(pending[$0..<min($0 + 500, pending.count)]) }) {
                let changes = try batch.compactMap { item -> PushChange? in
                    guard let document = item.document else { return nil }
                    return PushChange(
                        vaultId: vault.summary.id, itemId: item.item.id, baseVersion: item.item.version,
                        encryptedData: try VaultCrypto.sealItem(document, itemId: item.item.id, vaultId: vault.summary.id, version: try ServerNumbers.version(after: item.item.version, of: item.item.id), key: vault.key)
                    )
                }
                let response: PushResponse = try await client.authorized(.POST, "/api/sync/push", body: PushRequest(changes: changes))
                for (change, result) in zip(changes, response.results) {
                    switch result.status {
                    case .applied: reencrypted += 1
                    case .conflict:
                        guard let current = result.current, !current.deleted, let data = current.encryptedData,
                            Envelope.keyEpoch(of: data) != vault.key.epoch
                        else { continue }
                        // Written meanwhile under an earlier key: re-read it and seal it again.
                        if let document = try? VaultCrypto.openItem(data, itemId: current.id, vaultId: vault.summary.id, version: current.version, keys: vault.keys) {
                            retry.append(DecryptedItem(item: current, document: document))
                        }
                    case .rejected:
                        throw CofferClientError.server(status: 422, code: result.error?.code ?? "rejected", message: "re-encrypting item \(change.itemId): \(result.error?.error ?? "rejected")")
                    }
                }
            }
            pending = retry
        }
        return reencrypted
    }
}
