import CofferProtocol
import Foundation

/// What an item holds once decrypted: a login entry. Only the client ever sees it.
public struct ItemDocument: Codable, Sendable, Equatable {
    public var title: String
    public var username: String?
    public var password: String?
    public var url: String?
    public var notes: String?
    /// When and where it was last edited; used by last-write-wins conflict resolution.
    public var modifiedAt: Timestamp
    public var modifiedBy: String?

    public init(
        title: String, username: String? = nil, password: String? = nil, url: String? = nil, notes: String? = nil,
        modifiedAt: Timestamp = .now, modifiedBy: String? = nil
    ) {
        self.title = title
        self.username = username
        self.password = password
        self.url = url
        self.notes = notes
        self.modifiedAt = modifiedAt
        self.modifiedBy = modifiedBy
    }
}

/// A vault's metadata once decrypted.
public struct VaultMetadata: Codable, Sendable, Equatable {
    public var name: String
    public init(name: String) { self.name = name }
}

/// A vault the client can read: its key is unwrapped.
public struct DecryptedVault: Sendable {
    public var summary: VaultSummary
    public var metadata: VaultMetadata
    public var key: VaultKey
}

/// An item decrypted, with the server's bookkeeping.
public struct DecryptedItem: Sendable, Equatable {
    public var item: Item
    /// Nil for a tombstone.
    public var document: ItemDocument?
}
