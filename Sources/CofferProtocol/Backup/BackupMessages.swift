/// `POST /api/register`.
public struct RegisterBackupUserRequest: Codable, Sendable {
    public var userId: String

    public init(userId: String) {
        self.userId = userId
    }
}

/// `POST /api/backup`: `data` is opaque to the server (the browser client sends a JSON envelope string).
public struct SaveBackupRequest: Codable, Sendable {
    public var userId: String
    public var storageKey: String
    public var data: String

    public init(userId: String, storageKey: String, data: String) {
        self.userId = userId
        self.storageKey = storageKey
        self.data = data
    }
}

/// Answer to `POST /api/backup`.
public struct SaveBackupResponse: Codable, Sendable, Equatable {
    public var success: Bool
    public var updatedAt: Timestamp
    public var version: Int
    /// Size of the backup in bytes as counted against the server's cap (the ciphertext, once base64 is decoded).
    public var size: Int

    public init(success: Bool = true, updatedAt: Timestamp, version: Int, size: Int) {
        self.success = success
        self.updatedAt = updatedAt
        self.version = version
        self.size = size
    }
}

/// Answer to `GET /api/backup`.
public struct BackupResponse: Codable, Sendable, Equatable {
    public var data: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var version: Int
    public var size: Int

    public init(data: String, createdAt: Timestamp, updatedAt: Timestamp, version: Int, size: Int) {
        self.data = data
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.version = version
        self.size = size
    }
}

/// One kept version in `GET /api/backup/versions`.
public struct BackupVersionSummary: Codable, Sendable, Equatable {
    public var version: Int
    public var updatedAt: Timestamp
    public var size: Int

    public init(version: Int, updatedAt: Timestamp, size: Int) {
        self.version = version
        self.updatedAt = updatedAt
        self.size = size
    }
}

/// Answer to `GET /api/backup/versions`, newest first.
public struct BackupVersionsResponse: Codable, Sendable, Equatable {
    public var versions: [BackupVersionSummary]

    public init(versions: [BackupVersionSummary]) {
        self.versions = versions
    }
}

/// `DELETE /api/user`: the storage key proves the password; it may be omitted only when the user has no backup.
public struct DeleteBackupUserRequest: Codable, Sendable {
    public var userId: String
    public var storageKey: String?

    public init(userId: String, storageKey: String?) {
        self.userId = userId
        self.storageKey = storageKey
    }
}

/// Answer to `DELETE /api/user`.
public struct DeleteBackupUserResponse: Codable, Sendable, Equatable {
    public var success: Bool
    public var deletedBackups: Int

    public init(success: Bool = true, deletedBackups: Int) {
        self.success = success
        self.deletedBackups = deletedBackups
    }
}

/// Header names of the optional backup request signatures.
public enum BackupSignatureHeader {
    public static let timestamp = "X-Coffer-Timestamp"
    public static let signature = "X-Coffer-Signature"
}
