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
        return try contacts.check(email: found.email, userId: found.userId, publicKey: found.publicKey)
    }

    /// Seals the vault key to the contact and shares the vault. A key that changed since it was
    /// pinned is refused unless `acceptChangedKey`; a new contact is pinned.
    public func share(_ vault: DecryptedVault, with check: ContactCheck, role: VaultRole, acceptChangedKey: Bool = false) async throws -> Share {
        let contact = try check.trusted(acceptChanged: acceptChangedKey)
        let (userId, _, _) = try await vaults.identity()
        let sealed = try SealedVaultKey.seal(vault.key.key, to: contact.publicKey, vaultId: vault.summary.id, sealerId: userId, recipientId: contact.userId)
        let share: Share = try await client.authorized(
            .POST, "/api/vaults/\(vault.summary.id)/share", body: ShareVaultRequest(userId: contact.userId, role: role, wrappedKey: sealed)
        )
        switch check {
        case .pinned: break
        case .new: try contacts.pin(contact)
        case .changed: try contacts.pin(PinnedContact(email: contact.email, userId: contact.userId, publicKey: contact.publicKey, verified: true))
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

    public func changeRole(shareId: String, to role: VaultRole) async throws -> Share {
        try await client.authorized(.PUT, "/api/shares/\(shareId)", body: UpdateShareRequest(role: role))
    }

    /// Removes a member, then (unless `rotate` is false) gives the vault a new key and
    /// re-encrypts its items, so the removed member's copy of the old key opens nothing new.
    @discardableResult
    public func revoke(_ vault: DecryptedVault, member userId: String, rotate: Bool = true) async throws -> RotationResult? {
        guard let member = try await members(vaultId: vault.summary.id).first(where: { $0.userId == userId }), let shareId = member.shareId else {
            throw CofferClientError.server(status: 404, code: ErrorCode.notFound, message: "that user is not a member of this vault (or is its owner)")
        }
        let _: SuccessResponse = try await client.authorized(.DELETE, "/api/shares/\(shareId)", body: Optional<Int>.none)
        return rotate ? try await rotateKey(of: vault) : nil
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

    /// A new vault key for every current member (each sealed to its pinned key), then every live
    /// item re-encrypted with it in batch pushes.
    public func rotateKey(of vault: DecryptedVault) async throws -> RotationResult {
        let (userId, accountKey, _) = try await vaults.identity()
        let old = vault
        let newKey = VaultKey.random()
        var rotated: VaultSummary?
        for attempt in 1...3 {
            var wrappedKeys: [String: String] = [:]
            for member in try await members(vaultId: vault.summary.id) {
                if member.userId == userId {
                    wrappedKeys[member.userId] = try VaultCrypto.wrap(newKey, vaultId: vault.summary.id, accountKey: accountKey, userId: userId)
                    continue
                }
                let check = try contacts.check(email: member.email, userId: member.userId, publicKey: member.publicKey)
                let contact = try check.trusted()
                if case .new = check { try contacts.pin(contact) }
                wrappedKeys[member.userId] = try SealedVaultKey.seal(
                    newKey.key, to: member.publicKey, vaultId: vault.summary.id, sealerId: userId, recipientId: member.userId
                )
            }
            let request = RotateVaultKeyRequest(
                encryptedMetadata: try VaultCrypto.sealMetadata(vault.metadata, vaultId: vault.summary.id, key: newKey), wrappedKeys: wrappedKeys
            )
            do {
                rotated = try await client.authorized(.POST, "/api/vaults/\(vault.summary.id)/keys", body: request)
                break
            } catch let error as CofferClientError where error.code == ErrorCode.membersChanged && attempt < 3 {
                continue  // someone joined or left meanwhile: seal for the new member list
            }
        }
        guard let rotated else { throw CofferClientError.server(status: 409, code: ErrorCode.membersChanged, message: "the vault's members kept changing") }
        let fresh = DecryptedVault(summary: rotated, metadata: vault.metadata, key: newKey)

        // Re-encrypt every live item; a conflict (an edit meanwhile) is re-read and retried.
        var pending = try await vaults.items(in: old)
        var reencrypted = 0
        for _ in 0..<5 where !pending.isEmpty {
            var retry: [DecryptedItem] = []
            for batch in stride(from: 0, to: pending.count, by: 500).map({ Array(pending[$0..<min($0 + 500, pending.count)]) }) {
                let changes = try batch.compactMap { item -> PushChange? in
                    guard let document = item.document else { return nil }
                    return PushChange(
                        vaultId: vault.summary.id, itemId: item.item.id, baseVersion: item.item.version,
                        encryptedData: try VaultCrypto.sealItem(document, itemId: item.item.id, vaultId: vault.summary.id, key: newKey)
                    )
                }
                let response: PushResponse = try await client.authorized(.POST, "/api/sync/push", body: PushRequest(changes: changes))
                for (change, result) in zip(changes, response.results) {
                    switch result.status {
                    case .applied: reencrypted += 1
                    case .conflict:
                        guard let current = result.current, !current.deleted else { continue }
                        // Written meanwhile with the old key (or already with the new one): re-read either way.
                        if let document = try? VaultCrypto.openItem(current.encryptedData ?? "", itemId: current.id, vaultId: vault.summary.id, key: old.key) {
                            retry.append(DecryptedItem(item: current, document: document))
                        }
                    case .rejected:
                        throw CofferClientError.server(status: 422, code: result.error?.code ?? "rejected", message: "re-encrypting item \(change.itemId): \(result.error?.error ?? "rejected")")
                    }
                }
            }
            pending = retry
        }
        return RotationResult(vault: fresh, reencrypted: reencrypted)
    }
}
