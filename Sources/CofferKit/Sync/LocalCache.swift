import CofferProtocol
import Foundation

/// A vault as the cache keeps it: the server's summary (key still wrapped, metadata still
/// sealed) and how far this device has read it.
struct CachedVault: Sendable {
    var summary: VaultSummary
    /// The revision the next pull starts after.
    var cursor: Int64
    /// The highest revision this device has ever seen for the vault; a server answer below it is a rollback.
    var highest: Int64
    /// This device's conflict policy for the vault, when set.
    var policy: ConflictPolicy?
}

/// A local change waiting to be pushed, in the order it was made.
struct PendingChange: Sendable {
    var seq: Int64
    var itemId: String
    var vaultId: String
    /// The server version the change was made on; nil while an earlier change of the same item
    /// is still queued (it is set when that one is applied).
    var baseVersion: Int?
    /// The item sealed with its vault key; nil for a delete.
    var encryptedData: String?
    var queuedAt: Timestamp
    var deleted: Bool { encryptedData == nil }
}

/// A conflict this device met, open until settled; settled ones keep the losing side so that
/// no edit is ever lost.
public struct ConflictRecord: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Waiting for the user (`coffer conflicts resolve`).
        case open
        /// Settled by a policy or by the user; `outcome` says how.
        case resolved
        /// The server refused the change (no write access, vault gone, invalid); kept here.
        case rejected
    }

    public var id: Int64
    public var itemId: String
    public var vaultId: String
    /// This device's side, sealed with the vault key; nil when this device deleted the item.
    public var localData: String?
    /// Earlier queued edits of the same item, superseded by `localData`, sealed.
    public var earlier: [String]
    /// The server version the conflict was met against.
    public var serverVersion: Int
    public var baseVersion: Int
    public var policy: String
    /// `pushed-local`, `kept-server`, `merged`, `manual`, `rejected`, or the user's choice.
    public var outcome: String
    public var state: State
    public var detail: String?
    public var createdAt: Timestamp
    public var resolvedAt: Timestamp?
    /// The server's side the conflict was met against, sealed; nil when the server had deleted
    /// the item, or when it was not recorded (`serverDeleted` nil: a refused change, or a record
    /// from before sides were kept).
    public var serverData: String? = nil
    public var serverDeleted: Bool? = nil
    /// The device that wrote the server's side.
    public var serverDeviceId: String? = nil
    /// The version both sides were edited from, sealed, when the server still kept it.
    public var baseData: String? = nil
    /// How a merge settled each field (who won the contested ones); nil for other outcomes.
    public var merge: MergeSummary? = nil

    /// Whether the record holds the server's side (records from before it was kept do not).
    public var hasServerSide: Bool { serverDeleted != nil }
}

/// One line of the sync history: what was pulled, pushed, merged or refused, and when.
public struct SyncHistoryEntry: Sendable, Codable, Equatable {
    public var id: Int64
    public var at: Timestamp
    /// `pulled`, `pushed`, `merged`, `conflict`, `resolved`, `rejected`, `sync`, `error`.
    public var kind: String
    public var vaultId: String?
    public var itemId: String?
    public var version: Int?
    public var detail: String?
}

/// The device's encrypted local copy of one account: vaults, items, the offline queue, conflicts
/// and sync history, in one SQLite file. Everything secret in it is ciphertext exactly as the
/// server holds it (items sealed with vault keys, vault keys wrapped with the account key).
final class LocalCache {
    let database: LocalDatabase
    private let encoder = JSONEncoder()
    private let decoder = JSONDecoder()

    init(path: String) throws {
        database = try LocalDatabase(path: path)
        // WAL with FULL sync: a queued change is on disk before the call that queued it returns,
        // and survives the process being killed or the machine losing power.
        try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF")
        try migrate()
        try createKeyTables()
        try createInvitationTables()
        try createRefusalTables()
    }

    private func migrate() throws {
        let version = try database.query("PRAGMA user_version").first?.first?.int ?? 0
        if version < 1 { try createSchema() }
        if version < 2 {
            // Conflict records keep the server's side and the base too (nullable: records written
            // before this version have neither, and still open). Read again under the write lock:
            // another process may have upgraded the file meanwhile.
            try database.transaction {
                guard try database.query("PRAGMA user_version").first?.first?.int ?? 0 < 2 else { return }
                try database.execute("""
                    ALTER TABLE conflicts ADD COLUMN server_data TEXT;
                    ALTER TABLE conflicts ADD COLUMN server_deleted INTEGER;
                    ALTER TABLE conflicts ADD COLUMN server_device TEXT;
                    ALTER TABLE conflicts ADD COLUMN base_data TEXT;
                    ALTER TABLE conflicts ADD COLUMN merge TEXT;
                    PRAGMA user_version = 2;
                    """)
            }
        }
    }

