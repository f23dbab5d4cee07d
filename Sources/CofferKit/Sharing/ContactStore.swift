import CofferCrypto
import CofferProtocol
import Foundation

/// A contact as first seen (trust on first use): the identity key people compare, with the
/// X25519 sharing key it certified, and the fingerprint of the identity. A contact pinned before
/// identity keys has only its sharing key (and that key's fingerprint) until it is seen with an
/// identity that certifies the same sharing key.
public struct PinnedContact: Codable, Sendable, Equatable {
    public var email: String
    public var userId: String
    public var publicKey: String
    /// The Ed25519 identity key, base64url; nil for a pin made before identity keys.
    public var identityKey: String?
    public var fingerprint: String
    public var pinnedAt: Timestamp
    /// Set when the user confirmed the fingerprint out of band (`coffer contacts verify`).
    public var verified: Bool

    public init(email: String, userId: String, publicKey: String, identityKey: String? = nil, pinnedAt: Timestamp = .now, verified: Bool = false) {
        self.email = email
        self.userId = userId
        self.publicKey = publicKey
        self.identityKey = identityKey
        self.fingerprint = identityKey.map { KeyFingerprint.of(userId: userId, identityKey: $0) } ?? KeyFingerprint.of(userId: userId, publicKey: publicKey)
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

    /// Compares what the server offers with the pin, by user id (emails can change hands). An
    /// identity key must certify the sharing key it comes with (else a tamper error); a pin is
    /// of the identity, so a new sharing key certified by the pinned identity is the same
    /// contact (re-pinned with it), and a pin made before identity keys is upgraded to the
    /// identity that certifies its very sharing key. An identity missing where one is pinned is a change.
    public func check(email: String, userId: String, publicKey: String, identityKey: String? = nil, certificate: String? = nil) throws -> ContactCheck {
        if let identityKey {
            guard let certificate, IdentityKey.verify(certificate: certificate, identityKey: identityKey, sharingKey: publicKey, email: email) else {
                throw CofferError.tampered("the sharing key the server gives for \(email) is not certified by the identity key it gives with it")
            }
        }
        let offered = PinnedContact(email: email, userId: userId, publicKey: publicKey, identityKey: identityKey)
        guard let pinned = try contact(userId: userId) else { return .new(offered) }
        switch (pinned.identityKey, identityKey) {
        case (let pinnedIdentity?, let offeredIdentity?) where pinnedIdentity == offeredIdentity:
            guard pinned.publicKey != publicKey || pinned.email != email else { return .pinned(pinned) }
            var updated = offered
            updated.pinnedAt = pinned.pinnedAt
            updated.verified = pinned.verified
            try pin(updated)
            return .pinned(updated)
        case (nil, _?) where pinned.publicKey == publicKey:
            // The pinned sharing key, now certified: pin the identity (not verified: its fingerprint is new).
            var upgraded = offered
            upgraded.pinnedAt = pinned.pinnedAt
            try pin(upgraded)
            return .pinned(upgraded)
        case (nil, nil) where pinned.publicKey == publicKey:
            return .pinned(pinned)
        default:
            return .changed(pinned: pinned, offered: offered)
        }
    }

    /// `check` for a member as the server lists it.
    public func check(_ member: VaultMember) throws -> ContactCheck {
        try check(email: member.email, userId: member.userId, publicKey: member.publicKey, identityKey: member.identityKey, certificate: member.sharingKeyCertificate)
    }

    /// Pins (or re-pins) a contact.
    public func pin(_ contact: PinnedContact) throws {
        var contacts = try all().filter { $0.userId != contact.userId }
        contacts.append(contact)
        contacts.sort { $0.email < $1.email }
        try files.save(contacts, name)
    }
}

/// Members this device removed from vaults, in `removals-<userId>.json` beside the contacts: a
/// server that lists a removed member again (with that member's old, genuine grant, or while it
/// is still pinned here) is not believed, unless a grant made after the removal names it.
extension ContactStore {
    var removalsName: String { "removals-" + name.dropFirst("contacts-".count) }

    /// When this device removed `memberId` from `vaultId` (milliseconds since 1970), if it did.
    public func removal(vaultId: String, memberId: String) throws -> Int64? {
        try files.load([String: [String: Int64]].self, removalsName)?[vaultId]?[memberId]
    }

    /// Records that this device removed `memberIds` from `vaultId` at `time`.
    public func recordRemoval(vaultId: String, memberIds: [String], at time: Timestamp = .now) throws {
        guard !memberIds.isEmpty else { return }
        var all = try files.load([String: [String: Int64]].self, removalsName) ?? [:]
        for memberId in memberIds { all[vaultId, default: [:]][memberId] = time.milliseconds }
        try files.save(all, removalsName)
    }

    /// Forgets a removal (this device shared the vault with the member again).
    public func clearRemoval(vaultId: String, memberId: String) throws {
        guard var all = try files.load([String: [String: Int64]].self, removalsName), all[vaultId]?[memberId] != nil else { return }
        all[vaultId]?[memberId] = nil
        try files.save(all, removalsName)
    }
}
