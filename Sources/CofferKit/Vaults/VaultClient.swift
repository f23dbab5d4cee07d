import CofferCrypto
import CofferProtocol
import Crypto
import Foundation

/// Vaults and items with all encryption on the device, on top of a logged-in `CofferClient`.
public struct VaultClient: Sendable {
    public let client: CofferClient

    public init(client: CofferClient) {
        self.client = client
    }

    func identity() async throws -> (userId: String, accountKey: SymmetricKey, deviceId: String) {
        guard let session = await client.session, let raw = Base64URL.decode(session.accountKey) else { throw CofferError.notLoggedIn }
        return (session.userId, SymmetricKey(data: raw), session.deviceId)
    }

    /// Creates a vault with a fresh key, wrapped with the account key.
    public func createVault(name: String) async throws -> DecryptedVault {
        let (userId, accountKey, _) = try await identity()
        let id = UUID().uuidString.lowercased()
        let key = VaultKey.random()
        let request = CreateVaultRequest(
            id: id, encryptedMetadata: try VaultCrypto.sealMetadata(VaultMetadata(name: name), vaultId: id, key: key),
            wrappedKey: try VaultCrypto.wrap(key, vaultId: id, accountKey: accountKey, userId: userId)
        )
        let summary: VaultSummary = try await client.authorized(.POST, "/api/vaults", body: request)
        return DecryptedVault(summary: summary, metadata: VaultMetadata(name: name), key: key)
    }

    /// Every vault with its key unwrapped; a key or name that fails to decrypt is a tamper error.
    public func vaults() async throws -> [DecryptedVault] {
        let response: VaultsResponse = try await client.authorized(.GET, "/api/vaults", body: Optional<Int>.none)
        return try await response.vaults.asyncMap { try await decrypt($0) }
    }

    public func vault(id: String) async throws -> DecryptedVault {
        let summary: VaultSummary = try await client.authorized(.GET, "/api/vaults/\(id)", body: Optional<Int>.none)
        return try await decrypt(summary)
    }

    func decrypt(_ summary: VaultSummary) async throws -> DecryptedVault {
        let (userId, accountKey, _) = try await identity()
        try SharingTrust.requireKeySource(of: summary, userId: userId)
        let key: VaultKey
        var sealerIdentity: String?
        if let sealer = summary.keySealedBy {
            // Shared with us (or rotated by another member): sealed to our sharing key.
            guard let session = await client.session else { throw CofferError.notLoggedIn }
            do {
                let privateKey = try AccountKeyBundle(session.keys).openSharingKey(accountKey: accountKey, email: session.email)
                let opened = try SealedVaultKey.open(
                    summary.wrappedKey, privateKey: privateKey, vaultId: summary.id, sealerId: sealer, recipientId: userId, keyEpoch: summary.keyEpoch
                )
                key = VaultKey(key: opened.key, epoch: summary.keyEpoch)
                sealerIdentity = opened.sealerIdentity
            } catch SealedVaultKeyError.badSignature {
                throw CofferError.tampered("the key of shared vault \(summary.id) carries a signature that does not verify: it was altered or forged")
            } catch {
                throw CofferError.tampered("the key of shared vault \(summary.id) failed to open: it was altered, moved, or is not for this account")
            }
        } else {
            key = try VaultCrypto.unwrap(summary.wrappedKey, vaultId: summary.id, epoch: summary.keyEpoch, accountKey: accountKey, userId: userId)
        }
        var keys = VaultKeyRing(current: key)
        if let history = summary.keyHistory {
            for earlier in try VaultCrypto.openKeyHistory(history, vaultId: summary.id, key: key) { keys.add(earlier) }
        }
        let metadata = try VaultCrypto.openMetadata(summary.encryptedMetadata, vaultId: summary.id, keys: keys)
        return DecryptedVault(summary: summary, metadata: metadata, keys: keys, sealerIdentity: sealerIdentity)
    }

    /// Renames a vault: new metadata sealed with its key (admins and the owner).
    public func renameVault(_ vault: DecryptedVault, to name: String) async throws -> DecryptedVault {
        let metadata = VaultMetadata(name: name)
        let request = UpdateVaultRequest(encryptedMetadata: try VaultCrypto.sealMetadata(metadata, vaultId: vault.summary.id, key: vault.key))
        let summary: VaultSummary = try await client.authorized(.PUT, "/api/vaults/\(vault.summary.id)", body: request)
        return DecryptedVault(summary: summary, metadata: metadata, keys: vault.keys, sealerIdentity: vault.sealerIdentity)
    }

