/// Message types of the real-time channel (`/ws`, SPEC.md §9). Every message is a JSON object
/// with a `type`.
public enum RealtimeType {
    // Client → server
    public static let auth = "AUTH"
    public static let syncRequest = "SYNC_REQUEST"
    public static let itemUpdated = "ITEM_UPDATED"
    public static let ping = "PING"
    // Server → client
    public static let authSuccess = "AUTH_SUCCESS"
    public static let authFailed = "AUTH_FAILED"
    public static let syncResponse = "SYNC_RESPONSE"
    public static let pushResult = "PUSH_RESULT"
    public static let vaultUpdated = "VAULT_UPDATED"
    public static let accessRevoked = "ACCESS_REVOKED"
    public static let sessionRevoked = "SESSION_REVOKED"
    public static let pong = "PONG"
    public static let error = "ERROR"
}

/// The change carried by a client's `ITEM_UPDATED`: a push of one item over the socket.
public struct RealtimeItemChange: Codable, Sendable, Equatable {
    public var id: String
    public var baseVersion: Int
    public var encryptedData: String?
    public var deleted: Bool?

    public init(id: String, baseVersion: Int, encryptedData: String? = nil, deleted: Bool? = nil) {
        self.id = id
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
        self.deleted = deleted
    }
}

/// What a client sends.
public struct RealtimeClientMessage: Codable, Sendable, Equatable {
    public var type: String
    /// AUTH: the access token and this device's id.
    public var token: String?
    public var deviceId: String?
    /// SYNC_REQUEST and ITEM_UPDATED.
    public var vaultId: String?
    /// SYNC_REQUEST: changes after this revision, or (when no cursor) changed after this time.
    public var cursor: Int64?
    public var lastSyncTimestamp: Timestamp?
    public var limit: Int?
    /// ITEM_UPDATED.
    public var item: RealtimeItemChange?

    public init(
        type: String, token: String? = nil, deviceId: String? = nil, vaultId: String? = nil, cursor: Int64? = nil,
        lastSyncTimestamp: Timestamp? = nil, limit: Int? = nil, item: RealtimeItemChange? = nil
    ) {
        self.type = type
        self.token = token
        self.deviceId = deviceId
        self.vaultId = vaultId
        self.cursor = cursor
        self.lastSyncTimestamp = lastSyncTimestamp
        self.limit = limit
        self.item = item
    }

    public static func auth(token: String, deviceId: String) -> Self { Self(type: RealtimeType.auth, token: token, deviceId: deviceId) }
    public static func syncRequest(vaultId: String, cursor: Int64) -> Self { Self(type: RealtimeType.syncRequest, vaultId: vaultId, cursor: cursor) }
    public static func ping() -> Self { Self(type: RealtimeType.ping) }
}

/// What the server sends.
public struct RealtimeServerMessage: Codable, Sendable, Equatable {
    public var type: String
    /// AUTH_SUCCESS.
    public var userId: String?
    /// Most events name their vault.
    public var vaultId: String?
    /// ITEM_UPDATED: the item as stored.
    public var item: Item?
    /// SYNC_RESPONSE.
    public var updates: [Item]?
    public var cursor: Int64?
    public var hasMore: Bool?
    /// PUSH_RESULT.
    public var result: PushResult?
    /// VAULT_UPDATED.
    public var revision: Int64?
    /// PONG.
    public var timestamp: Timestamp?
    /// ERROR, AUTH_FAILED, ACCESS_REVOKED, SESSION_REVOKED.
    public var code: String?
    public var error: String?

    public init(
        type: String, userId: String? = nil, vaultId: String? = nil, item: Item? = nil, updates: [Item]? = nil, cursor: Int64? = nil,
        hasMore: Bool? = nil, result: PushResult? = nil, revision: Int64? = nil, timestamp: Timestamp? = nil, code: String? = nil,
        error: String? = nil
    ) {
        self.type = type
        self.userId = userId
        self.vaultId = vaultId
        self.item = item
        self.updates = updates
        self.cursor = cursor
        self.hasMore = hasMore
        self.result = result
        self.revision = revision
        self.timestamp = timestamp
        self.code = code
        self.error = error
    }
}
