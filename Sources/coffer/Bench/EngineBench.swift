import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer.Bench {
    /// `coffer bench engine`: the sync engine end to end, cache included: N items queued and
    /// pushed by device A, then a new device B syncing them all (pull, decrypt, write to its
    /// cache), then rounds of 10 edits on A and one sync on B.
    struct EngineBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "engine",
            abstract: "Benchmark the client sync engine: queue and push, new-device sync into the local cache, incremental sync."
        )

        @Option(help: "Database: 'sqlite' (a fresh temporary file) or a postgres:// URL.")
        var database = "sqlite"

        @Option(help: "Comma-separated item counts.")
        var items = "1000,10000"

        @Option(help: "Rounds of the incremental sync (10 edits on A, one sync on B).")
        var rounds = 50

        func run() async throws {
            let counts = items.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            guard !counts.isEmpty, (1...10_000).contains(rounds) else { throw CLIError("--items needs positive counts, --rounds 1–10000") }
            let rounds = rounds
            let rows = try await BenchServer.with(database: database) { base in
                var rows: [Row] = []
                for count in counts { rows.append(try await Self.measure(count: count, rounds: rounds, base: base)) }
                return rows
            }
            let backend = database == "sqlite" ? "SQLite" : "PostgreSQL"
            print("| backend | items | A: queue (durable) | A: push | B: new-device sync (pull + decrypt + cache) | B: items/s | incremental sync of 10 on B (p50 / p95) |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for row in rows {
                print(
                    "| \(backend) | \(row.count) | \(String(format: "%.0f", row.queueMs)) ms | \(String(format: "%.0f", row.pushMs)) ms | "
                        + "\(String(format: "%.0f", row.newDeviceMs)) ms | \(String(format: "%.0f", Double(row.count) / row.newDeviceMs * 1000)) | "
                        + "\(String(format: "%.2f / %.2f", row.incremental.p50, row.incremental.p95)) ms |"
                )
            }
            print("\nEngine defaults: pull pages of 1 000, pushes of 500; the cache is SQLite in WAL mode with synchronous=FULL; \(rounds) incremental rounds.")
        }

        struct Row: Sendable {
            var count: Int
            var queueMs: Double
            var pushMs: Double
            var newDeviceMs: Double
            var incremental: LatencyStats
        }

        static func measure(count: Int, rounds: Int, base: String) async throws -> Row {
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-engine-bench-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: scratch) }
            let email = "engine-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            let clientA = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: scratch.appendingPathComponent("a")))
            try await clientA.register(email: email, password: "bench password", device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "A", platform: "bench"), kdf: .browserCompatible)
            let vault = try await VaultClient(client: clientA).createVault(name: "Bench")
            let engineA = try await SyncEngine.open(client: clientA, directory: scratch.appendingPathComponent("a"))
            try await engineA.sync()

            // Device A: every item queued durably (one commit each, as an app would), then pushed.
            let queueStart = ContinuousClock.now
            var ids: [String] = []
            for index in 0..<count {
                let document = ItemDocument(title: "Site \(index)", username: "user\(index)@example.test", password: UUID().uuidString, url: "https://site\(index).example")
                ids.append(try await engineA.addItem(document, vaultId: vault.summary.id).item.item.id)
            }
            let queueMs = (ContinuousClock.now - queueStart).milliseconds
            let pushStart = ContinuousClock.now
            let pushed = try await engineA.sync()
            let pushMs = (ContinuousClock.now - pushStart).milliseconds
            guard pushed.pushed == count else { throw CLIError("pushed \(pushed.pushed) of \(count)") }

            // Device B: a new device syncs everything into an empty cache.
            let clientB = try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: scratch.appendingPathComponent("b")))
            try await clientB.login(email: email, password: "bench password", device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "B", platform: "bench"), allowPBKDF2: true)
            let engineB = try await SyncEngine.open(client: clientB, directory: scratch.appendingPathComponent("b"))
            let newDeviceStart = ContinuousClock.now
            let pulled = try await engineB.sync()
            let newDeviceMs = (ContinuousClock.now - newDeviceStart).milliseconds
            guard pulled.pulled == count else { throw CLIError("the new device pulled \(pulled.pulled) of \(count)") }

            // Incremental: 10 edits on A, pushed; then one sync on B.
            var latencies: [Double] = []
            for round in 0..<rounds {
                for id in ids.prefix(10) {
                    try await engineA.editItem(id: id, document: ItemDocument(title: "Edited \(round)", password: UUID().uuidString))
                }
                try await engineA.sync()
                let start = ContinuousClock.now
                let report = try await engineB.sync()
                latencies.append((ContinuousClock.now - start).milliseconds)
                guard report.pulled == 10 else { throw CLIError("an incremental sync pulled \(report.pulled) changes, not 10") }
            }
            return Row(count: count, queueMs: queueMs, pushMs: pushMs, newDeviceMs: newDeviceMs, incremental: LatencyStats(latencies: latencies, seconds: 1, failures: 0))
        }
    }
}
