import CofferProtocol

/// Memberships granted to other users (SPEC.md §8). Who may do what is decided by
/// `VaultAuthorization`; the store only records it.
public protocol ShareStore: Sendable {
    /// Adds `userId` to the vault; `StoreError.alreadyMember` if it is a member already.
    func addShare(_ share: ShareRecord, wrappedKey: String) async throws
    func share(id: String) async throws -> ShareRecord?
    /// Shares granted to the user, and shares of the vaults where the user is owner or admin.
    func shares(userId: String) async throws -> (incoming: [ShareRecord], outgoing: [ShareRecord])
    /// Every member of the vault, owner first.
    func members(vaultId: String) async throws -> [VaultMember]
    func updateShareRole(id: String, role: VaultRole, at: Timestamp) async throws
    /// Ends the membership at once.
    func removeShare(id: String) async throws
    /// Replaces the vault key: new metadata and one wrapped key per member, sealed by `sealedBy`
    /// (whose own copy is wrapped with its account key). Throws `StoreError.membersChanged`
    /// unless `wrappedKeys` names exactly the current members.
    func rotateVaultKey(vaultId: String, sealedBy: String, encryptedMetadata: String, wrappedKeys: [String: String], at: Timestamp) async throws
}

/// One share with the emails of both sides, as stored.
public struct ShareRecord: Sendable, Equatable {
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

    /// The wire form.
    public var share: Share {
        Share(
            id: id, vaultId: vaultId, userId: userId, email: email, role: role, grantedBy: grantedBy, grantedByEmail: grantedByEmail,
            createdAt: createdAt, updatedAt: updatedAt
        )
    }
}
