import CofferProtocol

/// Memberships granted to other users (SPEC.md §8). Who may do what is decided by
/// `VaultAuthorization`; the store only records it.
public protocol ShareStore: Sendable {
    /// Adds `userId` to the vault, with the granter's signed statement of the membership (`grant`,
    /// opaque, nil from older clients); `StoreError.alreadyMember` if it is a member already, and
    /// `StoreError.staleKey` unless `keyEpoch` is the vault's current key epoch.
    func addShare(_ share: Share, wrappedKey: String, keyEpoch: Int, grant: String?) async throws
    func share(id: String) async throws -> Share?
    /// Shares granted to the user, and shares of the vaults where the user is owner or admin.
    func shares(userId: String) async throws -> (incoming: [Share], outgoing: [Share])
    /// Every member of the vault, owner first, each with its stored grant.
    func members(vaultId: String) async throws -> [VaultMember]
    /// Sets the role and replaces the membership's grant with `grant`: a nil one clears it, so a
    /// statement of the old role never outlives the role.
    func updateShareRole(id: String, role: VaultRole, grant: String?, at: Timestamp) async throws
    /// Ends the membership at once.
    func removeShare(id: String) async throws
    /// Replaces the vault key in one transaction: removes `removing` (never the owner), then new
    /// metadata, key history and one wrapped key per remaining member, sealed by `sealedBy` (whose
    /// own copy is wrapped with its account key), and moves the vault to `keyEpoch`. Throws
    /// `StoreError.membersChanged` unless `wrappedKeys` names exactly the members who stay, and
    /// `StoreError.keyEpochChanged` unless `keyEpoch` is the current epoch plus one. Returns the
    /// shares removed.
    func rotateVaultKey(
        vaultId: String, sealedBy: String, encryptedMetadata: String, wrappedKeys: [String: String], keyEpoch: Int, keyHistory: String?,
        removing: [String], at: Timestamp
    ) async throws -> [Share]
}
