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

/// Seeded simulation of several devices of one account editing shared items while randomly
/// offline, then syncing until quiet (issue: the sync engine, acceptance 1). `scripts/test` sets
/// `COFFER_SIM_SEEDS`; a plain `swift test` runs a few.
@Suite("Sync engine simulation", .serialized)
struct SyncSimulationTests {
    static var seeds: Int { ProcessInfo.processInfo.environment["COFFER_SIM_SEEDS"].flatMap(Int.init) ?? 4 }
    static let operationsPerSeed = 60

    static var cases: [(TestBackend, ConflictPolicy)] {
        TestBackend.available.flatMap { backend in ConflictPolicy.allCases.map { (backend, $0) } }
    }

    @Test("Devices converge and no edit is lost", arguments: cases)
    func converge(_ backend: TestBackend, _ policy: ConflictPolicy) async throws {
        // Keep every version, so that "in the item's history" can be checked for every edit.
        try await makeTestApp(backend) { $0.itemVersionsKept = 10_000 }.test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let account = try await TestDevice.account(server: base, devices: 5)
            var totals = (operations: 0, syncs: 0, conflicts: 0, edits: 0)
            for seed in 0..<Self.seeds {
                let result = try await SimulationRun(account: account, seed: UInt64(seed) &+ 1000 * UInt64(ConflictPolicy.allCases.firstIndex(of: policy) ?? 0), policy: policy).run()
                totals.operations += result.operations
                totals.syncs += result.syncs
                totals.conflicts += result.conflicts
                totals.edits += result.edits
            }
            print("simulation \(backend.rawValue) \(policy.rawValue): \(Self.seeds) seeds, \(totals.operations) operations, \(totals.edits) edits checked, \(totals.syncs) syncs, \(totals.conflicts) conflicts")
            #expect(totals.operations == Self.seeds * Self.operationsPerSeed)
        }
    }
}

/// A logical clock shared by the devices of one run, so last-write-wins decisions are seeded too.
final class LogicalClock: Sendable {
    private let tick = Mutex<Int64>(1_700_000_000_000)
    func now() -> Timestamp { Timestamp(milliseconds: tick.withLock { $0 += 1000; return $0 }) }
}

/// One seeded run: 3–5 devices, a fresh vault, random creates, edits and deletes while devices
/// go on- and offline, then syncing until quiet, then the checks.
struct SimulationRun {
    let account: [TestDevice]
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

