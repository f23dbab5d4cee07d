import ArgumentParser
import AsyncHTTPClient
import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import Logging
import Synchronization

extension Coffer.Bench {
    /// `coffer bench ws`: N connected sockets, time from an HTTP push to its ITEM_UPDATED at
    /// every socket, and memory per idle socket.
    struct WebSocketBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ws",
            abstract: "Benchmark real-time fan-out: push-to-delivery latency at N sockets and memory per idle socket."
        )

        @Option(help: "Database: 'sqlite' (a fresh temporary file) or a postgres:// URL.")
        var database = "sqlite"

        @Option(help: "Comma-separated socket counts.")
        var sockets = "100,1000,5000"

        @Option(help: "Pushes per socket count; each is timed at every socket.")
        var rounds = 20

        func run() async throws {
            let counts = sockets.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
            guard !counts.isEmpty, (1...1000).contains(rounds) else { throw CLIError("--sockets needs positive counts, --rounds 1–1000") }
            // The server runs as a child process (this same executable), so its memory is measured alone.
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: scratch) }
            let port = try Self.freePort()
            let server = Process()
            server.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            server.arguments = [
                "serve", "--host", "127.0.0.1", "--port", String(port),
                "--database", database == "sqlite" ? scratch.appendingPathComponent("coffer.sqlite").path : database, "--log-level", "error",
            ]
            server.standardOutput = FileHandle.nullDevice
            try server.run()
            defer {
                server.terminate()
                server.waitUntilExit()
            }
            var logger = Logger(label: "coffer-bench")
            logger.logLevel = .error
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .benchmark)
            let base = "http://127.0.0.1:\(port)"
            var ready = false
            for _ in 0..<300 where !ready {
                ready = (try? await http.execute(HTTPClientRequest(url: base + "/health"), timeout: .seconds(1)).status) == .ok
                if !ready { try await Task.sleep(for: .milliseconds(100)) }
            }
            guard ready else { throw CLIError("the server did not start") }
            var rows: [Row] = []
            for count in counts {
                rows.append(try await measure(count: count, base: base, http: http, serverPid: server.processIdentifier, logger: logger))
            }
            try await http.shutdown()

            let backend = database == "sqlite" ? "SQLite" : "PostgreSQL"
            print("| backend | sockets | deliveries | push → delivery p50 | p99 | all notified (p50 / max) | memory per idle socket |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for row in rows {
                print(
                    "| \(backend) | \(row.sockets) | \(row.deliveries) | \(String(format: "%.2f", row.latency.p50)) ms | \(String(format: "%.2f", row.latency.p99)) ms | "
                        + "\(String(format: "%.2f / %.2f", row.allNotified.p50, row.allNotified.max)) ms | \(String(format: "%.1f", row.kibPerSocket)) KiB |"
                )
            }
            print("\nOne writer device pushes over HTTP; every socket is another device's. The server runs as its own process; memory is its resident growth per authenticated idle socket.")
        }

        struct Row {
            var sockets: Int
            var deliveries: Int
            var latency: LatencyStats
            var allNotified: LatencyStats
            var kibPerSocket: Double
        }

        /// Arrival times of one round's item, per socket.
        final class Arrivals: Sendable {
            private let state = Mutex<(itemId: String, times: [ContinuousClock.Instant], expected: Int, done: CheckedContinuation<Void, Never>?)>(("", [], 0, nil))

            func start(itemId: String, expected: Int) {
                state.withLock { $0 = (itemId, [], expected, nil) }
            }

            func record(_ itemId: String, at time: ContinuousClock.Instant) {
                let done = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    guard state.itemId == itemId else { return nil }
                    state.times.append(time)
                    guard state.times.count == state.expected else { return nil }
                    defer { state.done = nil }
                    return state.done
                }
                done?.resume()
            }

            /// Waits until every socket has the item (or `timeout` passes); the arrival times.
            func wait(timeout: Duration) async -> [ContinuousClock.Instant] {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        await withCheckedContinuation { continuation in
                            let complete = self.state.withLock { state -> Bool in
                                if state.times.count >= state.expected { return true }
                                state.done = continuation
                                return false
                            }
                            if complete { continuation.resume() }
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: timeout)
                        let waiting = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                            defer { state.done = nil }
                            return state.done
                        }
                        waiting?.resume()
                    }
                    await group.next()
                    group.cancelAll()
                }
                return state.withLock { $0.times }
            }
        }

        private func measure(count: Int, base: String, http: HTTPClient, serverPid: Int32, logger: Logger) async throws -> Row {
            let api = BenchAPI(http: http, base: base)
            let master = SymmetricKey(size: .bits256)
            let keys = try AccountKeys(masterKey: master)
            let email = "ws-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            let (bundle, _) = try AccountKeyBundle.create(masterKey: master, email: email)
            let writer: SessionResponse = try await api.post("/api/auth/register", RegisterAccountRequest(
                email: email, kdf: KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1), salt: Base64URL.encode(MasterKey.randomSalt()),
                loginPublicKey: keys.loginPublicKey, encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey,
                encryptedPrivateKey: bundle.encryptedPrivateKey, device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "writer", platform: "bench")
            ))
            let challenge: ChallengeResponse = try await api.post("/api/auth/challenge", ChallengeRequest(email: email))
            let readerDevice = UUID().uuidString.lowercased()
            let reader: SessionResponse = try await api.post("/api/auth/login", LoginRequest(
                email: email, challenge: challenge.challenge,
                signature: try LoginProof.sign(email: email, challenge: challenge.challenge, action: "login", loginKey: keys.loginKey),
                device: DeviceInfo(id: readerDevice, name: "readers", platform: "bench")
            ))
            let vaultId = UUID().uuidString.lowercased()
            let _: VaultSummary = try await api.post("/api/vaults", CreateVaultRequest(
                id: vaultId, encryptedMetadata: try Envelope.seal(Data(count: 32), key: SymmetricKey(size: .bits256), context: EnvelopeContext(purpose: "bench", owner: "bench")),
                wrappedKey: try Envelope.seal(Data(count: 32), key: SymmetricKey(size: .bits256), context: EnvelopeContext(purpose: "bench", owner: "bench"))
            ), token: writer.accessToken)

            // Connect and authenticate every socket; each records when this round's item arrives.
            let arrivals = Arrivals()
            let before = Self.residentKiB(pid: serverPid)
            let authenticated = Arrivals()
            authenticated.start(itemId: "auth", expected: count)
            var connections: [RealtimeConnection] = []
            connections.reserveCapacity(count)
            for _ in 0..<count {
                let connection = try await RealtimeConnection.open(server: base, logger: logger)
                try await connection.send(.auth(token: reader.accessToken, deviceId: readerDevice))
                connections.append(connection)
                Task {
                    for await message in connection.messages {
                        if message.type == RealtimeType.itemUpdated {
                            arrivals.record(message.item?.id ?? "", at: .now)
                        } else if message.type == RealtimeType.authSuccess {
                            authenticated.record("auth", at: .now)
                        }
                    }
                }
            }
            guard await authenticated.wait(timeout: .seconds(60)).count == count else { throw CLIError("not every socket authenticated") }
            let kibPerSocket = Double(Self.residentKiB(pid: serverPid) - before) / Double(count)

            var latencies: [Double] = []
            var allNotified: [Double] = []
            var deliveries = 0
            for _ in 0..<rounds {
                let itemId = UUID().uuidString.lowercased()
                arrivals.start(itemId: itemId, expected: count)
                let start = ContinuousClock.now
                let _: PushResponse = try await api.post("/api/sync/push", PushRequest(changes: [
                    PushChange(vaultId: vaultId, itemId: itemId, baseVersion: 0, encryptedData: try Envelope.seal(Data(count: 150), key: SymmetricKey(size: .bits256), context: EnvelopeContext(purpose: "bench", owner: "bench")))
                ]), token: writer.accessToken)
                let times = await arrivals.wait(timeout: .seconds(30))
                guard times.count == count else { throw CLIError("only \(times.count) of \(count) sockets got the change") }
                deliveries += times.count
                latencies += times.map { ($0 - start).milliseconds }
                allNotified.append((times.max()! - start).milliseconds)
            }
            for connection in connections { await connection.close() }
            return Row(
                sockets: count, deliveries: deliveries, latency: LatencyStats(latencies: latencies, seconds: 1, failures: 0),
                allNotified: LatencyStats(latencies: allNotified, seconds: 1, failures: 0), kibPerSocket: kibPerSocket
            )
        }

        /// Resident memory of a process now, from /proc.
        static func residentKiB(pid: Int32) -> Int {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "")
            else { return 0 }
            return kib
        }
    
        /// A loopback port nothing listens on right now.
        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                    guard bind(fd, pointer, length) == 0 else { return -1 }
                    return getsockname(fd, pointer, &length)
                }
            }
            guard bound == 0 else { throw CLIError("no free port") }
            return Int(UInt16(bigEndian: address.sin_port))
        }
    }
}
