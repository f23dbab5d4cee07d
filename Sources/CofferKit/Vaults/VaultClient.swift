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
        let key: VaultKey
        if let sealer = summary.keySealedBy {
            // Shared with us (or rotated by another member): sealed to our sharing key.
            guard let session = await client.session else { throw CofferError.notLoggedIn }
            let bundle = AccountKeyBundle(
                encryptedAccountKey: session.keys.encryptedAccountKey, publicKey: session.keys.publicKey,
                encryptedPrivateKey: session.keys.encryptedPrivateKey
            )
            do {
                let privateKey = try bundle.openSharingKey(accountKey: accountKey, email: session.email)
                key = VaultKey(
                    key: try SealedVaultKey.open(
                        summary.wrappedKey, privateKey: privateKey, vaultId: summary.id, sealerId: sealer, recipientId: userId, keyEpoch: summary.keyEpoch
                    ),
                    epoch: summary.keyEpoch
                )
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
        return DecryptedVault(summary: summary, metadata: metadata, keys: keys)
    }

    /// Renames a vault: new metadata sealed with its key (admins and the owner).
    public func renameVault(_ vault: DecryptedVault, to name: String) async throws -> DecryptedVault {
        let metadata = VaultMetadata(name: name)
        let request = UpdateVaultRequest(encryptedMetadata: try VaultCrypto.sealMetadata(metadata, vaultId: vault.summary.id, key: vault.key))
        let summary: VaultSummary = try await client.authorized(.PUT, "/api/vaults/\(vault.summary.id)", body: request)
        return DecryptedVault(summary: summary, metadata: metadata, keys: vault.keys)
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
        let data = try VaultCrypto.sealItem(document, itemId: id, vaultId: vault.summary.id, key: vault.key)
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
        guard let data = item.encryptedData, !item.deleted else { return DecryptedItem(item: item, document: nil) }
        return DecryptedItem(item: item, document: try VaultCrypto.openItem(data, itemId: item.id, vaultId: vault.summary.id, keys: vault.keys))
    }

    /// Replaces an item's content; a stale `baseVersion` throws `CofferClientError.server(409…)`.
    public func editItem(_ item: DecryptedItem, document: ItemDocument, in vault: DecryptedVault) async throws -> DecryptedItem {
        let (_, _, deviceId) = try await identity()
        var document = document
        document.modifiedAt = .now
        document.modifiedBy = deviceId
        let data = try VaultCrypto.sealItem(document, itemId: item.item.id, vaultId: vault.summary.id, key: vault.key)
        let updated: Item = try await client.authorized(.PUT, "/api/items/\(item.item.id)", body: UpdateItemRequest(baseVersion: item.item.version, encryptedData: data))
        return DecryptedItem(item: updated, document: document)
    }

    public func deleteItem(_ item: DecryptedItem) async throws -> Item {
        try await client.authorized(.DELETE, "/api/items/\(item.item.id)", body: DeleteItemRequest(baseVersion: item.item.version))
    }

    /// Kept versions, newest first, decrypted.
    public func history(of item: DecryptedItem, in vault: DecryptedVault) async throws -> [(ItemVersion, ItemDocument?)] {
        let response: ItemVersionsResponse = try await client.authorized(.GET, "/api/items/\(item.item.id)/versions", body: Optional<Int>.none)
        return try response.versions.map { version in
            guard let data = version.encryptedData, !version.deleted else { return (version, nil) }
            return (version, try VaultCrypto.openItem(data, itemId: item.item.id, vaultId: vault.summary.id, keys: vault.keys))
        }
    }

    public func restore(_ item: DecryptedItem, version: Int, in vault: DecryptedVault) async throws -> DecryptedItem {
        do {
            let restored: Item = try await client.authorized(.POST, "/api/items/\(item.item.id)/restore", body: RestoreItemRequest(version: version))
            return try decrypt(restored, in: vault)
        } catch let error as CofferClientError where error.code == ErrorCode.staleKey {
            // That version is sealed under a key rotated away since: write its content again under the current key.
            guard let (old, document) = try await history(of: item, in: vault).first(where: { $0.0.version == version }) else {
                throw CofferClientError.server(status: 404, code: ErrorCode.notFound, message: "version \(version) of this item is not kept")
            }
            let current: Item = try await client.authorized(.GET, "/api/items/\(item.item.id)", body: Optional<Int>.none)
            let base = DecryptedItem(item: current, document: nil)
            guard let document, !old.deleted else { return DecryptedItem(item: try await deleteItem(base), document: nil) }
            return try await editItem(base, document: document, in: vault)
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
