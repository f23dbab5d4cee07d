/// KDF parameters as they travel: `{"algorithm":"scrypt","n":131072,"r":8,"p":1}` or
/// `{"algorithm":"pbkdf2-sha256","iterations":600000}`. Minimums are enforced by `CofferCrypto`.
public struct KDFDescriptor: Codable, Sendable, Equatable {
    public var algorithm: String
    public var iterations: Int?
    public var n: Int?
    public var r: Int?
    public var p: Int?

    public init(algorithm: String, iterations: Int? = nil, n: Int? = nil, r: Int? = nil, p: Int? = nil) {
        self.algorithm = algorithm
        self.iterations = iterations
        self.n = n
        self.r = r
        self.p = p
    }
}

/// `POST /api/auth/prelogin`.
public struct PreloginRequest: Codable, Sendable {
    public var email: String
    public init(email: String) { self.email = email }
}

/// Answer to prelogin: how to derive the master key. Unknown emails get a stable fake.
public struct PreloginResponse: Codable, Sendable, Equatable {
    public var kdf: KDFDescriptor
    public var salt: String
    public init(kdf: KDFDescriptor, salt: String) {
        self.kdf = kdf
        self.salt = salt
    }
}

/// The device a session runs on; the client chooses its id (a UUID).
public struct DeviceInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var platform: String
    public init(id: String, name: String, platform: String) {
        self.id = id
        self.name = name
        self.platform = platform
    }
}

/// The wrapped keys the server keeps for the client.
public struct AccountKeysPayload: Codable, Sendable, Equatable {
    public var encryptedAccountKey: String
    public var publicKey: String
    public var encryptedPrivateKey: String
    /// The account's Ed25519 identity, once it has one (accounts made before identity keys get
    /// one at their next login).
    public var identityKey: String?
    public var sharingKeyCertificate: String?
    public var encryptedIdentityKey: String?

    public init(
        encryptedAccountKey: String, publicKey: String, encryptedPrivateKey: String, identity: IdentityKeysPayload? = nil
    ) {
        self.encryptedAccountKey = encryptedAccountKey
        self.publicKey = publicKey
        self.encryptedPrivateKey = encryptedPrivateKey
        self.identityKey = identity?.identityKey
        self.sharingKeyCertificate = identity?.sharingKeyCertificate
        self.encryptedIdentityKey = identity?.encryptedIdentityKey
    }

    /// The three identity fields together, or nil unless all are present.
    public var identity: IdentityKeysPayload? {
        guard let identityKey, let sharingKeyCertificate, let encryptedIdentityKey else { return nil }
        return IdentityKeysPayload(identityKey: identityKey, sharingKeyCertificate: sharingKeyCertificate, encryptedIdentityKey: encryptedIdentityKey)
    }
}

/// An account's Ed25519 identity as the server stores it: the public key whose fingerprint people
/// compare, its signature certifying the X25519 sharing key, and the private half sealed under the
/// account key. `PUT /api/auth/identity` sets it once for an account made before identity keys.
public struct IdentityKeysPayload: Codable, Sendable, Equatable, Hashable {
    /// base64url of the raw 32-byte Ed25519 public key.
    public var identityKey: String
    /// base64url of the 64-byte Ed25519 signature over the email, identity key and sharing key.
    public var sharingKeyCertificate: String
    /// The raw Ed25519 private key, sealed under the account key (a Coffer envelope).
    public var encryptedIdentityKey: String

    public init(identityKey: String, sharingKeyCertificate: String, encryptedIdentityKey: String) {
        self.identityKey = identityKey
        self.sharingKeyCertificate = sharingKeyCertificate
        self.encryptedIdentityKey = encryptedIdentityKey
    }
}