    public func deleteVault(id: String) async throws {
        let _: SuccessResponse = try await client.authorized(.DELETE, "/api/vaults/\(id)", body: Optional<Int>.none)
    }

    /// Encrypts and adds an item.
    public func addItem(_ document: ItemDocument, to vault: DecryptedVault) async throws -> DecryptedItem {
        let (_, _, deviceId) = try await identity()
        var document = document
        document.modifiedBy = deviceId
        let id = UUID().uuidString.lowercased()
        let data = try VaultCrypto.sealItem(document, itemId: id, vaultId: vault.summary.id, version: 1, key: vault.key)
        let item: Item = try await client.authorized(.POST, "/api/vaults/\(vault.summary.id)/items", body: CreateItemRequest(id: id, encryptedData: data))
        return DecryptedItem(item: item, document: document)
    }

    /// All live items of a vault, decrypted (pages through the listing).
    public func items(in vault: DecryptedVault, includeDeleted: Bool = false) async throws -> [DecryptedItem] {
        var cursor: Int64 = 0
        var result: [DecryptedItem] = []
        while true {
            let page: ItemsPage = try await client.authorized(.GET, "/api/vaults/\(vault.summary.id)/items?since=\(cursor)&limit=5000", body: Optional<Int>.none)
            for item in page.items where includeDeleted || !item.deleted {
                result.append(try decrypt(item, in: vault))
            }
            cursor = page.cursor
            if !page.hasMore { break }
        }
        return result
    }

    public func item(id: String) async throws -> (DecryptedItem, DecryptedVault) {
        let item: Item = try await client.authorized(.GET, "/api/items/\(id)", body: Optional<Int>.none)
        let vault = try await vault(id: item.vaultId)
        return (try decrypt(item, in: vault), vault)
    }

    public func decrypt(_ item: Item, in vault: DecryptedVault) throws -> DecryptedItem {
        guard item.vaultId == vault.summary.id else {
            throw CofferError.tampered("item \(item.id) was served for vault \(vault.summary.id) but claims vault \(item.vaultId)")
        }
        if item.deleted {
            // A tombstone must open for this item and version; a bare one predates tombstones.
            if let data = item.encryptedData { _ = try VaultCrypto.openTombstone(data, itemId: item.id, vaultId: vault.summary.id, version: item.version, keys: vault.keys) }
            return DecryptedItem(item: item, document: nil)
        }
        guard let data = item.encryptedData else { throw CofferError.tampered("item \(item.id) of vault \(vault.summary.id) has no content") }
        return DecryptedItem(item: item, document: try VaultCrypto.openItem(data, itemId: item.id, vaultId: vault.summary.id, version: item.version, keys: vault.keys))
    }

    /// Replaces an item's content; a stale `baseVersion` throws `CofferClientError.server(409…)`.
    public func editItem(_ item: DecryptedItem, document: ItemDocument, in vault: DecryptedVault) async throws -> DecryptedItem {
        let (_, _, deviceId) = try await identity()
        var document = document
        document.modifiedAt = .now
        document.modifiedBy = deviceId
        return try await write(document, over: item.item, in: vault)
    }

    /// Writes `document` exactly as given as the version after `base`.
    private func write(_ document: ItemDocument, over base: Item, in vault: DecryptedVault) async throws -> DecryptedItem {
        let data = try VaultCrypto.sealItem(document, itemId: base.id, vaultId: vault.summary.id, version: try ServerNumbers.version(after: base.version, of: base.id), key: vault.key)
        let updated: Item = try await client.authorized(.PUT, "/api/items/\(base.id)", body: UpdateItemRequest(baseVersion: base.version, encryptedData: data))
        try Self.check(updated, wrote: data, over: base)
        return DecryptedItem(item: updated, document: document)
    }

