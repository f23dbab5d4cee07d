import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// A transport that forwards to the real server but can be told to answer pulls like a server
/// restored from an old backup, or to be unreachable.
final class TamperingTransport: SyncTransport {
    enum Mode: Sendable {
        case honest
        /// Pull answers claim the vault is at this revision (a restored server).
        case restored(revision: Int64)
        /// Pull answers are replayed from the first one recorded.
        case replay
        case unreachable
    }

    let inner: HTTPSyncTransport
    private let state = Mutex<(mode: Mode, first: PullResponse?)>((.honest, nil))

    init(client: CofferClient) { inner = HTTPSyncTransport(client: client) }

    func set(_ mode: Mode) { state.withLock { $0.mode = mode } }

    private var mode: Mode { state.withLock { $0.mode } }

    func pull(_ request: PullRequest) async throws -> PullResponse {
        switch mode {
        case .unreachable: throw CofferClientError.unreachable("connection refused")
        case .replay: return try state.withLock { try #require($0.first) }
        case .restored(let revision):
            var answer = try await inner.pull(request)
            for index in answer.vaults.indices {
                answer.vaults[index].cursor = revision
                answer.vaults[index].items = []
                answer.vaults[index].hasMore = false
            }
            return answer
        case .honest:
            let answer = try await inner.pull(request)
            state.withLock { if $0.first == nil, answer.vaults.contains(where: { !$0.items.isEmpty }) { $0.first = answer } }
            return answer
        }
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        if case .unreachable = mode { throw CofferClientError.unreachable("connection refused") }
        return try await inner.push(request)
    }

    func resolve(_ request: ResolveRequest) async throws -> Item { try await inner.resolve(request) }
    func vault(id: String) async throws -> VaultSummary { try await inner.vault(id: id) }
    func vaults() async throws -> [VaultSummary] { try await inner.vaults() }

    func status() async throws -> SyncStatusResponse {
        switch mode {
        case .unreachable: throw CofferClientError.unreachable("connection refused")
        case .restored(let revision):
            var answer = try await inner.status()
            for index in answer.vaults.indices { answer.vaults[index].revision = revision }
            return answer
        default: return try await inner.status()
        }
    }
}

/// `SyncEngine` against a live server, on both backends.
@Suite("Sync engine", .timeLimit(.minutes(2)))
struct SyncEngineTests {
    @Test("Offline: a change is queued, status says offline with 1 pending, and the next round pushes it", arguments: TestBackend.available)
    func offlineQueue(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let devices = try await TestDevice.account(server: "http://127.0.0.1:\(try #require(server.port))", devices: 2)
            let vault = try await VaultClient(client: devices[0].client).createVault(name: "Personal")
            let transport = TamperingTransport(client: devices[0].client)
            let engine = try await devices[0].engine(transport: transport)
            let updates = await engine.statusUpdates()
            let observed = Task {
                var seen: [SyncStatus] = []
                for await status in updates {
                    seen.append(status)
                    if status.state == .idle, status.pending == 0, seen.contains(where: { $0.state == .offline }) { break }
                }
                return seen
            }
            try await engine.sync()

            transport.set(.unreachable)
            let added = try await engine.addItem(ItemDocument(title: "Written offline", password: "p"), vaultId: vault.summary.id)
            await #expect(throws: CofferClientError.self) { try await engine.sync() }
            #expect(try await engine.status().state == .offline)
            #expect(try await engine.status().pending == 1)
            #expect(try await engine.items(vaultId: vault.summary.id).map(\.pendingChanges) == [1])

            // The queue is on disk: a new engine on the same cache (a restarted app) still has it.
            let restarted = try await devices[0].engine(transport: transport)
            #expect(try await restarted.status().pending == 1)
            transport.set(.honest)
            let report = try await engine.sync()
            #expect(report.pushed == 1)
            #expect(try await restarted.status().pending == 0)
            let status = try await engine.status()
            #expect(status.state == .idle && status.pending == 0 && status.lastSync != nil)

            // The other device sees it.
            let other = try await devices[1].engine()
            try await other.sync()
            #expect(try await other.item(id: added.item.item.id)?.item.document?.title == "Written offline")

            // The status stream showed syncing, offline, then idle with the count going 0 → 1 → 0.
            let seen = await observed.value
            #expect(seen.contains { $0.state == .offline && $0.pending == 1 })
            #expect(seen.last?.state == .idle && seen.last?.pending == 0)
            #expect(seen.contains { $0.state == .syncing })
            #expect(Self.history(of: try await restarted.history()).contains("pushed"))
        }
    }

    static func history(of entries: [SyncHistoryEntry]) -> Set<String> { Set(entries.map(\.kind)) }

