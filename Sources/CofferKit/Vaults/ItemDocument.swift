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
    /// The current key: everything new is sealed with it.
    public var key: VaultKey { keys.current }
    /// Every key of the vault this device holds, to open what was sealed before a rotation.
    public var keys: VaultKeyRing
    /// For a vault shared with this account: the identity key that signed its current key copy
    /// (verified as that copy's signature, not yet as the sealer's: `SharingTrust` decides that);
    /// nil for an owned vault or an unsigned copy made before identity keys.
    public var sealerIdentity: String?

    public init(summary: VaultSummary, metadata: VaultMetadata, keys: VaultKeyRing, sealerIdentity: String? = nil) {
        self.summary = summary
        self.metadata = metadata
        self.keys = keys
        self.sealerIdentity = sealerIdentity
    }

    public init(summary: VaultSummary, metadata: VaultMetadata, key: VaultKey) {
        self.init(summary: summary, metadata: metadata, keys: VaultKeyRing(current: key))
    }
}

/// An item decrypted, with the server's bookkeeping.
public struct DecryptedItem: Sendable, Equatable {
    public var item: Item
    /// Nil for a tombstone.
    public var document: ItemDocument?
}

extension ItemDocument: JSONByteReadable {
    /// Reads a decrypted item without `JSONDecoder`, which cost more than the decryption itself
    /// (see `JSONByteReader`); unknown fields are skipped, as `JSONDecoder` skips them.
    public init(jsonBytes: UnsafeRawBufferPointer) throws {
        self = try JSONByteReader.read(jsonBytes) { reader in
            var title: String?
            var document = ItemDocument(title: "", modifiedAt: Timestamp(milliseconds: 0))
            var modifiedAt: Timestamp?
            try reader.object { reader, key in
                switch key {
                case "title": title = try reader.string()
                case "username": document.username = try reader.optionalString()
                case "password": document.password = try reader.optionalString()
                case "url": document.url = try reader.optionalString()
                case "notes": document.notes = try reader.optionalString()
                case "modifiedAt": modifiedAt = try Timestamp(reading: &reader)
                case "modifiedBy": document.modifiedBy = try reader.optionalString()
                default: try reader.skipValue()
                }
            }
            guard let title, let modifiedAt else { throw JSONByteReader.Malformed() }
            document.title = title
            document.modifiedAt = modifiedAt
            return document
        }
    }
}

/// What a deletion seals in place of the item: that it was deleted, when and by which device.
/// Sealed for the deletion's version, so a server can neither invent a deletion nor move one.
public struct ItemTombstone: Codable, Sendable, Equatable {
    /// Always true; tells a tombstone from an item document.
    public var deleted: Bool
    public var modifiedAt: Timestamp
    public var modifiedBy: String?

    public init(modifiedAt: Timestamp, modifiedBy: String?) {
        deleted = true
        self.modifiedAt = modifiedAt
        self.modifiedBy = modifiedBy
    }
}
