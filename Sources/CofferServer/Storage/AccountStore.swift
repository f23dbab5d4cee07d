import CofferProtocol

/// Accounts, devices, sessions, login challenges, signing keys and the audit log (SPEC.md §5).
public protocol AccountStore: Sendable {
    /// A persistent server secret, created on first use (same value for every instance).
    func serverSecret(named name: String, create: @Sendable () -> String) async throws -> String
    /// Every JWT signing key, newest first.
    func signingKeys() async throws -> [SigningKeyRecord]
    func addSigningKey(_ key: SigningKeyRecord) async throws

    /// Creates an account with its first device and session; `StoreError.emailTaken` if the email exists.
    func createAccount(_ account: AccountRecord, device: DeviceRecord, session: SessionRecord) async throws
    func account(email: String) async throws -> AccountRecord?
    func account(id: String) async throws -> AccountRecord?
    /// Gives the account `identity` if it has none, atomically; never replaces one.
    /// `StoreError.userNotFound` if there is no such account.
    func setIdentity(_ identity: IdentityKeysPayload, userId: String) async throws -> IdentityUpdate

    func storeChallenge(_ challenge: String, email: String, action: String, expiresAt: Timestamp) async throws
    /// Deletes the challenge and answers whether it existed for this email and action and had not expired.
    func consumeChallenge(_ challenge: String, email: String, action: String, at: Timestamp) async throws -> Bool

    /// Registers or refreshes the device (clearing an earlier revocation) and starts a session on it.
    func startSession(device: DeviceRecord, session: SessionRecord) async throws
    /// Rotates a refresh token; a spent one revokes its session.
    func rotateRefreshToken(hash: String, newHash: String, newExpiresAt: Timestamp, at: Timestamp) async throws -> RefreshOutcome
    /// The session if it is neither revoked nor expired and its device is not revoked.
    func activeSession(id: String, at: Timestamp) async throws -> SessionRecord?
    func revokeSession(id: String, at: Timestamp) async throws
    /// Revokes the device and all its sessions; false when the user has no such device.
    func revokeDevice(userId: String, deviceId: String, at: Timestamp) async throws -> Bool
    func devices(userId: String) async throws -> [DeviceRecord]
    func touchDevice(userId: String, deviceId: String, at: Timestamp) async throws
    /// Replaces login key and wrapped keys, and revokes every session but `keepSession`.
    func changePassword(_ update: PasswordUpdate, keepSession: String, at: Timestamp) async throws
    /// Deletes the account and everything it owns, leaving only an `account_deleted` audit tombstone.
    func deleteAccount(userId: String, at: Timestamp) async throws

    func appendAudit(_ event: AuditEventRecord) async throws
    /// The user's events, newest first, strictly before `before` (an event id) when given.
    func auditEvents(userId: String, before: Int64?, limit: Int) async throws -> [AuditEventRecord]
}

public struct SigningKeyRecord: Sendable, Equatable {
    public var id: String
    /// Base64 of the HMAC key.
    public var secret: String
    public var createdAt: Timestamp
}

public struct AccountRecord: Sendable, Equatable {
    public var id: String
    public var email: String
    /// KDF parameters as their wire JSON.
    public var kdf: String
    public var salt: String
    public var loginPublicKey: String
    public var encryptedAccountKey: String
    public var publicKey: String
    public var encryptedPrivateKey: String
    public var createdAt: Timestamp
    /// The Ed25519 identity; nil for an account made before identity keys that has not set one yet.
    public var identity: IdentityKeysPayload?
}

/// What `setIdentity` did.
public enum IdentityUpdate: Sendable, Equatable {
    /// The account had no identity and now has this one.
    case stored
    /// The account already had exactly this identity (a retry): nothing changed.
    case unchanged
    /// The account has a different identity, which stays.
    case conflict
}

public struct DeviceRecord: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var name: String
    public var platform: String
    public var createdAt: Timestamp
    public var lastSeenAt: Timestamp
    public var revokedAt: Timestamp?
}

public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var userId: String
    public var deviceId: String
    /// SHA-256 of the current refresh token; the token itself is never stored.
    public var refreshHash: String
    public var createdAt: Timestamp
    public var expiresAt: Timestamp
}

public enum RefreshOutcome: Sendable, Equatable {
    case rotated(SessionRecord)
    /// A spent token came back: the session is now revoked.
    case reused(SessionRecord)
    case unknown
}

public struct PasswordUpdate: Sendable, Equatable {
    public var userId: String
    public var kdf: String
    public var salt: String
    public var loginPublicKey: String
    public var encryptedAccountKey: String
    public var encryptedPrivateKey: String
}

public struct AuditEventRecord: Sendable, Equatable {
    public var id: Int64
    public var userId: String
    public var type: String
    public var deviceId: String?
    /// Short, non-secret detail (a device id, a vault id), never emails or keys.
    public var detail: String?
    public var createdAt: Timestamp

    public init(id: Int64 = 0, userId: String, type: String, deviceId: String?, detail: String? = nil, createdAt: Timestamp) {
        self.id = id
        self.userId = userId
        self.type = type
        self.deviceId = deviceId
        self.detail = detail
        self.createdAt = createdAt
    }
}
