import CofferProtocol
import Foundation
import Logging
import Metrics
import Synchronization

/// The sockets connected to this instance, and delivery of events to them. Every event is
/// addressed by membership, read from the store when it is delivered: a device gets an item
/// only while its user may read the vault, and never the change its own device wrote.
final class RealtimeHub: Sendable {
    final class Subscriber: Sendable {
        let id: Int
        let identity: AuthIdentity
        let outbox: Outbox
        /// Closes the connection at once, even with a write pending (a client that stopped reading).
        let disconnect: @Sendable () -> Void
        /// When the newest access token presented on this socket expires: the socket lives no longer.
        private let expiry: Mutex<Timestamp>

        init(id: Int, identity: AuthIdentity, outbox: Outbox, tokenExpiresAt: Timestamp, disconnect: @escaping @Sendable () -> Void) {
            self.id = id
            self.identity = identity
            self.outbox = outbox
            self.expiry = Mutex(tokenExpiresAt)
            self.disconnect = disconnect
        }

        var tokenExpiresAt: Timestamp { expiry.withLock { $0 } }

        /// A renewed AUTH moves the expiry (never earlier).
        func extendToken(until expiresAt: Timestamp) {
            expiry.withLock { $0 = max($0, expiresAt) }
        }

        /// Queues a message; a client too slow to take it is disconnected.
        func send(_ text: String) {
            if !outbox.send(text), outbox.ending == .tooSlow { disconnect() }
        }

        /// Sends a last message and closes; if the client does not take it within a second,
        /// the connection is closed anyway.
        func end(_ ending: Outbox.Ending, last: String?) {
            outbox.close(ending, last: last)
            Task { [disconnect] in
                try? await Task.sleep(for: .seconds(1))
                disconnect()
            }
        }
    }

    private struct State {
        var nextId = 0
        var subscribers: [Int: Subscriber] = [:]
        var byUser: [String: Set<Int>] = [:]
        /// The newest revision delivered or known per vault: where a catch-up starts.
        var revisions: [String: Int64] = [:]
    }

    private let state = Mutex(State())
    private let statistics = Mutex((slowDisconnects: 0, peakQueuedBytes: 0))
    let store: any Store
    let logger: Logger
    private let connections = Gauge(label: "coffer_ws_connections")
    private let slowDisconnects = Counter(label: "coffer_ws_slow_disconnects_total")

