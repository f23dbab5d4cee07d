import CofferCrypto
import CofferProtocol
import Foundation

/// A contact's sharing key as first seen (trust on first use), with its fingerprint.
public struct PinnedContact: Codable, Sendable, Equatable {
    public var email: String
    public var userId: String
    public var publicKey: String
    public var fingerprint: String
    public var pinnedAt: Timestamp
    /// Set when the user confirmed the fingerprint out of band (`coffer contacts verify`).
    public var verified: Bool

    public init(email: String, userId: String, publicKey: String, pinnedAt: Timestamp = .now, verified: Bool = false) {
        self.email = email
        self.userId = userId
        self.publicKey = publicKey
        self.fingerprint = KeyFingerprint.of(userId: userId, publicKey: publicKey)
        self.pinnedAt = pinnedAt
        self.verified = verified
    }
}

/// How a key the server offers for a contact compares with the pinned one.
public enum ContactCheck: Sendable, Equatable {
    /// Never seen: pinning it is trust on first use, so show its fingerprint.
    case new(PinnedContact)
    /// The same key as pinned.
    case pinned(PinnedContact)
    /// A different key than pinned: refuse unless the user accepts it explicitly.
    case changed(pinned: PinnedContact, offered: PinnedContact)

    /// The contact offered, if it may be used: a key that changed since it was pinned throws
    /// `CofferError.contactKeyChanged` unless `acceptChanged`.
    public func trusted(acceptChanged: Bool = false) throws -> PinnedContact {
        if case .changed(let pinned, let offered) = self, !acceptChanged {
            throw CofferError.contactKeyChanged(email: offered.email, pinned: pinned.fingerprint, offered: offered.fingerprint)
        }
        return offered
    }

    /// The contact the server offered.
    public var offered: PinnedContact {
        switch self {
        case .new(let contact), .pinned(let contact): contact
        case .changed(_, let offered): offered
        }
    }
}

/// Pinned contacts of one local account, in `contacts-<userId>.json` (mode 0600) in the
/// configuration directory.
public struct ContactStore: Sendable {
    let files: SessionStore
    let name: String

    public init(directory: URL, userId: String) {
        self.files = SessionStore(directory: directory)
        self.name = "contacts-\(userId).json"
    }

    public func all() throws -> [PinnedContact] {
        try files.load([PinnedContact].self, name) ?? []
    }

    public func contact(userId: String) throws -> PinnedContact? {
        try all().first { $0.userId == userId }
    }

    /// Compares what the server offers with the pin, by user id (emails can change hands).
    public func check(email: String, userId: String, publicKey: String) throws -> ContactCheck {
        let offered = PinnedContact(email: email, userId: userId, publicKey: publicKey)
        guard let pinned = try contact(userId: userId) else { return .new(offered) }
        return pinned.publicKey == publicKey ? .pinned(pinned) : .changed(pinned: pinned, offered: offered)
    }

    /// Pins (or re-pins) a contact.
    public func pin(_ contact: PinnedContact) throws {
        var contacts = try all().filter { $0.userId != contact.userId }
        contacts.append(contact)
        contacts.sort { $0.email < $1.email }
        try files.save(contacts, name)
    }
}
