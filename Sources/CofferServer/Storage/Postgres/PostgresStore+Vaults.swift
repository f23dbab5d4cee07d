import CofferProtocol
import PostgresNIO

extension PostgresStore {
    private typealias VaultRow = (String, String, String, String, String, Int64, Int64, Int64)
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
        try await vaults(
            """
            SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at
            FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.user_id = \(userId) ORDER BY v.created_at, v.id
            """
        )
    }

    public func vault(id: String, userId: String) async throws -> VaultSummary? {
        try await vaults(
            """
            SELECT v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at
            FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.vault_id = \(id) AND m.user_id = \(userId)
            """
        ).first
    }

    private func vaults(_ query: PostgresQuery) async throws -> [VaultSummary] {
        var vaults: [VaultSummary] = []
        for try await row in try await client.query(query, logger: logger).decode(VaultRow.self) {
            guard let role = VaultRole(rawValue: row.2) else { continue }
            vaults.append(
                VaultSummary(
                    id: row.0, ownerId: row.1, role: role, encryptedMetadata: row.3, wrappedKey: row.4, revision: row.5,
                    createdAt: Timestamp(milliseconds: row.6), updatedAt: Timestamp(milliseconds: row.7)
                )
            )
        }
        return vaults
    }

    public func updateVaultMetadata(id: String, encryptedMetadata: String, at: Timestamp) async throws {
        try await client.query(
            "UPDATE vaults SET encrypted_metadata = \(encryptedMetadata), revision = revision + 1, updated_at = \(at.milliseconds) WHERE id = \(id)",
            logger: logger
        )
    }

    public func deleteVault(id: String) async throws {
        try await client.query("DELETE FROM vaults WHERE id = \(id)", logger: logger)
    }

    public func applyItemChange(_ change: ItemChange) async throws -> ItemChangeOutcome {
        try await transaction { connection in try await Self.apply(change, on: connection, logger: logger) }
    }

    /// A whole push in one transaction: one commit for all its changes. Each change is still
    /// all-or-nothing; a database error fails the whole push, which the client retries safely
    /// because an already applied change answers `applied` again.
    public func applyItemChanges(_ changes: [ItemChange]) async throws -> [ItemChangeOutcome] {
        try await transaction { connection in
            var outcomes: [ItemChangeOutcome] = []
            outcomes.reserveCapacity(changes.count)
            for change in changes {
                outcomes.append(try await Self.apply(change, on: connection, logger: logger))
            }
            return outcomes
        }
    }

    private static func apply(_ change: ItemChange, on connection: PostgresConnection, logger: Logger) async throws -> ItemChangeOutcome {
        // The vault row lock orders every change in the vault: revisions are taken and
        // committed one after another, so a reader never sees revision n+1 without n.
        var revision: Int64?
        for try await value in try await connection.query(
            "SELECT revision FROM vaults WHERE id = \(change.vaultId) FOR UPDATE", logger: logger
        ).decode(Int64.self) {
            revision = value
        }
        guard let revision else { return .notFound }
        var current: Item?
        for try await row in try await connection.query(
            "SELECT \(unescaped: Self.itemColumns) FROM items WHERE id = \(change.itemId)", logger: logger
        ).decode(ItemRow.self) {
            current = Self.item(row)
        }
        if let current, current.vaultId != change.vaultId {
            return .notFound
        }
        if change.baseVersion == 0 {
            if let current {
                return change.isAlreadyApplied(as: current) ? .applied(current) : .conflict(current: current, base: nil)
            }
        } else {
            guard let current else { return .notFound }
            if current.version != change.baseVersion {
                if change.isAlreadyApplied(as: current) { return .applied(current) }
                var base: ItemVersion?
                for try await row in try await connection.query(
                    "SELECT \(unescaped: Self.versionColumns) FROM item_versions WHERE item_id = \(change.itemId) AND version = \(change.baseVersion)",
                    logger: logger
                ).decode(VersionRow.self) {
                    base = Self.version(row)
                }
                return .conflict(current: current, base: base)
            }
        }
        let newRevision = revision + 1
        let version = (current?.version ?? 0) + 1
        let now = change.at.milliseconds
        try await connection.query(
            "UPDATE vaults SET revision = \(newRevision), updated_at = \(now) WHERE id = \(change.vaultId)", logger: logger
        )
        try await connection.query(
            """
            INSERT INTO items (id, vault_id, encrypted_data, version, revision, deleted, created_at, updated_at, device_id)
            VALUES (\(change.itemId), \(change.vaultId), \(change.encryptedData), \(version), \(newRevision), \(change.deleted), \(now), \(now), \(change.deviceId))
            ON CONFLICT (id) DO UPDATE SET encrypted_data = excluded.encrypted_data, version = excluded.version,
                revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at, device_id = excluded.device_id
            """,
            logger: logger
        )
        try await connection.query(
            """
            INSERT INTO item_versions (item_id, version, encrypted_data, deleted, revision, created_at, device_id, resolution)
            VALUES (\(change.itemId), \(version), \(change.encryptedData), \(change.deleted), \(newRevision), \(now), \(change.deviceId), \(change.resolution))
            """,
            logger: logger
        )
        if version > change.versionsKept {
            try await connection.query(
                "DELETE FROM item_versions WHERE item_id = \(change.itemId) AND version <= \(version - change.versionsKept)", logger: logger
            )
        }
        return .applied(
            Item(
                id: change.itemId, vaultId: change.vaultId, encryptedData: change.encryptedData, version: version, revision: newRevision,
                deleted: change.deleted, createdAt: current?.createdAt ?? change.at, updatedAt: change.at, deviceId: change.deviceId
            )
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
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.itemColumns) FROM items WHERE vault_id = \(vaultId) AND revision > \(since) ORDER BY revision LIMIT \(limit)",
            logger: logger
        ).decode(ItemRow.self) {
            items.append(Self.item(row))
        }
        return items
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
