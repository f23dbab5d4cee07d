import CofferCrypto
import CofferProtocol

/// Vaults, memberships, items and their history (SPEC.md §6). Every change inside a vault takes
/// the next vault revision inside its own transaction, so revisions have no gaps or duplicates
/// and become visible in order.
public protocol VaultStore: Sendable {
    /// Creates a vault with its owner as first member; `StoreError.vaultExists` if the id is taken.
    func createVault(id: String, ownerId: String, encryptedMetadata: String, wrappedKey: String, at: Timestamp) async throws -> VaultSummary
    /// Every vault the user is a member of.
    func vaults(userId: String) async throws -> [VaultSummary]
    /// The vault as this user sees it, or nil for a non-member.
    func vault(id: String, userId: String) async throws -> VaultSummary?
    /// Replaces the metadata; counts as a change inside the vault. `StoreError.staleKey` when
    /// `keyEpoch` (the metadata envelope's) is not the vault's current key epoch.
    func updateVaultMetadata(id: String, encryptedMetadata: String, keyEpoch: Int, at: Timestamp) async throws
    /// Deletes the vault, its members, items and history.
    func deleteVault(id: String) async throws

    /// Applies one change to one item atomically (see `ItemChange`).
    func applyItemChange(_ change: ItemChange) async throws -> ItemChangeOutcome
    /// Applies changes in order, each atomically; a backend may commit them together.
    func applyItemChanges(_ changes: [ItemChange]) async throws -> [ItemChangeOutcome]
    func item(id: String) async throws -> Item?
    /// Items (tombstones included) changed after `since`, in revision order.
    func items(vaultId: String, since: Int64, limit: Int) async throws -> [Item]
    /// One pull: the user's memberships and, vault by vault in membership order, the items
    /// changed after each vault's cursor (0 when absent), at most `limit` items in all. Read for
    /// `identity`, whose session is checked at `at` in the same read: nil, with nothing read,
    /// when that session has ended.
    func changes(for identity: AuthIdentity, at: Timestamp, cursors: [String: Int64], limit: Int) async throws -> ChangesPage?
    /// The highest revision among the vault's items last changed at or before `time`: a cursor
    /// from which a pull returns at least every change made after `time`.
    func revision(vaultId: String, notAfter time: Timestamp) async throws -> Int64
    /// Kept versions, newest first.
    func itemVersions(itemId: String) async throws -> [ItemVersion]
    /// Records that a conflict was resolved by keeping the server's version.
    func recordServerResolution(itemId: String, version: Int, deviceId: String, at: Timestamp) async throws
    /// Per vault: revision, live item count and time of the last change.
    func vaultStatus(ids: [String]) async throws -> [VaultStatus]
}

/// A create (`baseVersion` 0), update, delete or restore of one item.
public struct ItemChange: Sendable {
    public var vaultId: String
    public var itemId: String
    public var baseVersion: Int
    /// Nil when deleting.
    public var encryptedData: String?
    public var deleted: Bool
    public var deviceId: String
    public var at: Timestamp
    public var versionsKept: Int
    /// `client` when this change resolves a conflict.
    public var resolution: String?
    /// The vault key epoch `encryptedData` claims to be sealed under (nil for a deletion): a
    /// change whose epoch is not the vault's current one is refused (`staleKey`).
    public var keyEpoch: Int? { encryptedData.flatMap(Envelope.keyEpoch(of:)) }

    public init(
        vaultId: String, itemId: String, baseVersion: Int, encryptedData: String?, deleted: Bool, deviceId: String,
        at: Timestamp, versionsKept: Int, resolution: String? = nil
    ) {
        self.vaultId = vaultId
        self.itemId = itemId
        self.baseVersion = baseVersion
        self.encryptedData = encryptedData
        self.deleted = deleted
        self.deviceId = deviceId
        self.at = at
        self.versionsKept = versionsKept
        self.resolution = resolution
    }
}

public enum ItemChangeOutcome: Sendable, Equatable {
    /// Applied now, or already applied by an earlier identical request (a retry): same version either way.
    case applied(Item)
    /// The base version is not the current one; nothing was written.
    case conflict(current: Item, base: ItemVersion?)
    /// No such item in this vault (for an update or delete).
    case notFound
    /// Sealed under a vault key epoch other than the current one; nothing was written.
    case staleKey(current: Int)
}

public struct VaultStatus: Sendable, Equatable, Codable {
    public var vaultId: String
    public var revision: Int64
    public var itemCount: Int
    public var lastChange: Timestamp?
}

/// What a pull reads: memberships and one page of changes per vault.
public struct ChangesPage: Sendable {
    public var memberships: [VaultSummary]
    public var changes: [VaultChanges]
}

/// Shares `limit` items between a user's vaults in membership order; one instance per pull.
struct ChangesPager {
    private var budget: Int
    private(set) var changes: [VaultChanges] = []

    init(limit: Int) { budget = limit }

    /// How many items to read from `vault` after `cursor`: one more than fits, which tells whether
    /// more remain. Nil when nothing is to be read (the budget is spent, or the vault has no change
    /// after the cursor); then `add` is called with no items.
    func readLimit(for vault: VaultSummary, cursor: Int64) -> Int? {
        budget > 0 && vault.revision > cursor ? budget + 1 : nil
    }

    mutating func add(_ vault: VaultSummary, cursor: Int64, items: [Item]?) {
        guard let items, budget > 0 else {
            changes.append(VaultChanges(vaultId: vault.id, items: [], cursor: cursor, hasMore: vault.revision > cursor))
            return
        }
        let page = Array(items.prefix(budget))
        budget -= page.count
        changes.append(VaultChanges(vaultId: vault.id, items: page, cursor: page.last?.revision ?? cursor, hasMore: items.count > page.count))
    }
}

extension ItemChange {
    /// Whether `current` is exactly what this change would have written on top of `baseVersion`:
    /// then the change is a retry of one already applied, and answers the same result.
    func isAlreadyApplied(as current: Item) -> Bool {
        // Compared without `baseVersion + 1`: the store is not the place to trust its caller's range.
        baseVersion >= 0 && current.version.subtractingReportingOverflow(1) == (baseVersion, false)
            && current.deleted == deleted && current.encryptedData == encryptedData && current.deviceId == deviceId
    }

    /// The highest version an item can reach: PostgreSQL keeps versions as `INTEGER`, and both
    /// backends stop at the same place (an item can change two billion times).
    static let maximumVersion = Int(Int32.max)

    /// The version this change writes on top of `current` (1 for a new item); nil when `current`
    /// is at `maximumVersion` (or beyond), which the backends answer as a conflict.
    static func nextVersion(after current: Item?) -> Int? {
        let version = current?.version ?? 0
        return version < maximumVersion ? max(version, 0) + 1 : nil
    }
}
