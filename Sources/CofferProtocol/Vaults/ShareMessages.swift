/// `GET /api/users/lookup?email=`: whom to share with, and the sharing key to wrap the vault key to.
public struct UserLookupResponse: Codable, Sendable, Equatable {
    public var userId: String
    public var email: String
    /// X25519 public key, base64url.
    public var publicKey: String
    /// The user's Ed25519 identity key and its certificate of `publicKey`, base64url (nil for an
    /// account that has not logged in since identity keys came).
    public var identityKey: String?
    public var sharingKeyCertificate: String?

    public init(userId: String, email: String, publicKey: String, identityKey: String? = nil, sharingKeyCertificate: String? = nil) {
        self.userId = userId
        self.email = email
        self.publicKey = publicKey
        self.identityKey = identityKey
        self.sharingKeyCertificate = sharingKeyCertificate
    }
}

/// `POST /api/vaults/:id/share`: one of `email` or `userId`, a role below owner, and the vault key
/// sealed to the recipient's sharing key.
public struct ShareVaultRequest: Codable, Sendable, Equatable {
    public var email: String?
    public var userId: String?
    public var role: VaultRole
    public var wrappedKey: String
    /// The epoch of the vault key sealed in `wrappedKey` (1 when absent); anything but the
    /// vault's current epoch is refused with `stale_key`, so nobody is handed a rotated-away key.
    public var keyEpoch: Int?
    /// The granter's signed statement that the recipient (by user id and identity key) holds
    /// `role` in this vault (base64url, opaque to the server, which stores and serves it with
    /// the membership); nil from clients made before membership statements.
    public var grant: String?

    public init(email: String? = nil, userId: String? = nil, role: VaultRole, wrappedKey: String, keyEpoch: Int? = nil, grant: String? = nil) {
        self.email = email
        self.userId = userId
        self.role = role
        self.wrappedKey = wrappedKey
        self.keyEpoch = keyEpoch
        self.grant = grant
    }
}

/// A membership someone granted: who has which role in which vault, and who granted it.
public struct Share: Codable, Sendable, Equatable {
    public var id: String
    public var vaultId: String
    public var userId: String
    public var email: String
    public var role: VaultRole
    public var grantedBy: String
    public var grantedByEmail: String
    public var createdAt: Timestamp
    public var updatedAt: Timestamp

    public init(
        id: String, vaultId: String, userId: String, email: String, role: VaultRole, grantedBy: String, grantedByEmail: String,
        createdAt: Timestamp, updatedAt: Timestamp
    ) {
        self.id = id
        self.vaultId = vaultId
        self.userId = userId
        self.email = email
        self.role = role
        self.grantedBy = grantedBy
        self.grantedByEmail = grantedByEmail
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// `GET /api/shares`: vaults shared with the caller, and shares of the vaults the caller manages
/// (owner or admin).
public struct SharesResponse: Codable, Sendable, Equatable {
    public var incoming: [Share]
    public var outgoing: [Share]

    public init(incoming: [Share], outgoing: [Share]) {
        self.incoming = incoming
        self.outgoing = outgoing
    }
}

/// `PUT /api/shares/:id`.
public struct UpdateShareRequest: Codable, Sendable, Equatable {
    public var role: VaultRole
    /// The signed statement of the new role (replaces the membership's earlier one); nil from older clients.
    public var grant: String?
    public init(role: VaultRole, grant: String? = nil) {
        self.role = role
        self.grant = grant
    }
}

/// One member of a vault, owner included (`GET /api/vaults/:id/members`).
public struct VaultMember: Codable, Sendable, Equatable {
    public var userId: String
    public var email: String
    public var role: VaultRole
    /// The member's X25519 sharing key, base64url: what a key rotation seals the new key to.
    public var publicKey: String
    /// Nil for the owner.
    public var shareId: String?
    public var grantedBy: String?
    public var since: Timestamp
    /// The member's Ed25519 identity key and its certificate of `publicKey` (nil before the member's first login since identity keys came).
    public var identityKey: String?
    public var sharingKeyCertificate: String?
    /// The granter's signed statement of this membership, as the granter sent it (nil for the
    /// owner and for memberships granted before membership statements).
    public var grant: String?

    public init(
        userId: String, email: String, role: VaultRole, publicKey: String, shareId: String?, grantedBy: String?, since: Timestamp,
        identityKey: String? = nil, sharingKeyCertificate: String? = nil, grant: String? = nil
    ) {
        self.grant = grant
        self.userId = userId
        self.email = email
        self.role = role
        self.publicKey = publicKey
        self.shareId = shareId
        self.grantedBy = grantedBy
        self.since = since
        self.identityKey = identityKey
        self.sharingKeyCertificate = sharingKeyCertificate
    }
}

public struct VaultMembersResponse: Codable, Sendable, Equatable {
    public var members: [VaultMember]
    public init(members: [VaultMember]) { self.members = members }
}

/// `POST /api/vaults/:id/keys`: a new vault key, usually with a revoke. `wrappedKeys` must name
/// every member who stays exactly once (user id → that member's wrapped copy), so nobody is left
/// behind; `removeUserIds` leave in the same transaction, so a removal never happens without its
/// rotation. `keyEpoch` is the new key's epoch (the current one plus one; `key_epoch_changed`
/// otherwise), and `keyHistory` the earlier keys sealed with the new one.
public struct RotateVaultKeyRequest: Codable, Sendable, Equatable {
    public var encryptedMetadata: String
    public var wrappedKeys: [String: String]
    public var keyEpoch: Int?
    public var keyHistory: String?
    public var removeUserIds: [String]?

    public init(encryptedMetadata: String, wrappedKeys: [String: String], keyEpoch: Int? = nil, keyHistory: String? = nil, removeUserIds: [String]? = nil) {
        self.encryptedMetadata = encryptedMetadata
        self.wrappedKeys = wrappedKeys
        self.keyEpoch = keyEpoch
        self.keyHistory = keyHistory
        self.removeUserIds = removeUserIds
    }
}

extension ErrorCode {
    public static let alreadyMember = "already_member"
    public static let membersChanged = "members_changed"
    /// An item or vault name sealed under a vault key that is no longer the current one.
    public static let staleKey = "stale_key"
    /// A rotation based on a key epoch that is no longer current (another rotation came first).
    public static let keyEpochChanged = "key_epoch_changed"
}
