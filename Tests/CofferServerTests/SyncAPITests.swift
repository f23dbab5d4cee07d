import CofferCrypto
import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// SPEC.md §7 on SQLite and PostgreSQL: pull, push, status, resolve, and the concurrency rules.
@Suite("Sync protocol")
struct SyncAPITests {
    @Test(arguments: TestBackend.available)
    func pushAppliesEachChangeOnItsOwn(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let bob = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let bobsVault = try await client.createVault(bob)
            let existing = try await client.createItem(alice, vault: vault.id)
            let newId = UUID().uuidString.lowercased()
            let results = try await client.push(alice, [
                PushChange(vaultId: vault.id, itemId: newId, baseVersion: 0, encryptedData: try envelope()),
                PushChange(vaultId: vault.id, itemId: existing.id, baseVersion: 1, encryptedData: try envelope()),
                PushChange(vaultId: vault.id, itemId: existing.id, baseVersion: 1, encryptedData: try envelope()),
                PushChange(vaultId: vault.id, itemId: UUID().uuidString, baseVersion: 0, encryptedData: "not an envelope"),
                PushChange(vaultId: bobsVault.id, itemId: UUID().uuidString, baseVersion: 0, encryptedData: try envelope()),
                PushChange(vaultId: vault.id, itemId: newId, baseVersion: 1, deleted: true),
                PushChange(vaultId: vault.id, itemId: UUID().uuidString, baseVersion: 3, encryptedData: try envelope()),
            ])
            #expect(results.map(\.status) == [.applied, .applied, .conflict, .rejected, .rejected, .applied, .rejected])
            #expect(results[0].version == 1 && results[0].revision == 2)
            #expect(results[1].version == 2 && results[1].revision == 3)
            #expect(results[2].current?.version == 2 && results[2].base?.version == 1)
            #expect(results[3].error?.code == "not_ciphertext")
            #expect(results[4].error?.code == "not_found")
            #expect(results[5].version == 2 && results[5].revision == 4)
            #expect(results[6].error?.code == "not_found")
        }
    }

    @Test("one push of a create, 24 edits and a stale edit: versions 1…25, history pruned to 20, base found in the same push", arguments: TestBackend.available)
    func aLongPushOnOneItem(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let id = UUID().uuidString.lowercased()
            var changes = [PushChange(vaultId: vault.id, itemId: id, baseVersion: 0, encryptedData: try envelope())]
            for version in 1...24 {
                changes.append(PushChange(vaultId: vault.id, itemId: id, baseVersion: version, encryptedData: try envelope()))
            }
            changes.append(PushChange(vaultId: vault.id, itemId: id, baseVersion: 24, encryptedData: try envelope()))
            let results = try await client.push(alice, changes)
            #expect(results.prefix(25).map(\.version) == Array(1...25).map(Optional.some))
            #expect(results.prefix(25).map(\.revision) == Array(1...25).map { Optional.some(Int64($0)) })
            #expect(results[25].status == .conflict && results[25].current?.version == 25)
            #expect(results[25].base?.version == 24 && results[25].base?.encryptedData == changes[23].encryptedData)
            let versions = try await client.authorized(.get, "/api/items/\(id)/versions", token: alice.token).decode(ItemVersionsResponse.self)
            #expect(versions.versions.map(\.version) == Array((6...25).reversed()))
            let item = try await client.authorized(.get, "/api/items/\(id)", token: alice.token).decode(Item.self)
            #expect(item.version == 25 && item.revision == 25 && item.encryptedData == changes[24].encryptedData)
        }
    }

    @Test("16 concurrent pushes over two vaults, half in each order: all applied, revisions without gaps", arguments: TestBackend.available)
    func crossingPushesDoNotDeadlock(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.ahc(.http)) { client in
            let alice = try await SignedInUser.register(client)
            let first = try await client.createVault(alice)
            let second = try await client.createVault(alice)
            let results = try await withThrowingTaskGroup(of: [PushResult].self) { group in
                for index in 0..<16 {
                    group.addTask {
                        var changes: [PushChange] = []
                        for vault in index.isMultiple(of: 2) ? [first.id, second.id] : [second.id, first.id] {
                            for _ in 0..<5 {
                                changes.append(PushChange(vaultId: vault, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: try envelope()))
                            }
                        }
                        return try await client.push(alice, changes)
                    }
                }
                return try await group.reduce(into: [PushResult]()) { $0 += $1 }
            }
            #expect(results.count == 160 && results.allSatisfy { $0.status == .applied })
            let page = try await client.pull(alice, [first.id: 0, second.id: 0], limit: 500)
            for changes in page.vaults {
                #expect(changes.items.map(\.revision) == Array(1...80))
            }
        }
    }

    @Test(arguments: TestBackend.available)
    func aRetriedPushIsAppliedOnce(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let item = try await client.createItem(alice, vault: vault.id)
            let change = PushChange(vaultId: vault.id, itemId: item.id, baseVersion: 1, encryptedData: try envelope())
            let first = try await client.push(alice, [change])
            let retry = try await client.push(alice, [change])
            #expect(first[0].status == .applied && retry[0].status == .applied)
            #expect(first[0].version == 2 && retry[0].version == 2 && first[0].revision == retry[0].revision)
            let create = PushChange(vaultId: vault.id, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: try envelope())
            let created = try await client.push(alice, [create, create])
            #expect(created.map(\.status) == [.applied, .applied] && created[0].version == 1 && created[1].version == 1)
            let versions = try await client.authorized(.get, "/api/items/\(item.id)/versions", token: alice.token).decode(ItemVersionsResponse.self)
            #expect(versions.versions.map(\.version) == [2, 1])
        }
    }

    @Test(arguments: TestBackend.available)
    func pullByCursorWithGainedAndLostVaults(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let work = try await client.createVault(alice)
            let home = try await client.createVault(alice)
            var items: [Item] = []
            for _ in 0..<3 { items.append(try await client.createItem(alice, vault: work.id)) }
            _ = try await client.createItem(alice, vault: home.id)

            let full = try await client.pull(alice)
            #expect(Set(full.gained.map(\.id)) == [work.id, home.id] && full.lost.isEmpty)
            let workChanges = try #require(full.vaults.first { $0.vaultId == work.id })
            #expect(workChanges.items.map(\.revision) == [1, 2, 3] && workChanges.cursor == 3 && !workChanges.hasMore)

            // Incremental: only what changed after the cursor, tombstones included.
            _ = try await client.authorized(.delete, "/api/items/\(items[1].id)", token: alice.token, json: DeleteItemRequest(baseVersion: 1))
            let incremental = try await client.pull(alice, [work.id: 3, home.id: 1])
            #expect(incremental.gained.isEmpty)
            let delta = try #require(incremental.vaults.first { $0.vaultId == work.id })
            #expect(delta.items.map(\.id) == [items[1].id] && delta.items[0].deleted && delta.cursor == 4)
            #expect(incremental.vaults.first { $0.vaultId == home.id }?.items.isEmpty == true)

            // Paging: the limit bounds the whole answer.
            let paged = try await client.pull(alice, [work.id: 0, home.id: 0], limit: 2)
            #expect(paged.vaults.flatMap(\.items).count == 2 && paged.vaults.contains { $0.hasMore })
            // The budget goes to vaults in membership order (creation time, then id); a vault whose
            // turn did not come keeps its cursor. Work holds 3 changes (up to revision 4: the delete
            // above), home 1.
            let first = try await client.pull(alice, [work.id: 0, home.id: 0], limit: 3)
            let workFirst = first.vaults.first?.vaultId == work.id
            #expect(first.vaults.map(\.items.count) == (workFirst ? [3, 0] : [1, 2]))
            #expect(first.vaults.map(\.cursor) == (workFirst ? [4, 0] : [1, 3]))
            #expect(first.vaults.map(\.hasMore) == (workFirst ? [false, true] : [false, true]))
            let both = try await client.pull(alice, [work.id: 0, home.id: 0], limit: 5)
            #expect(both.vaults.map(\.items.count) == (workFirst ? [3, 1] : [1, 3]) && !both.vaults.contains { $0.hasMore })
            // Only the later vault changed: it alone is read.
            let onlyHome = try await client.pull(alice, [work.id: 4, home.id: 0], limit: 5)
            #expect(onlyHome.vaults.first { $0.vaultId == home.id }?.items.count == 1)
            #expect(onlyHome.vaults.first { $0.vaultId == work.id }.map { $0.items.isEmpty && $0.cursor == 4 && !$0.hasMore } == true)

            // A deleted vault is reported lost; an unknown one too.
            _ = try await client.authorized(.delete, "/api/vaults/\(home.id)", token: alice.token)
            let stranger = UUID().uuidString.lowercased()
            let afterDelete = try await client.pull(alice, [work.id: 4, home.id: 1, stranger: 0])
            #expect(afterDelete.lost == [home.id, stranger].sorted())
            #expect(afterDelete.vaults.map(\.vaultId) == [work.id])

            let status = try await client.authorized(.get, "/api/sync/status", token: alice.token).decode(SyncStatusResponse.self)
            #expect(status.vaults.count == 1)
            #expect(status.vaults[0].vaultId == work.id && status.vaults[0].revision == 4 && status.vaults[0].itemCount == 2)
            #expect(status.vaults[0].lastChange != nil)
            #expect(try await client.authorized(.post, "/api/sync/pull", token: alice.token, json: PullRequest(limit: 0)).status == .badRequest)
            #expect(try await client.authorized(.post, "/api/sync/pull", token: alice.token, json: PullRequest(vaults: ["x": 0])).status == .badRequest)
            // Bodies the hand reader refuses go to JSONDecoder, which names the problem: never a 5xx or a crash.
            for (body, code): (String, String?) in [
                (#"{"limit": 1.5}"#, nil), (#"{"limit": "ten"}"#, "invalid_field"), (#"{"vaults": [1]}"#, "invalid_field"),
                (#"{"vaults": {"a": 1"#, "invalid_json"), ("{\"x\":" + String(repeating: "[", count: 200_000), "invalid_json"),
            ] {
                let response = try await client.execute(
                    uri: "/api/sync/pull", method: .post, headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json"],
                    body: ByteBuffer(string: body)
                )
                #expect(response.status == .badRequest && (code == nil || response.error?.code == code), "\(body.prefix(40)): \(response.status)")
            }
        }
    }

    @Test(arguments: TestBackend.available)
    func resolveRecordsTheResolution(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let item = try await client.createItem(alice, vault: vault.id)
            let merged = try envelope()
            let stale = try await client.authorized(.post, "/api/sync/resolve", token: alice.token, json: ResolveRequest(itemId: item.id, baseVersion: 7, encryptedData: merged, strategy: "client"))
            #expect(stale.status == .conflict)
            let clientWins = try await client.authorized(.post, "/api/sync/resolve", token: alice.token, json: ResolveRequest(itemId: item.id, baseVersion: 1, encryptedData: merged, strategy: "client"))
            #expect(clientWins.status == .ok)
            #expect(try clientWins.decode(Item.self).version == 2)
            let serverWins = try await client.authorized(.post, "/api/sync/resolve", token: alice.token, json: ResolveRequest(itemId: item.id, baseVersion: 2, strategy: "server"))
            #expect(serverWins.status == .ok)
            #expect(try serverWins.decode(Item.self).version == 2)
            let history = try await client.authorized(.get, "/api/items/\(item.id)/versions", token: alice.token).decode(ItemVersionsResponse.self)
            #expect(history.versions.map(\.resolution) == ["server", nil])
            let bad = try await client.authorized(.post, "/api/sync/resolve", token: alice.token, json: ResolveRequest(itemId: item.id, baseVersion: 2, strategy: "coin"))
            #expect(bad.status == .badRequest)
        }
    }

    @Test("32 concurrent pushes from one base: one applied, 31 conflicts", arguments: TestBackend.available)
    func concurrentPushesToOneItem(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.ahc(.http)) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let item = try await client.createItem(alice, vault: vault.id)
            let statuses = try await withThrowingTaskGroup(of: PushResult.Status.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        try await client.push(alice, [PushChange(vaultId: vault.id, itemId: item.id, baseVersion: 1, encryptedData: try envelope())])[0].status
                    }
                }
                return try await group.reduce(into: [PushResult.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .applied }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 31)
        }
    }

    @Test("32 concurrent writers: revisions 1…32, and a concurrent pull misses nothing", arguments: TestBackend.available)
    func concurrentWritersLeaveNoGaps(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.ahc(.http)) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            let seen = try await withThrowingTaskGroup(of: [Int64]?.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        _ = try await client.push(alice, [PushChange(vaultId: vault.id, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: try envelope())])
                        return nil
                    }
                }
                // A reader pulls from its cursor until it has seen all 32 changes.
                group.addTask {
                    var cursor: Int64 = 0
                    var revisions: [Int64] = []
                    let deadline = ContinuousClock.now + .seconds(20)
                    while revisions.count < 32, ContinuousClock.now < deadline {
                        let page = try await client.pull(alice, [vault.id: cursor], limit: 5)
                        let changes = try #require(page.vaults.first)
                        revisions += changes.items.map(\.revision)
                        cursor = changes.cursor
                        if changes.items.isEmpty { try await Task.sleep(for: .milliseconds(2)) }
                    }
                    return revisions
                }
                var seen: [Int64] = []
                for try await result in group { if let result { seen = result } }
                return seen
            }
            #expect(seen == Array(1...32))
            let all = try await client.pull(alice, [vault.id: 0], limit: 100)
            #expect(all.vaults[0].items.map(\.revision) == Array(1...32))
        }
    }
}
