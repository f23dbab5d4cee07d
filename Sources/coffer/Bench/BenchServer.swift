import AsyncHTTPClient
import CofferServer
import Foundation
import Logging
import ServiceLifecycle

/// A Coffer server inside the benchmark process, on a free loopback port, for the length of `body`.
enum BenchServer {
    /// `database` is `sqlite` (a fresh temporary file) or a `postgres://` URL.
    static func with<T: Sendable>(database: String, poolSize: Int = 16, _ body: @Sendable (_ base: String) async throws -> T) async throws -> T {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.addressLimits = []
        configuration.loginAddressLimits = []
        configuration.loginAccountLimits = []
        configuration.databasePoolSize = poolSize
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        configuration.database = database == "sqlite"
            ? .sqlite(path: scratch.appendingPathComponent("coffer.sqlite").path) : try DatabaseLocation(parsing: database)
        var logger = Logger(label: "coffer-bench")
        logger.logLevel = .error
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try await buildApplication(configuration: configuration, logger: logger, onServerRunning: { portContinuation.yield($0) })
        let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CLIError("the server did not start") }
            do {
                let result = try await body("http://127.0.0.1:\(port)")
                await services.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                await services.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}

extension HTTPClient.Configuration {
    /// Benchmark clients: like the SDK's (`APIClient.defaultHTTPClient`, no tracing spans), with
    /// room for one connection per concurrent client.
    static var benchmark: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.tracing.tracer = nil
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 128
        return configuration
    }
}
