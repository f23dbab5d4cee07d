import CofferCrypto
import CofferProtocol
import Foundation
import Hummingbird

/// Sharing (SPEC.md §8): user lookup, shares, members, and key rotation after a revoke. The
/// server only stores the wrapped vault keys clients send; it cannot open them.
struct SharesController {
    let store: any Store
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp
    let audit: AuditLog
    let access: VaultAuthorization
    let events: RealtimeEvents

    func addRoutes(to authenticated: RouterGroup<AppRequestContext>) {
        authenticated.get("users/lookup", use: lookup)
        authenticated.post("vaults/:id/share", use: share)
        authenticated.get("vaults/:id/members", use: members)
        authenticated.post("vaults/:id/keys", use: rotateKey)
        authenticated.get("shares", use: list)
        authenticated.put("shares/:id", use: changeRole)
        authenticated.delete("shares/:id", use: revoke)
    }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/users/lookup", [.get]), ("/api/vaults/:id/share", [.post]), ("/api/vaults/:id/members", [.get]),
        ("/api/vaults/:id/keys", [.post]), ("/api/shares", [.get]), ("/api/shares/:id", [.put, .delete]),
    ]

    @Sendable func lookup(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard let raw = request.uri.queryParameters["email"].map(String.init) else { throw APIError.invalidQuery("email", "is required") }
        guard let email = try? AuthController.validEmail(raw) else { throw APIError.invalidQuery("email", "must be an email address") }
        if case .limited(let retryAfter) = try await store.consumeRateLimit(
            bucket: "lookup:" + identity.userId, limits: configuration.lookupLimits, at: clock()
        ) {
            throw APIError.rateLimited(retryAfter: retryAfter, "too many user lookups")
        }
        guard let account = try await store.account(email: email) else { throw Self.noSuchUser }
        return try JSONResponse.ok(
            UserLookupResponse(
                userId: account.id, email: account.email, publicKey: account.publicKey,
                identityKey: account.identity?.identityKey, sharingKeyCertificate: account.identity?.sharingKeyCertificate
            )
        )
    }

    @Sendable func share(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(ShareVaultRequest.self, limit: 64 * 1024)
        let vault = try await access.requireSharing(body.role, vaultId: try context.parameters.require("id"), userId: identity.userId)
        try Self.requireWrappedKey(body.wrappedKey, field: "wrappedKey")
        try Self.requireGrant(body.grant)
        if let epoch = body.keyEpoch, !Validation.keyEpochs.contains(epoch) {
            throw APIError.invalidField("keyEpoch", "must be the vault's current key epoch (\(Validation.describe(Validation.keyEpochs)))")
        }
        let recipient: AccountRecord?
        switch (body.email, body.userId) {
        case (let email?, nil): recipient = try await store.account(email: try AuthController.validEmail(email))
        case (nil, let userId?): recipient = try await store.account(id: userId)
        default: throw APIError.invalidField("email", "give exactly one of email or userId")
        }
        guard let recipient else { throw Self.noSuchUser }
        guard recipient.id != identity.userId else { throw APIError.invalidField("email", "cannot share a vault with yourself") }
        guard let sharer = try await store.account(id: identity.userId) else { throw StoreError.userNotFound }
        let now = clock()
        let record = Share(
            id: UUID().uuidString.lowercased(), vaultId: vault.id, userId: recipient.id, email: recipient.email, role: body.role,
            grantedBy: identity.userId, grantedByEmail: sharer.email, createdAt: now, updatedAt: now
        )
        try await store.addShare(record, wrappedKey: body.wrappedKey, keyEpoch: body.keyEpoch ?? 1, grant: body.grant)
        await auditBothSides(AuditEventType.shareGranted, record, identity: identity)
        return try JSONResponse.make(.created, record)
    }

    @Sendable func members(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.read, vaultId: try context.parameters.require("id"), userId: identity.userId)
        return try JSONResponse.ok(VaultMembersResponse(members: try await store.members(vaultId: vault.id)))
    }

    @Sendable func rotateKey(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let vault = try await access.require(.admin, vaultId: try context.parameters.require("id"), userId: identity.userId)
        var request = request
        let body = try await request.decodeJSON(RotateVaultKeyRequest.self, limit: configuration.maxVaultMetadataSize + 1024 * 1024)
        try VaultsController.requireEnvelope(body.encryptedMetadata, field: "encryptedMetadata", limit: configuration.maxVaultMetadataSize)
        for (userId, key) in body.wrappedKeys {
            try Self.requireWrappedKey(key, field: "wrappedKeys.\(userId)")
        }
        let keyEpoch = body.keyEpoch ?? vault.keyEpoch + 1
        guard keyEpoch >= 2, Validation.keyEpochs.contains(keyEpoch) else { throw APIError.invalidField("keyEpoch", "must be the vault's current key epoch plus one") }
        if let history = body.keyHistory { try VaultsController.requireEnvelope(history, field: "keyHistory", limit: configuration.maxVaultMetadataSize) }
        let removing = try (body.removeUserIds ?? []).map { try VaultIdentifiers.require($0, field: "removeUserIds") }
        guard !removing.contains(vault.ownerId) else { throw APIError.invalidField("removeUserIds", "the owner cannot be removed from a vault") }
        if !removing.isEmpty {
            // Removing members is the admin's right over shares below admin, as with DELETE /api/shares/:id.
            for share in try await store.shares(userId: identity.userId).outgoing where share.vaultId == vault.id && removing.contains(share.userId) {
                _ = try await access.requireShare(id: share.id, changingTo: nil, userId: identity.userId)
            }
        }
        let removed = try await store.rotateVaultKey(
            vaultId: vault.id, sealedBy: identity.userId, encryptedMetadata: body.encryptedMetadata, wrappedKeys: body.wrappedKeys,
            keyEpoch: keyEpoch, keyHistory: body.keyHistory, removing: removing, at: clock()
        )
        if !removed.isEmpty { await events.accessRevoked(vaultId: vault.id, userIds: removed.map(\.userId)) }
        for share in removed { await auditBothSides(AuditEventType.shareRevoked, share, identity: identity) }
        let rotated = try await access.require(.read, vaultId: vault.id, userId: identity.userId)
        await events.vaultUpdated(vaultId: vault.id, revision: rotated.revision)
        return try JSONResponse.ok(rotated)
    }

    @Sendable func list(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let shares = try await store.shares(userId: identity.userId)
        return try JSONResponse.ok(SharesResponse(incoming: shares.incoming, outgoing: shares.outgoing))
    }

    @Sendable func changeRole(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(UpdateShareRequest.self, limit: 16 * 1024)
        var (share, _) = try await access.requireShare(id: try context.parameters.require("id"), changingTo: body.role, userId: identity.userId)
        try Self.requireGrant(body.grant)
        let now = clock()
        // The new role's statement replaces the old one; a change without one leaves none.
        try await store.updateShareRole(id: share.id, role: body.role, grant: body.grant, at: now)
        share.role = body.role
        share.updatedAt = now
        await auditBothSides(AuditEventType.shareChanged, share, identity: identity)
        return try JSONResponse.ok(share)
    }

    @Sendable func revoke(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        let (share, _) = try await access.requireShare(id: try context.parameters.require("id"), changingTo: nil, userId: identity.userId)
        try await store.removeShare(id: share.id)
        await events.accessRevoked(vaultId: share.vaultId, userIds: [share.userId])
        await auditBothSides(AuditEventType.shareRevoked, share, identity: identity)
        return try JSONResponse.ok(SuccessResponse())
    }

    /// Both the member who acted and the member concerned see the event in their audit log.
    private func auditBothSides(_ type: String, _ share: Share, identity: AuthIdentity) async {
        let detail = "vault \(share.vaultId) user \(share.userId) role \(share.role.rawValue)"
        await audit.record(type, userId: identity.userId, deviceId: identity.deviceId, detail: detail)
        if share.userId != identity.userId {
            await audit.record(type, userId: share.userId, deviceId: nil, detail: detail)
        }
    }

    static let noSuchUser = APIError(.notFound, code: ErrorCode.userNotFound, message: "no Coffer account with this email or user id")

    /// A wrapped vault key: opaque to the server, but it must look like one (base64url of at
    /// least a key and a tag) and stay small.
    static func requireWrappedKey(_ value: String, field: String) throws {
        guard value.utf8.count <= 4096, let bytes = Base64URL.decode(value), bytes.count >= 48 else {
            throw APIError(.unprocessableContent, code: ErrorCode.notCiphertext, message: "\(field) must be a wrapped key (base64url, 48 bytes to 3 KiB)")
        }
    }

    /// A membership statement (`grant`): the granter's signature, opaque to the server, which
    /// only checks that it is base64url without padding (as the document's pattern says) and at
    /// most 4096 characters. Absent is allowed (older clients).
    static func requireGrant(_ value: String?) throws {
        guard let value else { return }
        guard value.utf8.count <= 4096, !value.utf8.contains(UInt8(ascii: "=")), Base64URL.decode(value) != nil else {
            throw APIError(
                .unprocessableContent, code: ErrorCode.invalidField,
                message: "field 'grant' must be a membership statement (base64url, at most 4096 characters)"
            )
        }
    }
}