    /// Deletes an item with a tombstone (this device, now) sealed for the deletion's version.
    public func deleteItem(_ item: DecryptedItem, in vault: DecryptedVault) async throws -> Item {
        let (_, _, deviceId) = try await identity()
        let base = item.item
        let tombstone = try VaultCrypto.sealTombstone(
            ItemTombstone(modifiedAt: .now, modifiedBy: deviceId), itemId: base.id, vaultId: vault.summary.id, version: try ServerNumbers.version(after: base.version, of: base.id),
            key: vault.key
        )
        let deleted: Item = try await client.authorized(.DELETE, "/api/items/\(base.id)", body: DeleteItemRequest(baseVersion: base.version, encryptedData: tombstone))
        try Self.check(deleted, wrote: tombstone, over: base)
        return deleted
    }

    /// The server's answer to a write must be what was written, as the version after `base`.
    private static func check(_ answer: Item, wrote data: String, over base: Item) throws {
        let expected = try ServerNumbers.version(after: base.version, of: base.id)
        guard answer.id == base.id, answer.vaultId == base.vaultId, answer.version == expected, answer.encryptedData == data else {
            throw CofferClientError.invalidResponse("the server answered the write of item \(base.id) with other content or version \(answer.version), not \(expected)")
        }
    }

    /// Kept versions, newest first, decrypted: each opens only as the version it is listed at, and
    /// a deletion only with its tombstone. `modifiedAt` and `modifiedBy` come from inside the
    /// sealed data (nil for a deletion written before tombstones), not from the server's listing.
    public func versions(of item: DecryptedItem, in vault: DecryptedVault) async throws -> [AuthenticatedVersion] {
        let response: ItemVersionsResponse = try await client.authorized(.GET, "/api/items/\(item.item.id)/versions", body: Optional<Int>.none)
        var seen = Set<Int>()
        return try response.versions.map { version in
            guard seen.insert(version.version).inserted else { throw CofferError.tampered("the history of item \(item.item.id) lists version \(version.version) twice") }
            if version.deleted {
                let tombstone = try version.encryptedData.map {
                    try VaultCrypto.openTombstone($0, itemId: item.item.id, vaultId: vault.summary.id, version: version.version, keys: vault.keys)
                }
                return AuthenticatedVersion(version: version, document: nil, modifiedAt: tombstone?.modifiedAt, modifiedBy: tombstone?.modifiedBy)
            }
            guard let data = version.encryptedData else { throw CofferError.tampered("version \(version.version) of item \(item.item.id) has no content") }
            let document = try VaultCrypto.openItem(data, itemId: item.item.id, vaultId: vault.summary.id, version: version.version, keys: vault.keys)
            return AuthenticatedVersion(version: version, document: document, modifiedAt: document.modifiedAt, modifiedBy: document.modifiedBy)
        }
    }

    /// Kept versions, newest first, decrypted (a deletion has no document).
    public func history(of item: DecryptedItem, in vault: DecryptedVault) async throws -> [(ItemVersion, ItemDocument?)] {
        try await versions(of: item, in: vault).map { ($0.version, $0.document) }
    }

    /// Writes an old version back as the newest: opened as the version it was, sealed again (under
    /// the current key) for the version it becomes, content unchanged (its edit time included, so
    /// that the history shows it as a restore of that version). Done by the client, since the
    /// server's copy of the old envelope would not open as another version.
    public func restore(_ item: DecryptedItem, version: Int, in vault: DecryptedVault) async throws -> DecryptedItem {
        guard let old = try await versions(of: item, in: vault).first(where: { $0.version.version == version }) else {
            throw CofferClientError.server(status: 404, code: ErrorCode.notFound, message: "version \(version) of this item is not kept")
        }
        let current = try decrypt(try await client.authorized(.GET, "/api/items/\(item.item.id)", body: Optional<Int>.none), in: vault)
        guard current.item.version >= item.item.version else {
            throw SyncError.itemRollback(itemId: item.item.id, vaultId: vault.summary.id, seen: item.item.version, answered: current.item.version)
        }
        guard let document = old.document else { return DecryptedItem(item: try await deleteItem(current, in: vault), document: nil) }
        return try await write(document, over: current.item, in: vault)
    }
}

/// One kept version of an item, opened: what it holds and, from inside the sealed data, when and
/// by which device it was written.
public struct AuthenticatedVersion: Sendable {
    /// The server's listing (its `createdAt` and `deviceId` are the server's word only).
    public var version: ItemVersion
    /// Nil for a deletion.
    public var document: ItemDocument?
    public var modifiedAt: Timestamp?
    public var modifiedBy: String?
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
