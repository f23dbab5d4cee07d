import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// Seeded simulation of a shared vault: an owner with several devices and two members edit the
/// same items while going on- and offline, while the owner revokes and re-shares members (key
/// rotations), changes roles, access tokens expire, processes restart and pushes lose their
/// answer; then everyone syncs until quiet and the invariants are checked (issue 14). `scripts/test`
/// sets `COFFER_SIM_SEEDS`; a plain `swift test` runs a few.
@Suite("Sync engine simulation", .serialized)
struct SyncSimulationTests {
    static var seeds: Int { ProcessInfo.processInfo.environment["COFFER_SIM_SEEDS"].flatMap(Int.init) ?? 4 }
    static let operationsPerSeed = 60

    static var cases: [(TestBackend, ConflictPolicy)] {
        TestBackend.available.flatMap { backend in ConflictPolicy.allCases.map { (backend, $0) } }
    }

    @Test("Devices of three accounts converge through rotations, role changes, token expiry and restarts; every member reads every item; no edit is lost", arguments: cases)
    func converge(_ backend: TestBackend, _ policy: ConflictPolicy) async throws {
        let clock = TestClock()
        // Keep every version, so that "in the item's history" can be checked for every edit; short
        // access tokens, so that the clock can expire them during a run.
        try await makeTestApp(backend, clock: clock) {
            $0.itemVersionsKept = 10_000
            $0.accessTokenLifetime = 30
        }.test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let accounts = [
                try await TestDevice.account(server: base, devices: 3),
                try await TestDevice.account(server: base, devices: 2),
                try await TestDevice.account(server: base, devices: 1),
            ]
            var totals = SimulationRun.Result()
            let started = ContinuousClock.now
            for seed in 0..<Self.seeds {
                let run = SimulationRun(
                    base: base, accounts: accounts, clock: clock, seed: UInt64(seed) &+ 1000 * UInt64(ConflictPolicy.allCases.firstIndex(of: policy) ?? 0), policy: policy
                )
                totals.add(try await run.run())
            }
            // No session was ever revoked: no refresh token was presented twice, on any device.
            for account in accounts {
                let audit = try await CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: account[0].directory)).audit(limit: 200)
                #expect(!audit.events.contains { $0.type == AuditEventType.refreshReused }, "a refresh token was reused")
            }
            print(
                "simulation \(backend.rawValue) \(policy.rawValue): \(Self.seeds) seeds in \(ContinuousClock.now - started), \(totals.operations) operations, "
                    + "\(totals.edits) edits checked, \(totals.syncs) syncs, \(totals.conflicts) conflicts, \(totals.rotations) rotations, "
                    + "\(totals.roleChanges) role changes, \(totals.expiries) token expiries, \(totals.restarts) restarts, \(totals.lostAnswers) lost push answers"
            )
            #expect(totals.operations == Self.seeds * Self.operationsPerSeed)
            #expect(Self.seeds < 4 || (totals.rotations > 0 && totals.roleChanges > 0 && totals.expiries > 0 && totals.restarts > 0))
        }
    }
}

/// A logical clock shared by the devices of one run, so last-write-wins decisions are seeded too.
final class LogicalClock: Sendable {
    private let tick = Mutex<Int64>(1_700_000_000_000)
    func now() -> Timestamp { Timestamp(milliseconds: tick.withLock { $0 += 1000; return $0 }) }
}

/// The real transport, except that it can be told to lose the answer of the next push after the
/// server applied it (a connection cut mid-push).
final class LossyTransport: SyncTransport {
    let inner: HTTPSyncTransport
    private let dropNextPushAnswer = Mutex(false)

    init(client: CofferClient) { inner = HTTPSyncTransport(client: client) }

    func loseNextPushAnswer() { dropNextPushAnswer.withLock { $0 = true } }

