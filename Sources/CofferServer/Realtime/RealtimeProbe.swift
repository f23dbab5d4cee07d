import Synchronization

/// A view into the real-time machinery of one running application, for tests and benchmarks:
/// open sockets, and the PostgreSQL listener (dropped on demand, as a network failure would).
public final class RealtimeProbe: Sendable {
    private let parts = Mutex<(hub: RealtimeHub?, bus: PostgresEventBus?)>((nil, nil))

    public init() {}

    func attach(hub: RealtimeHub, bus: PostgresEventBus?) {
        parts.withLock { $0 = (hub, bus) }
    }

    /// Authenticated sockets open on this instance.
    public var connections: Int { parts.withLock { $0.hub }?.count ?? 0 }

    /// Times the PostgreSQL listener has connected (0 with SQLite).
    public var listenerConnections: Int { parts.withLock { $0.bus }?.connections ?? 0 }

    /// Closes the listener's connection; it reconnects by itself and catches up. With
    /// `holdDown` it stays disconnected until `resumeListener()`.
    public func dropListener(holdDown: Bool = false) async {
        await parts.withLock { $0.bus }?.dropConnection(holdDown: holdDown)
    }

    public func resumeListener() {
        parts.withLock { $0.bus }?.resume()
    }

    /// Sockets disconnected for not reading, and the largest backlog any socket reached.
    public var slowDisconnects: Int { parts.withLock { $0.hub }?.stats.slowDisconnects ?? 0 }
    public var peakQueuedBytes: Int { parts.withLock { $0.hub }?.stats.peakQueuedBytes ?? 0 }

    /// Waits until the listener has connected `count` times in all.
    public func waitForListener(connections count: Int) async {
        await parts.withLock { $0.bus }?.waitForConnection(count)
    }
}
