import CofferProtocol
import SQLiteNIO

extension SQLiteStore {
    static let vaultColumns = """
        v.id, v.owner_id, m.role, v.encrypted_metadata, m.wrapped_key, v.revision, v.created_at, v.updated_at, m.key_sealed_by,
        v.key_epoch, v.key_history
        """

    public func createVault(id: String, ownerId: String, encryptedMetadata: String, wrappedKey: String, at: Timestamp) async throws -> VaultSummary {
        try await write { connection in
            let inserted = try connection.query(
                "INSERT INTO vaults (id, owner_id, encrypted_metadata, revision, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                [.text(id), .text(ownerId), .text(encryptedMetadata), .timestamp(at), .timestamp(at)]
            )
            guard !inserted.isEmpty else { throw StoreError.vaultExists }
            try connection.query(
                "INSERT INTO vault_members (vault_id, user_id, role, wrapped_key, created_at) VALUES (?, ?, 'owner', ?, ?)",
                [.text(id), .text(ownerId), .text(wrappedKey), .timestamp(at)]
            )
            return VaultSummary(
                id: id, ownerId: ownerId, role: .owner, encryptedMetadata: encryptedMetadata, wrappedKey: wrappedKey, revision: 0,
                createdAt: at, updatedAt: at
            )
        }
    }

    public func vaults(userId: String) async throws -> [VaultSummary] {
        try await read { try Self.memberships(on: $0, userId: userId) }
    }

    private static func memberships(on connection: SQLiteDirectConnection, userId: String) throws -> [VaultSummary] {
        try connection.query(
            "SELECT \(vaultColumns) FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.user_id = ? ORDER BY v.created_at, v.id",
            [.text(userId)]
        ).compactMap(vault)
    }

    public func vault(id: String, userId: String) async throws -> VaultSummary? {
        try await read { connection in
            try connection.query(
                "SELECT \(Self.vaultColumns) FROM vault_members m JOIN vaults v ON v.id = m.vault_id WHERE m.vault_id = ? AND m.user_id = ?",
                [.text(id), .text(userId)]
            ).first.flatMap(Self.vault)
        }
    }

    private static func vault(_ row: SQLiteResultRow) -> VaultSummary? {
        guard let role = row.string("role").flatMap(VaultRole.init(rawValue:)) else { return nil }
        return VaultSummary(
            id: row.string("id") ?? "", ownerId: row.string("owner_id") ?? "", role: role,
            encryptedMetadata: row.string("encrypted_metadata") ?? "", wrappedKey: row.string("wrapped_key") ?? "",
            revision: row.int64("revision") ?? 0, createdAt: row.timestamp("created_at"), updatedAt: row.timestamp("updated_at"),
            keySealedBy: row.string("key_sealed_by"), keyEpoch: row.int("key_epoch") ?? 1, keyHistory: row.string("key_history")
        )
    }

    public func updateVaultMetadata(id: String, encryptedMetadata: String, keyEpoch: Int, at: Timestamp) async throws {
        try await write { connection in
            let updated = try connection.query(
                "UPDATE vaults SET encrypted_metadata = ?, revision = revision + 1, updated_at = ? WHERE id = ? AND key_epoch = ? RETURNING id",
                [.text(encryptedMetadata), .timestamp(at), .text(id), .integer(keyEpoch)]
            )
            if updated.isEmpty, let current = try connection.query("SELECT key_epoch FROM vaults WHERE id = ?", [.text(id)]).first?.int("key_epoch") {
                throw StoreError.staleKey(current: current)
            }
        }
    }

    public func deleteVault(id: String) async throws {
        try await write { connection in
            try connection.query("DELETE FROM vaults WHERE id = ?", [.text(id)])
        }
    }

    public func applyItemChange(_ change: ItemChange) async throws -> ItemChangeOutcome {
        try await write { connection in try Self.apply(change, on: connection) }
    }

    /// A whole push in one write transaction: one commit (one fsync) for all its changes. Each change
    /// is still all-or-nothing; a database error fails the whole push, which the client retries
    /// safely because an already applied change answers `applied` again.
    public func applyItemChanges(_ changes: [ItemChange]) async throws -> [ItemChangeOutcome] {
        try await write { connection in try changes.map { try Self.apply($0, on: connection) } }
    }

