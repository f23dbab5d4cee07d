import CofferProtocol
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Events between instances over PostgreSQL: NOTIFY on the pooled connections, LISTEN on a
/// connection of its own that reconnects by itself. After every (re)connect it catches up from
/// the last revision it knew per vault, so a notification lost while disconnected only delays
/// delivery.
final class PostgresEventBus: EventBus, Service, Sendable {
    static let channel = "coffer_events"

    let store: PostgresStore
    let hub: RealtimeHub
    let origin: String
    let logger: Logger
    private let current = Mutex<PostgresConnection?>(nil)
    /// While set, the listener stays disconnected (tests: a longer outage).
    private let paused = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let holding = Mutex(false)
    private let connectedCount = Mutex(0)
    private let (connects, connectsContinuation) = AsyncStream.makeStream(of: Int.self)

    init(store: PostgresStore, hub: RealtimeHub, origin: String, logger: Logger) {
        self.store = store
        self.hub = hub
        self.origin = origin
        self.logger = logger
    }

    func announce(_ event: BusEvent) async {
        guard let data = try? JSONEncoder().encode(event) else { return }
        do {
            try await store.notify(channel: Self.channel, payload: String(decoding: data, as: UTF8.self))
        } catch {
            // Other instances then learn of it at their next catch-up.
            logger.error("could not announce an event", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    func run() async throws {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let connection = try await PostgresConnection.connect(configuration: store.connectionConfiguration, id: 0, logger: logger)
                current.withLock { $0 = connection }
                delay = .milliseconds(100)
                defer { current.withLock { $0 = nil } }
                try await cancelWhenGracefulShutdown {
                    try await connection.listen(on: Self.channel) { notifications in
                        let count = self.connectedCount.withLock { count in
                            count += 1
                            return count
                        }
                        await self.catchUp()
                        self.connectsContinuation.yield(count)
                        for try await notification in notifications {
                            await self.handle(notification.payload)
                        }
                    }
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                logger.warning("event listener disconnected; reconnecting", metadata: ["error": "\(String(reflecting: error))", "retry_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
            }
            if holding.withLock({ $0 }) {
                await withCheckedContinuation { continuation in
                    let resumeNow = holding.withLock { held in
                        if held { paused.withLock { $0 = continuation } }
                        return !held
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
        connectsContinuation.finish()
    }

    /// Drops the listening connection, as a network failure would; with `holdDown` it stays
    /// down until `resume()` (tests of a longer outage).
    func dropConnection(holdDown: Bool = false) async {
        if holdDown { holding.withLock { $0 = true } }
        let connection = current.withLock { $0 }
        try? await connection?.close()
    }

    /// Lets a held-down listener reconnect.
    func resume() {
        let continuation = holding.withLock { held -> CheckedContinuation<Void, Never>? in
            held = false
            return paused.withLock { waiting in
                defer { waiting = nil }
                return waiting
            }
        }
        continuation?.resume()
    }

    /// How many times the listener has connected so far.
    var connections: Int { connectedCount.withLock { $0 } }

    /// Waits until the listener has connected `count` times in all.
    func waitForConnection(_ count: Int) async {
        if connections >= count { return }
        for await seen in connects where seen >= count { return }
    }

    private func handle(_ payload: String) async {
        guard let event = try? JSONDecoder().decode(BusEvent.self, from: Data(payload.utf8)), event.origin != origin else { return }
        switch event.kind {
        case .items:
            guard let vaultId = event.vaultId, let from = event.from else { return }
            // From another instance, but still not trusted to be above Int64.min.
            await deliverItems(vaultId: vaultId, after: from.saturatingSubtracting(1))
        case .vault:
            guard let vaultId = event.vaultId, let revision = event.revision else { return }
            await hub.deliverVaultUpdated(vaultId: vaultId, revision: revision)
        case .access:
            guard let vaultId = event.vaultId else { return }
            hub.deliverAccessRevoked(vaultId: vaultId, userIds: event.userIds ?? [])
        case .session:
            for userId in event.userIds ?? [] {
                hub.deliverSessionRevoked(userId: userId, deviceId: event.deviceId, keepSession: event.keepSession, reason: event.reason ?? "session ended")
            }
        }
    }

    /// Items of a vault changed after `revision`, read from the store and delivered here.
    private func deliverItems(vaultId: String, after revision: Int64) async {
        do {
            var cursor = revision
            while true {
                let items = try await store.items(vaultId: vaultId, since: cursor, limit: 500)
                await hub.deliver(items: items)
                guard items.count == 500, let last = items.last else { break }
                cursor = last.revision
            }
        } catch {
            logger.error("could not read changed items", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Everything that may have been missed while not listening.
    private func catchUp() async {
        for (vaultId, revision) in hub.knownRevisions {
            await deliverItems(vaultId: vaultId, after: revision)
        }
    }
}
