import ArgumentParser
import AsyncHTTPClient
import CofferProtocol
import CofferServer
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

extension Coffer.Bench {
    /// `coffer bench backup`: register, save and restore throughput and latency against an
    /// in-process server on loopback, with anti-abuse limits off so the server itself is measured.
    struct BackupBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Benchmark the blind backup API (register, save, restore) on SQLite or PostgreSQL."
        )

        @Option(help: "Database: 'sqlite' (a fresh temporary file) or a postgres:// URL.")
        var database = "sqlite"

        @Option(help: "Comma-separated client concurrencies.")
        var concurrency = "1,10,64"

        @Option(help: "Comma-separated blob sizes (ciphertext bytes).")
        var sizes = "1KiB,1MiB"

        @Option(help: "Requests per phase for blobs under 64 KiB.")
        var requests = 3000

        @Option(help: "Requests per phase for blobs of 64 KiB and more.")
        var largeRequests = 300

        @Flag(help: "Print a JSON array instead of a Markdown table.")
        var json = false

        func run() async throws {
            let concurrencies = try concurrency.split(separator: ",").map { text -> Int in
                guard let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0 else { throw CLIError("--concurrency: '\(text)' is not a positive number") }
                return value
            }
            let blobSizes = try sizes.split(separator: ",").map { text -> Int in
                guard let value = ByteCount.parse(String(text)), value > 0 else { throw CLIError("--sizes: '\(text)' is not a size") }
                return value
            }
            var configuration = ServerConfiguration()
            configuration.port = 0
            configuration.maxBackupSize = max(configuration.maxBackupSize, (blobSizes.max() ?? 0) + 1024)
            configuration.addressLimits = []
            configuration.registerAddressLimits = []
            configuration.backupWriteLimits = []
            configuration.backupNewKeyLimits = []
            configuration.backupNewKeyAddressLimits = []
            configuration.databasePoolSize = 32
            let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-bench-\(UUID().uuidString)")
            configuration.database = database == "sqlite"
                ? .sqlite(path: scratch.appendingPathComponent("coffer.sqlite").path)
                : try DatabaseLocation(parsing: database)
            defer { try? FileManager.default.removeItem(at: scratch) }

            var logger = Logger(label: "coffer-bench")
            logger.logLevel = .error
            let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
            let app = try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { port in
                portContinuation.yield(port)
            })
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .benchmark)

            let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
            let rows: [Row] = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await services.run() }
                var iterator = portStream.makeAsyncIterator()
                guard let port = await iterator.next() else { throw CLIError("the server did not start") }
                let base = "http://127.0.0.1:\(port)"
                var rows: [Row] = []
                for size in blobSizes {
                    for workers in concurrencies {
                        rows += try await runScenario(http: http, base: base, size: size, concurrency: workers)
                    }
                }
                await services.triggerGracefulShutdown()
                try await group.waitForAll()
                return rows
            }
            try await http.shutdown()

            let backend = database == "sqlite" ? "SQLite" : "PostgreSQL"
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            } else {
                print("| backend | operation | blob | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | failures |")
                print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
                for row in rows {
                    let s = row.stats
                    print("| \(backend) | \(row.operation) | \(ByteCount.format(row.blobSize)) | \(row.concurrency) | \(s.requests) | \(String(format: "%.0f", s.throughput)) | \(String(format: "%.2f", s.p50)) | \(String(format: "%.2f", s.p95)) | \(String(format: "%.2f", s.p99)) | \(s.failures) |")
                }
            }
        }

        struct Row: Encodable {
            var operation: String
            var blobSize: Int
            var concurrency: Int
            var stats: LatencyStats
        }

        private func runScenario(http: HTTPClient, base: String, size: Int, concurrency: Int) async throws -> [Row] {
            let count = size < 64 * 1024 ? requests : largeRequests
            // One user and storage key per worker; blobs prepared up front so only the server is timed.
            let users = (0..<concurrency).map { _ in (userId: Self.randomHex(), storageKey: Self.randomHex()) }
            let blob = Data((0..<size).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let saveBodies = try users.map { user in
                ByteBuffer(bytes: try JSONEncoder().encode(SaveBackupRequest(userId: user.userId, storageKey: user.storageKey, data: blob)))
            }
            let registerIds = (0..<count).map { _ in Self.randomHex() }

            let register = await measure(count: count, concurrency: concurrency) { index in
                let body = ByteBuffer(string: #"{"userId":"\#(registerIds[index])"}"#)
                try await Self.send(http, .POST, base + "/api/register", body: body)
            }
            for user in users {
                try await Self.send(http, .POST, base + "/api/register", body: ByteBuffer(string: #"{"userId":"\#(user.userId)"}"#))
            }
            let save = await measure(count: count, concurrency: concurrency) { index in
                try await Self.send(http, .POST, base + "/api/backup", body: saveBodies[index % concurrency])
            }
            let restore = await measure(count: count, concurrency: concurrency) { index in
                let user = users[index % concurrency]
                try await Self.send(http, .GET, base + "/api/backup?userId=\(user.userId)&storageKey=\(user.storageKey)")
            }
            return [
                Row(operation: "register", blobSize: size, concurrency: concurrency, stats: register),
                Row(operation: "save", blobSize: size, concurrency: concurrency, stats: save),
                Row(operation: "restore", blobSize: size, concurrency: concurrency, stats: restore),
            ]
        }

        private static func send(_ http: HTTPClient, _ method: NIOHTTP1.HTTPMethod, _ url: String, body: ByteBuffer? = nil) async throws {
            var request = HTTPClientRequest(url: url)
            request.method = method
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(body)
            }
            let response = try await http.execute(request, timeout: .seconds(60))
            _ = try await response.body.collect(upTo: 32 * 1024 * 1024)
            guard response.status == .ok else { throw CLIError("\(method) \(url) answered \(response.status.code)") }
        }

        private static func randomHex() -> String {
            (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        }
    }
}

import NIOHTTP1