    /// The single writer serializes every change, so reading first and then taking the next
    /// revision cannot race; a conflict writes nothing and takes no revision.
    private static func apply(_ change: ItemChange, on connection: SQLiteDirectConnection) throws -> ItemChangeOutcome {
        let current = try connection.query("SELECT * FROM items WHERE id = ?", [.text(change.itemId)]).first.map(Self.item)
        if let current, current.vaultId != change.vaultId {
            return .notFound
        }
        if change.baseVersion < 0 {
            // No version is below 0; both backends answer such a change alike.
            return current.map { .conflict(current: $0, base: nil) } ?? .notFound
        }
        if change.baseVersion == 0 {
            if let current {
                return change.isAlreadyApplied(as: current) ? .applied(current) : .conflict(current: current, base: nil)
            }
        } else {
            guard let current else { return .notFound }
            if current.version != change.baseVersion {
                if change.isAlreadyApplied(as: current) { return .applied(current) }
                let base = try connection.query(
                    "SELECT * FROM item_versions WHERE item_id = ? AND version = ?", [.text(change.itemId), .integer(change.baseVersion)]
                ).first.map(Self.version)
                return .conflict(current: current, base: base)
            }
        }
        guard let version = ItemChange.nextVersion(after: current) else { return current.map { .conflict(current: $0, base: nil) } ?? .notFound }
        if let epoch = change.keyEpoch {
            // Checked by the one writer, so a rotation cannot slip in between check and write.
            guard let current = try connection.query("SELECT key_epoch FROM vaults WHERE id = ?", [.text(change.vaultId)]).first?.int("key_epoch") else {
                return .notFound
            }
            if epoch != current { return .staleKey(current: current) }
        }
        guard let revision = try connection.query(
            "UPDATE vaults SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision",
            [.timestamp(change.at), .text(change.vaultId)]
        ).first?.int64("revision") else {
            return .notFound
        }
        let data: SQLiteData = change.encryptedData.map { .text($0) } ?? .null
        try connection.query(
            """
            INSERT INTO items (id, vault_id, encrypted_data, version, revision, deleted, created_at, updated_at, device_id)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
            ON CONFLICT (id) DO UPDATE SET encrypted_data = excluded.encrypted_data, version = excluded.version,
                revision = excluded.revision, deleted = excluded.deleted, updated_at = excluded.updated_at, device_id = excluded.device_id
            """,
            [.text(change.itemId), .text(change.vaultId), data, .integer(version), .integer(Int(revision)),
             .integer(change.deleted ? 1 : 0), .timestamp(change.at), .text(change.deviceId)]
        )
        try connection.query(
            """
            INSERT INTO item_versions (item_id, version, encrypted_data, deleted, revision, created_at, device_id, resolution)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [.text(change.itemId), .integer(version), data, .integer(change.deleted ? 1 : 0), .integer(Int(revision)),
             .timestamp(change.at), .text(change.deviceId), change.resolution.map { .text($0) } ?? .null]
        )
        if version > change.versionsKept {
            try connection.query(
                "DELETE FROM item_versions WHERE item_id = ? AND version <= ?", [.text(change.itemId), .integer(version - change.versionsKept)]
            )
        }
        return .applied(
            Item(
                id: change.itemId, vaultId: change.vaultId, encryptedData: change.encryptedData, version: version, revision: revision,
                deleted: change.deleted, createdAt: current?.createdAt ?? change.at, updatedAt: change.at, deviceId: change.deviceId
            )
        )
    }

    private static func item(_ row: SQLiteResultRow) -> Item {
        Item(
            id: row.string("id") ?? "", vaultId: row.string("vault_id") ?? "", encryptedData: row.string("encrypted_data"),
            version: row.int("version") ?? 0, revision: row.int64("revision") ?? 0, deleted: row.int("deleted") == 1,
            createdAt: row.timestamp("created_at"), updatedAt: row.timestamp("updated_at"), deviceId: row.string("device_id")
        )
    }

    private static func version(_ row: SQLiteResultRow) -> ItemVersion {
        ItemVersion(
            version: row.int("version") ?? 0, encryptedData: row.string("encrypted_data"), deleted: row.int("deleted") == 1,
            revision: row.int64("revision") ?? 0, createdAt: row.timestamp("created_at"), deviceId: row.string("device_id"),
            resolution: row.string("resolution")
        )
    }

    public func item(id: String) async throws -> Item? {
        try await read { try $0.query("SELECT * FROM items WHERE id = ?", [.text(id)]).first.map(Self.item) }
    }

    public func items(vaultId: String, since: Int64, limit: Int) async throws -> [Item] {
        try await read { try Self.items(on: $0, vaultId: vaultId, since: since, limit: limit) }
    }

    private static func items(on connection: SQLiteDirectConnection, vaultId: String, since: Int64, limit: Int) throws -> [Item] {
        try connection.query(
            "SELECT * FROM items WHERE vault_id = ? AND revision > ? ORDER BY revision LIMIT ?", [.text(vaultId), .integer(Int(since)), .integer(limit)]
        ).map(item)
    }

    /// A pull in one read transaction (one snapshot). Most pulls bring a few changes: they are
    /// read on the caller's thread (`pointRead`) with a cap of `inlinePullLimit` items; only when
    /// that cap is hit is the pull read again in full on a reader thread.
    public func changes(for identity: AuthIdentity, at: Timestamp, cursors: [String: Int64], limit: Int) async throws -> ChangesPage? {
        let inlineLimit = min(limit, Self.inlinePullLimit)
        let small = try await pointRead { try Self.changes(on: $0, identity: identity, at: at, cursors: cursors, limit: inlineLimit) }
        guard let small, limit > inlineLimit, small.changes.contains(where: \.hasMore) else { return small }
        return try await read { try Self.changes(on: $0, identity: identity, at: at, cursors: cursors, limit: limit) }
    }

    static let inlinePullLimit = 64

    private static func changes(
        on connection: SQLiteDirectConnection, identity: AuthIdentity, at: Timestamp, cursors: [String: Int64], limit: Int
    ) throws -> ChangesPage? {
        guard identity.isHeld(by: try activeSession(id: identity.sessionId, at: at, on: connection)) else { return nil }
        let memberships = try Self.memberships(on: connection, userId: identity.userId)
        var pager = ChangesPager(limit: limit)
        for vault in memberships {
            let cursor = cursors[vault.id] ?? 0
            let changed = try pager.readLimit(for: vault, cursor: cursor).map { try Self.items(on: connection, vaultId: vault.id, since: cursor, limit: $0) }
            pager.add(vault, cursor: cursor, items: changed)
        }
        return ChangesPage(memberships: memberships, changes: pager.changes)
    }

    public func revision(vaultId: String, notAfter time: Timestamp) async throws -> Int64 {
        try await read { connection in
            try connection.query(
                "SELECT COALESCE(MAX(revision), 0) AS revision FROM items WHERE vault_id = ? AND updated_at <= ?", [.text(vaultId), .timestamp(time)]
            ).first?.int64("revision") ?? 0
        }
    }

    public func itemVersions(itemId: String) async throws -> [ItemVersion] {
        try await read { connection in
            try connection.query("SELECT * FROM item_versions WHERE item_id = ? ORDER BY version DESC", [.text(itemId)]).map(Self.version)
        }
    }

    public func recordServerResolution(itemId: String, version: Int, deviceId: String, at: Timestamp) async throws {
        try await write { connection in
            try connection.query(
                "INSERT INTO item_resolutions (item_id, version, strategy, device_id, created_at) VALUES (?, ?, 'server', ?, ?)",
                [.text(itemId), .integer(version), .text(deviceId), .timestamp(at)]
            )
            try connection.query(
                "UPDATE item_versions SET resolution = 'server' WHERE item_id = ? AND version = ?", [.text(itemId), .integer(version)]
            )
        }
    }

    public func vaultStatus(ids: [String]) async throws -> [VaultStatus] {
        guard !ids.isEmpty else { return [] }
        return try await read { connection in
            var statuses: [VaultStatus] = []
            for id in ids {
                if let row = try connection.query(
                    """
                    SELECT v.id, v.revision, v.updated_at,
                           (SELECT COUNT(*) FROM items i WHERE i.vault_id = v.id AND i.deleted = 0) AS item_count,
                           (SELECT MAX(updated_at) FROM items i WHERE i.vault_id = v.id) AS last_change
                    FROM vaults v WHERE v.id = ?
                    """,
                    [.text(id)]
                ).first {
                    statuses.append(
                        VaultStatus(
                            vaultId: id, revision: row.int64("revision") ?? 0, itemCount: row.int("item_count") ?? 0,
                            lastChange: row.int64("last_change").map(Timestamp.init(milliseconds:))
                        )
                    )
                }
            }
            return statuses
        }
    }
}