    /// The schema of the first version of the cache; later versions alter it.
    private func createSchema() throws {
        try database.transaction {
            try database.execute("""
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS vaults (
                    id TEXT PRIMARY KEY, summary TEXT NOT NULL, cursor INTEGER NOT NULL DEFAULT 0,
                    highest INTEGER NOT NULL DEFAULT 0, policy TEXT);
                CREATE TABLE IF NOT EXISTS items (
                    id TEXT PRIMARY KEY, vault_id TEXT NOT NULL, version INTEGER NOT NULL, revision INTEGER NOT NULL,
                    deleted INTEGER NOT NULL, data TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, device_id TEXT);
                CREATE INDEX IF NOT EXISTS items_by_vault ON items (vault_id);
                CREATE TABLE IF NOT EXISTS pending (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, vault_id TEXT NOT NULL,
                    base_version INTEGER, data TEXT, queued_at INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS pending_by_item ON pending (item_id, seq);
                CREATE TABLE IF NOT EXISTS conflicts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, vault_id TEXT NOT NULL, local_data TEXT,
                    earlier TEXT NOT NULL, server_version INTEGER NOT NULL, base_version INTEGER NOT NULL, policy TEXT NOT NULL,
                    outcome TEXT NOT NULL, state TEXT NOT NULL, detail TEXT, created_at INTEGER NOT NULL, resolved_at INTEGER);
                CREATE TABLE IF NOT EXISTS history (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL, vault_id TEXT,
                    item_id TEXT, version INTEGER, detail TEXT);
                PRAGMA user_version = 1;
                """)
        }
    }

    /// A transaction whose commit is on disk when it returns (the offline queue).
    func transaction<T>(_ body: () throws -> T) throws -> T { try database.transaction(body) }

    /// A transaction for what the server can send again (pulled items and cursors together,
    /// push results): a power cut may undo it, never half of it, and the next round redoes it.
    /// A crash of the process alone loses nothing even so (WAL).
    func refetchableTransaction<T>(_ body: () throws -> T) throws -> T { try database.transaction(relaxed: true, body) }

    // MARK: Meta

    func meta(_ key: String) throws -> String? {
        try database.query("SELECT value FROM meta WHERE key = ?", [.text(key)]).first?.first?.text
    }

    func setMeta(_ key: String, _ value: String?) throws {
        if let value {
            try database.query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
        } else {
            try database.query("DELETE FROM meta WHERE key = ?", [.text(key)])
        }
    }

    // MARK: Vaults

    func vaults() throws -> [CachedVault] {
        try database.query("SELECT summary, cursor, highest, policy FROM vaults ORDER BY id").map { row in
            CachedVault(
                summary: try decoder.decode(VaultSummary.self, from: Data((row[0].text ?? "").utf8)), cursor: row[1].int ?? 0,
                highest: row[2].int ?? 0, policy: row[3].text.flatMap(ConflictPolicy.init(rawValue:))
            )
        }
    }

    func saveVault(_ summary: VaultSummary) throws {
        try database.query(
            "INSERT INTO vaults (id, summary) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET summary = excluded.summary",
            [.text(summary.id), .text(String(decoding: try encoder.encode(summary), as: UTF8.self))]
        )
    }

    func setCursor(vaultId: String, cursor: Int64, highest: Int64) throws {
        try database.query("UPDATE vaults SET cursor = ?, highest = MAX(highest, ?) WHERE id = ?", [.int(cursor), .int(highest), .text(vaultId)])
    }

    func setPolicy(vaultId: String, policy: ConflictPolicy?) throws {
        try database.query("UPDATE vaults SET policy = ? WHERE id = ?", [policy.map { .text($0.rawValue) } ?? .null, .text(vaultId)])
    }

    /// Forgets a vault this account lost, with its items.
    func removeVault(id: String) throws {
        try database.query("DELETE FROM items WHERE vault_id = ?", [.text(id)])
        try database.query("DELETE FROM vaults WHERE id = ?", [.text(id)])
    }

    // MARK: Items (the server's state as last seen)