    init(store: any Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    // MARK: Subscribers

    func add(_ identity: AuthIdentity, tokenExpiresAt: Timestamp, queueLimit: Int, disconnect: @escaping @Sendable () -> Void) -> Subscriber {
        let subscriber = state.withLock { state in
            state.nextId += 1
            let subscriber = Subscriber(
                id: state.nextId, identity: identity, outbox: Outbox(limit: queueLimit), tokenExpiresAt: tokenExpiresAt, disconnect: disconnect
            )
            state.subscribers[subscriber.id] = subscriber
            state.byUser[identity.userId, default: []].insert(subscriber.id)
            return subscriber
        }
        connections.record(count)
        return subscriber
    }

    func remove(_ subscriber: Subscriber) {
        state.withLock { state in
            state.subscribers[subscriber.id] = nil
            state.byUser[subscriber.identity.userId]?.remove(subscriber.id)
            if state.byUser[subscriber.identity.userId]?.isEmpty == true { state.byUser[subscriber.identity.userId] = nil }
        }
        let slow = subscriber.outbox.ending == .tooSlow
        if slow { slowDisconnects.increment() }
        statistics.withLock {
            if slow { $0.slowDisconnects += 1 }
            $0.peakQueuedBytes = max($0.peakQueuedBytes, subscriber.outbox.peakBytes)
        }
        connections.record(count)
    }

    var count: Int { state.withLock { $0.subscribers.count } }

    /// Counted when sockets are removed.
    var stats: (slowDisconnects: Int, peakQueuedBytes: Int) { statistics.withLock { $0 } }

    /// Remembers where each of these vaults stands, so a later catch-up starts there.
    func noteRevisions(_ revisions: [String: Int64]) {
        state.withLock { state in
            for (vault, revision) in revisions where (state.revisions[vault] ?? -1) < revision {
                state.revisions[vault] = revision
            }
        }
    }

    var knownRevisions: [String: Int64] { state.withLock { $0.revisions } }

    private func subscribers(users: some Sequence<String>) -> [Subscriber] {
        state.withLock { state in
            users.flatMap { state.byUser[$0] ?? [] }.compactMap { state.subscribers[$0] }
        }
    }

    private var hasSubscribers: Bool { state.withLock { !$0.subscribers.isEmpty } }

    // MARK: Delivery

    /// ITEM_UPDATED for each item to every connected device of every member, except the device
    /// that wrote it.
    func deliver(items: [Item]) async {
        guard !items.isEmpty else { return }
        noteRevisions(Dictionary(items.map { ($0.vaultId, $0.revision) }, uniquingKeysWith: max))
        guard hasSubscribers else { return }
        for (vaultId, changed) in Dictionary(grouping: items, by: \.vaultId) {
            let recipients = await members(of: vaultId)
            guard !recipients.isEmpty else { continue }
            for item in changed.sorted(by: { $0.revision < $1.revision }) {
                guard let text = Self.encode(RealtimeServerMessage(type: RealtimeType.itemUpdated, vaultId: vaultId, item: item)) else { continue }
                for subscriber in recipients where subscriber.identity.deviceId != item.deviceId {
                    subscriber.send(text)
                }
            }
        }
    }

    /// VAULT_UPDATED (metadata or key changed) to every member's devices.
    func deliverVaultUpdated(vaultId: String, revision: Int64) async {
        guard hasSubscribers else { return }
        let recipients = await members(of: vaultId)
        guard let text = Self.encode(RealtimeServerMessage(type: RealtimeType.vaultUpdated, vaultId: vaultId, revision: revision)) else { return }
        for subscriber in recipients { subscriber.send(text) }
    }

    /// ACCESS_REVOKED to the devices of users who lost the vault; later events skip them, since
    /// membership is read at each delivery.
    func deliverAccessRevoked(vaultId: String, userIds: [String]) {
        let text = Self.encode(
            RealtimeServerMessage(type: RealtimeType.accessRevoked, vaultId: vaultId, code: "access_revoked", error: "you no longer have access to this vault")
        )
        guard let text else { return }
        for subscriber in subscribers(users: userIds) { subscriber.send(text) }
    }

    /// SESSION_REVOKED, then close, for a user's sockets: all of them, one device's, or all but
    /// one session's.
    func deliverSessionRevoked(userId: String, deviceId: String?, keepSession: String?, reason: String) {
        let text = Self.encode(RealtimeServerMessage(type: RealtimeType.sessionRevoked, code: "session_revoked", error: reason))
        for subscriber in subscribers(users: [userId]) {
            if let deviceId, subscriber.identity.deviceId != deviceId { continue }
            if let keepSession, subscriber.identity.sessionId == keepSession { continue }
            subscriber.end(.sessionEnded, last: text)
        }
    }

    /// SESSION_REVOKED, then close, for one socket whose token expired.
    func expire(_ subscriber: Subscriber) {
        let text = Self.encode(RealtimeServerMessage(type: RealtimeType.sessionRevoked, code: "token_expired", error: "the access token expired; authenticate again"))
        subscriber.end(.sessionEnded, last: text)
    }

    /// Ends every socket (shutdown).
    func closeAll() {
        for subscriber in state.withLock({ Array($0.subscribers.values) }) { subscriber.outbox.close(.normal) }
    }

    private func members(of vaultId: String) async -> [Subscriber] {
        do {
            return subscribers(users: try await store.members(vaultId: vaultId).map(\.userId))
        } catch {
            logger.error("could not read vault members for delivery", metadata: ["error": "\(String(reflecting: error))"])
            return []
        }
    }

    static func encode(_ message: RealtimeServerMessage) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(message)).map { String(decoding: $0, as: UTF8.self) }
    }
}
