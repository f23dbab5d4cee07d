import CofferProtocol
import Foundation

/// Announces events to other server instances (PostgreSQL NOTIFY); nil with SQLite, where one
/// process serves every socket.
protocol EventBus: Sendable {
    func announce(_ event: BusEvent) async
}

/// An event as announced between instances: ids and revisions only, never blobs.
struct BusEvent: Codable, Sendable, Equatable {
    enum Kind: String, Codable, Sendable {
        case items, vault, access, session
    }

    var kind: Kind
    /// The instance that announced it; it delivered to its own sockets already.
    var origin: String
    var vaultId: String?
    /// items: the revisions `from…to` of the vault changed.
    var from: Int64?
    var to: Int64?
    /// vault: the new revision.
    var revision: Int64?
    /// access: users who lost the vault; session: the user.
    var userIds: [String]?
    var deviceId: String?
    var keepSession: String?
    var reason: String?
}

/// The one way controllers tell open sockets about changes: deliver on this instance, then
/// announce to the others.
struct RealtimeEvents: Sendable {
    let hub: RealtimeHub
    let bus: (any EventBus)?
    let origin: String

    func itemsChanged(_ items: [Item]) async {
        guard !items.isEmpty else { return }
        await hub.deliver(items: items)
        guard let bus else { return }
        for (vaultId, changed) in Dictionary(grouping: items, by: \.vaultId) {
            let revisions = changed.map(\.revision)
            await bus.announce(BusEvent(kind: .items, origin: origin, vaultId: vaultId, from: revisions.min(), to: revisions.max()))
        }
    }

    func vaultUpdated(vaultId: String, revision: Int64) async {
        await hub.deliverVaultUpdated(vaultId: vaultId, revision: revision)
        await bus?.announce(BusEvent(kind: .vault, origin: origin, vaultId: vaultId, revision: revision))
    }

    func accessRevoked(vaultId: String, userIds: [String]) async {
        guard !userIds.isEmpty else { return }
        hub.deliverAccessRevoked(vaultId: vaultId, userIds: userIds)
        await bus?.announce(BusEvent(kind: .access, origin: origin, vaultId: vaultId, userIds: userIds))
    }

    /// Ends sockets of a user: of one device, or all but one session, or all.
    func sessionsRevoked(userId: String, deviceId: String? = nil, keepSession: String? = nil, reason: String) async {
        hub.deliverSessionRevoked(userId: userId, deviceId: deviceId, keepSession: keepSession, reason: reason)
        await bus?.announce(BusEvent(kind: .session, origin: origin, userIds: [userId], deviceId: deviceId, keepSession: keepSession, reason: reason))
    }
}
