import CofferCrypto
import CofferProtocol
import Foundation
import Hummingbird

/// Vaults and items (SPEC.md §6): encrypted blobs with versions, tombstones and history.
struct VaultsController {
    let store: any Store
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp
    let audit: AuditLog
    let access: VaultAuthorization
    let events: RealtimeEvents

    func addRoutes(to authenticated: RouterGroup<AppRequestContext>) {
        authenticated.get("vaults", use: listVaults)
        authenticated.post("vaults", use: createVault)
        authenticated.get("vaults/:id", use: getVault)
        authenticated.put("vaults/:id", use: updateVault)
        authenticated.delete("vaults/:id", use: deleteVault)
        authenticated.get("vaults/:id/items", use: listItems)
        authenticated.post("vaults/:id/items", use: createItem)
        authenticated.get("items/:id", use: getItem)
        authenticated.put("items/:id", use: updateItem)
        authenticated.delete("items/:id", use: deleteItem)
        authenticated.get("items/:id/versions", use: versions)
        authenticated.post("items/:id/versions", use: versions)
        authenticated.post("items/:id/restore", use: restore)
    }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/vaults", [.get, .post]), ("/api/vaults/:id", [.get, .put, .delete]), ("/api/vaults/:id/items", [.get, .post]),
        ("/api/items/:id", [.get, .put, .delete]), ("/api/items/:id/versions", [.get, .post]), ("/api/items/:id/restore", [.post]),
    ]

    private var itemBodyLimit: Int { configuration.maxItemSize + 64 * 1024 }

    // MARK: Vaults

    @Sendable func listVaults(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        return try JSONResponse.ok(VaultsResponse(vaults: try await store.vaults(userId: identity.userId)))
    }

    @Sendable func createVault(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(CreateVaultRequest.self, limit: configuration.maxVaultMetadataSize * 2 + 16 * 1024)
        let id = try body.id.map { try VaultIdentifiers.require($0, field: "id") } ?? UUID().uuidString.lowercased()
        try Self.requireEnvelope(body.encryptedMetadata, field: "encryptedMetadata", limit: configuration.maxVaultMetadataSize)
        try Self.requireEnvelope(body.wrappedKey, field: "wrappedKey", limit: 4096)
        let vault = try await store.createVault(
            id: id, ownerId: identity.userId, encryptedMetadata: body.encryptedMetadata, wrappedKey: body.wrappedKey, at: clock()
        )
        await audit.record(AuditEventType.vaultCreated, userId: identity.userId, deviceId: identity.deviceId, detail: id)
        return try JSONResponse.make(.created, vault)
    }

    @Sendable func getVault(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        return try JSONResponse.ok(try await access.require(.read, vaultId: try context.parameters.require("id"), userId: identity.userId))
    }

    @Sendable func updateVault(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.admin, vaultId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(UpdateVaultRequest.self, limit: configuration.maxVaultMetadataSize + 16 * 1024)
        try Self.requireEnvelope(body.encryptedMetadata, field: "encryptedMetadata", limit: configuration.maxVaultMetadataSize)
        try await store.updateVaultMetadata(
            id: vault.id, encryptedMetadata: body.encryptedMetadata, keyEpoch: Envelope.keyEpoch(of: body.encryptedMetadata) ?? Envelope.legacyEpoch, at: clock()
        )
        let updated = try await access.require(.read, vaultId: vault.id, userId: identity.userId)
        await events.vaultUpdated(vaultId: vault.id, revision: updated.revision)
        return try JSONResponse.ok(updated)
    }

    @Sendable func deleteVault(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.owner, vaultId: try context.parameters.require("id"), userId: identity.userId)
        let members = try await store.members(vaultId: vault.id).map(\.userId).filter { $0 != identity.userId }
        try await store.deleteVault(id: vault.id)
        await events.accessRevoked(vaultId: vault.id, userIds: members)
        await audit.record(AuditEventType.vaultDeleted, userId: identity.userId, deviceId: identity.deviceId, detail: vault.id)
        return try JSONResponse.ok(SuccessResponse())
    }

    // MARK: Items

    @Sendable func listItems(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.read, vaultId: try context.parameters.require("id"), userId: identity.userId)
        let query = request.uri.queryParameters
        let since = try Self.integer(query["since"], name: "since", default: 0, range: Validation.counters)
        let limit = Int(try Self.integer(query["limit"], name: "limit", default: 500, range: 1...5000))
        let items = try await store.items(vaultId: vault.id, since: since, limit: limit + 1)
        let page = Array(items.prefix(limit))
        return try JSONResponse.ok(ItemsPage(items: page, cursor: page.last?.revision ?? since, hasMore: items.count > limit))
    }

    @Sendable func createItem(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.write, vaultId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(CreateItemRequest.self, limit: itemBodyLimit)
        let itemId = try body.id.map { try VaultIdentifiers.require($0, field: "id") } ?? UUID().uuidString.lowercased()
        try Self.requireEnvelope(body.encryptedData, field: "encryptedData", limit: configuration.maxItemSize)
        let outcome = try await apply(
            change(vaultId: vault.id, itemId: itemId, baseVersion: 0, data: body.encryptedData, identity: identity)
        )
        return try respond(outcome, created: true)
    }

    @Sendable func getItem(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (item, _) = try await access.requireItem(.read, itemId: try context.parameters.require("id"), userId: identity.userId)
        return try JSONResponse.ok(item)
    }

    @Sendable func updateItem(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (item, _) = try await access.requireItem(.write, itemId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(UpdateItemRequest.self, limit: itemBodyLimit)
        try Self.requireBaseVersion(body.baseVersion)
        try Self.requireEnvelope(body.encryptedData, field: "encryptedData", limit: configuration.maxItemSize)
        let outcome = try await apply(
            change(vaultId: item.vaultId, itemId: item.id, baseVersion: body.baseVersion, data: body.encryptedData, identity: identity)
        )
        return try respond(outcome)
    }

    @Sendable func deleteItem(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (item, _) = try await access.requireItem(.write, itemId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(DeleteItemRequest.self, limit: configuration.maxRequestBody)
        try Self.requireBaseVersion(body.baseVersion)
        // The tombstone is stored opaquely like any item data (clients before tombstones send none).
        if let data = body.encryptedData { try Self.requireEnvelope(data, field: "encryptedData", limit: configuration.maxItemSize) }
        let outcome = try await apply(
            change(vaultId: item.vaultId, itemId: item.id, baseVersion: body.baseVersion, data: body.encryptedData, deleted: true, identity: identity)
        )
        return try respond(outcome)
    }

    @Sendable func versions(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (item, _) = try await access.requireItem(.read, itemId: try context.parameters.require("id"), userId: identity.userId)
        return try JSONResponse.ok(ItemVersionsResponse(versions: try await store.itemVersions(itemId: item.id)))
    }

    @Sendable func restore(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (item, _) = try await access.requireItem(.write, itemId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(RestoreItemRequest.self, limit: configuration.maxRequestBody)
        guard body.version >= 1, Validation.versions.contains(body.version) else {
            throw APIError.invalidField("version", "must be a kept version of the item (1…\(Validation.maximumCounter))")
        }
        guard let old = try await store.itemVersions(itemId: item.id).first(where: { $0.version == body.version }) else {
            throw APIError(.notFound, code: ErrorCode.notFound, message: "version \(body.version) of this item is not kept")
        }
        // Rolling back writes the old content as a new version, so nothing in between is lost.
        // Kept for clients before version-bound items: current clients restore by writing the old
        // content sealed again for the new version, since this copy does not open as another version.
        let restore = change(vaultId: item.vaultId, itemId: item.id, baseVersion: item.version, data: old.encryptedData, deleted: old.deleted, identity: identity)
        return try respond(try await apply(restore))
    }

    // MARK: Helpers

    /// Applies one change and tells open sockets when it was applied.
    func apply(_ change: ItemChange) async throws -> ItemChangeOutcome {
        let outcome = try await store.applyItemChange(change)
        if case .applied(let item) = outcome { await events.itemsChanged([item]) }
        return outcome
    }

    /// One change to apply; `deleted` defaults to "no data" (a deletion may carry its tombstone as data).
    func change(vaultId: String, itemId: String, baseVersion: Int, data: String?, deleted: Bool? = nil, identity: AuthIdentity, resolution: String? = nil) -> ItemChange {
        ItemChange(
            vaultId: vaultId, itemId: itemId, baseVersion: baseVersion, encryptedData: data, deleted: deleted ?? (data == nil),
            deviceId: identity.deviceId, at: clock(), versionsKept: configuration.itemVersionsKept, resolution: resolution
        )
    }

    func respond(_ outcome: ItemChangeOutcome, created: Bool = false) throws -> Response {
        switch outcome {
        case .applied(let item):
            return try JSONResponse.make(created && item.version == 1 ? .created : .ok, item)
        case .conflict(let current, let base):
            return try JSONResponse.make(
                .conflict,
                ConflictResponse(
                    error: created
                        ? "an item with this id already exists"
                        : "the item changed since version you based this on; merge with the current version and retry",
                    current: current, base: base
                )
            )
        case .notFound:
            throw VaultAuthorization.notFound("item")
        case .staleKey(let current):
            throw APIError.staleKey(current: current)
        }
    }

    static func requireEnvelope(_ value: String, field: String, limit: Int) throws {
        guard value.utf8.count <= limit else {
            throw APIError(.contentTooLarge, code: ErrorCode.itemTooLarge, message: "field '\(field)' is larger than \(limit) bytes")
        }
        guard Envelope.isWellFormed(value) else {
            throw APIError(.unprocessableContent, code: ErrorCode.notCiphertext, message: "field '\(field)' must be a Coffer envelope (base64url ciphertext)")
        }
    }

    static func requireBaseVersion(_ version: Int) throws {
        // Bounded here so that no arithmetic on it (the version it becomes) can overflow.
        guard version >= 1, Validation.versions.contains(version) else {
            throw APIError.invalidField("baseVersion", "must be the item version the change is based on (1…\(Validation.maximumCounter))")
        }
    }

    static func integer(_ text: Substring?, name: String, default value: Int64, range: ClosedRange<Int64>) throws -> Int64 {
        guard let text else { return value }
        guard let number = Validation.integer(text, in: range) else {
            throw APIError.invalidQuery(name, "must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return number
    }
}
