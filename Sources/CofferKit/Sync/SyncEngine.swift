import CofferProtocol
import Foundation

/// How a `SyncEngine` behaves.
public struct SyncConfiguration: Sendable {
    /// The policy for vaults without one of their own.
    public var defaultPolicy: ConflictPolicy = .merge
    /// What a merge falls back to when both sides changed the same field.
    public var mergeFallback: ConflictPolicy = .lastWriteWins
    /// Items per pull page.
    public var pageSize = 1000
    /// Changes per push request.
    public var pushBatch = 500
    public var retry = RetryPolicy()
    /// How often `watch` syncs when nothing else triggers it.
    public var timerInterval: Duration = .seconds(60)
    /// The time written into edited items (last-write-wins compares it); tests use a logical clock.
    public var clock: @Sendable () -> Timestamp = { .now }

    public init() {}
}

/// An item as this device sees it: the server's version with any queued local change on top.
public struct LocalItem: Sendable, Equatable {
    /// `item.version` is the server version the local state builds on (0 for an item never pushed).
    public var item: DecryptedItem
    /// Local changes of this item not yet accepted by the server.
    public var pendingChanges: Int
}

/// The offline-first sync engine (SPEC.md §7, §10): local changes go into a durable queue
/// first, then a round pulls the server's changes from stored cursors and pushes the queue,
/// settling conflicts by policy. Every answer is checked for rollback before anything is
/// written. One engine per account and cache file.
public actor SyncEngine {
    let cache: LocalCache
    let transport: any SyncTransport
    let vaultClient: VaultClient
    public let deviceId: String
    public let configuration: SyncConfiguration
    /// Unwrapped vault keys, by vault id.
    var keys: [String: DecryptedVault] = [:]
    var state: SyncStatus.State = .idle
    var lastError: String?
    var statusObservers: [UUID: AsyncStream<SyncStatus>.Continuation] = [:]
    var eventObservers: [UUID: AsyncStream<SyncEvent>.Continuation] = [:]
    /// Set by a `VAULT_UPDATED` event: the next round re-reads vault summaries.
    var vaultsStale = false
    /// Wakes the background loop of `watch`.
    let triggers: AsyncStream<Void>
    let trigger: AsyncStream<Void>.Continuation
    /// Seals rotated keys to members (with this account's pinned contacts); finishes recorded revokes.
    let sharing: SharingClient?

    /// Opens (or creates) the cache at `cachePath` for the client's logged-in account.
    public init(
        client: CofferClient, deviceId: String, cachePath: String, transport: (any SyncTransport)? = nil, configuration: SyncConfiguration = SyncConfiguration(),
        contacts: ContactStore? = nil
    ) throws {
        cache = try LocalCache(path: cachePath)
        sharing = contacts.map { SharingClient(vaults: VaultClient(client: client), contacts: $0) }
        self.transport = transport ?? HTTPSyncTransport(client: client)
        vaultClient = VaultClient(client: client)
        self.deviceId = deviceId
        self.configuration = configuration
        (triggers, trigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        if let stored = try cache.meta("state").flatMap(SyncStatus.State.init(rawValue:)), stored != .syncing { state = stored }
        lastError = try cache.meta("lastError")
    }

    /// The engine of the account logged in on `client`, with its cache `cache-<user id>.sqlite` in `directory`.
    public static func open(client: CofferClient, directory: URL, transport: (any SyncTransport)? = nil, configuration: SyncConfiguration = SyncConfiguration()) async throws -> SyncEngine {
        guard let session = await client.session else { throw CofferError.notLoggedIn }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = directory.appendingPathComponent("cache-\(session.userId).sqlite").path
        // Ciphertext only, but still nobody else's business. Created 0600 before SQLite opens it,
        // so that its journal files (which SQLite gives the same mode) are 0600 from the start.
        if !FileManager.default.fileExists(atPath: path),
           !FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) {
            throw CofferError.localStorage("cannot create the local cache \(path)")
        }
        return try SyncEngine(
            client: client, deviceId: session.deviceId, cachePath: path, transport: transport, configuration: configuration,
            contacts: ContactStore(directory: directory, userId: session.userId)
        )
    }

    // MARK: Status and events

    public func status() throws -> SyncStatus {
        SyncStatus(
            state: state, pending: try cache.pendingCount(), lastSync: try cache.meta("lastSync").flatMap { Int64($0) }.map(Timestamp.init(milliseconds:)),
            openConflicts: try cache.openConflictCount(), lastError: state == .error || state == .offline ? lastError : nil,
            refusedVaults: try cache.refusedVaults(), keptVaults: try cache.keptVaultIds().sorted()
        )
    }

    /// The status now and after every change of it.
    public func statusUpdates() -> AsyncStream<SyncStatus> {
        let (stream, continuation) = AsyncStream.makeStream(of: SyncStatus.self, bufferingPolicy: .bufferingNewest(16))
        let id = UUID()
        statusObservers[id] = continuation
        if let now = try? status() { continuation.yield(now) }
        continuation.onTermination = { _ in Task { await self.removeStatusObserver(id) } }
        return stream
    }

    /// What rounds do, as they do it.
    public func events() -> AsyncStream<SyncEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: SyncEvent.self, bufferingPolicy: .bufferingNewest(4096))
        let id = UUID()
        eventObservers[id] = continuation
        continuation.onTermination = { _ in Task { await self.removeEventObserver(id) } }
        return stream
    }

    private func removeStatusObserver(_ id: UUID) { statusObservers[id] = nil }
    private func removeEventObserver(_ id: UUID) { eventObservers[id] = nil }

    func emit(_ event: SyncEvent) {
        for observer in eventObservers.values { observer.yield(event) }
    }

    /// Changes the state, and remembers it in the cache for the next process (`coffer status`).
    /// `syncing` is not stored: it means nothing to a process that did not start the round.
    func setState(_ newState: SyncStatus.State, error: String? = nil, lastSync: Timestamp? = nil) {
        let changed = newState != state || error != lastError
        state = newState
        lastError = error
        if newState != .syncing, changed || lastSync != nil {
            try? cache.refetchableTransaction {
                if let lastSync { try cache.setMeta("lastSync", String(lastSync.milliseconds)) }
                try cache.setMeta("state", newState.rawValue)
                try cache.setMeta("lastError", error)
            }
        }
        publishStatus()
    }

    func publishStatus() {
        guard !statusObservers.isEmpty, let now = try? status() else { return }
        for observer in statusObservers.values { observer.yield(now) }
    }

    /// Conflicts met by this device, open ones first when `state` is nil.
    public func conflicts(state: ConflictRecord.State? = nil) throws -> [ConflictRecord] {
        try cache.conflicts(state: state)
    }

    /// The most recent sync history, newest first.
    public func history(limit: Int = 50) throws -> [SyncHistoryEntry] {
        try cache.history(limit: limit)
    }

    /// Sets (or clears) this device's conflict policy for a vault.
    public func setPolicy(_ policy: ConflictPolicy?, vaultId: String) throws {
        guard try cache.vaults().contains(where: { $0.summary.id == vaultId }) else { throw SyncError.unknownVault(vaultId) }
        try cache.setPolicy(vaultId: vaultId, policy: policy)
    }

    public func policy(vaultId: String) throws -> ConflictPolicy {
        try cache.vaults().first { $0.summary.id == vaultId }?.policy ?? configuration.defaultPolicy
    }

    // MARK: Keys

    func vault(_ id: String) async throws -> DecryptedVault {
        if let known = keys[id] { return known }
        guard let cached = try cache.vaults().first(where: { $0.summary.id == id }) else { throw SyncError.unknownVault(id) }
        return try await opened(cached.summary)
    }

    /// The vault with its key unwrapped, once per engine.
    private func opened(_ summary: VaultSummary) async throws -> DecryptedVault {
        if let known = keys[summary.id] { return known }
        return try await adopt(summary)
    }

    /// Every vault in the cache, with its key unwrapped.
    public func vaults() async throws -> [DecryptedVault] {
        var result: [DecryptedVault] = []
        for cached in try cache.vaults() { result.append(try await opened(cached.summary)) }
        return result
    }

    /// A vault this device may change items in; queuing a change the server would refuse helps nobody.
    func writableVault(_ id: String) async throws -> DecryptedVault {
        let vault = try await vault(id)
        guard vault.summary.role >= .write else { throw SyncError.readOnly(vaultName: vault.metadata.name, role: vault.summary.role.rawValue) }
        if try cache.keptVaultIds().contains(id) { throw SyncError.accessLost(vaultName: vault.metadata.name) }
        try await requireAccepted(vault)
        return vault
    }

    /// Opens an item with whichever key of the vault it names; a key this device has not seen
    /// yet (a rotation elsewhere) is fetched once from the server and checked like any other.
    /// `binding` is the version the server lists it at, or `.queued` for this device's queue.
    func open(_ data: String, itemId: String, vaultId: String, binding: VaultCrypto.ItemBinding) async throws -> ItemDocument {
        try await withKeys(vaultId) { try VaultCrypto.openItem(data, itemId: itemId, vaultId: vaultId, binding: binding, keys: $0) }
    }

    /// `open`, for data that may be absent (a deletion).
    func open(optional data: String?, itemId: String, vaultId: String, binding: VaultCrypto.ItemBinding) async throws -> ItemDocument? {
        guard let data else { return nil }
        return try await open(data, itemId: itemId, vaultId: vaultId, binding: binding)
    }

    /// Checks the server's deletion of `item`: its tombstone must open for the item and version.
    /// A bare deletion (no tombstone) is taken only when this device has nothing of the item to
    /// lose (never saw it, or holds it deleted already): deletions written before tombstones
    /// were sealed have none. Otherwise it is refused and nothing changes locally.
    func verifyDeletion(_ item: Item, held: Item?) async throws {
        guard let data = item.encryptedData else {
            let pending = try cache.pending(itemId: item.id)
            if (held == nil || held?.deleted == true) && pending.isEmpty { return }
            throw CofferError.tampered(
                "the server says item \(item.id) of vault \(item.vaultId) was deleted (version \(item.version)) but sends no sealed tombstone; "
                    + "the deletion was refused and the local copy kept"
            )
        }
        _ = try await withKeys(item.vaultId) { try VaultCrypto.openTombstone(data, itemId: item.id, vaultId: item.vaultId, version: item.version, keys: $0) }
    }

    /// Runs `body` with the vault's key ring, once more after fetching the vault when the data
    /// names a key epoch newer than any this device holds.
    func withKeys<T>(_ vaultId: String, _ body: (VaultKeyRing) throws -> T) async throws -> T {
        do {
            return try body(try await keyRing(vaultId))
        } catch CofferError.unknownKeyEpoch(_, let epoch, let known) where epoch > known && keys[vaultId] != nil {
            try await refreshVault(vaultId)
            return try body(try await keyRing(vaultId))
        }
    }

    // MARK: Local reads (work offline)

    /// The items of a vault as this device sees them, queued changes included.
    public func items(vaultId: String, includeDeleted: Bool = false) async throws -> [LocalItem] {
        let server = try cache.items(vaultId: vaultId)
        let pending = Dictionary(grouping: try cache.pending(vaultId: vaultId), by: \.itemId)
        var result: [LocalItem] = []
        for item in server {
            result.append(try await overlay(item, pending: pending[item.id] ?? []))
        }
        let known = Set(server.map(\.id))
        for (itemId, changes) in pending where !known.contains(itemId) {
            result.append(try await overlay(nil, pending: changes))
        }
        return result.filter { includeDeleted || !$0.item.item.deleted }.sorted { $0.item.item.id < $1.item.item.id }
    }

    /// One item as this device sees it, or nil when the cache does not know it.
    public func item(id: String) async throws -> LocalItem? {
        let pending = try cache.pending(itemId: id)
        let server = try cache.item(id: id)
        guard server != nil || !pending.isEmpty else { return nil }
        return try await overlay(server, pending: pending)
    }

    private func overlay(_ server: Item?, pending: [PendingChange]) async throws -> LocalItem {
        guard let last = pending.last else {
            let item = server!
            // A deletion's data is its tombstone, checked when it was pulled.
            let document = item.deleted ? nil : try await open(optional: item.encryptedData, itemId: item.id, vaultId: item.vaultId, binding: .version(item.version))
            return LocalItem(item: DecryptedItem(item: item, document: document), pendingChanges: 0)
        }
        var item = server ?? Item(
            id: last.itemId, vaultId: last.vaultId, encryptedData: nil, version: 0, revision: 0, deleted: false,
            createdAt: pending[0].queuedAt, updatedAt: last.queuedAt, deviceId: deviceId
        )
        item.encryptedData = last.encryptedData
        item.deleted = last.deleted
        item.updatedAt = last.queuedAt
        let document = try await open(optional: last.encryptedData, itemId: item.id, vaultId: item.vaultId, binding: .queued)
        return LocalItem(item: DecryptedItem(item: item, document: document), pendingChanges: pending.count)
    }

    // MARK: Local writes (queued durably, then pushed)

    /// Queues a new item; it is on disk when this returns, and pushed by the next round.
    @discardableResult
    public func addItem(_ document: ItemDocument, vaultId: String, id: String = UUID().uuidString.lowercased()) async throws -> LocalItem {
        var document = document
        document.modifiedAt = configuration.clock()
        document.modifiedBy = deviceId
        // Queued bound to no version: the push seals it for the version it gets (`push`).
        let sealed = try VaultCrypto.sealQueued(document, itemId: id, vaultId: vaultId, key: try await writableVault(vaultId).key)
        try cache.transaction {
            try cache.enqueue(itemId: id, vaultId: vaultId, serverVersion: 0, encryptedData: sealed, at: document.modifiedAt)
            try cache.log("queued", vaultId: vaultId, itemId: id, detail: "create")
        }
        changedLocally()
        return try await item(id: id)!
    }

    /// Queues new content for an item.
    @discardableResult
    public func editItem(id: String, document: ItemDocument) async throws -> LocalItem {
        guard let current = try await item(id: id) else { throw SyncError.unknownItem(id) }
        var document = document
        document.modifiedAt = configuration.clock()
        document.modifiedBy = deviceId
        let vaultId = current.item.item.vaultId
        let sealed = try VaultCrypto.sealQueued(document, itemId: id, vaultId: vaultId, key: try await writableVault(vaultId).key)
        try cache.transaction {
            try cache.enqueue(itemId: id, vaultId: vaultId, serverVersion: current.item.item.version, encryptedData: sealed, at: document.modifiedAt)
            try cache.log("queued", vaultId: vaultId, itemId: id, detail: "edit")
        }
        changedLocally()
        return try await item(id: id)!
    }

    /// Queues the deletion of an item (the server keeps its history). The queue holds no data for
    /// it; the push seals its tombstone (time of the deletion, this device) for its version.
    public func deleteItem(id: String) async throws {
        guard let current = try await item(id: id) else { throw SyncError.unknownItem(id) }
        let vaultId = current.item.item.vaultId
        _ = try await writableVault(vaultId)
        try cache.transaction {
            try cache.enqueue(itemId: id, vaultId: vaultId, serverVersion: current.item.item.version, encryptedData: nil, at: configuration.clock())
            try cache.log("queued", vaultId: vaultId, itemId: id, detail: "delete")
        }
        changedLocally()
    }

    private func changedLocally() {
        trigger.yield()
        publishStatus()
    }

    /// Asks the background loop (`watch`) for a round soon.
    public func requestSync() {
        trigger.yield()
    }
}
