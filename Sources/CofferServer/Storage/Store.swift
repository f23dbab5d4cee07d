import CofferProtocol

/// Everything the server persists. One protocol, two backends (`SQLiteStore`, `PostgresStore`),
/// each with hand-written SQL and its own migrations; one contract test suite runs against both.
public protocol Store: AccountStore, VaultStore, ShareStore {
    /// Applies pending migrations; safe to call on every start and from several instances at once.
    func migrate() async throws
    /// Answers when the database is reachable.
    func ping() async throws
    /// Closes connections; the store is unusable afterwards.
    func close() async throws

    // MARK: Blind backup

    /// Registers a hashed user id; false when it already exists.
    func registerBackupUser(id: String, at: Timestamp) async throws -> Bool
    /// Saves a new current version for a storage key, enforcing write limits atomically.
    func saveBackup(_ save: BackupSave) async throws -> SavedBackup
    /// The current backup, or a given kept version.
    func backup(userId: String, storageKey: String, version: Int?) async throws -> StoredBackup
    /// Kept versions, newest first.
    func backupVersions(userId: String, storageKey: String) async throws -> [BackupVersionSummary]
    /// Deletes a user and every backup it owns; returns how many backups (storage keys) went.
    func deleteBackupUser(userId: String, storageKey: String?) async throws -> Int

    // MARK: Abuse control

    /// Counts one event against `bucket` under every limit; refuses without counting when a limit is reached.
    func consumeRateLimit(bucket: String, limits: [RateLimit], at: Timestamp) async throws -> RateLimitDecision
    /// Records a request signature; false when it was already seen (a replay).
    func recordSignature(_ signature: String, expiresAt: Timestamp, at: Timestamp) async throws -> Bool
    /// Drops expired counters, replay records and write logs.
    func purgeExpired(at: Timestamp) async throws
}

/// One backup save, with the limits to enforce inside its transaction.
public struct BackupSave: Sendable {
    public var userId: String
    public var storageKey: String
    public var data: String
    public var size: Int
    /// Hash of the client address, for the per-address limit on new storage keys.
    public var addressHash: String
    public var at: Timestamp
    public var versionsKept: Int
    public var writeLimits: [RateLimit]
    public var newKeyLimits: [RateLimit]
    public var newKeyAddressLimits: [RateLimit]

    public init(
        userId: String, storageKey: String, data: String, size: Int, addressHash: String, at: Timestamp,
        versionsKept: Int, writeLimits: [RateLimit], newKeyLimits: [RateLimit], newKeyAddressLimits: [RateLimit]
    ) {
        self.userId = userId
        self.storageKey = storageKey
        self.data = data
        self.size = size
        self.addressHash = addressHash
        self.at = at
        self.versionsKept = versionsKept
        self.writeLimits = writeLimits
        self.newKeyLimits = newKeyLimits
        self.newKeyAddressLimits = newKeyAddressLimits
    }
}

/// The result of a save.
public struct SavedBackup: Sendable, Equatable {
    public var version: Int
    public var updatedAt: Timestamp
    public var size: Int
}

/// A stored backup version.
public struct StoredBackup: Sendable, Equatable {
    public var data: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp
    public var version: Int
    public var size: Int
}

/// Domain failures a store reports; mapped to HTTP in one place (`APIError`).
public enum StoreError: Error, Equatable {
    case userExists
    case emailTaken
    case vaultExists
    case userNotFound
    case backupNotFound
    case versionNotFound
    /// The storage key belongs to another user, or is not this user's.
    case storageKeyForbidden
    /// The user has backups, so deleting it needs one of its storage keys.
    case storageKeyRequired
    /// A write limit kept in the database was reached.
    case rateLimited(retryAfter: Int64, scope: String)
    /// The database gave up on this transaction because of contention with others (a deadlock or
    /// serialization failure); nothing was written and the same request can be retried.
    case busy
    /// The user is a member of this vault already.
    case alreadyMember
    /// A key rotation did not name exactly the vault's current members.
    case membersChanged
    /// A key rotation was based on an epoch that is no longer current.
    case keyEpochChanged(current: Int)
    /// Vault metadata sealed under a key epoch that is not the vault's current one.
    case staleKey(current: Int)
}

/// Write-log arithmetic shared by both backends: given the timestamps of past events (newest window
/// first loaded), decide whether one more is allowed.
enum WriteLog {
    /// `events` are the event times within the longest window, in any order.
    static func decide(events: [Int64], limits: [RateLimit], now: Int64) -> RateLimitDecision {
        var retryAfter: Int64 = 0
        for limit in limits {
            let start = now - limit.seconds * 1000
            let inWindow = events.filter { $0 > start }.sorted()
            if inWindow.count >= limit.count {
                // The window frees a slot when the oldest events that overfill it age out.
                let freeing = inWindow[inWindow.count - limit.count]
                let wait = (freeing + limit.seconds * 1000 - now + 999) / 1000
                retryAfter = max(retryAfter, max(1, wait))
            }
        }
        return retryAfter == 0 ? .allowed : .limited(retryAfter: retryAfter)
    }

    /// The longest window among `limits`, in milliseconds (0 when there are none).
    static func longestWindow(_ limits: [RateLimit]) -> Int64 {
        (limits.map(\.seconds).max() ?? 0) * 1000
    }
}
