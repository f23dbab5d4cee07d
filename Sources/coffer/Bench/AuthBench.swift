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
    /// `coffer bench auth`: login (challenge + signature) and authenticated request latency, with
    /// the client's key derivation timed apart from the server.
    struct AuthBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "auth",
            abstract: "Benchmark login (challenge + signature) and authenticated requests; KDF time reported separately."
        )

        @Option(help: "Database: 'sqlite' (a fresh temporary file) or a postgres:// URL.")
        var database = "sqlite"

        @Option(help: "Comma-separated client concurrencies.")
        var concurrency = "1,10,64"

        @Option(help: "Logins per concurrency level.")
        var logins = 1000

        @Option(help: "Authenticated requests (GET /api/auth/me) per concurrency level.")
        var requests = 5000

        func run() async throws {
            let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            guard !levels.isEmpty else { throw CLIError("--concurrency needs positive numbers") }
            // Client-side key derivation, measured on its own: it is the user's wait, not the server's.
            var kdfTimes: [(String, Double)] = []
            for (name, parameters) in [("scrypt N=2^17 r=8 p=1", KDFParameters.recommended), ("PBKDF2-SHA256 600 000", KDFParameters.browserCompatible)] {
                let start = ContinuousClock.now
                _ = try MasterKey.derive(password: "benchmark password", salt: MasterKey.randomSalt(), parameters: parameters)
                kdfTimes.append((name, (ContinuousClock.now - start).milliseconds))
            }

            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .benchmark)

            let rows: [(String, Int, LatencyStats)] = try await BenchServer.with(database: database, poolSize: 32) { base in
                // One account; its keys come from a random master key (KDF cost is reported above).
                let master = SymmetricKey(size: .bits256)
                let keys = try AccountKeys(masterKey: master)
                let email = "bench-\(UUID().uuidString.prefix(8))@example.test"
                let (bundle, _) = try AccountKeyBundle.create(masterKey: master, email: email)
                let register = RegisterAccountRequest(
                    email: email, kdf: KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1), salt: Base64URL.encode(MasterKey.randomSalt()),
                    loginPublicKey: keys.loginPublicKey, encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey,
                    encryptedPrivateKey: bundle.encryptedPrivateKey, device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "bench", platform: "bench")
                )
                let session: SessionResponse = try await Self.post(http, base + "/api/auth/register", register, expect: .created)
                var rows: [(String, Int, LatencyStats)] = []
                for level in levels {
                    let login = await measure(count: logins, concurrency: level) { _ in
                        let challenge: ChallengeResponse = try await Self.post(http, base + "/api/auth/challenge", ChallengeRequest(email: email))
                        let signature = try LoginProof.sign(email: email, challenge: challenge.challenge, action: "login", loginKey: keys.loginKey)
                        let request = LoginRequest(email: email, challenge: challenge.challenge, signature: signature, device: register.device)
                        let _: SessionResponse = try await Self.post(http, base + "/api/auth/login", request)
                    }
                    rows.append(("login (challenge + signed login)", level, login))
                    let me = await measure(count: requests, concurrency: level) { _ in
                        var request = HTTPClientRequest(url: base + "/api/auth/me")
                        request.headers.add(name: "Authorization", value: "Bearer \(session.accessToken)")
                        let response = try await http.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        guard response.status == .ok else { throw CLIError("GET /api/auth/me answered \(response.status.code)") }
                    }
                    rows.append(("authenticated GET /api/auth/me", level, me))
                }
                return rows
            }
            try await http.shutdown()

            let backend = database == "sqlite" ? "SQLite" : "PostgreSQL"
            print("Client key derivation (one derivation, this machine):")
            for (name, ms) in kdfTimes { print("- \(name): \(String(format: "%.0f", ms)) ms") }
            print("")
            print("| backend | operation | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | failures |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for (operation, level, s) in rows {
                print("| \(backend) | \(operation) | \(level) | \(s.requests) | \(String(format: "%.0f", s.throughput)) | \(String(format: "%.2f", s.p50)) | \(String(format: "%.2f", s.p95)) | \(String(format: "%.2f", s.p99)) | \(s.failures) |")
            }
        }

        private static func post<Body: Encodable, Answer: Decodable>(
            _ http: HTTPClient, _ url: String, _ body: Body, expect: HTTPResponseStatus = .ok
        ) async throws -> Answer {
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
            let response = try await http.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            guard response.status == expect else { throw CLIError("POST \(url) answered \(response.status.code)") }
            return try JSONDecoder().decode(Answer.self, from: Data(buffer: bytes))
        }
    }
}
