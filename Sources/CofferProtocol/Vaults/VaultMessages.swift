/// A member's role in a vault, from most to least powerful.
public enum VaultRole: String, Codable, Sendable, CaseIterable, Comparable {
    case owner
    case admin
    case write
    case read

    private var rank: Int {
        switch self {
        case .owner: 3
        case .admin: 2
        case .write: 1
        case .read: 0
        }
    }

    public static func < (lhs: VaultRole, rhs: VaultRole) -> Bool { lhs.rank < rhs.rank }
}

/// A vault as one member sees it: its wrapped copy of the vault key and its role.
public struct VaultSummary: Codable, Sendable, Equatable {
    public var id: String
    public var ownerId: String
    public var role: VaultRole
    public var encryptedMetadata: String
    public var wrappedKey: String
    public var revision: Int64
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    /// Who sealed `wrappedKey` to the caller's sharing key (HPKE): the sharer, or whoever last
    /// rotated the vault key. Nil when the caller wrapped it with its own account key.
    public var keySealedBy: String?
    /// Which key of the vault `wrappedKey` is: 1 for the first, one more with every rotation.
    /// Items and metadata sealed under any other epoch are refused by the server (`stale_key`).
    public var keyEpoch: Int
    /// The vault's earlier keys, sealed with the current one (an envelope; nil before the first
    /// rotation), so that every member can still open history written before a rotation.
    public var keyHistory: String?

    public init(
        id: String, ownerId: String, role: VaultRole, encryptedMetadata: String, wrappedKey: String, revision: Int64,
        createdAt: Timestamp, updatedAt: Timestamp, keySealedBy: String? = nil, keyEpoch: Int = 1, keyHistory: String? = nil
    ) {
        self.id = id
        self.ownerId = ownerId
        self.role = role
        self.encryptedMetadata = encryptedMetadata
        self.wrappedKey = wrappedKey
        self.revision = revision
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.keySealedBy = keySealedBy
        self.keyEpoch = keyEpoch
        self.keyHistory = keyHistory
    }
}

extension VaultSummary {
    /// Summaries written before key epochs existed (an older server, a local cache) are epoch 1.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id), ownerId: try container.decode(String.self, forKey: .ownerId),
            role: try container.decode(VaultRole.self, forKey: .role), encryptedMetadata: try container.decode(String.self, forKey: .encryptedMetadata),
            wrappedKey: try container.decode(String.self, forKey: .wrappedKey), revision: try container.decode(Int64.self, forKey: .revision),
            createdAt: try container.decode(Timestamp.self, forKey: .createdAt), updatedAt: try container.decode(Timestamp.self, forKey: .updatedAt),
            keySealedBy: try container.decodeIfPresent(String.self, forKey: .keySealedBy),
            keyEpoch: try container.decodeIfPresent(Int.self, forKey: .keyEpoch) ?? 1,
            keyHistory: try container.decodeIfPresent(String.self, forKey: .keyHistory)
        )
    }
}

public struct VaultsResponse: Codable, Sendable, Equatable {
    public var vaults: [VaultSummary]
    public init(vaults: [VaultSummary]) { self.vaults = vaults }
}

/// `POST /api/vaults`; the client may choose the id (a UUID) so offline-created vaults keep it.
public struct CreateVaultRequest: Codable, Sendable {
    public var id: String?
    public var encryptedMetadata: String
    /// The vault key wrapped with the creator's account key.
    public var wrappedKey: String
    public init(id: String? = nil, encryptedMetadata: String, wrappedKey: String) {
        self.id = id
        self.encryptedMetadata = encryptedMetadata
        self.wrappedKey = wrappedKey
    }
}

/// `PUT /api/vaults/:id`.
public struct UpdateVaultRequest: Codable, Sendable {
    public var encryptedMetadata: String
    public init(encryptedMetadata: String) { self.encryptedMetadata = encryptedMetadata }
}

/// An item as stored: an encrypted blob, or a tombstone once deleted.
public struct Item: Codable, Sendable, Equatable {
    public var id: String
    public var vaultId: String
    public var encryptedData: String?
    public var version: Int
    /// The vault revision of this item's last change.
    public var revision: Int64
    public var deleted: Bool
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var deviceId: String?

    public init(
        id: String, vaultId: String, encryptedData: String?, version: Int, revision: Int64, deleted: Bool,
        createdAt: Timestamp, updatedAt: Timestamp, deviceId: String?
    ) {
        self.id = id
        self.vaultId = vaultId
        self.encryptedData = encryptedData
        self.version = version
        self.revision = revision
        self.deleted = deleted
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.deviceId = deviceId
    }
}

/// One kept version of an item.
public struct ItemVersion: Codable, Sendable, Equatable {
    public var version: Int
    public var encryptedData: String?
    public var deleted: Bool
    public var revision: Int64
    public var createdAt: Timestamp
    public var deviceId: String?
    /// `client` or `server` when this version records a conflict resolution.
    public var resolution: String?

    public init(
        version: Int, encryptedData: String?, deleted: Bool, revision: Int64, createdAt: Timestamp, deviceId: String?, resolution: String?
    ) {
        self.version = version
        self.encryptedData = encryptedData
        self.deleted = deleted
        self.revision = revision
        self.createdAt = createdAt
        self.deviceId = deviceId
        self.resolution = resolution
    }
}

public struct ItemVersionsResponse: Codable, Sendable, Equatable {
    public var versions: [ItemVersion]
    public init(versions: [ItemVersion]) { self.versions = versions }
}

/// A page of a vault's changes in revision order.
public struct ItemsPage: Codable, Sendable, Equatable {
    public var items: [Item]
    /// Pass as `since` to continue.
    public var cursor: Int64
    public var hasMore: Bool
    public init(items: [Item], cursor: Int64, hasMore: Bool) {
        self.items = items
        self.cursor = cursor
        self.hasMore = hasMore
    }
}

/// `POST /api/vaults/:id/items`.
public struct CreateItemRequest: Codable, Sendable {
    public var id: String?
    public var encryptedData: String
    public init(id: String? = nil, encryptedData: String) {
        self.id = id
        self.encryptedData = encryptedData
    }
}

/// `PUT /api/items/:id`.
public struct UpdateItemRequest: Codable, Sendable {
    public var baseVersion: Int
    public var encryptedData: String
    public init(baseVersion: Int, encryptedData: String) {
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
    }
}

/// `DELETE /api/items/:id`.
public struct DeleteItemRequest: Codable, Sendable {
    public var baseVersion: Int
    /// The deletion's tombstone, sealed with the vault key for the version the deletion gets;
    /// nil from clients that predate tombstones.
    public var encryptedData: String?
    public init(baseVersion: Int, encryptedData: String? = nil) {
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
    }
}

/// `POST /api/items/:id/restore`.
public struct RestoreItemRequest: Codable, Sendable {
    public var version: Int
    public init(version: Int) { self.version = version }
}

/// The body of a 409: the server's current item and, when still kept, the version the client based its change on.
public struct ConflictResponse: Codable, Sendable, Equatable {
    public var error: String
    public var code: String
    public var current: Item
    public var base: ItemVersion?
    public init(error: String, code: String = "conflict", current: Item, base: ItemVersion?) {
        self.error = error
        self.code = code
        self.current = current
        self.base = base
    }
}

extension ErrorCode {
    public static let conflict = "conflict"
    public static let forbidden = "forbidden"
    public static let vaultExists = "vault_exists"
    public static let itemTooLarge = "item_too_large"
}