    func pull(_ request: PullRequest) async throws -> PullResponse { try await inner.pull(request) }
    func push(_ request: PushRequest) async throws -> PushResponse {
        let answer = try await inner.push(request)
        if dropNextPushAnswer.withLock({ let drop = $0; $0 = false; return drop }) {
            throw CofferClientError.unreachable("the connection broke after the push was sent")
        }
        return answer
    }
    func resolve(_ request: ResolveRequest) async throws -> Item { try await inner.resolve(request) }
    func vault(id: String) async throws -> VaultSummary { try await inner.vault(id: id) }
    func vaults() async throws -> [VaultSummary] { try await inner.vaults() }
    func status() async throws -> SyncStatusResponse { try await inner.status() }
}

/// One seeded run: a fresh vault of account 0 shared with accounts 1 and 2, random creates, edits
/// and deletes on every device, and the events around them; then syncing until quiet, then the checks.
struct SimulationRun {
    let base: String
    let accounts: [[TestDevice]]
    let clock: TestClock
    let seed: UInt64
    let policy: ConflictPolicy

    /// What one local operation meant to write.
    struct Edit {
        var device: Int
        var itemId: String
        /// Field values this edit set; empty for a delete.
        var fields: [String: String]
        var delete: Bool
    }

    struct Result {
        var operations = 0
        var syncs = 0
        var conflicts = 0
        var edits = 0
        var rotations = 0
        var roleChanges = 0
        var expiries = 0
        var restarts = 0
        var lostAnswers = 0

        mutating func add(_ other: Result) {
            operations += other.operations
            syncs += other.syncs
            conflicts += other.conflicts
            edits += other.edits
            rotations += other.rotations
            roleChanges += other.roleChanges
            expiries += other.expiries
            restarts += other.restarts
            lostAnswers += other.lostAnswers
        }
    }

    /// One simulated device: which account it belongs to and its current process (client and engine).
    struct Device {
        let account: Int
        let home: TestDevice
        var client: CofferClient
        var transport: LossyTransport
        var engine: SyncEngine
        var online = true
    }

    static let fieldNames = ["title", "username", "password", "url", "notes"]

    static func value(_ document: ItemDocument, _ field: String) -> String? {
        switch field {
        case "title": document.title
        case "username": document.username
        case "password": document.password
        case "url": document.url
        default: document.notes
        }
    }

    static func set(_ document: inout ItemDocument, _ field: String, _ value: String) {
        switch field {
        case "title": document.title = value
        case "username": document.username = value
        case "password": document.password = value
        case "url": document.url = value
        default: document.notes = value
        }
    }