/// `POST /api/auth/register`.
public struct RegisterAccountRequest: Codable, Sendable {
    public var email: String
    public var kdf: KDFDescriptor
    public var salt: String
    public var loginPublicKey: String
    public var encryptedAccountKey: String
    public var publicKey: String
    public var encryptedPrivateKey: String
    /// The new account's identity (optional on the wire: clients made before identity keys send none).
    public var identityKey: String?
    public var sharingKeyCertificate: String?
    public var encryptedIdentityKey: String?
    public var device: DeviceInfo

    public init(
        email: String, kdf: KDFDescriptor, salt: String, loginPublicKey: String, encryptedAccountKey: String,
        publicKey: String, encryptedPrivateKey: String, identity: IdentityKeysPayload? = nil, device: DeviceInfo
    ) {
        self.identityKey = identity?.identityKey
        self.sharingKeyCertificate = identity?.sharingKeyCertificate
        self.encryptedIdentityKey = identity?.encryptedIdentityKey
        self.email = email
        self.kdf = kdf
        self.salt = salt
        self.loginPublicKey = loginPublicKey
        self.encryptedAccountKey = encryptedAccountKey
        self.publicKey = publicKey
        self.encryptedPrivateKey = encryptedPrivateKey
        self.device = device
    }
}

/// `POST /api/auth/challenge`; `action` is `login` (default), `change-password` or `delete-account`.
public struct ChallengeRequest: Codable, Sendable {
    public var email: String
    public var action: String?
    public init(email: String, action: String? = nil) {
        self.email = email
        self.action = action
    }
}

public struct ChallengeResponse: Codable, Sendable, Equatable {
    public var challenge: String
    public var expiresAt: Timestamp
    public init(challenge: String, expiresAt: Timestamp) {
        self.challenge = challenge
        self.expiresAt = expiresAt
    }
}

/// `POST /api/auth/login`: the signature is over the challenge, the email and the action.
public struct LoginRequest: Codable, Sendable {
    public var email: String
    public var challenge: String
    public var signature: String
    public var device: DeviceInfo
    public init(email: String, challenge: String, signature: String, device: DeviceInfo) {
        self.email = email
        self.challenge = challenge
        self.signature = signature
        self.device = device
    }
}

public struct UserSummary: Codable, Sendable, Equatable {
    public var id: String
    public var email: String
    public init(id: String, email: String) {
        self.id = id
        self.email = email
    }
}

/// Answer to register and login.
public struct SessionResponse: Codable, Sendable, Equatable {
    public var accessToken: String
    public var refreshToken: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var user: UserSummary
    public var keys: AccountKeysPayload
    public init(accessToken: String, refreshToken: String, expiresIn: Int, user: UserSummary, keys: AccountKeysPayload) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
        self.user = user
        self.keys = keys
    }
}

/// `POST /api/auth/refresh`.
public struct RefreshRequest: Codable, Sendable {
    public var refreshToken: String
    public init(refreshToken: String) { self.refreshToken = refreshToken }
}

public struct TokenResponse: Codable, Sendable, Equatable {
    public var accessToken: String
    public var refreshToken: String
    public var expiresIn: Int
    public init(accessToken: String, refreshToken: String, expiresIn: Int) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.expiresIn = expiresIn
    }
}

/// `GET /api/auth/me`.
public struct MeResponse: Codable, Sendable, Equatable {
    public var user: UserSummary
    public var deviceId: String
    public var createdAt: Timestamp
    public var kdf: KDFDescriptor
    public var keys: AccountKeysPayload
    public init(user: UserSummary, deviceId: String, createdAt: Timestamp, kdf: KDFDescriptor, keys: AccountKeysPayload) {
        self.user = user
        self.deviceId = deviceId
        self.createdAt = createdAt
        self.kdf = kdf
        self.keys = keys
    }
}

