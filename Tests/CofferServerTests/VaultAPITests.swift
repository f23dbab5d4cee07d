import CofferCrypto
import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// SPEC.md §6 on SQLite and PostgreSQL: vaults, items, versions, tombstones, restore.
@Suite("Vaults and items")
struct VaultAPITests {
    @Test(arguments: TestBackend.available)
    func vaultLifecycle(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let bob = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            #expect(vault.role == .owner && vault.revision == 0 && vault.ownerId == alice.session.user.id)

            let listed = try await client.authorized(.get, "/api/vaults", token: alice.token).decode(VaultsResponse.self)
            #expect(listed.vaults.map(\.id) == [vault.id])
            #expect(try await client.authorized(.get, "/api/vaults", token: bob.token).decode(VaultsResponse.self).vaults.isEmpty)
            #expect(try await client.authorized(.get, "/api/vaults/\(vault.id)", token: bob.token).status == .notFound)
            #expect(try await client.authorized(.get, "/api/vaults/not-a-uuid", token: alice.token).status == .notFound)

            let duplicate = try await client.authorized(.post, "/api/vaults", token: bob.token, json: CreateVaultRequest(id: vault.id, encryptedMetadata: try envelope(), wrappedKey: try envelope()))
            #expect(duplicate.status == .conflict)
            #expect(duplicate.error?.code == "vault_exists")
            let plaintext = try await client.authorized(.post, "/api/vaults", token: alice.token, json: CreateVaultRequest(encryptedMetadata: "{\"name\":\"Personal\"}", wrappedKey: try envelope()))
            #expect(plaintext.status == .unprocessableContent)
            let badId = try await client.authorized(.post, "/api/vaults", token: alice.token, json: CreateVaultRequest(id: "personal", encryptedMetadata: try envelope(), wrappedKey: try envelope()))
            #expect(badId.status == .badRequest)

            let metadata = try envelope()
            let updated = try await client.authorized(.put, "/api/vaults/\(vault.id)", token: alice.token, json: UpdateVaultRequest(encryptedMetadata: metadata))
            #expect(updated.status == .ok)
            #expect(try updated.decode(VaultSummary.self).encryptedMetadata == metadata)
            #expect(try updated.decode(VaultSummary.self).revision == 1)
            #expect(try await client.authorized(.put, "/api/vaults/\(vault.id)", token: bob.token, json: UpdateVaultRequest(encryptedMetadata: metadata)).status == .notFound)
            #expect(try await client.authorized(.delete, "/api/vaults/\(vault.id)", token: bob.token).status == .notFound)

            _ = try await client.createItem(alice, vault: vault.id)
            #expect(try await client.authorized(.delete, "/api/vaults/\(vault.id)", token: alice.token).status == .ok)
            #expect(try await client.authorized(.get, "/api/vaults/\(vault.id)", token: alice.token).status == .notFound)
            let audit = try await client.authorized(.get, "/api/audit", token: alice.token).decode(AuditResponse.self)
            #expect(audit.events.map(\.type).prefix(2) == ["vault_deleted", "vault_created"])
        }
    }

    @Test(arguments: TestBackend.available)
    func itemsVersionsAndConflicts(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.itemVersionsKept = 3; $0.maxItemSize = 4096 }).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let bob = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let first = try envelope()
            let item = try await client.createItem(alice, vault: vault.id, data: first)
            #expect(item.version == 1 && item.revision == 1 && !item.deleted && item.deviceId == alice.account.deviceId)
            #expect(try await client.authorized(.get, "/api/items/\(item.id)", token: alice.token).decode(Item.self) == item)
            #expect(try await client.authorized(.get, "/api/items/\(item.id)", token: bob.token).status == .notFound)

            let second = try envelope()
            let v2 = try await client.authorized(.put, "/api/items/\(item.id)", token: alice.token, json: UpdateItemRequest(baseVersion: 1, encryptedData: second))
            #expect(v2.status == .ok)
            #expect(try v2.decode(Item.self).version == 2)

            // Stale updates and deletes get 409 with the current item and the base version.
            let stale = try await client.authorized(.put, "/api/items/\(item.id)", token: alice.token, json: UpdateItemRequest(baseVersion: 1, encryptedData: try envelope()))
            #expect(stale.status == .conflict)
            let conflict = try stale.decode(ConflictResponse.self)
            #expect(conflict.code == "conflict" && conflict.current.version == 2 && conflict.current.encryptedData == second)
            #expect(conflict.base?.version == 1 && conflict.base?.encryptedData == first)
            let staleDelete = try await client.authorized(.delete, "/api/items/\(item.id)", token: alice.token, json: DeleteItemRequest(baseVersion: 1))
            #expect(staleDelete.status == .conflict)
            #expect(try await client.authorized(.get, "/api/items/\(item.id)", token: alice.token).decode(Item.self).encryptedData == second)

            let tombstone = try await client.authorized(.delete, "/api/items/\(item.id)", token: alice.token, json: DeleteItemRequest(baseVersion: 2)).decode(Item.self)
            #expect(tombstone.deleted && tombstone.encryptedData == nil && tombstone.version == 3)

            // Restore writes the old content back as a new version.
            let restored = try await client.authorized(.post, "/api/items/\(item.id)/restore", token: alice.token, json: RestoreItemRequest(version: 2))
            #expect(restored.status == .ok)
            let v4 = try restored.decode(Item.self)
            #expect(v4.version == 4 && !v4.deleted && v4.encryptedData == second)
            // Three versions kept: 4, 3, 2.
            let versions = try await client.authorized(.get, "/api/items/\(item.id)/versions", token: alice.token).decode(ItemVersionsResponse.self)
            #expect(versions.versions.map(\.version) == [4, 3, 2])
            #expect(try await client.authorized(.post, "/api/items/\(item.id)/versions", token: alice.token).status == .ok)
            #expect(try await client.authorized(.post, "/api/items/\(item.id)/restore", token: alice.token, json: RestoreItemRequest(version: 1)).status == .notFound)

            // Validation.
            let plaintext = try await client.authorized(.put, "/api/items/\(item.id)", token: alice.token, json: UpdateItemRequest(baseVersion: 4, encryptedData: "cGxhaW50ZXh0"))
            #expect(plaintext.status == .unprocessableContent)
            let tooLarge = try await client.authorized(.put, "/api/items/\(item.id)", token: alice.token, json: UpdateItemRequest(baseVersion: 4, encryptedData: try envelope(5000)))
            #expect(tooLarge.status == .contentTooLarge)
            let zero = try await client.authorized(.put, "/api/items/\(item.id)", token: alice.token, json: UpdateItemRequest(baseVersion: 0, encryptedData: try envelope()))
            #expect(zero.status == .badRequest)
            let duplicate = try await client.authorized(.post, "/api/vaults/\(vault.id)/items", token: alice.token, json: CreateItemRequest(id: item.id, encryptedData: try envelope()))
            #expect(duplicate.status == .conflict)
            #expect(try await client.authorized(.put, "/api/items/\(item.id)", token: bob.token, json: UpdateItemRequest(baseVersion: 4, encryptedData: try envelope())).status == .notFound)
        }
    }

    @Test(arguments: TestBackend.available)
    func listingPagesInRevisionOrder(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            var items: [Item] = []
            for _ in 0..<5 { items.append(try await client.createItem(alice, vault: vault.id)) }
            _ = try await client.authorized(.put, "/api/items/\(items[0].id)", token: alice.token, json: UpdateItemRequest(baseVersion: 1, encryptedData: try envelope()))
            let first = try await client.authorized(.get, "/api/vaults/\(vault.id)/items?limit=4", token: alice.token).decode(ItemsPage.self)
            #expect(first.items.map(\.revision) == [2, 3, 4, 5] && first.hasMore && first.cursor == 5)
            let second = try await client.authorized(.get, "/api/vaults/\(vault.id)/items?since=5&limit=4", token: alice.token).decode(ItemsPage.self)
            #expect(second.items.map(\.id) == [items[0].id] && second.items[0].revision == 6 && !second.hasMore)
            #expect(try await client.authorized(.get, "/api/vaults/\(vault.id)/items?limit=0", token: alice.token).status == .badRequest)
            #expect(try await client.authorized(.get, "/api/vaults/\(vault.id)/items?since=-1", token: alice.token).status == .badRequest)
        }
    }
}
