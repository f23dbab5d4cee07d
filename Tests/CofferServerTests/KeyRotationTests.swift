import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Vault key rotation as an event of the sync engine (issue 14, points 1 and 2): the device that
/// rotates, the owner's other devices, members offline across a rotation and open conflicts all
/// keep working, nothing queued is lost or pushed under the old key, and the server refuses
/// anything sealed under a key that was rotated away.
@Suite("Key rotation")
struct KeyRotationTests {
    /// Two accounts: the owner with two devices, a member with one; a shared vault with one item.
    struct World {
        let owner: [TestDevice]
        let member: TestDevice
        let memberEmail: String
        let vaultId: String
        let itemId: String
    }

    static func world(_ base: String, memberRole: VaultRole = .write) async throws -> World {
        let owner = try await TestDevice.account(server: base, devices: 2)
        let member = try await TestDevice.account(server: base, devices: 1)[0]
        let memberEmail = await member.client.session!.email
        let engine = try await owner[0].engine()
        let sharing = SharingClient(vaults: VaultClient(client: owner[0].client), contacts: ContactStore(directory: owner[0].directory, userId: await owner[0].client.session!.userId))
        let vault = try await VaultClient(client: owner[0].client).createVault(name: "Team")
        try await engine.sync(refreshVaults: true)
        let item = try await engine.addItem(ItemDocument(title: "Router", username: "admin", password: "one", notes: "base"), vaultId: vault.summary.id)
        try await engine.sync()
        _ = try await sharing.share(vault, with: try await sharing.lookup(email: memberEmail), role: memberRole)
        return World(owner: owner, member: member, memberEmail: memberEmail, vaultId: vault.summary.id, itemId: item.item.item.id)
    }

    static func member(_ world: World, on device: TestDevice) async throws -> VaultMember {
        let sharing = SharingClient(vaults: VaultClient(client: device.client), contacts: ContactStore(directory: device.directory, userId: await device.client.session!.userId))
        return try #require(try await sharing.members(vaultId: world.vaultId).first { $0.email == world.memberEmail })
    }

    /// What a device that has never seen the vault reads from the server.
    static func freshRead(_ device: TestDevice, vaultId: String) async throws -> [String: ItemDocument] {
        let vaults = VaultClient(client: device.client)
        let vault = try await vaults.vault(id: vaultId)
        var documents: [String: ItemDocument] = [:]
        for item in try await vaults.items(in: vault) { documents[item.item.id] = item.document }
        return documents
    }

