import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// A malicious server (a rewriting proxy in front of a real one) against the sync engine: one
/// vault that fails verification is refused by name and kept out while the others sync; a claim
/// that the account lost a vault deletes nothing; redirects are not followed; a KDF switch is
/// refused before anything is derived or signed (issue 15: fail closed, nothing deleted on an
/// unverified claim, the small ones).
@Suite("Fail closed against a malicious server")
struct FailClosedTests {
    /// The same device (session, cache, contacts) talking to `base` instead of its server.
    static func engine(_ device: TestDevice, via base: String) async throws -> SyncEngine {
        let client = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: device.directory))
        return try await SyncEngine.open(client: client, directory: device.directory)
    }

    /// Rewrites every JSON object with `"id": vaultId` and a `wrappedKey` in `body` so that the key no longer opens.
    static func corruptingKey(of vaultId: String) -> @Sendable (Int, ByteBuffer) throws -> (Int, ByteBuffer) {
        { status, body in
            JSONRewrite.objects(status, body) { object in
                if object["id"] as? String == vaultId, var key = object["wrappedKey"] as? String {
                    let index = key.index(key.startIndex, offsetBy: 30)
                    key.replaceSubrange(index...index, with: key[index] == "A" ? "B" : "A")
                    object["wrappedKey"] = key
                }
            }
        }
    }

    /// Adds `vaultId` to the `lost` list of a pull answer.
    static func claimingLost(_ vaultId: String) -> @Sendable (Int, ByteBuffer) throws -> (Int, ByteBuffer) {
        { status, body in
            guard status == 200, var json = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else { return (status, body) }
            json["lost"] = ((json["lost"] as? [String]) ?? []) + [vaultId]
            return (status, ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        }
    }

    /// Everything an engine holds for a vault, to compare before and after an attack.
    struct Snapshot: Equatable {
        var items: [String: String?]
        var pending: Int
        var conflicts: Int
    }

    static func snapshot(_ engine: SyncEngine, _ vaultId: String) async throws -> Snapshot {
        let items = try await engine.items(vaultId: vaultId, includeDeleted: true)
        return Snapshot(
            items: Dictionary(uniqueKeysWithValues: items.map { ($0.item.item.id, $0.item.document?.title) }),
            pending: items.reduce(0) { $0 + $1.pendingChanges }, conflicts: try await engine.conflicts().count
        )
    }

    @Test("a vault whose key does not open is refused by name, kept out and left as it was; the other vault still pulls and pushes", arguments: TestBackend.available)
    func oneTamperedVaultDoesNotStopTheOthers(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let devices = try await TestDevice.account(server: base, devices: 2)
            let vaults = VaultClient(client: devices[0].client)
            let good = try await vaults.createVault(name: "Good").summary.id
            let bad = try await vaults.createVault(name: "Bad").summary.id
            let honest = try await devices[0].engine()
            try await honest.sync(refreshVaults: true)
            let inGood = try await honest.addItem(ItemDocument(title: "good one"), vaultId: good).item.item.id
            let inBad = try await honest.addItem(ItemDocument(title: "bad one"), vaultId: bad).item.item.id
            try await honest.sync()
            // The other device writes into both; this one queues an edit in each.
            let other = try await devices[1].engine()
            try await other.sync(refreshVaults: true)
            try await other.addItem(ItemDocument(title: "from the other device"), vaultId: good)
            try await other.addItem(ItemDocument(title: "hidden by the refusal"), vaultId: bad)
            try await other.sync()
            try await honest.editItem(id: inGood, document: ItemDocument(title: "good two"))
            try await honest.editItem(id: inBad, document: ItemDocument(title: "bad two"))
            let before = try await Self.snapshot(honest, bad)

            let report = try await withRewritingProxy(upstream: base, decide: { request in
                request.path.hasPrefix("/api/vaults") && request.method == "GET" ? .rewrite(Self.corruptingKey(of: bad)) : .forward
            }) { proxy in
                let engine = try await Self.engine(devices[0], via: proxy)
                // A vault list still lists the good vault, and names the bad one as refused.
                let listing = try await VaultClient(client: try CofferClient(api: APIClient(baseURL: proxy), sessionStore: SessionStore(directory: devices[0].directory)))
                    .verifiedVaults()
                #expect(listing.vaults.map(\.summary.id) == [good])
                #expect(listing.refused.map(\.vaultId) == [bad])
                return try await engine.sync(refreshVaults: true)
            }
            #expect(report.refusedVaults.map(\.vaultId) == [bad])
            #expect(report.refusedVaults.first?.name == "Bad")
            #expect(report.refusedVaults.first?.reason.contains("tamper error") == true, "\(report.refusedVaults)")
            #expect(report.pushed == 1 && report.pending == 1)
            // The good vault went both ways; the bad one is exactly as it was, its edit still queued.
            #expect(Set(try await honest.items(vaultId: good).compactMap(\.item.document?.title)) == ["good two", "from the other device"])
            #expect(try await Self.snapshot(honest, bad) == before)
            #expect(try await honest.status().refusedVaults.map(\.vaultId) == [bad])

            // The honest server again: the bad vault syncs and the refusal is over.
            let healed = try await honest.sync(refreshVaults: true)
            #expect(healed.refusedVaults.isEmpty && healed.pending == 0)
            #expect(try await honest.status().refusedVaults.isEmpty)
            #expect(Set(try await honest.items(vaultId: bad).compactMap(\.item.document?.title)) == ["bad two", "hidden by the refusal"])
        }
    }

    @Test("a new device handed a vault whose key does not open lists and pulls the others, and names the refused one by id", arguments: TestBackend.available)
    func newDeviceRefusesOneGainedVault(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let devices = try await TestDevice.account(server: base, devices: 2)
            let vaults = VaultClient(client: devices[0].client)
            let good = try await vaults.createVault(name: "Good").summary.id
            let bad = try await vaults.createVault(name: "Bad").summary.id
            let first = try await devices[0].engine()
            try await first.sync(refreshVaults: true)
            for index in 0..<3 {
                try await first.addItem(ItemDocument(title: "good \(index)"), vaultId: good)
                try await first.addItem(ItemDocument(title: "bad \(index)"), vaultId: bad)
            }
            try await first.sync()

            let configuration = {
                var configuration = SyncConfiguration()
                configuration.pageSize = 2  // the refused vault's pages must not hold the others back
                return configuration
            }()
            let report = try await withRewritingProxy(upstream: base, decide: { request in
                request.path == "/api/sync/pull" || request.path.hasPrefix("/api/vaults") ? .rewrite(Self.corruptingKey(of: bad)) : .forward
            }) { proxy in
                let client = try CofferClient(api: APIClient(baseURL: proxy), sessionStore: SessionStore(directory: devices[1].directory))
                let engine = try await SyncEngine.open(client: client, directory: devices[1].directory, configuration: configuration)
                return try await engine.sync(refreshVaults: true)
            }
            #expect(report.refusedVaults.map(\.vaultId) == [bad])
            #expect(report.refusedVaults.first?.name == nil)
            let engine = try await devices[1].engine()
            #expect(try await engine.vaults().map(\.summary.id) == [good])
            #expect(try await engine.items(vaultId: good).count == 3)
            #expect(try await engine.items(vaultId: bad).isEmpty)
        }
    }

    @Test("a claim that this account lost a vault it owns is refused: nothing is deleted, its queued edit stays queued, the other vault syncs", arguments: TestBackend.available)
    func lostOwnedVaultIsRefused(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let device = try await TestDevice.account(server: base, devices: 1)[0]
            let vaults = VaultClient(client: device.client)
            let mine = try await vaults.createVault(name: "Mine").summary.id
            let other = try await vaults.createVault(name: "Other").summary.id
            let engine = try await device.engine()
            try await engine.sync(refreshVaults: true)
            let item = try await engine.addItem(ItemDocument(title: "kept"), vaultId: mine).item.item.id
            try await engine.sync()
            try await engine.editItem(id: item, document: ItemDocument(title: "queued"))
            try await engine.addItem(ItemDocument(title: "elsewhere"), vaultId: other)
            let before = try await Self.snapshot(engine, mine)

            let report = try await withRewritingProxy(upstream: base, decide: { request in
                request.path == "/api/sync/pull" ? .rewrite(Self.claimingLost(mine)) : .forward
            }) { proxy in
                try await Self.engine(device, via: proxy).sync()
            }
            #expect(report.refusedVaults.map(\.vaultId) == [mine])
            #expect(report.refusedVaults.first?.reason.contains("which it owns") == true, "\(report.refusedVaults)")
            #expect(report.lostVaults == 0 && report.keptVaults.isEmpty && report.pushed == 1 && report.pending == 1)
            #expect(try await Self.snapshot(engine, mine) == before)
            #expect(try await engine.vaults().count == 2)
            #expect(try await engine.keptVaultIds().isEmpty)
            // Only the person drops it, and nothing queued is lost then either.
            #expect(try await engine.forgetKeptVault(id: mine) == 1)
            #expect(try await engine.conflicts(state: .rejected).count == 1)
            await #expect(throws: SyncError.stillServed(other)) { try await engine.forgetKeptVault(id: other) }
        }
    }

    @Test("a claim that a shared vault was lost keeps its copy, read-only and listed as such, until `forget`; an honest round brings it back merged", arguments: TestBackend.available)
    func lostSharedVaultIsKept(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await KeyRotationTests.world(base)
            let member = try await world.member.engine()
            try await member.sync(refreshVaults: true)
            let before = try await Self.snapshot(member, world.vaultId)
            #expect(before.items.count == 1)

            let report = try await withRewritingProxy(upstream: base, decide: { request in
                request.path == "/api/sync/pull" ? .rewrite(Self.claimingLost(world.vaultId)) : .forward
            }) { proxy in
                try await Self.engine(world.member, via: proxy).sync()
            }
            #expect(report.keptVaults == [world.vaultId] && report.lostVaults == 1 && report.refusedVaults.isEmpty)
            #expect(try await Self.snapshot(member, world.vaultId) == before)
            #expect(try await member.keptVaultIds() == [world.vaultId])
            #expect(try await member.status().keptVaults == [world.vaultId])
            await #expect(throws: SyncError.accessLost(vaultName: "Team")) {
                try await member.editItem(id: world.itemId, document: ItemDocument(title: "refused"))
            }

            // The owner writes meanwhile; the vault is really there: an honest round merges it back.
            let owner = try await world.owner[0].engine()
            try await owner.editItem(id: world.itemId, document: ItemDocument(title: "Router 2"))
            try await owner.sync()
            let back = try await member.sync()
            #expect(back.gainedVaults == 1 && back.keptVaults.isEmpty)
            #expect(try await member.keptVaultIds().isEmpty)
            #expect(try await member.items(vaultId: world.vaultId).map(\.item.document?.title) == ["Router 2"])
            #expect(try await member.sync().quiet)

            // Claimed lost again, then dropped on the person's say-so.
            _ = try await withRewritingProxy(upstream: base, decide: { request in
                request.path == "/api/sync/pull" ? .rewrite(Self.claimingLost(world.vaultId)) : .forward
            }) { proxy in
                try await Self.engine(world.member, via: proxy).sync()
            }
            try await member.forgetKeptVault(id: world.vaultId)
            #expect(try await member.vaults().isEmpty)
            #expect(try await member.items(vaultId: world.vaultId).isEmpty)
        }
    }

    /// Records every request a server receives.
    final class RequestLog: Sendable {
        let paths = Mutex<[String]>([])
        func add(_ path: String) { paths.withLock { $0.append(path) } }
        var all: [String] { paths.withLock { $0 } }
    }

    @Test("a redirect is not followed: nothing reaches the other server, the round fails naming it, the local copy is unchanged", arguments: TestBackend.available)
    func redirectsAreNotFollowed(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let device = try await TestDevice.account(server: base, devices: 1)[0]
            let vault = try await VaultClient(client: device.client).createVault(name: "Home").summary.id
            let engine = try await device.engine()
            try await engine.sync(refreshVaults: true)
            try await engine.addItem(ItemDocument(title: "queued"), vaultId: vault)
            let before = try await Self.snapshot(engine, vault)

            let received = RequestLog()
            let router = Router()
            router.middlewares.add(RecordingMiddleware(log: received))
            let elsewhere = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await elsewhere.test(.live) { other in
                let target = "http://127.0.0.1:\(try #require(other.port))/api/sync/pull"
                try await withRewritingProxy(upstream: base, decide: { request in
                    request.path == "/api/sync/pull" ? .redirect(status: 307, location: target) : .forward
                }) { proxy in
                    let error = await #expect(throws: CofferClientError.self) { try await Self.engine(device, via: proxy).sync() }
                    #expect(error?.description.contains("redirect to \"\(target)\"") == true, "\(String(describing: error))")
                    #expect(error?.description.contains("refusing to follow it") == true)
                }
            }
            #expect(received.all.isEmpty)
            #expect(try await Self.snapshot(engine, vault) == before)
        }
    }

    struct RecordingMiddleware<Context: RequestContext>: RouterMiddleware {
        let log: RequestLog
        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            log.add(request.uri.path)
            return Response(status: .ok)
        }
    }

    @Test("a PBKDF2 offer for a scrypt account is refused before anything is derived or signed, on a device that has seen it and on a new one", arguments: TestBackend.available)
    func kdfSwitchIsRefused(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-kdf-\(UUID().uuidString)")
            let email = "kdf-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test")
            try await CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: directory)).register(email: email, password: "pw", device: device)

            let seen = RequestLog()
            let offer = try JSONEncoder().encode(KDFParameters.browserCompatible.descriptor)
            try await withRewritingProxy(upstream: base, decide: { request in
                seen.add(request.path)
                guard request.path == "/api/auth/prelogin" else { return .forward }
                return .rewrite { status, body in
                    var json = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
                    json["kdf"] = try JSONSerialization.jsonObject(with: offer)
                    return (status, ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
                }
            }) { proxy in
                let stores = [
                    ("seen", SessionStore(directory: directory), "refusing the switch"),
                    ("new", SessionStore(directory: directory.appendingPathComponent("new-device")), "log in with --pbkdf2"),
                ]
                for (label, store, message) in stores {
                    let client = try CofferClient(api: APIClient(baseURL: proxy), sessionStore: store)
                    let error = await #expect(throws: CofferError.self, "\(label)") { try await client.login(email: email, password: "pw", device: device) }
                    guard case .weakKeyDerivation(let detail) = error else { Issue.record("\(label): \(String(describing: error))"); continue }
                    #expect(detail.contains(message) && detail.contains("pbkdf2-sha256"), "\(label): \(detail)")
                }
                #expect(seen.all == ["/api/auth/prelogin", "/api/auth/prelogin"])
                // The explicit option lets the offer through (the derived key is then simply wrong).
                let allowed = try CofferClient(api: APIClient(baseURL: proxy), sessionStore: SessionStore(directory: directory.appendingPathComponent("allowed")))
                await #expect(throws: CofferClientError.self) { try await allowed.login(email: email, password: "pw", device: device, allowPBKDF2: true) }
                #expect(seen.all.contains("/api/auth/challenge"))
            }
            // The remembered parameters are still scrypt: the honest server logs in.
            let honest = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: directory))
            try await honest.login(email: email, password: "pw", device: device)
        }
    }
}
