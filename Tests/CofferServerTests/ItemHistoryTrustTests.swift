import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A malicious server (a rewriting proxy in front of a real one) against items bound to their
/// history (issue 15): every version is sealed for its version number, a lower version is
/// refused per item, deletions are sealed tombstones, and restores are written by the client.
@Suite("Items bound to their history against a malicious server")
struct ItemHistoryTrustTests {
    /// The same device (session, cache) talking to `base` instead of its server.
    static func engine(_ device: TestDevice, via base: String) async throws -> SyncEngine {
        let client = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: device.directory))
        return try await SyncEngine.open(client: client, directory: device.directory)
    }

    /// Rewrites every pulled item `itemId` of a pull answer with `change`.
    static func rewritingPulledItem(_ itemId: String, _ change: @escaping @Sendable (inout [String: Any]) -> Void) -> @Sendable (Int, ByteBuffer) throws -> (Int, ByteBuffer) {
        { status, body in
            guard status == 200, var json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  var vaults = json["vaults"] as? [[String: Any]]
            else { return (status, body) }
            for index in vaults.indices {
                guard var items = vaults[index]["items"] as? [[String: Any]] else { continue }
                for item in items.indices where items[item]["id"] as? String == itemId { change(&items[item]) }
                vaults[index]["items"] = items
            }
            json["vaults"] = vaults
            return (status, ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        }
    }

    /// A sync through a proxy that applies `change` to pulled item `itemId`: the error it throws,
    /// or the reasons it refused vaults for (a vault that fails verification is kept out).
    static func attackedPull(_ server: String, device: TestDevice, itemId: String, _ change: @escaping @Sendable (inout [String: Any]) -> Void) async throws -> String? {
        try await withRewritingProxy(upstream: server, decide: { request in
            request.path == "/api/sync/pull" ? .rewrite(rewritingPulledItem(itemId, change)) : .forward
        }) { proxy in
            let engine = try await engine(device, via: proxy)
            do {
                let report = try await engine.sync()
                return report.refusedVaults.isEmpty ? nil : report.refusedVaults.map(\.reason).joined(separator: "; ")
            } catch {
                return "\(error)"
            }
        }
    }

    /// What an engine holds of a vault, to compare before and after an attack.
    static func snapshot(_ engine: SyncEngine, _ vaultId: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        for item in try await engine.items(vaultId: vaultId, includeDeleted: true) {
            result[item.item.item.id] = "v\(item.item.item.version) \(item.item.item.deleted ? "deleted" : item.item.document?.password ?? "-") \(item.pendingChanges)"
        }
        return result
    }

    /// An item written three times by device 0 (passwords one, two, three); device 1 holds version 2.
    struct World {
        var devices: [TestDevice]
        var vaultId: String
        var itemId: String
        /// The server's ciphertext of each version.
        var sealed: [Int: String]
    }

    static func world(_ base: String) async throws -> World {
        let devices = try await TestDevice.account(server: base, devices: 2)
        let vaults = VaultClient(client: devices[0].client)
        let vault = try await vaults.createVault(name: "Personal")
        let writer = try await devices[0].engine()
        try await writer.sync(refreshVaults: true)
        let itemId = try await writer.addItem(ItemDocument(title: "Bank", password: "one"), vaultId: vault.summary.id).item.item.id
        try await writer.sync()
        try await writer.editItem(id: itemId, document: ItemDocument(title: "Bank", password: "two"))
        try await writer.sync()
        let reader = try await devices[1].engine()
        try await reader.sync(refreshVaults: true)
        try await writer.editItem(id: itemId, document: ItemDocument(title: "Bank", password: "three"))
        try await writer.sync()
        let history: ItemVersionsResponse = try await devices[0].client.authorized(.GET, "/api/items/\(itemId)/versions", body: Optional<Int>.none)
        var sealed: [Int: String] = [:]
        for version in history.versions { sealed[version.version] = version.encryptedData }
        #expect(sealed.count == 3)
        return World(devices: devices, vaultId: vault.summary.id, itemId: itemId, sealed: sealed)
    }

    @Test("an old version's ciphertext served as the newest is a tamper error, and nothing changes locally", arguments: TestBackend.available)
    func oldCiphertextAsNewest(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let before = try await Self.snapshot(try await world.devices[1].engine(), world.vaultId)
            #expect(before[world.itemId] == "v2 two 0")
            let old = try #require(world.sealed[1])
            let error = try await Self.attackedPull(base, device: world.devices[1], itemId: world.itemId) { $0["encryptedData"] = old }
            let text = try #require(error)
            #expect(text.contains("tamper") && text.contains(world.itemId) && text.contains("version 3"), "\(text)")
            #expect(try await Self.snapshot(try await world.devices[1].engine(), world.vaultId) == before)
            // Honest again, the device reads the current version.
            let honest = try await world.devices[1].engine()
            try await honest.sync()
            #expect(try await honest.item(id: world.itemId)?.item.document?.password == "three")
        }
    }

    @Test("a version's ciphertext moved to another version number is a tamper error", arguments: TestBackend.available)
    func ciphertextMovedToAnotherVersion(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let before = try await Self.snapshot(try await world.devices[1].engine(), world.vaultId)
            let error = try await Self.attackedPull(base, device: world.devices[1], itemId: world.itemId) { $0["version"] = 4 }
            let text = try #require(error)
            #expect(text.contains("tamper") && text.contains("version 4"), "\(text)")
            #expect(try await Self.snapshot(try await world.devices[1].engine(), world.vaultId) == before)
        }
    }

    @Test("a lower version replayed as current is refused per item, and nothing changes locally", arguments: TestBackend.available)
    func lowerVersionReplayed(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let before = try await Self.snapshot(try await world.devices[1].engine(), world.vaultId)
            // Version 1 exactly as it was sealed (it opens as version 1), offered as the newest change.
            let old = try #require(world.sealed[1])
            let error = try await Self.attackedPull(base, device: world.devices[1], itemId: world.itemId) {
                $0["encryptedData"] = old
                $0["version"] = 1
            }
            #expect(error == "\(SyncError.itemRollback(itemId: world.itemId, vaultId: world.vaultId, seen: 2, answered: 1))", "\(String(describing: error))")
            #expect(try await Self.snapshot(try await world.devices[1].engine(), world.vaultId) == before)
        }
    }

    @Test("a bare tombstone (deleted, no sealed data) is refused: the item stays on the device", arguments: TestBackend.available)
    func bareTombstoneRefused(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let before = try await Self.snapshot(try await world.devices[1].engine(), world.vaultId)
            let error = try await Self.attackedPull(base, device: world.devices[1], itemId: world.itemId) {
                $0["deleted"] = true
                $0["encryptedData"] = nil
            }
            let text = try #require(error)
            #expect(text.contains("tamper") && text.contains("no sealed tombstone") && text.contains(world.itemId), "\(text)")
            #expect(try await Self.snapshot(try await world.devices[1].engine(), world.vaultId) == before)
            // The item's live ciphertext flagged as deleted is no tombstone either.
            let live = try #require(world.sealed[3])
            let flagged = try await Self.attackedPull(base, device: world.devices[1], itemId: world.itemId) {
                $0["deleted"] = true
                $0["encryptedData"] = live
            }
            #expect(try #require(flagged).contains("the deletion of item \(world.itemId)"))
            #expect(try await Self.snapshot(try await world.devices[1].engine(), world.vaultId) == before)
        }
    }

    @Test("an authenticated deletion syncs to the other devices, and the history shows who deleted it from inside the tombstone", arguments: TestBackend.available)
    func authenticatedDeleteSyncs(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let writer = try await world.devices[0].engine()
            try await writer.deleteItem(id: world.itemId)
            #expect(try await writer.sync().pushed == 1)
            let reader = try await world.devices[1].engine()
            try await reader.sync()
            #expect(try await reader.items(vaultId: world.vaultId).isEmpty)
            #expect(try await reader.item(id: world.itemId)?.item.item.deleted == true)
            // The server keeps the tombstone as the deletion's data; it opens as that version only.
            let vaults = VaultClient(client: world.devices[1].client)
            let vault = try await vaults.vault(id: world.vaultId)
            let (item, _) = try await vaults.item(id: world.itemId)
            #expect(item.item.deleted && item.item.version == 4 && item.item.encryptedData != nil)
            let versions = try await vaults.versions(of: item, in: vault)
            let deletion = try #require(versions.first { $0.version.version == 4 })
            #expect(deletion.document == nil && deletion.modifiedBy == world.devices[0].deviceId && deletion.modifiedAt != nil)
            #expect(versions.first { $0.version.version == 3 }?.document?.password == "three")
            // The REST client's deletion is a tombstone too: a new item, deleted, seen deleted by the engine.
            let other = try await vaults.addItem(ItemDocument(title: "Mail", password: "x"), to: vault)
            _ = try await vaults.deleteItem(other, in: vault)
            try await reader.sync()
            #expect(try await reader.item(id: other.item.id)?.item.item.deleted == true)
        }
    }

    @Test("restore is written by the client: after a key rotation, and seen by another device", arguments: TestBackend.available)
    func restoreAfterRotationAcrossDevices(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let vaults = VaultClient(client: world.devices[0].client)
            let sharing = SharingClient(vaults: vaults, contacts: ContactStore(directory: world.devices[0].directory, userId: await world.devices[0].client.session!.userId))
            let rotated = try await sharing.rotateOnly(try await vaults.vault(id: world.vaultId))
            #expect(rotated.key.epoch == 2)
            let (current, _) = try await vaults.item(id: world.itemId)
            let restored = try await vaults.restore(current, version: 1, in: rotated)
            #expect(restored.item.version == 4 && restored.document?.password == "one")
            #expect(restored.item.encryptedData.flatMap(Envelope.keyEpoch(of:)) == 2)
            // The restored version holds version 1's document exactly (its edit time included).
            let versions = try await vaults.versions(of: restored, in: rotated)
            #expect(versions.first { $0.version.version == 4 }?.document == versions.first { $0.version.version == 1 }?.document)
            // A deleted item restored too.
            #expect(try await vaults.deleteItem(restored, in: rotated).version == 5)
            let (deleted, _) = try await vaults.item(id: world.itemId)
            let back = try await vaults.restore(deleted, version: 2, in: rotated)
            #expect(back.item.version == 6 && back.document?.password == "two")
            for device in world.devices {
                let engine = try await device.engine()
                try await engine.sync(refreshVaults: true)
                #expect(try await engine.item(id: world.itemId)?.item.document?.password == "two")
            }
        }
    }
}
