import ArgumentParser
import AsyncHTTPClient
import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

extension Coffer.Bench {
    /// `coffer bench sync`: upload in batches, full pull on a second device (decryption
    /// included), incremental pull of 10 changes, and a pull with no changes.
    struct SyncBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sync",
            abstract: "Benchmark the sync protocol: upload, full pull with decryption, incremental and no-change pulls."
        )

        @Option(help: "Database: 'sqlite' (a fresh temporary file) or a postgres:// URL.")
        var database = "sqlite"

        @Option(help: "Comma-separated item counts.")
        var items = "100,1000,10000,100000"

        @Option(help: "Items per push request.")
        var batch = 500

        @Option(help: "Items per pull page (the same for every row).")
        var pageSize = 1000

        @Option(help: "Rounds of the incremental pull (10 edits, then one pull) and of the no-change pull.")
        var rounds = 100

        func run() async throws {
            let counts = items.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            guard !counts.isEmpty, (1...1000).contains(batch), (1...5000).contains(pageSize), (1...100_000).contains(rounds) else {
                throw CLIError("--items needs positive counts, --batch 1–1000, --page-size 1–5000, --rounds 1–100000")
            }
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .benchmark)
            let rows: [Row] = try await BenchServer.with(database: database) { base in
                var rows: [Row] = []
                for count in counts {
                    rows.append(try await measure(count: count, base: base, http: http))
                }
                return rows
            }
            try await http.shutdown()

            let backend = database == "sqlite" ? "SQLite" : "PostgreSQL"
            print("| backend | items | upload items/s | full pull items/s | full pull + decrypt | incremental pull of 10 (p50 / p95) | no-change pull (p50 / p95) | peak RSS |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for row in rows {
                print(
                    "| \(backend) | \(row.count) | \(String(format: "%.0f", row.uploadRate)) | \(String(format: "%.0f", row.pullRate)) | "
                        + "\(String(format: "%.0f", row.pullAndDecryptMs)) ms | \(String(format: "%.2f / %.2f", row.incremental.p50, row.incremental.p95)) ms | "
                        + "\(String(format: "%.2f / %.2f", row.noChange.p50, row.noChange.p95)) ms | \(row.peakResidentMiB) MiB |"
                )
            }
            print("\nPage size \(pageSize) items; uploads in pushes of \(batch); \(rounds) rounds of each pull; items are ~200-byte encrypted login entries.")
        }

        struct Row {
            var count: Int
            var uploadRate: Double
            var pullRate: Double
            var pullAndDecryptMs: Double
            var incremental: LatencyStats
            var noChange: LatencyStats
            var peakResidentMiB: Int
        }

        private func measure(count: Int, base: String, http: HTTPClient) async throws -> Row {
            let api = BenchAPI(http: http, base: base)
            let master = SymmetricKey(size: .bits256)
            let keys = try AccountKeys(masterKey: master)
            let email = "sync-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            let (bundle, _) = try AccountKeyBundle.create(masterKey: master, email: email)
            let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "bench A", platform: "bench")
            let session: SessionResponse = try await api.post("/api/auth/register", RegisterAccountRequest(
                email: email, kdf: KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1), salt: Base64URL.encode(MasterKey.randomSalt()),
                loginPublicKey: keys.loginPublicKey, encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey,
                encryptedPrivateKey: bundle.encryptedPrivateKey, device: device
            ))
            let vaultKey = VaultKey.random()
            let vaultId = UUID().uuidString.lowercased()
            let _: VaultSummary = try await api.post("/api/vaults", CreateVaultRequest(
                id: vaultId, encryptedMetadata: try VaultCrypto.sealMetadata(VaultMetadata(name: "Bench"), vaultId: vaultId, key: vaultKey),
                wrappedKey: try Envelope.seal(Data(count: 32), key: SymmetricKey(size: .bits256), context: EnvelopeContext(purpose: "bench", owner: "bench"))
            ), token: session.accessToken)

            // Upload: encrypt on the client and push in batches.
            var ids: [String] = []
            let uploadStart = ContinuousClock.now
            for start in stride(from: 0, to: count, by: batch) {
                var changes: [PushChange] = []
                for index in start..<min(start + batch, count) {
                    let id = UUID().uuidString.lowercased()
                    ids.append(id)
                    let document = ItemDocument(title: "Site \(index)", username: "user\(index)@example.test", password: UUID().uuidString, url: "https://site\(index).example")
                    changes.append(PushChange(vaultId: vaultId, itemId: id, baseVersion: 0, encryptedData: try VaultCrypto.sealItem(document, itemId: id, vaultId: vaultId, version: 1, key: vaultKey)))
                }
                let response: PushResponse = try await api.post("/api/sync/push", PushRequest(changes: changes), token: session.accessToken)
                guard response.results.allSatisfy({ $0.status == .applied }) else { throw CLIError("a benchmark push was not applied") }
            }
            let uploadSeconds = (ContinuousClock.now - uploadStart).milliseconds / 1000

            // Full pull on a second device, page by page; each page decrypted and dropped.
            let second = try await login(api: api, email: email, keys: keys)
            var cursor: Int64 = 0
            var pulled = 0
            var decryptTime: Duration = .zero
            let pullStart = ContinuousClock.now
            while true {
                let page: PullResponse = try await api.post("/api/sync/pull", PullRequest(vaults: [vaultId: cursor], limit: pageSize), token: second)
                guard let changes = page.vaults.first else { break }
                let decryptStart = ContinuousClock.now
                for item in changes.items {
                    guard let data = item.encryptedData else { continue }
                    _ = try VaultCrypto.openItem(data, itemId: item.id, vaultId: vaultId, version: item.version, key: vaultKey)
                }
                decryptTime += ContinuousClock.now - decryptStart
                pulled += changes.items.count
                cursor = changes.cursor
                if !changes.hasMore { break }
            }
            let pullTotal = (ContinuousClock.now - pullStart).milliseconds
            guard pulled == count else { throw CLIError("pulled \(pulled) of \(count) items") }

            // Incremental: 10 changes on device A, then one pull on device B from its cursor.
            var incremental: [Double] = []
            var version = 1
            for _ in 0..<rounds {
                var changes: [PushChange] = []
                for id in ids.prefix(10) {
                    let document = ItemDocument(title: "Edited", password: UUID().uuidString)
                    changes.append(PushChange(vaultId: vaultId, itemId: id, baseVersion: version, encryptedData: try VaultCrypto.sealItem(document, itemId: id, vaultId: vaultId, version: version + 1, key: vaultKey)))
                }
                let _: PushResponse = try await api.post("/api/sync/push", PushRequest(changes: changes), token: session.accessToken)
                version += 1
                let start = ContinuousClock.now
                let page: PullResponse = try await api.post("/api/sync/pull", PullRequest(vaults: [vaultId: cursor], limit: pageSize), token: second)
                for item in page.vaults.first?.items ?? [] {
                    _ = try VaultCrypto.openItem(item.encryptedData ?? "", itemId: item.id, vaultId: vaultId, version: item.version, key: vaultKey)
                }
                incremental.append((ContinuousClock.now - start).milliseconds)
                guard page.vaults.first?.items.count == 10 else { throw CLIError("incremental pull returned \(page.vaults.first?.items.count ?? 0) items") }
                cursor = page.vaults.first?.cursor ?? cursor
            }
            var noChange: [Double] = []
            for _ in 0..<rounds {
                let start = ContinuousClock.now
                let _: PullResponse = try await api.post("/api/sync/pull", PullRequest(vaults: [vaultId: cursor], limit: pageSize), token: second)
                noChange.append((ContinuousClock.now - start).milliseconds)
            }
            return Row(
                count: count, uploadRate: Double(count) / uploadSeconds, pullRate: Double(count) / ((pullTotal - decryptTime.milliseconds) / 1000),
                pullAndDecryptMs: pullTotal, incremental: LatencyStats(latencies: incremental, seconds: 1, failures: 0),
                noChange: LatencyStats(latencies: noChange, seconds: 1, failures: 0), peakResidentMiB: Self.peakResidentMiB()
            )
        }

        private func login(api: BenchAPI, email: String, keys: AccountKeys) async throws -> String {
            let challenge: ChallengeResponse = try await api.post("/api/auth/challenge", ChallengeRequest(email: email))
            let signature = try LoginProof.sign(email: email, challenge: challenge.challenge, action: "login", loginKey: keys.loginKey)
            let session: SessionResponse = try await api.post("/api/auth/login", LoginRequest(
                email: email, challenge: challenge.challenge, signature: signature,
                device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "bench B", platform: "bench")
            ))
            return session.accessToken
        }

        /// Peak resident memory of this process (server and client together), from /proc.
        static func peakResidentMiB() -> Int {
            guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kib = Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "")
            else { return 0 }
            return kib / 1024
        }
    }
}

/// JSON over HTTP for benchmarks, with status checks.
struct BenchAPI: Sendable {
    let http: HTTPClient
    let base: String

    func post<Body: Encodable, Answer: Decodable>(_ path: String, _ body: Body, token: String? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        let response = try await http.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        guard (200..<300).contains(Int(response.status.code)) else {
            throw CLIError("POST \(path) answered \(response.status.code): \(String(buffer: bytes).prefix(200))")
        }
        return try APIClient.decodeAnswer(Answer.self, from: bytes)
    }
}
