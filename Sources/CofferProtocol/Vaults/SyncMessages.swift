/// `POST /api/sync/pull`: a cursor per known vault; vaults not named are pulled from revision 0.
public struct PullRequest: Codable, Sendable {
    public var vaults: [String: Int64]?
    /// Most items in the whole answer.
    public var limit: Int?
    public init(vaults: [String: Int64]? = nil, limit: Int? = nil) {
        self.vaults = vaults
        self.limit = limit
    }
}

/// One vault's changes in a pull.
public struct VaultChanges: Codable, Sendable, Equatable {
    public var vaultId: String
    public var items: [Item]
    public var cursor: Int64
    public var hasMore: Bool
    public init(vaultId: String, items: [Item], cursor: Int64, hasMore: Bool) {
        self.vaultId = vaultId
        self.items = items
        self.cursor = cursor
        self.hasMore = hasMore
    }
}

public struct PullResponse: Codable, Sendable, Equatable {
    public var vaults: [VaultChanges]
    /// Vaults the user can read that the request did not name.
    public var gained: [VaultSummary]
    /// Vaults the request named that the user can no longer read.
    public var lost: [String]
    public var serverTime: Timestamp
    public init(vaults: [VaultChanges], gained: [VaultSummary], lost: [String], serverTime: Timestamp) {
        self.vaults = vaults
        self.gained = gained
        self.lost = lost
        self.serverTime = serverTime
    }
}

/// One change in a push: `baseVersion` 0 creates the item.
public struct PushChange: Codable, Sendable, Equatable {
    public var vaultId: String
    public var itemId: String
    public var baseVersion: Int
    public var encryptedData: String?
    public var deleted: Bool?
    public init(vaultId: String, itemId: String, baseVersion: Int, encryptedData: String? = nil, deleted: Bool? = nil) {
        self.vaultId = vaultId
        self.itemId = itemId
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
        self.deleted = deleted
    }
}

public struct PushRequest: Codable, Sendable {
    public var changes: [PushChange]
    public init(changes: [PushChange]) { self.changes = changes }
}

/// The outcome of one pushed change.
public struct PushResult: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case applied
        case conflict
        case rejected
    }

    public var itemId: String
    public var status: Status
    public var version: Int?
    public var revision: Int64?
    /// The server's item, on conflict.
    public var current: Item?
    /// The version the change was based on, on conflict, while it is still kept.
    public var base: ItemVersion?
    /// Why, on rejection.
    public var error: ErrorBody?

    public init(
        itemId: String, status: Status, version: Int? = nil, revision: Int64? = nil, current: Item? = nil, base: ItemVersion? = nil,
        error: ErrorBody? = nil
    ) {
        self.itemId = itemId
        self.status = status
        self.version = version
        self.revision = revision
        self.current = current
        self.base = base
        self.error = error
    }
}

public struct PushResponse: Codable, Sendable, Equatable {
    public var results: [PushResult]
    public init(results: [PushResult]) { self.results = results }
}

/// One vault in `GET /api/sync/status`.
public struct VaultSyncStatus: Codable, Sendable, Equatable {
    public var vaultId: String
    public var revision: Int64
    public var itemCount: Int
    public var lastChange: Timestamp?
    public init(vaultId: String, revision: Int64, itemCount: Int, lastChange: Timestamp?) {
        self.vaultId = vaultId
        self.revision = revision
        self.itemCount = itemCount
        self.lastChange = lastChange
    }
}

public struct SyncStatusResponse: Codable, Sendable, Equatable {
    public var vaults: [VaultSyncStatus]
    public var serverTime: Timestamp
    public init(vaults: [VaultSyncStatus], serverTime: Timestamp) {
        self.vaults = vaults
        self.serverTime = serverTime
    }
}

/// `POST /api/sync/resolve`: `client` writes the client's result over the version it saw;
/// `server` keeps the server's version and records the resolution.
public struct ResolveRequest: Codable, Sendable {
    public var itemId: String
    public var baseVersion: Int
    public var encryptedData: String?
    public var deleted: Bool?
    public var strategy: String
    public init(itemId: String, baseVersion: Int, encryptedData: String? = nil, deleted: Bool? = nil, strategy: String) {
        self.itemId = itemId
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
        self.deleted = deleted
        self.strategy = strategy
    }
}
