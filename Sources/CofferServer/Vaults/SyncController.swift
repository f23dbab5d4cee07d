import CofferProtocol
import Foundation
import Hummingbird

/// The sync protocol (SPEC.md §7): pull by revision cursor, push of independent atomic changes,
/// status, and conflict resolution.
struct SyncController {
    let store: any Store
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp
    let vaults: VaultsController
    let access: VaultAuthorization
    let events: RealtimeEvents

    static let maximumPullLimit = 5000
    static let maximumPushChanges = 1000

    func addRoutes(to authenticated: RouterGroup<AppRequestContext>) {
        authenticated.post("sync/pull", use: pull)
        authenticated.post("sync/push", use: push)
        authenticated.get("sync/status", use: status)
        authenticated.post("sync/resolve", use: resolve)
    }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/sync/pull", [.post]), ("/api/sync/push", [.post]), ("/api/sync/status", [.get]), ("/api/sync/resolve", [.post]),
    ]

    @Sendable func pull(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(PullRequest.self, limit: configuration.maxRequestBody)
        let budget = body.limit ?? 1000
        guard (1...Self.maximumPullLimit).contains(budget) else {
            throw APIError.invalidField("limit", "must be 1–\(Self.maximumPullLimit)")
        }
        var known: [String: Int64] = [:]
        for (id, cursor) in body.vaults ?? [:] {
            guard let normalized = VaultIdentifiers.normalized(id) else { throw APIError.invalidField("vaults", "keys must be vault UUIDs") }
            guard Validation.counters.contains(cursor) else {
                throw APIError.invalidField("vaults", "cursors must be revisions (\(Validation.describe(Validation.counters)))")
            }
            known[normalized] = cursor
        }
        // Membership is read once, then each vault pages on its own: the answer is bounded by
        // `limit` items whatever the size of the account.
        // The session is checked by this read, in the same round trip (`AuthMiddleware.SessionCheck.byHandler`).
        guard let page = try await store.changes(for: identity, at: clock(), cursors: known, limit: budget) else { throw AuthMiddleware.sessionEnded }
        let memberships = page.memberships
        let readable = Set(memberships.map(\.id))
        let changes = page.changes
        let gained = memberships.filter { known[$0.id] == nil }
        let lost = known.keys.filter { !readable.contains($0) }.sorted()
        return JSONResponse.make(.ok, json: PullResponse(vaults: changes, gained: gained, lost: lost, serverTime: clock()).jsonBytes())
    }

    @Sendable func push(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(PushRequest.self, limit: configuration.maxSyncRequestBody)
        guard body.changes.count <= Self.maximumPushChanges else {
            throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "at most \(Self.maximumPushChanges) changes per push")
        }
        return try JSONResponse.ok(PushResponse(results: try await apply(body.changes, identity: identity)))
    }

    /// Validates and authorizes every change, applies the valid ones together, and tells open
    /// sockets about those applied. Used by HTTP pushes and by `ITEM_UPDATED` on `/ws`.
    func apply(_ changes: [PushChange], identity: AuthIdentity) async throws -> [PushResult] {
        var results: [PushResult?] = Array(repeating: nil, count: changes.count)
        var pending: [(index: Int, change: ItemChange)] = []
        var roles: [String: VaultRole?] = [:]
        for (index, change) in changes.enumerated() {
            do {
                pending.append((index, try await validated(change, identity: identity, roles: &roles)))
            } catch {
                results[index] = Self.rejection(change.itemId, error)
            }
        }
        let outcomes = try await store.applyItemChanges(pending.map(\.change))
        var applied: [Item] = []
        for ((index, change), outcome) in zip(pending, outcomes) {
            switch outcome {
            case .applied(let item):
                results[index] = PushResult(itemId: change.itemId, status: .applied, version: item.version, revision: item.revision)
                applied.append(item)
            case .conflict(let current, let base):
                results[index] = PushResult(itemId: change.itemId, status: .conflict, current: current, base: base)
            case .notFound:
                results[index] = Self.rejection(change.itemId, VaultAuthorization.notFound("item"))
            case .staleKey(let current):
                results[index] = Self.rejection(change.itemId, APIError.staleKey(current: current))
            }
        }
        await events.itemsChanged(applied)
        return results.compactMap { $0 }
    }

    /// Checks one change's shape and the caller's right to write it.
    private func validated(_ change: PushChange, identity: AuthIdentity, roles: inout [String: VaultRole?]) async throws -> ItemChange {
        let vaultId = try VaultIdentifiers.require(change.vaultId, field: "vaultId")
        let itemId = try VaultIdentifiers.require(change.itemId, field: "itemId")
        guard Validation.versions.contains(change.baseVersion) else {
            throw APIError.invalidField("baseVersion", "must be 0 (create) or the version changed (\(Validation.describe(Validation.versions)))")
        }
        let deleted = change.deleted ?? false
        if deleted {
            guard change.baseVersion > 0 else { throw APIError.invalidField("deleted", "needs the baseVersion of the item deleted") }
            // A deletion's tombstone, stored like item data (clients before tombstones send none).
            if let data = change.encryptedData { try VaultsController.requireEnvelope(data, field: "encryptedData", limit: configuration.maxItemSize) }
        } else {
            guard let data = change.encryptedData else { throw APIError.invalidField("encryptedData", "is required unless deleted is true") }
            try VaultsController.requireEnvelope(data, field: "encryptedData", limit: configuration.maxItemSize)
        }
        if roles[vaultId] == nil {
            roles[vaultId] = .some(try await store.vault(id: vaultId, userId: identity.userId)?.role)
        }
        guard let role = roles[vaultId] ?? nil else { throw VaultAuthorization.notFound("vault") }
        guard role >= .write else {
            throw APIError(.forbidden, code: ErrorCode.forbidden, message: "your role in this vault (\(role.rawValue)) does not allow writing")
        }
        return vaults.change(vaultId: vaultId, itemId: itemId, baseVersion: change.baseVersion, data: change.encryptedData, deleted: deleted, identity: identity)
    }

    private static func rejection(_ itemId: String, _ error: any Error) -> PushResult {
        let apiError = error as? APIError ?? (error as? StoreError).map(APIError.init) ?? .internalError
        return PushResult(itemId: itemId, status: .rejected, error: ErrorBody(error: apiError.message, code: apiError.code))
    }

    @Sendable func status(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let ids = try await store.vaults(userId: identity.userId).map(\.id)
        let statuses = try await store.vaultStatus(ids: ids).map {
            VaultSyncStatus(vaultId: $0.vaultId, revision: $0.revision, itemCount: $0.itemCount, lastChange: $0.lastChange)
        }
        return try JSONResponse.ok(SyncStatusResponse(vaults: statuses, serverTime: clock()))
    }

    @Sendable func resolve(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(ResolveRequest.self, limit: configuration.maxItemSize + 64 * 1024)
        let (item, _) = try await access.requireItem(.write, itemId: body.itemId, userId: identity.userId)
        try VaultsController.requireBaseVersion(body.baseVersion)
        switch body.strategy {
        case "server":
            guard item.version == body.baseVersion else {
                return try vaults.respond(.conflict(current: item, base: nil))
            }
            try await store.recordServerResolution(itemId: item.id, version: item.version, deviceId: identity.deviceId, at: clock())
            return try JSONResponse.ok(item)
        case "client":
            let deleted = body.deleted ?? false
            if let data = body.encryptedData {
                try VaultsController.requireEnvelope(data, field: "encryptedData", limit: configuration.maxItemSize)
            } else if !deleted {
                throw APIError.invalidField("encryptedData", "is required unless deleted is true")
            }
            let change = vaults.change(
                vaultId: item.vaultId, itemId: item.id, baseVersion: body.baseVersion, data: body.encryptedData, deleted: deleted,
                identity: identity, resolution: "client"
            )
            return try vaults.respond(try await vaults.apply(change))
        default:
            throw APIError.invalidField("strategy", "must be client or server")
        }
    }
}