    @Test("A pull whose revision goes back stops with a rollback error and changes nothing", arguments: TestBackend.available)
    func rollback(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let devices = try await TestDevice.account(server: "http://127.0.0.1:\(try #require(server.port))", devices: 2)
            let vault = try await VaultClient(client: devices[0].client).createVault(name: "Personal")
            let writer = try await devices[1].engine()
            try await writer.sync()
            try await writer.addItem(ItemDocument(title: "one"), vaultId: vault.summary.id)
            try await writer.addItem(ItemDocument(title: "two"), vaultId: vault.summary.id)
            try await writer.sync()

            let transport = TamperingTransport(client: devices[0].client)
            let engine = try await devices[0].engine(transport: transport)
            try await engine.sync()  // records this first answer (revisions 1…2)
            try await writer.addItem(ItemDocument(title: "three"), vaultId: vault.summary.id)
            try await writer.sync()
            try await engine.sync()
            let local = try await engine.addItem(ItemDocument(title: "queued"), vaultId: vault.summary.id)
            let before = try await engine.items(vaultId: vault.summary.id, includeDeleted: true)
            #expect(before.count == 4)

            // A server restored from an old backup: revision 1 where this device saw 3.
            transport.set(.restored(revision: 1))
            await #expect(throws: SyncError.rollback(vaultId: vault.summary.id, seen: 3, answered: 1)) { try await engine.sync() }
            // A server replaying its first answer (revisions this device already has).
            transport.set(.replay)
            await #expect {
                try await engine.sync()
            } throws: { error in
                guard case SyncError.rollback(let vaultId, let seen, _) = error else { return false }
                return vaultId == vault.summary.id && seen == 3
            }
            #expect(try await engine.items(vaultId: vault.summary.id, includeDeleted: true) == before)
            let status = try await engine.status()
            #expect(status.state == .error && status.pending == 1)
            #expect(status.lastError?.contains("rollback detected") == true)
            // The status probe refuses the restored server too.
            transport.set(.restored(revision: 1))
            #expect(try await engine.probe().state == .error)

