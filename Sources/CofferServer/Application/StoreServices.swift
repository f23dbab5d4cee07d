import CofferProtocol
import Logging
import ServiceLifecycle

/// Owns the store's lifetime inside the service group: keeps a PostgreSQL pool running, and
/// closes the store after the HTTP server has finished its in-flight requests.
struct StoreService: Service {
    let store: any Store

    func run() async throws {
        if let postgres = store as? PostgresStore {
            // The pool runs until the group cancels it, which happens after the server stopped.
            await withGracefulShutdownHandler {
                await cancelWhenGracefulShutdown { await postgres.run() }
            } onGracefulShutdown: {}
        } else {
            try? await gracefulShutdown()
        }
        try await store.close()
    }
}

/// Once a minute: purges expired counters, replay records, challenges and write logs, and rotates the token signing key when due.
struct MaintenanceService: Service {
    let store: any Store
    let tokens: TokenService
    let clock: @Sendable () -> Timestamp
    let logger: Logger

    func run() async throws {
        // Sleep first: migrations run while the server starts, and nothing has expired yet.
        while (try? await gracefulShutdownOrCancel(sleeping: .seconds(60))) != nil,
            !Task.isShuttingDownGracefully, !Task.isCancelled
        {
            do {
                try await store.purgeExpired(at: clock())
                try await tokens.rotateIfNeeded()
            } catch {
                logger.warning("maintenance failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    private func gracefulShutdownOrCancel(sleeping duration: Duration) async throws {
        try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}