    @Test("the revoking device keeps its queued edit, pushes it under the new key, and every device still reads the vault", arguments: TestBackend.available)
    func revokeKeepsTheOwnersDeviceWorking(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let engine = try await world.owner[0].engine()
            // Queued before the revoke, sealed under key 1.
            var edited = try #require(try await engine.item(id: world.itemId)).item.document!
            edited.password = "two"
            try await engine.editItem(id: world.itemId, document: edited)
            let outcome = try await engine.revoke(member: try await Self.member(world, on: world.owner[0]), vaultId: world.vaultId)
            #expect(outcome.keyEpoch == 2 && outcome.reencrypted == 1)
            #expect(try await engine.pendingRevokes().isEmpty)

            let report = try await engine.sync()
            // The re-encryption wrote version 2 with the same content: the queued edit goes on top of it.
            #expect(report.rejected == 0 && report.pending == 0 && report.openConflicts == 0, "\(report)")
            #expect(try await engine.keyEpoch(vaultId: world.vaultId) == 2)
            let items = try await engine.items(vaultId: world.vaultId)
            #expect(items.map { $0.item.document?.password } == ["two"])
            let onServer = try #require(try await VaultClient(client: world.owner[0].client).item(id: world.itemId).0.item.encryptedData)
            #expect(Envelope.keyEpoch(of: onServer) == 2)

            // The owner's second device and a cache made before the rotation both follow.
            let second = try await world.owner[1].engine()
            try await second.sync(refreshVaults: true)
            #expect(try await second.items(vaultId: world.vaultId).map { $0.item.document?.password } == ["two"])
            #expect(try await Self.freshRead(world.owner[1], vaultId: world.vaultId)[world.itemId]?.password == "two")

            // History written under key 1 still opens (the key history travels with the new key).
            let vaults = VaultClient(client: world.owner[1].client)
            let vault = try await vaults.vault(id: world.vaultId)
            let (item, _) = try await vaults.item(id: world.itemId)
            let history = try await vaults.history(of: item, in: vault)
            #expect(history.compactMap { $0.1?.password } == ["two", "one", "one"])
            #expect(history.map { Envelope.keyEpoch(of: $0.0.encryptedData ?? "") } == [2, 2, 1])

            // The removed member reads nothing any more.
            await #expect(throws: CofferClientError.self) { try await VaultClient(client: world.member.client).vault(id: world.vaultId) }
        }
    }

    @Test("the server refuses items and names sealed under a key rotated away (stale_key), and a member offline across the rotation re-seals its queued edit", arguments: TestBackend.available)
    func staleKeyRefusedAndResealed(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let third = try await TestDevice.account(server: base, devices: 1)[0]
            let ownerSharing = SharingClient(vaults: VaultClient(client: world.owner[0].client), contacts: ContactStore(directory: world.owner[0].directory, userId: await world.owner[0].client.session!.userId))
            let before = try await VaultClient(client: world.owner[0].client).vault(id: world.vaultId)
            _ = try await ownerSharing.share(before, with: try await ownerSharing.lookup(email: await third.client.session!.email), role: .read)

            // The member syncs, then edits while offline (queued under key 1).
            let memberEngine = try await world.member.engine()
            try await memberEngine.sync(refreshVaults: true)
            try await memberEngine.accept(try await VaultClient(client: world.member.client).vault(id: world.vaultId).summary)
            var edited = try #require(try await memberEngine.item(id: world.itemId)).item.document!
            edited.notes = "member's notes"
            try await memberEngine.editItem(id: world.itemId, document: edited)

            // The owner removes the third account: key 2.
            let ownerEngine = try await world.owner[0].engine()
            let thirdEmail = await third.client.session!.email
            let thirdMember = try #require(try await ownerSharing.members(vaultId: world.vaultId).first { $0.email == thirdEmail })
            _ = try await ownerEngine.revoke(member: thirdMember, vaultId: world.vaultId)

            // Anything sealed under key 1 is refused now, by every write route.
            let current = try await VaultClient(client: world.owner[0].client).item(id: world.itemId).0.item
            let stale = try VaultCrypto.sealItem(ItemDocument(title: "old key"), itemId: world.itemId, vaultId: world.vaultId, version: current.version + 1, key: before.key)
            let push: PushResponse = try await world.owner[0].client.authorized(
                .POST, "/api/sync/push", body: PushRequest(changes: [PushChange(vaultId: world.vaultId, itemId: world.itemId, baseVersion: current.version, encryptedData: stale)])
            )
            #expect(push.results.first?.status == .rejected && push.results.first?.error?.code == ErrorCode.staleKey)
            await #expect(throws: CofferClientError.self) {
                let _: Item = try await world.owner[0].client.authorized(.PUT, "/api/items/\(world.itemId)", body: UpdateItemRequest(baseVersion: current.version, encryptedData: stale))
            }
            let oldName = try VaultCrypto.sealMetadata(VaultMetadata(name: "old key"), vaultId: world.vaultId, key: before.key)
            do {
                let _: VaultSummary = try await world.owner[0].client.authorized(.PUT, "/api/vaults/\(world.vaultId)", body: UpdateVaultRequest(encryptedMetadata: oldName))
                Issue.record("a name sealed under key 1 was accepted after the rotation")
            } catch let error as CofferClientError {
                #expect(error.code == ErrorCode.staleKey && error.status == 409)
            }

            // The member comes back: its edit is merged, sealed under key 2, and readable by all.
            let report = try await memberEngine.sync()
            #expect(report.rejected == 0 && report.pending == 0, "\(report)")
            let onServer = try #require(try await VaultClient(client: world.owner[0].client).item(id: world.itemId).0)
            #expect(onServer.document?.notes == "member's notes")
            #expect(Envelope.keyEpoch(of: onServer.item.encryptedData ?? "") == 2)
            #expect(try await Self.freshRead(world.owner[1], vaultId: world.vaultId)[world.itemId]?.notes == "member's notes")
            #expect(try await memberEngine.conflicts(state: .rejected).isEmpty)
        }
    }

    @Test("an open conflict made before a rotation lists, shows and settles after it, under the new key", arguments: TestBackend.available)
    func conflictAcrossRotation(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let a = try await world.owner[0].engine()
            let b = try await world.owner[1].engine()
            try await b.sync(refreshVaults: true)
            try await b.setPolicy(.manual, vaultId: world.vaultId)
            // Both devices edit the same field; A pushes first, B's edit becomes an open conflict.
            var onA = try #require(try await a.item(id: world.itemId)).item.document!
            onA.password = "from A"
            try await a.editItem(id: world.itemId, document: onA)
            try await a.sync()
            var onB = try #require(try await b.item(id: world.itemId)).item.document!
            onB.password = "from B"
            try await b.editItem(id: world.itemId, document: onB)
            try await b.sync()
            let open = try #require(try await b.conflicts(state: .open).first)

            // A revokes the member: key 2. B still lists and shows its conflict (sealed under key 1).
            _ = try await a.revoke(member: try await Self.member(world, on: world.owner[0]), vaultId: world.vaultId)
            #expect(try await b.localSide(of: open)?.password == "from B")
            let settled = try await b.resolveConflict(id: open.id, keep: .local)
            #expect(Envelope.keyEpoch(of: settled.encryptedData ?? "") == 2)
            #expect(try await b.conflicts().allSatisfy { _ in true })

            // Every device, and one that never saw the vault, reads the settled item.
            try await a.sync()
            #expect(try await a.items(vaultId: world.vaultId).map { $0.item.document?.password } == ["from B"])
            #expect(try await Self.freshRead(world.owner[1], vaultId: world.vaultId)[world.itemId]?.password == "from B")
        }
    }

    @Test("a member revoked with a queued edit keeps it as a refused change that still opens, and sees it again after being re-shared", arguments: TestBackend.available)
    func revokedMembersEditStaysReadable(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let memberEngine = try await world.member.engine()
            try await memberEngine.sync(refreshVaults: true)
            try await memberEngine.accept(try await VaultClient(client: world.member.client).vault(id: world.vaultId).summary)
            var edited = try #require(try await memberEngine.item(id: world.itemId)).item.document!
            edited.notes = "written just before the revoke"
            try await memberEngine.editItem(id: world.itemId, document: edited)
            _ = try await world.owner[0].engine().revoke(member: try await Self.member(world, on: world.owner[0]), vaultId: world.vaultId)

            let report = try await memberEngine.sync()
            #expect(report.lostVaults == 1 && report.pending == 0)
            let refused = try #require(try await memberEngine.conflicts(state: .rejected).first)
            #expect(try await memberEngine.localSide(of: refused)?.notes == "written just before the revoke")
        }
    }

    @Test("a server that presents an older key as current after a rotation is refused", arguments: TestBackend.available)
    func olderKeyRefused(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await Self.world(base)
            let before = try await world.owner[0].client.authorized(.GET, "/api/vaults/\(world.vaultId)", body: Optional<Int>.none) as VaultSummary
            let engine = try await world.owner[0].engine()
            _ = try await engine.revoke(member: try await Self.member(world, on: world.owner[0]), vaultId: world.vaultId)
            try await engine.sync()
            // A fresh engine on the same cache (a new process) is handed the old summary.
            let transport = ReplayingVaultTransport(client: world.owner[0].client, summary: before)
            let replayed = try await world.owner[0].engine(transport: transport)
            // The vault is refused (kept out of the round, its local copy unchanged), not adopted.
            let report = try await replayed.sync(refreshVaults: true)
            #expect(report.refusedVaults.map(\.vaultId) == [world.vaultId])
            #expect(report.refusedVaults.first?.reason.contains("already holds its key 2") == true, "\(report.refusedVaults)")
            #expect(try await replayed.keyEpoch(vaultId: world.vaultId) == 2)
        }
    }
}

/// Answers `vaults()` and `vault(id:)` with a fixed (old) summary; everything else goes through.
struct ReplayingVaultTransport: SyncTransport {
    let inner: HTTPSyncTransport
    let summary: VaultSummary

    init(client: CofferClient, summary: VaultSummary) {
        inner = HTTPSyncTransport(client: client)
        self.summary = summary
    }

    func pull(_ request: PullRequest) async throws -> PullResponse { try await inner.pull(request) }
    func push(_ request: PushRequest) async throws -> PushResponse { try await inner.push(request) }
    func resolve(_ request: ResolveRequest) async throws -> Item { try await inner.resolve(request) }
    func vault(id: String) async throws -> VaultSummary { id == summary.id ? summary : try await inner.vault(id: id) }
    func vaults() async throws -> [VaultSummary] { try await inner.vaults().map { $0.id == summary.id ? summary : $0 } }
    func status() async throws -> SyncStatusResponse { try await inner.status() }
}