    func saveItem(_ item: Item) throws {
        try database.query(
            """
            INSERT INTO items (id, vault_id, version, revision, deleted, data, created_at, updated_at, device_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET vault_id = excluded.vault_id, version = excluded.version, revision = excluded.revision,
                deleted = excluded.deleted, data = excluded.data, updated_at = excluded.updated_at, device_id = excluded.device_id
            WHERE excluded.version >= items.version
            """,
            [
                .text(item.id), .text(item.vaultId), .int(Int64(item.version)), .int(item.revision), .int(item.deleted ? 1 : 0),
                item.encryptedData.map { .text($0) } ?? .null, .int(item.createdAt.milliseconds), .int(item.updatedAt.milliseconds),
                item.deviceId.map { .text($0) } ?? .null,
            ]
        )
    }

    private static let itemColumns = "id, vault_id, version, revision, deleted, data, created_at, updated_at, device_id"

    private static func item(_ row: [LocalValue]) -> Item {
        Item(
            id: row[0].text ?? "", vaultId: row[1].text ?? "", encryptedData: row[5].text, version: Int(row[2].int ?? 0),
            revision: row[3].int ?? 0, deleted: row[4].int == 1, createdAt: Timestamp(milliseconds: row[6].int ?? 0),
            updatedAt: Timestamp(milliseconds: row[7].int ?? 0), deviceId: row[8].text
        )
    }

    func item(id: String) throws -> Item? {
        try database.query("SELECT \(Self.itemColumns) FROM items WHERE id = ?", [.text(id)]).first.map(Self.item)
    }

    func items(vaultId: String? = nil) throws -> [Item] {
        if let vaultId {
            return try database.query("SELECT \(Self.itemColumns) FROM items WHERE vault_id = ? ORDER BY id", [.text(vaultId)]).map(Self.item)
        }
        return try database.query("SELECT \(Self.itemColumns) FROM items ORDER BY id").map(Self.item)
    }

    // MARK: Offline queue

    /// Queues a change. The first queued change of an item carries the version it was made on;
    /// later ones wait for it (their base is filled in when it is applied).
    @discardableResult
    func enqueue(itemId: String, vaultId: String, serverVersion: Int, encryptedData: String?, at time: Timestamp) throws -> Int64 {
        let waiting = try database.query("SELECT 1 FROM pending WHERE item_id = ? LIMIT 1", [.text(itemId)]).isEmpty == false
        try database.query(
            "INSERT INTO pending (item_id, vault_id, base_version, data, queued_at) VALUES (?, ?, ?, ?, ?)",
            [.text(itemId), .text(vaultId), waiting ? .null : .int(Int64(serverVersion)), encryptedData.map { .text($0) } ?? .null, .int(time.milliseconds)]
        )
        return try database.query("SELECT last_insert_rowid()").first?.first?.int ?? 0
    }

    private static let pendingColumns = "seq, item_id, vault_id, base_version, data, queued_at"

    private static func pending(_ row: [LocalValue]) -> PendingChange {
        PendingChange(
            seq: row[0].int ?? 0, itemId: row[1].text ?? "", vaultId: row[2].text ?? "", baseVersion: row[3].int.map { Int($0) },
            encryptedData: row[4].text, queuedAt: Timestamp(milliseconds: row[5].int ?? 0)
        )
    }

    /// The changes ready to push: the oldest queued change of each item, in queue order.
    func readyChanges(limit: Int, excluding skipped: Set<String>) throws -> [PendingChange] {
        try database.query(
            "SELECT \(Self.pendingColumns) FROM pending WHERE base_version IS NOT NULL ORDER BY seq LIMIT ?", [.int(Int64(limit + skipped.count))]
        ).map(Self.pending).filter { !skipped.contains($0.itemId) }.prefix(limit).map { $0 }
    }

    func pending(itemId: String) throws -> [PendingChange] {
        try database.query("SELECT \(Self.pendingColumns) FROM pending WHERE item_id = ? ORDER BY seq", [.text(itemId)]).map(Self.pending)
    }

    func pending(vaultId: String) throws -> [PendingChange] {
        try database.query("SELECT \(Self.pendingColumns) FROM pending WHERE vault_id = ? ORDER BY seq", [.text(vaultId)]).map(Self.pending)
    }

    func pendingCount() throws -> Int {
        Int(try database.query("SELECT COUNT(*) FROM pending").first?.first?.int ?? 0)
    }

    /// Removes an applied change and lets the next queued change of the item follow `version`.
    func completed(_ change: PendingChange, newVersion: Int) throws {
        try database.query("DELETE FROM pending WHERE seq = ?", [.int(change.seq)])
        try database.query(
            "UPDATE pending SET base_version = ? WHERE seq = (SELECT MIN(seq) FROM pending WHERE item_id = ?)",
            [.int(Int64(newVersion)), .text(change.itemId)]
        )
    }