/// `POST /api/auth/password`: proven with the old login key over a `change-password` challenge.
public struct ChangePasswordRequest: Codable, Sendable {
    public var challenge: String
    public var signature: String
    public var kdf: KDFDescriptor
    public var salt: String
    public var loginPublicKey: String
    public var encryptedAccountKey: String
    public var encryptedPrivateKey: String
    public init(
        challenge: String, signature: String, kdf: KDFDescriptor, salt: String, loginPublicKey: String,
        encryptedAccountKey: String, encryptedPrivateKey: String
    ) {
        self.challenge = challenge
        self.signature = signature
        self.kdf = kdf
        self.salt = salt
        self.loginPublicKey = loginPublicKey
        self.encryptedAccountKey = encryptedAccountKey
        self.encryptedPrivateKey = encryptedPrivateKey
    }
}

/// `DELETE /api/auth/account`: proven with a fresh signature over a `delete-account` challenge.
public struct DeleteAccountRequest: Codable, Sendable {
    public var challenge: String
    public var signature: String
    public init(challenge: String, signature: String) {
        self.challenge = challenge
        self.signature = signature
    }
}

/// One device in `GET /api/devices`.
public struct DeviceSummary: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var platform: String
    public var createdAt: Timestamp
    public var lastSeenAt: Timestamp
    public var current: Bool
    public var revoked: Bool
    public init(id: String, name: String, platform: String, createdAt: Timestamp, lastSeenAt: Timestamp, current: Bool, revoked: Bool) {
        self.id = id
        self.name = name
        self.platform = platform
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.current = current
        self.revoked = revoked
    }
}

public struct DevicesResponse: Codable, Sendable, Equatable {
    public var devices: [DeviceSummary]
    public init(devices: [DeviceSummary]) { self.devices = devices }
}

/// One security event in `GET /api/audit`.
public struct AuditEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var type: String
    public var createdAt: Timestamp
    public var deviceId: String?
    public var detail: String?
    public init(id: Int64, type: String, createdAt: Timestamp, deviceId: String?, detail: String?) {
        self.id = id
        self.type = type
        self.createdAt = createdAt
        self.deviceId = deviceId
        self.detail = detail
    }
}

/// A page of audit events, newest first; pass `nextCursor` as `before` for the next page.
public struct AuditResponse: Codable, Sendable, Equatable {
    public var events: [AuditEvent]
    public var nextCursor: Int64?
    public init(events: [AuditEvent], nextCursor: Int64?) {
        self.events = events
        self.nextCursor = nextCursor
    }
}

/// Audit event types (SPEC.md §5).
public enum AuditEventType {
    public static let register = "register"
    public static let loginSucceeded = "login_succeeded"
    public static let loginFailed = "login_failed"
    public static let refreshReused = "refresh_reused"
    public static let logout = "logout"
    public static let deviceRevoked = "device_revoked"
    public static let passwordChanged = "password_changed"
    public static let accountDeleted = "account_deleted"
    public static let vaultCreated = "vault_created"
    public static let vaultDeleted = "vault_deleted"
    public static let shareGranted = "share_granted"
    public static let shareChanged = "share_changed"
    public static let shareRevoked = "share_revoked"
}

/// Actions a login-key signature can prove.
public enum AuthAction {
    public static let login = "login"
    public static let changePassword = "change-password"
    public static let deleteAccount = "delete-account"
    public static let all: Set<String> = [login, changePassword, deleteAccount]
}

extension ErrorCode {
    public static let invalidCredentials = "invalid_credentials"
    public static let emailTaken = "email_taken"
    public static let unauthorized = "unauthorized"
    public static let weakKDF = "weak_kdf"
    public static let notFound = "not_found"
}

/// `PUT /api/auth/identity`: gives an account made before identity keys its identity, once.
/// The same identity again is a no-op; a different one is refused (`identity_exists`), so a
/// stolen access token cannot replace who the account is.
public typealias SetIdentityRequest = IdentityKeysPayload

extension ErrorCode {
    /// The account already has a different identity key (409).
    public static let identityExists = "identity_exists"
    /// An identity key, certificate or sealed identity that is not well formed, or a certificate that does not verify (422).
    public static let invalidIdentity = "invalid_identity"
}