    func run() async throws -> Result {
        var random = SeededGenerator(seed: seed)
        let count = 3 + Int(random.next() % 3)
        let clock = LogicalClock()
        let owner = VaultClient(client: account[0].client)
        let vault = try await owner.createVault(name: "sim-\(seed)")
        let vaultId = vault.summary.id
        var configuration = SyncConfiguration()
        configuration.defaultPolicy = policy
        configuration.clock = { clock.now() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-sim-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var engines: [SyncEngine] = []
        for index in 0..<count {
            let engine = try SyncEngine(
                client: account[index].client, deviceId: account[index].deviceId,
                cachePath: directory.appendingPathComponent("device-\(index).sqlite").path, configuration: configuration
            )
            try await engine.sync()
            engines.append(engine)
        }
        var online = [Bool](repeating: true, count: count)
        var edits: [Edit] = []
        var result = Result()
        for step in 0..<SyncSimulationTests.operationsPerSeed {
            result.operations += 1
            let device = Int(random.next() % UInt64(count))
            let roll = Int(random.next() % 100)
            let engine = engines[device]
            if roll < 15 {
                online[device].toggle()
                continue
            }
            if roll < 35 {
                if online[device] {
                    result.conflicts += try await engine.sync().conflicts
                    result.syncs += 1
                }
                continue
            }
            let items = try await engine.items(vaultId: vaultId)
            let marker = "s\(seed)-\(step)"
            if items.count < 3 || roll < 45 {
                var document = ItemDocument(title: "title-\(marker)")
                var fields = ["title": "title-\(marker)"]
                for field in Self.fieldNames.dropFirst() where random.next() % 2 == 0 {
                    Self.set(&document, field, "\(field)-\(marker)")
                    fields[field] = "\(field)-\(marker)"
                }
                let itemId = String(format: "%08x-0000-4000-8000-%012llx", seed & 0xffff_ffff, UInt64(step))
                try await engine.addItem(document, vaultId: vaultId, id: itemId)
                edits.append(Edit(device: device, itemId: itemId, fields: fields, delete: false))
            } else {
                let target = items[Int(random.next() % UInt64(items.count))]
                if roll < 88 {
                    var document = try #require(target.item.document)
                    var fields: [String: String] = [:]
                    let changes = 1 + Int(random.next() % 2)
                    for _ in 0..<changes {
                        let field = Self.fieldNames[Int(random.next() % UInt64(Self.fieldNames.count))]
                        Self.set(&document, field, "\(field)-\(marker)")
                        fields[field] = "\(field)-\(marker)"
                    }
                    try await engine.editItem(id: target.item.item.id, document: document)
                    edits.append(Edit(device: device, itemId: target.item.item.id, fields: fields, delete: false))
                } else {
                    try await engine.deleteItem(id: target.item.item.id)
                    edits.append(Edit(device: device, itemId: target.item.item.id, fields: [:], delete: true))
                }
            }
        }

        // Everyone comes online and syncs until a whole pass changes nothing.
        var quietPasses = 0
        for _ in 0..<20 where quietPasses < 1 {
            var quiet = true
            for engine in engines {
                let report = try await engine.sync()
                result.syncs += 1
                result.conflicts += report.conflicts
                if !report.quiet || report.pending > 0 { quiet = false }
            }
            quietPasses = quiet ? quietPasses + 1 : 0
        }
        #expect(quietPasses == 1, "seed \(seed): devices did not become quiet")

        // 1. Every device holds the same state, which is the server's.
        struct Snapshot: Equatable {
            var version: Int
            var deleted: Bool
            var data: String?
        }
        var states: [[String: Snapshot]] = []
        for engine in engines {
            #expect(try await engine.status().pending == 0, "seed \(seed): changes left in a queue")
            let items = try await engine.items(vaultId: vaultId, includeDeleted: true)
            states.append(Dictionary(uniqueKeysWithValues: items.map { ($0.item.item.id, Snapshot(version: $0.item.item.version, deleted: $0.item.item.deleted, data: $0.item.item.encryptedData)) }))
        }
        for (index, state) in states.enumerated().dropFirst() {
            #expect(state == states[0], "seed \(seed): device \(index) differs from device 0")
        }

        // 2. Every edit is in the final state, in the item's history, or in a recorded conflict.
        var conflictDocuments: [String: [ItemDocument?]] = [:]
        for engine in engines {
            for record in try await engine.conflicts() {
                conflictDocuments[record.itemId, default: []].append(try await engine.localSide(of: record))
                for earlier in record.earlier {
                    conflictDocuments[record.itemId, default: []].append(try VaultCrypto.openItem(earlier, itemId: record.itemId, vaultId: vaultId, key: vault.key))
                }
            }
        }
        var histories: [String: [ItemVersion]] = [:]
        for itemId in Set(edits.map(\.itemId)) {
            let response: ItemVersionsResponse = try await account[0].client.authorized(.GET, "/api/items/\(itemId)/versions", body: Optional<Int>.none)
            histories[itemId] = response.versions
            let current = try #require(states[0][itemId], "seed \(seed): item \(itemId) missing on the devices")
            #expect(response.versions.first?.version == current.version, "seed \(seed): devices hold version \(current.version) of \(itemId), the server \(response.versions.first?.version ?? -1)")
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
                try version.encryptedData.map { try VaultCrypto.openItem($0, itemId: edit.itemId, vaultId: vaultId, key: vault.key) }
            } + recorded.compactMap { $0 }
            let found = documents.contains { document in edit.fields.allSatisfy { Self.value(document, $0.key) == $0.value } }
            #expect(found, "seed \(seed): an edit of \(edit.itemId) by device \(edit.device) (\(edit.fields.keys.sorted())) was lost")
        }
        try await owner.deleteVault(id: vaultId)
        try? FileManager.default.removeItem(at: directory)
        return result
    }
}