    func dropPending(itemId: String) throws {
        try database.query("DELETE FROM pending WHERE item_id = ?", [.text(itemId)])
    }

    // MARK: Conflicts

    @discardableResult
    func recordConflict(_ record: ConflictRecord) throws -> Int64 {
        try database.query(
            """
            INSERT INTO conflicts (item_id, vault_id, local_data, earlier, server_version, base_version, policy, outcome, state, detail, created_at, resolved_at,
                server_data, server_deleted, server_device, base_data, merge)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(record.itemId), .text(record.vaultId), record.localData.map { .text($0) } ?? .null,
                .text(String(decoding: try encoder.encode(record.earlier), as: UTF8.self)), .int(Int64(record.serverVersion)),
                .int(Int64(record.baseVersion)), .text(record.policy), .text(record.outcome), .text(record.state.rawValue),
                record.detail.map { .text($0) } ?? .null, .int(record.createdAt.milliseconds), record.resolvedAt.map { .int($0.milliseconds) } ?? .null,
                record.serverData.map { .text($0) } ?? .null, record.serverDeleted.map { .int($0 ? 1 : 0) } ?? .null,
                record.serverDeviceId.map { .text($0) } ?? .null, record.baseData.map { .text($0) } ?? .null,
                try record.merge.map { .text(String(decoding: try encoder.encode($0), as: UTF8.self)) } ?? .null,
            ]
        )
        return try database.query("SELECT last_insert_rowid()").first?.first?.int ?? 0
    }

    func conflicts(state: ConflictRecord.State? = nil) throws -> [ConflictRecord] {
        let columns = """
            id, item_id, vault_id, local_data, earlier, server_version, base_version, policy, outcome, state, detail, created_at, resolved_at,
            server_data, server_deleted, server_device, base_data, merge
            """
        let rows = if let state {
            try database.query("SELECT \(columns) FROM conflicts WHERE state = ? ORDER BY id", [.text(state.rawValue)])
        } else {
            try database.query("SELECT \(columns) FROM conflicts ORDER BY id")
        }
        return try rows.map { row in
            ConflictRecord(
                id: row[0].int ?? 0, itemId: row[1].text ?? "", vaultId: row[2].text ?? "", localData: row[3].text,
                earlier: try decoder.decode([String].self, from: Data((row[4].text ?? "[]").utf8)), serverVersion: Int(row[5].int ?? 0),
                baseVersion: Int(row[6].int ?? 0), policy: row[7].text ?? "", outcome: row[8].text ?? "",
                state: ConflictRecord.State(rawValue: row[9].text ?? "") ?? .open, detail: row[10].text,
                createdAt: Timestamp(milliseconds: row[11].int ?? 0), resolvedAt: row[12].int.map { Timestamp(milliseconds: $0) },
                serverData: row[13].text, serverDeleted: row[14].int.map { $0 != 0 }, serverDeviceId: row[15].text, baseData: row[16].text,
                merge: try row[17].text.map { try decoder.decode(MergeSummary.self, from: Data($0.utf8)) }
            )
        }
    }

    func openConflictCount() throws -> Int {
        Int(try database.query("SELECT COUNT(*) FROM conflicts WHERE state = 'open'").first?.first?.int ?? 0)
    }

    func settleConflict(id: Int64, outcome: String, at time: Timestamp) throws {
        try database.query("UPDATE conflicts SET state = 'resolved', outcome = ?, resolved_at = ? WHERE id = ?", [.text(outcome), .int(time.milliseconds), .int(id)])
    }

    // MARK: History

    func log(_ kind: String, vaultId: String? = nil, itemId: String? = nil, version: Int? = nil, detail: String? = nil, at time: Timestamp = .now) throws {
        try database.query(
            "INSERT INTO history (at, kind, vault_id, item_id, version, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [
                .int(time.milliseconds), .text(kind), vaultId.map { .text($0) } ?? .null, itemId.map { .text($0) } ?? .null,
                version.map { .int(Int64($0)) } ?? .null, detail.map { .text($0) } ?? .null,
            ]
        )
    }

    func history(limit: Int) throws -> [SyncHistoryEntry] {
        try database.query("SELECT id, at, kind, vault_id, item_id, version, detail FROM history ORDER BY id DESC LIMIT ?", [.int(Int64(limit))]).map { row in
            SyncHistoryEntry(
                id: row[0].int ?? 0, at: Timestamp(milliseconds: row[1].int ?? 0), kind: row[2].text ?? "", vaultId: row[3].text,
                itemId: row[4].text, version: row[5].int.map { Int($0) }, detail: row[6].text
            )
        }
    }
}
