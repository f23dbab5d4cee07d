import CofferProtocol
import PostgresNIO

extension PostgresStore {
    typealias VaultRow = (String, String, String, String, String, Int64, Int64, Int64, String?, Int64, String?)
    private typealias ItemRow = (String, String, String?, Int, Int64, Bool, Int64, Int64, String?)
    private typealias VersionRow = (Int, String?, Bool, Int64, Int64, String?, String?)
    private static let itemColumns = "id, vault_id, encrypted_data, version, revision, deleted, created_at, updated_at, device_id"
    private static let versionColumns = "version, encrypted_data, deleted, revision, created_at, device_id, resolution"

    public func createVault(id: String, ownerId: String, encryptedMetadata: String, wrappedKey: String, at: Timestamp) async throws -> VaultSummary {
        try await transaction { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO vaults (id, owner_id, encrypted_metadata, revision, created_at, updated_at)
                VALUES (\(id), \(ownerId), \(encryptedMetadata), 0, \(at.milliseconds), \(at.milliseconds)) ON CONFLICT (id) DO NOTHING RETURNING id
                """,
                logger: logger
            ).collect()
            guard !inserted.isEmpty else { throw StoreError.vaultExists }
            try await connection.query(
                "INSERT INTO vault_members (vault_id, user_id, role, wrapped_key, created_at) VALUES (\(id), \(ownerId), 'owner', \(wrappedKey), \(at.milliseconds))",
                logger: logger
            )
            return VaultSummary(
                id: id, ownerId: ownerId, role: .owner, encryptedMetadata: encryptedMetadata, wrappedKey: wrappedKey, revision: 0,
                createdAt: at, updatedAt: at
            )
        }
    }

    public func vaults(userId: String) async throws -> [VaultSummary] {
        var vaults: [VaultSummary] = []
        for try await row in try await client.execute(PostgresStatements.Memberships(userId: userId), logger: logger) {
            if let vault = Self.vault(row) { vaults.append(vault) }
        }
        return vaults
    }

    public func vault(id: String, userId: String) async throws -> VaultSummary? {
        try await vaults(
            """
            SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at, m.key_sealed_by,
                v.key_epoch::int8, v.key_history
            FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.vault_id = \(id) AND m.user_id = \(userId)
            """
        ).first
    }

    private func vaults(_ query: PostgresQuery) async throws -> [VaultSummary] {
        var vaults: [VaultSummary] = []
        for try await row in try await client.query(query, logger: logger).decode(VaultRow.self) {
            if let vault = Self.vault(row) { vaults.append(vault) }
        }
        return vaults
    }

    private static func vault(_ row: VaultRow) -> VaultSummary? {
        guard let role = VaultRole(rawValue: row.2) else { return nil }
        return VaultSummary(
            id: row.0, ownerId: row.1, role: role, encryptedMetadata: row.3, wrappedKey: row.4, revision: row.5,
            createdAt: Timestamp(milliseconds: row.6), updatedAt: Timestamp(milliseconds: row.7), keySealedBy: row.8,
            keyEpoch: Int(row.9), keyHistory: row.10
        )
    }

    public func updateVaultMetadata(id: String, encryptedMetadata: String, keyEpoch: Int, at: Timestamp) async throws {
        try await transaction { connection in
            // The row lock orders this after (or before) a concurrent rotation, never in between.
            var locked: Int64?
            for try await epoch in try await connection.query("SELECT key_epoch::int8 FROM vaults WHERE id = \(id) FOR UPDATE", logger: logger).decode(Int64.self) {
                locked = epoch
            }
            guard let current = locked else { return }
            guard current == keyEpoch else { throw StoreError.staleKey(current: Int(current)) }
            try await connection.query(
                "UPDATE vaults SET encrypted_metadata = \(encryptedMetadata), revision = revision + 1, updated_at = \(at.milliseconds) WHERE id = \(id)",
                logger: logger
            )
        }
    }

    public func deleteVault(id: String) async throws {
        try await client.query("DELETE FROM vaults WHERE id = \(id)", logger: logger)
    }

    public func applyItemChange(_ change: ItemChange) async throws -> ItemChangeOutcome {
        try await applyItemChanges([change])[0]
    }

    /// A whole push in one transaction and a fixed number of round trips, whatever its size:
    /// lock the vaults, read the items, decide every change in memory in push order, then write
    /// items, versions, pruning and vault revisions with one set-based statement each. A database
    /// error fails the whole push, which the client retries safely because an already applied
    /// change answers `applied` again.
    public func applyItemChanges(_ changes: [ItemChange]) async throws -> [ItemChangeOutcome] {
        guard !changes.isEmpty else { return [] }
        return try await transaction { connection in
            // The vault row locks order every change in a vault: revisions are taken and committed
            // one push after another, so a reader never sees revision n+1 without n. Locking in id
            // order means two pushes that touch the same vaults cannot wait on each other in a cycle.
            let vaultIds = Array(Set(changes.map(\.vaultId))).sorted()
            var revisions: [String: Int64] = [:]
            var epochs: [String: Int] = [:]
            for try await (id, revision, epoch) in try await connection.query(
                "SELECT id, revision, key_epoch::int8 FROM vaults WHERE id = ANY(\(vaultIds)) ORDER BY id FOR UPDATE", logger: logger
            ).decode((String, Int64, Int64).self) {
                revisions[id] = revision
                epochs[id] = Int(epoch)
            }
            // A second statement, so that it reads with a snapshot taken after the locks were granted.
            var current: [String: Item] = [:]
            let itemIds = Array(Set(changes.map(\.itemId)))
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.itemColumns) FROM items WHERE id = ANY(\(itemIds))", logger: logger
            ).decode(ItemRow.self) {
                let item = Self.item(row)
                current[item.id] = item
            }

            var plan = PushPlan()
            var outcomes: [ItemChangeOutcome] = []
            outcomes.reserveCapacity(changes.count)
            var missingBases: [(index: Int, itemId: String, version: Int)] = []
            for change in changes {
                guard let revision = revisions[change.vaultId] else {
                    outcomes.append(.notFound)
                    continue
                }
                let existing = current[change.itemId]
                if let existing, existing.vaultId != change.vaultId {
                    outcomes.append(.notFound)
                    continue
                }
                if change.baseVersion < 0 {
                    // No version is below 0; both backends answer such a change alike.
                    outcomes.append(existing.map { .conflict(current: $0, base: nil) } ?? .notFound)
                    continue
                }
                if change.baseVersion == 0, let existing {
                    outcomes.append(change.isAlreadyApplied(as: existing) ? .applied(existing) : .conflict(current: existing, base: nil))
                    continue
                }
                if change.baseVersion > 0 {
                    guard let existing else {
                        outcomes.append(.notFound)
                        continue
                    }
                    if existing.version != change.baseVersion {
                        if change.isAlreadyApplied(as: existing) {
                            outcomes.append(.applied(existing))
                        } else if let base = plan.version(itemId: change.itemId, version: change.baseVersion) {
                            outcomes.append(.conflict(current: existing, base: base))
                        } else {
                            missingBases.append((outcomes.count, change.itemId, change.baseVersion))
                            outcomes.append(.conflict(current: existing, base: nil))
                        }
                        continue
                    }
                }
                guard let version = ItemChange.nextVersion(after: existing) else {
                    outcomes.append(existing.map { .conflict(current: $0, base: nil) } ?? .notFound)
                    continue
                }
                // Under the vault row lock, so a rotation cannot commit between this check and the write.
                if let epoch = change.keyEpoch, let current = epochs[change.vaultId], epoch != current {
                    outcomes.append(.staleKey(current: current))
                    continue
                }
                let item = Item(
                    id: change.itemId, vaultId: change.vaultId, encryptedData: change.encryptedData, version: version,
                    revision: revision.saturatingAdding(1), deleted: change.deleted, createdAt: existing?.createdAt ?? change.at, updatedAt: change.at,
                    deviceId: change.deviceId
                )
                revisions[change.vaultId] = item.revision
                current[item.id] = item
                plan.add(item, resolution: change.resolution, versionsKept: change.versionsKept)
                outcomes.append(.applied(item))
            }

            // The client's base version of each conflict, when still kept (read before any pruning).
            if !missingBases.isEmpty {
                var bases: [String: ItemVersion] = [:]
                for try await row in try await connection.query(
                    """
                    SELECT item_id, \(unescaped: Self.versionColumns) FROM item_versions
                    WHERE (item_id, version) IN (SELECT * FROM UNNEST(\(missingBases.map(\.itemId))::text[], \(missingBases.map(\.version))::int8[]))
                    """,
                    logger: logger
                ).decode((String, Int, String?, Bool, Int64, Int64, String?, String?).self) {
                    bases["\(row.0)/\(row.1)"] = Self.version((row.1, row.2, row.3, row.4, row.5, row.6, row.7))
                }
                for missing in missingBases {
                    guard let base = bases["\(missing.itemId)/\(missing.version)"], case .conflict(let item, _) = outcomes[missing.index] else { continue }
                    outcomes[missing.index] = .conflict(current: item, base: base)
                }
            }
            guard !plan.versions.isEmpty else { return outcomes }
            try await write(plan, revisions: revisions, on: connection)
            return outcomes
        }
    }

    /// Writes what a push decided: final item rows, new versions, pruned history, vault revisions.
    private func write(_ plan: PushPlan, revisions: [String: Int64], on connection: PostgresConnection) async throws {
        // Empty strings stand for NULL: array parameters cannot carry NULLs, and no envelope,
        // device id or resolution is ever empty.
        let items = plan.finalItems
        try await connection.query(
            """
            INSERT INTO items (id, vault_id, encrypted_data, version, revision, deleted, created_at, updated_at, device_id)
            SELECT id, vault_id, NULLIF(data, ''), version, revision, deleted, created_at, updated_at, NULLIF(device, '')
            FROM UNNEST(\(items.map(\.id))::text[], \(items.map(\.vaultId))::text[], \(items.map { $0.encryptedData ?? "" })::text[],
                        \(items.map(\.version))::int[], \(items.map(\.revision))::bigint[], \(items.map(\.deleted))::bool[],
                        \(items.map(\.createdAt.milliseconds))::bigint[], \(items.map(\.updatedAt.milliseconds))::bigint[],
                        \(items.map { $0.deviceId ?? "" })::text[])
                AS t(id, vault_id, data, version, revision, deleted, created_at, updated_at, device)
            ON CONFLICT (id) DO UPDATE SET encrypted_data = excluded.encrypted_data, version = excluded.version,
                revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at, device_id = excluded.device_id
            """,
            logger: logger
        )
        let versions = plan.versions
        try await connection.query(
            """
            INSERT INTO item_versions (item_id, version, encrypted_data, deleted, revision, created_at, device_id, resolution)
            SELECT item_id, version, NULLIF(data, ''), deleted, revision, created_at, NULLIF(device, ''), NULLIF(resolution, '')
            FROM UNNEST(\(versions.map(\.item.id))::text[], \(versions.map(\.item.version))::int[],
                        \(versions.map { $0.item.encryptedData ?? "" })::text[], \(versions.map(\.item.deleted))::bool[],
                        \(versions.map(\.item.revision))::bigint[], \(versions.map(\.item.updatedAt.milliseconds))::bigint[],
                        \(versions.map { $0.item.deviceId ?? "" })::text[], \(versions.map { $0.resolution ?? "" })::text[])
                AS t(item_id, version, data, deleted, revision, created_at, device, resolution)
            """,
            logger: logger
        )
        let pruned = plan.pruning
        if !pruned.isEmpty {
            try await connection.query(
                """
                DELETE FROM item_versions v USING UNNEST(\(pruned.map(\.itemId))::text[], \(pruned.map(\.upTo))::int[]) AS p(item_id, up_to)
                WHERE v.item_id = p.item_id AND v.version <= p.up_to
                """,
                logger: logger
            )
        }
        let touched = plan.touchedVaults
        try await connection.query(
            """
            UPDATE vaults v SET revision = u.revision, updated_at = u.updated_at
            FROM UNNEST(\(touched.map(\.id))::text[], \(touched.map { revisions[$0.id] ?? 0 })::bigint[], \(touched.map(\.at))::bigint[])
                AS u(id, revision, updated_at)
            WHERE v.id = u.id
            """,
            logger: logger
        )
    }

    private static func item(_ row: ItemRow) -> Item {
        Item(
            id: row.0, vaultId: row.1, encryptedData: row.2, version: row.3, revision: row.4, deleted: row.5,
            createdAt: Timestamp(milliseconds: row.6), updatedAt: Timestamp(milliseconds: row.7), deviceId: row.8
        )
    }

    private static func version(_ row: VersionRow) -> ItemVersion {
        ItemVersion(
            version: row.0, encryptedData: row.1, deleted: row.2, revision: row.3, createdAt: Timestamp(milliseconds: row.4),
            deviceId: row.5, resolution: row.6
        )
    }

    public func item(id: String) async throws -> Item? {
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.itemColumns) FROM items WHERE id = \(id)", logger: logger
        ).decode(ItemRow.self) {
            return Self.item(row)
        }
        return nil
    }

    public func items(vaultId: String, since: Int64, limit: Int) async throws -> [Item] {
        var items: [Item] = []
        for try await row in try await client.execute(PostgresStatements.ItemsSince(vaultId: vaultId, since: since, limit: limit), logger: logger) {
            items.append(Self.item(row))
        }
        return items
    }

    /// A pull: the session check, memberships and the first changed vault's items in one round
    /// trip (`PostgresStatements.PullFirst`), then any other changed vault on its own.
    public func changes(for identity: AuthIdentity, at: Timestamp, cursors: [String: Int64], limit: Int) async throws -> ChangesPage? {
        var memberships: [VaultSummary] = []
        var first: (vaultId: String, items: [Item])?
        var active = false
        let requested = Array(cursors)
        let statement = PostgresStatements.PullFirst(identity: identity, at: at, vaultIds: requested.map(\.key), cursors: requested.map(\.value), limit: limit + 1)
        for try await row in try await client.execute(statement, logger: logger) {
            if row.0 == 2 {
                active = row.15
            } else if row.0 == 0 {
                if let vault = Self.vault((row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.16, row.17)) { memberships.append(vault) }
                if row.15, first == nil { first = (row.1, []) }
            } else if let id = row.10, let version = row.12, let deleted = row.13 {
                let item = Item(
                    id: id, vaultId: row.1, encryptedData: row.11, version: Int(version), revision: row.6, deleted: deleted,
                    createdAt: Timestamp(milliseconds: row.7), updatedAt: Timestamp(milliseconds: row.8), deviceId: row.14
                )
                if first == nil { first = (row.1, []) }  // item rows may come before the membership rows
                first?.items.append(item)
            }
        }
        guard active else { return nil }
        // UNION ALL keeps no order: memberships in creation order, items in revision order.
        memberships.sort { ($0.createdAt.milliseconds, $0.id) < ($1.createdAt.milliseconds, $1.id) }
        first?.items.sort { $0.revision < $1.revision }
        var pager = ChangesPager(limit: limit)
        for vault in memberships {
            let cursor = cursors[vault.id] ?? 0
            var items: [Item]?
            if let readLimit = pager.readLimit(for: vault, cursor: cursor) {
                items = if let first, first.vaultId == vault.id { first.items } else { try await self.items(vaultId: vault.id, since: cursor, limit: readLimit) }
            }
            pager.add(vault, cursor: cursor, items: items)
        }
        return ChangesPage(memberships: memberships, changes: pager.changes)
    }

    public func revision(vaultId: String, notAfter time: Timestamp) async throws -> Int64 {
        for try await revision in try await client.query(
            "SELECT COALESCE(MAX(revision), 0)::BIGINT FROM items WHERE vault_id = \(vaultId) AND updated_at <= \(time.milliseconds)", logger: logger
        ).decode(Int64.self) {
            return revision
        }
        return 0
    }

    public func itemVersions(itemId: String) async throws -> [ItemVersion] {
        var versions: [ItemVersion] = []
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.versionColumns) FROM item_versions WHERE item_id = \(itemId) ORDER BY version DESC", logger: logger
        ).decode(VersionRow.self) {
            versions.append(Self.version(row))
        }
        return versions
    }

    public func recordServerResolution(itemId: String, version: Int, deviceId: String, at: Timestamp) async throws {
        try await transaction { connection in
            try await connection.query(
                "INSERT INTO item_resolutions (item_id, version, strategy, device_id, created_at) VALUES (\(itemId), \(version), 'server', \(deviceId), \(at.milliseconds))",
                logger: logger
            )
            try await connection.query(
                "UPDATE item_versions SET resolution = 'server' WHERE item_id = \(itemId) AND version = \(version)", logger: logger
            )
        }
    }

    public func vaultStatus(ids: [String]) async throws -> [VaultStatus] {
        guard !ids.isEmpty else { return [] }
        var statuses: [VaultStatus] = []
        for try await (id, revision, count, lastChange) in try await client.query(
            """
            SELECT v.id, v.revision,
                   (SELECT COUNT(*) FROM items i WHERE i.vault_id = v.id AND NOT i.deleted)::BIGINT,
                   (SELECT MAX(updated_at) FROM items i WHERE i.vault_id = v.id)
            FROM vaults v WHERE v.id = ANY(\(ids))
            """,
            logger: logger
        ).decode((String, Int64, Int64, Int64?).self) {
            statuses.append(VaultStatus(vaultId: id, revision: revision, itemCount: Int(count), lastChange: lastChange.map(Timestamp.init(milliseconds:))))
        }
        let order = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        return statuses.sorted { (order[$0.vaultId] ?? 0) < (order[$1.vaultId] ?? 0) }
    }
}

/// The writes one push decided on, in push order.
private struct PushPlan {
    private(set) var versions: [(item: Item, resolution: String?)] = []
    private var keptVersions: [String: Int] = [:]
    private var lastChange: [String: Int64] = [:]

    mutating func add(_ item: Item, resolution: String?, versionsKept: Int) {
        versions.append((item, resolution))
        keptVersions[item.id] = versionsKept
        lastChange[item.vaultId] = max(lastChange[item.vaultId] ?? 0, item.updatedAt.milliseconds)
    }

    /// A version written earlier in this same push.
    func version(itemId: String, version: Int) -> ItemVersion? {
        guard let (item, resolution) = versions.last(where: { $0.item.id == itemId && $0.item.version == version }) else { return nil }
        return ItemVersion(
            version: item.version, encryptedData: item.encryptedData, deleted: item.deleted, revision: item.revision,
            createdAt: item.updatedAt, deviceId: item.deviceId, resolution: resolution
        )
    }

    /// The last state of each item changed, once each: one upsert row per item.
    var finalItems: [Item] {
        var seen: Set<String> = []
        var items: [Item] = []
        for (item, _) in versions.reversed() where seen.insert(item.id).inserted {
            items.append(item)
        }
        return items
    }

    /// Per item whose history outgrew what is kept: the highest version to delete.
    var pruning: [(itemId: String, upTo: Int)] {
        finalItems.compactMap { item in
            let kept = keptVersions[item.id] ?? Int.max
            return item.version > kept ? (item.id, item.version - kept) : nil
        }
    }

    var touchedVaults: [(id: String, at: Int64)] {
        lastChange.map { ($0.key, $0.value) }.sorted { $0.id < $1.id }
    }
}