    /// A process on `home`: a client reading the device's session file, and an engine on its cache.
    func start(_ home: TestDevice, account: Int, cache: URL, configuration: SyncConfiguration) async throws -> Device {
        let client = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: home.directory))
        let transport = LossyTransport(client: client)
        let userId = try #require(await client.session?.userId)
        let engine = try SyncEngine(
            client: client, deviceId: home.deviceId, cachePath: cache.path, transport: transport, configuration: configuration,
            contacts: ContactStore(directory: home.directory, userId: userId)
        )
        return Device(account: account, home: home, client: client, transport: transport, engine: engine)
    }

    func sharing(_ device: Device) async throws -> SharingClient {
        SharingClient(vaults: VaultClient(client: device.client), contacts: ContactStore(directory: device.home.directory, userId: try #require(await device.client.session?.userId)))
    }

    func run() async throws -> Result {
        var random = SeededGenerator(seed: seed)
        let logical = LogicalClock()
        var configuration = SyncConfiguration()
        configuration.defaultPolicy = policy
        configuration.clock = { logical.now() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-sim-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        // 2–3 devices of the owner, 1–2 of the first member, the second member's one.
        var devices: [Device] = []
        var caches: [URL] = []
        let counts = [2 + Int(random.next() % 2), 1 + Int(random.next() % 2), 1]
        for (account, count) in counts.enumerated() {
            for index in 0..<count {
                let cache = directory.appendingPathComponent("device-\(account)-\(index).sqlite")
                caches.append(cache)
                devices.append(try await start(accounts[account][index], account: account, cache: cache, configuration: configuration))
            }
        }
        let ownerDevices = devices.indices.filter { devices[$0].account == 0 }
        let vault = try await VaultClient(client: devices[0].client).createVault(name: "sim-\(seed)")
        let vaultId = vault.summary.id
        var emails: [Int: String] = [:]
        var roles: [Int: VaultRole?] = [:]  // nil: not a member right now
        let ownerSharing = try await sharing(devices[0])
        for account in 1...2 {
            emails[account] = try #require(await accounts[account][0].client.session?.email)
            let role: VaultRole = random.next() % 4 == 0 ? .read : .write
            _ = try await ownerSharing.share(vault, with: try await ownerSharing.lookup(email: emails[account]!), role: role)
            roles[account] = role
        }
        for device in devices { try await device.engine.sync(refreshVaults: true) }
        // A shared vault is an invitation until accepted: each member device accepts it after its first sync.
        for device in devices where device.account != 0 {
            try await device.engine.accept(try #require(try await device.engine.vaults().first { $0.summary.id == vaultId }).summary)
        }

        var edits: [Edit] = []
        var result = Result()
        var trace: [String] = []
        do {
        for step in 0..<SyncSimulationTests.operationsPerSeed {
            result.operations += 1
            let index = Int(random.next() % UInt64(devices.count))
            let roll = Int(random.next() % 100)
            let engine = devices[index].engine
            trace.append("step \(step): device \(index) (account \(devices[index].account), \(devices[index].online ? "online" : "offline")) roll \(roll)")
            switch roll {
            case 0..<12:
                devices[index].online.toggle()
                continue
            case 12..<30:
                if devices[index].online {
                    result.conflicts += try await engine.sync(refreshVaults: random.next() % 2 == 0).conflicts
                    result.syncs += 1
                }
                continue
            case 30..<33:
                // Every access token expires at once; each device refreshes on its next request.
                clock.advance(seconds: 31)
                result.expiries += 1
                continue
            case 33..<37:
                // The process restarts: a new client from the session file, a new engine on the same cache.
                devices[index] = try await start(devices[index].home, account: devices[index].account, cache: caches[index], configuration: configuration)
                result.restarts += 1
                continue
            case 37..<40:
                // A push reaches the server but its answer is lost; the device restarts and syncs again.
                guard devices[index].online, try await engine.status().pending > 0 else { continue }
                devices[index].transport.loseNextPushAnswer()
                _ = try? await engine.sync()  // fails when the push went out (its queue may belong to a vault it lost)
                devices[index] = try await start(devices[index].home, account: devices[index].account, cache: caches[index], configuration: configuration)
                result.lostAnswers += 1
                continue
            case 40..<44:
                // The owner, on one of its online devices, revokes a member (one transaction with the
                // key rotation), or shares the vault again with a member revoked earlier.
                guard let ownerIndex = ownerDevices.first(where: { devices[$0].online }) else { continue }
                let account = 1 + Int(random.next() % 2)
                if roles[account] ?? nil != nil {
                    let ownerSide = try await sharing(devices[ownerIndex])
                    let member = try #require(try await ownerSide.members(vaultId: vaultId).first { $0.email == emails[account] })
                    // This owner device may not have pinned the member who stays: the person confirms it, as `vault revoke` asks.
                    let confirmed = try await ownerSide.unconfirmedMembers(vaultId: vaultId, removing: [member.userId])
                    _ = try await devices[ownerIndex].engine.revoke(member: member, vaultId: vaultId, confirming: confirmed)
                    roles[account] = .some(nil)
                    result.rotations += 1
                } else {
                    let owner = try await sharing(devices[ownerIndex])
                    let current = try await devices[ownerIndex].engine.vaults().first { $0.summary.id == vaultId }
                    let role: VaultRole = random.next() % 4 == 0 ? .read : .write
                    _ = try await owner.share(try #require(current), with: try await owner.lookup(email: emails[account]!), role: role)
                    roles[account] = role
                }
                continue
            case 44..<47:
                // The owner changes a member's role between read and write.
                let account = 1 + Int(random.next() % 2)
                guard let role = roles[account] ?? nil else { continue }
                let owner = try await sharing(devices[ownerDevices[0]])
                let member = try #require(try await owner.members(vaultId: vaultId).first { $0.email == emails[account] })
                let newRole: VaultRole = role == .read ? .write : .read
                _ = try await owner.changeRole(shareId: try #require(member.shareId), to: newRole)
                roles[account] = newRole
                result.roleChanges += 1
                continue
            default:
                break
            }
            // A local change; a device that may not write (read role, vault lost) is refused before anything is queued.
            let items: [LocalItem]
            do {
                items = try await engine.items(vaultId: vaultId)
            } catch SyncError.unknownVault {
                continue
            }
            let marker = "s\(seed)-\(step)"
            do {
                if items.count < 3 || roll < 57 {
                    var document = ItemDocument(title: "title-\(marker)")
                    var fields = ["title": "title-\(marker)"]
                    for field in Self.fieldNames.dropFirst() where random.next() % 2 == 0 {
                        Self.set(&document, field, "\(field)-\(marker)")
                        fields[field] = "\(field)-\(marker)"
                    }
                    let itemId = String(format: "%08x-0000-4000-8000-%012llx", seed & 0xffff_ffff, UInt64(step))
                    try await engine.addItem(document, vaultId: vaultId, id: itemId)
                    edits.append(Edit(device: index, itemId: itemId, fields: fields, delete: false))
                } else {
                    // Edits gather on the first items, so that overlapping and disjoint field edits meet often.
                    let target = items[Int(random.next() % UInt64(min(items.count, 4)))]
                    if roll < 93 {
                        var document = try #require(target.item.document)
                        var fields: [String: String] = [:]
                        for _ in 0..<(1 + Int(random.next() % 3)) {
                            let field = Self.fieldNames[Int(random.next() % UInt64(Self.fieldNames.count))]
                            Self.set(&document, field, "\(field)-\(marker)")
                            fields[field] = "\(field)-\(marker)"
                        }
                        try await engine.editItem(id: target.item.item.id, document: document)
                        edits.append(Edit(device: index, itemId: target.item.item.id, fields: fields, delete: false))
                    } else {
                        try await engine.deleteItem(id: target.item.item.id)
                        edits.append(Edit(device: index, itemId: target.item.item.id, fields: [:], delete: true))
                    }
                }
            } catch SyncError.readOnly {
                continue
            } catch SyncError.accessLost {
                continue  // revoked: the copy is kept on this device, read-only
            } catch SyncError.unknownVault {
                continue  // revoked, and this device has synced since: nothing to edit
            }
        }

        } catch {
            let recent = trace.suffix(12).joined(separator: "\n")
            Issue.record(Comment(rawValue: "seed \(seed) failed: \(error)\n\(recent)"))
            throw error
        }

        // Every member is a writer again, everyone comes online and syncs until a whole pass changes nothing.
        let owner = try await sharing(devices[ownerDevices[0]])
        for account in 1...2 {
            if let role = roles[account] ?? nil {
                if role != .write {
                    let member = try #require(try await owner.members(vaultId: vaultId).first { $0.email == emails[account] })
                    _ = try await owner.changeRole(shareId: try #require(member.shareId), to: .write)
                }
            } else {
                let current = try #require(try await devices[ownerDevices[0]].engine.vaults().first { $0.summary.id == vaultId })
                _ = try await owner.share(current, with: try await owner.lookup(email: emails[account]!), role: .write)
            }
        }
        var quiet = false
        for pass in 0..<30 where !quiet {
            quiet = true
            for device in devices {
                let report = try await device.engine.sync(refreshVaults: pass == 0)
                result.syncs += 1
                result.conflicts += report.conflicts
                if !report.quiet || report.pending > 0 { quiet = false }
            }
            for device in devices where try await !device.engine.pendingRevokes().isEmpty { quiet = false }
        }
        #expect(quiet, "seed \(seed): devices did not become quiet")

        // 1. Every device of every member holds the same state, which is the server's, and can read all of it.
        struct Snapshot: Equatable {
            var version: Int
            var deleted: Bool
            var data: String?
        }
        var states: [[String: Snapshot]] = []
        for device in devices {
            #expect(try await device.engine.status().pending == 0, "seed \(seed): changes left in a queue")
            let items = try await device.engine.items(vaultId: vaultId, includeDeleted: true)  // a tamper error throws here
            #expect(items.allSatisfy { $0.item.item.deleted || $0.item.document != nil })
            states.append(Dictionary(uniqueKeysWithValues: items.map { ($0.item.item.id, Snapshot(version: $0.item.item.version, deleted: $0.item.item.deleted, data: $0.item.item.encryptedData)) }))
        }
        for (index, state) in states.enumerated().dropFirst() {
            #expect(state == states[0], "seed \(seed): device \(index) (account \(devices[index].account)) differs from device 0")
        }
        // A device that never saw the vault, of each account, reads every live item.
        for account in accounts {
            let fresh = VaultClient(client: try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: account[0].directory)))
            let opened = try await fresh.vault(id: vaultId)
            let live = try await fresh.items(in: opened)
            #expect(Set(live.map(\.item.id)) == Set(states[0].filter { !$0.value.deleted }.keys), "seed \(seed): a fresh read differs")
        }

        // 2. Every edit is in the final state, in the item's history, or in a recorded conflict.
        let reader = VaultClient(client: devices[0].client)
        let current = try await reader.vault(id: vaultId)  // the current key, with every earlier one
        var conflictDocuments: [String: [ItemDocument?]] = [:]
        for device in devices {
            for record in try await device.engine.conflicts() {
                conflictDocuments[record.itemId, default: []].append(try await device.engine.localSide(of: record))
                for earlier in record.earlier {
                    conflictDocuments[record.itemId, default: []].append(try VaultCrypto.openQueued(earlier, itemId: record.itemId, vaultId: vaultId, keys: current.keys))
                }
            }
        }
        var histories: [String: [ItemVersion]] = [:]
        for itemId in Set(edits.map(\.itemId)) {
            let response: ItemVersionsResponse
            do {
                response = try await devices[0].client.authorized(.GET, "/api/items/\(itemId)/versions", body: Optional<Int>.none)
            } catch let error as CofferClientError where error.status == 404 {
                // Created by a device revoked before it pushed: it never reached the server, and
                // must then be a refused change on that device (checked below), on no device's state.
                #expect(states[0][itemId] == nil, "seed \(seed): item \(itemId) is on the devices but not on the server")
                continue
            }
            histories[itemId] = response.versions
            let state = try #require(states[0][itemId], "seed \(seed): item \(itemId) missing on the devices")
            #expect(response.versions.first?.version == state.version, "seed \(seed): devices hold version \(state.version) of \(itemId), the server \(response.versions.first?.version ?? -1)")
        }
        for edit in edits {
            result.edits += 1
            let history = histories[edit.itemId] ?? []
            let recorded = conflictDocuments[edit.itemId] ?? []
            if edit.delete {
                let found = history.contains(where: \.deleted) || recorded.contains { $0 == nil }
                #expect(found, "seed \(seed): a delete of \(edit.itemId) by device \(edit.device) was lost")
                continue
            }
            let documents = try history.compactMap { version in
                try (version.deleted ? nil : version.encryptedData).map { try VaultCrypto.openItem($0, itemId: edit.itemId, vaultId: vaultId, version: version.version, keys: current.keys) }
            } + recorded.compactMap { $0 }
            let found = documents.contains { document in edit.fields.allSatisfy { Self.value(document, $0.key) == $0.value } }
            #expect(found, "seed \(seed): an edit of \(edit.itemId) by device \(edit.device) (\(edit.fields.keys.sorted())) was lost")
        }

        // 3. No device was logged out along the way.
        for device in devices { _ = try await device.client.me() }
        try await VaultClient(client: devices[0].client).deleteVault(id: vaultId)
        return result
    }
}