            // Back to the honest server: the queued change goes out.
            transport.set(.honest)
            #expect(try await engine.sync().pushed == 1)
            #expect(try await engine.item(id: local.item.item.id)?.item.item.version == 1)
        }
    }

    @Test("Conflicts settle by policy; manual ones stay listed until resolved, and every resolution reaches the server", arguments: TestBackend.available)
    func conflictPolicies(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let devices = try await TestDevice.account(server: "http://127.0.0.1:\(try #require(server.port))", devices: 2)
            let vault = try await VaultClient(client: devices[0].client).createVault(name: "Personal")
            let a = try await devices[0].engine()
            let b = try await devices[1].engine()
            try await a.sync()
            let item = try await a.addItem(ItemDocument(title: "Mail", username: "alice", password: "one"), vaultId: vault.summary.id)
            try await a.sync()
            try await b.sync()
            let id = item.item.item.id

            // Merge: different fields merge cleanly.
            try await a.editItem(id: id, document: ItemDocument(title: "Mail", username: "alice", password: "two"))
            try await b.editItem(id: id, document: ItemDocument(title: "Mail", username: "alice", password: "one", url: "https://mail.example"))
            try await a.sync()
            #expect(try await b.sync().conflicts == 1)
            let merged = try #require(try await b.item(id: id)?.item.document)
            #expect(merged.password == "two" && merged.url == "https://mail.example")
            #expect(try await b.conflicts().last?.outcome == "merged")

            // Manual: both kept, listed, then settled by the user.
            try await a.sync()
            try await b.setPolicy(.manual, vaultId: vault.summary.id)
            try await a.editItem(id: id, document: ItemDocument(title: "Mail", username: "alice", password: "from-a"))
            try await b.editItem(id: id, document: ItemDocument(title: "Mail", username: "alice", password: "from-b"))
            try await a.sync()
            #expect(try await b.sync().openConflicts == 1)
            let open = try #require(try await b.conflicts(state: .open).first)
            #expect(try await b.localSide(of: open)?.password == "from-b")
            #expect(try await b.item(id: id)?.item.document?.password == "from-a")
            #expect(try await b.status().openConflicts == 1)
            let settled = try await b.resolveConflict(id: open.id, keep: .local)
            #expect(try await b.conflicts(state: .open).isEmpty)
            try await a.sync()
            #expect(try await a.item(id: id)?.item.document?.password == "from-b")
            let versions: ItemVersionsResponse = try await devices[0].client.authorized(.GET, "/api/items/\(id)/versions", body: Optional<Int>.none)
            #expect(versions.versions.first?.version == settled.version && versions.versions.first?.resolution == "client")

            // Last-write-wins: the later edit wins; the loser is kept in a settled conflict.
            try await b.setPolicy(.lastWriteWins, vaultId: vault.summary.id)
            try await b.editItem(id: id, document: ItemDocument(title: "Mail", password: "older"))
            try await Task.sleep(for: .milliseconds(5))  // distinct modification times, not synchronisation
            try await a.editItem(id: id, document: ItemDocument(title: "Mail", password: "newer"))
            try await a.sync()
            try await b.sync()
            #expect(try await b.item(id: id)?.item.document?.password == "newer")
            let lost = try #require(try await b.conflicts().last)
            #expect(lost.outcome == "kept-server" && lost.state == .resolved)
            #expect(try await b.localSide(of: lost)?.password == "older")
            let after: ItemVersionsResponse = try await devices[0].client.authorized(.GET, "/api/items/\(id)/versions", body: Optional<Int>.none)
            #expect(after.versions.first?.resolution == "server")
        }
    }

    @Test("A vault renamed on another device is renamed in the cache by a refreshing round", arguments: TestBackend.available)
    func vaultRenames(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let devices = try await TestDevice.account(server: "http://127.0.0.1:\(try #require(server.port))", devices: 2)
            let vaults = VaultClient(client: devices[0].client)
            let vault = try await vaults.createVault(name: "Personal")
            let engine = try await devices[1].engine()
            try await engine.sync()
            _ = try await vaults.renameVault(vault, to: "Family")
            try await engine.sync()
            #expect(try await engine.vaults().map(\.metadata.name) == ["Personal"])  // a pull carries items only
            try await engine.sync(refreshVaults: true)
            #expect(try await engine.vaults().map(\.metadata.name) == ["Family"])
            #expect(try await SyncEngineTests.history(of: engine.history()).contains("vault"))
        }
    }

    @Test("A reader cannot queue changes; a writer demoted to reader has its queued change kept as rejected", arguments: TestBackend.available)
    func readOnlyVaults(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let owner = try await TestDevice.account(server: base, devices: 1)[0]
            let member = try await TestDevice.account(server: base, devices: 1)[0]
            let vault = try await VaultClient(client: owner.client).createVault(name: "Team")
            let ownerId = try #require(await owner.client.session?.userId)
            let sharing = SharingClient(vaults: VaultClient(client: owner.client), contacts: ContactStore(directory: owner.directory, userId: ownerId))
            let memberEmail = try #require(await member.client.session?.email)
            let share = try await sharing.share(vault, with: try await sharing.lookup(email: memberEmail), role: .write)

            let engine = try await member.engine()
            try await engine.sync()
            try await engine.accept(try #require(try await engine.vaults().first).summary)  // a new share is an invitation until accepted
            let item = try await engine.addItem(ItemDocument(title: "Wi-Fi"), vaultId: vault.summary.id)
            try await engine.sync()
            // Demoted while an edit waits in the queue: the server refuses it, the edit is kept.
            try await engine.editItem(id: item.item.item.id, document: ItemDocument(title: "Wi-Fi", password: "new"))
            _ = try await sharing.changeRole(shareId: share.id, to: .read)
            let report = try await engine.sync(refreshVaults: true)
            #expect(report.rejected == 1 && report.pending == 0)
            let refused = try #require(try await engine.conflicts(state: .rejected).first)
            #expect(try await engine.localSide(of: refused)?.password == "new")
            // Now a reader: nothing is queued at all.
            await #expect(throws: SyncError.readOnly(vaultName: "Team", role: "read")) {
                try await engine.addItem(ItemDocument(title: "Nope"), vaultId: vault.summary.id)
            }
            await #expect(throws: SyncError.self) { try await engine.deleteItem(id: item.item.item.id) }
            #expect(try await engine.status().pending == 0)
        }
    }

    @Test("A change the server refuses is kept as a rejected conflict, not retried forever or dropped", arguments: TestBackend.available)
    func rejectedChangesAreKept(_ backend: TestBackend) async throws {
        try await makeTestApp(backend) { $0.maxItemSize = 64 * 1024 }.test(.live) { server in
            let devices = try await TestDevice.account(server: "http://127.0.0.1:\(try #require(server.port))", devices: 1)
            let vault = try await VaultClient(client: devices[0].client).createVault(name: "Personal")
            let engine = try await devices[0].engine()
            try await engine.sync()
            // Over the item size limit: the server answers this change with `rejected`.
            let big = ItemDocument(title: "big", notes: String(repeating: "x", count: 100_000))
            try await engine.addItem(big, vaultId: vault.summary.id)
            let report = try await engine.sync()
            #expect(report.rejected == 1 && report.pending == 0)
            let record = try #require(try await engine.conflicts(state: .rejected).first)
            #expect(try await engine.localSide(of: record)?.notes?.count == 100_000)
            #expect(record.detail?.isEmpty == false)
        }
    }
}
