import CofferProtocol
import Hummingbird

/// The blind backup API of SPEC.md §4: hashed user ids, one encrypted blob per storage key,
/// versions, and the anti-abuse rules around them.
struct BackupController {
    let store: any Store
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp

    func addRoutes(to router: Router<AppRequestContext>) {
        let group = router.group("api")
            .add(
                middleware: BackupSignatureMiddleware(
                    secrets: configuration.backupSignatureSecrets,
                    required: configuration.requireBackupSignatures,
                    windowSeconds: Int64(configuration.signatureWindowSeconds),
                    bodyLimit: configuration.maxBackupRequestBody,
                    store: store,
                    clock: clock
                )
            )
        group.post("register", use: register)
        group.post("backup", use: save)
        group.get("backup", use: restore)
        group.get("backup/versions", use: versions)
        group.delete("user", use: deleteUser)
    }

    /// The routes this controller serves, for 405 answers on other methods.
    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/register", [.post]),
        ("/api/backup", [.get, .post]),
        ("/api/backup/versions", [.get]),
        ("/api/user", [.delete]),
    ]

    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(RegisterBackupUserRequest.self, limit: configuration.maxRequestBody)
        try Self.requireHash(body.userId, field: "userId")
        let decision = try await store.consumeRateLimit(
            bucket: "register:" + AddressHash.of(context.clientAddress), limits: configuration.registerAddressLimits, at: clock()
        )
        if case .limited(let retryAfter) = decision {
            throw APIError.rateLimited(retryAfter: retryAfter, "too many registrations from this address")
        }
        guard try await store.registerBackupUser(id: body.userId, at: clock()) else {
            throw APIError(StoreError.userExists)
        }
        return try JSONResponse.ok(SuccessResponse())
    }

    @Sendable func save(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(SaveBackupRequest.self, limit: configuration.maxBackupRequestBody)
        try Self.requireHash(body.userId, field: "userId")
        try Self.requireHash(body.storageKey, field: "storageKey")
        guard !body.data.isEmpty else { throw APIError.invalidField("data", "must not be empty") }
        let size = BackupPayload.size(of: body.data)
        guard size <= configuration.maxBackupSize else {
            throw APIError(
                .contentTooLarge, code: ErrorCode.backupTooLarge,
                message: "backup is \(size) bytes; this server accepts at most \(configuration.maxBackupSize)"
            )
        }
        if configuration.requireCiphertext, let reason = BackupPayload.plaintextReason(body.data) {
            throw APIError(.unprocessableContent, code: ErrorCode.notCiphertext, message: reason)
        }
        let saved = try await store.saveBackup(
            BackupSave(
                userId: body.userId, storageKey: body.storageKey, data: body.data, size: size,
                addressHash: AddressHash.of(context.clientAddress), at: clock(),
                versionsKept: configuration.backupVersionsKept,
                writeLimits: configuration.backupWriteLimits,
                newKeyLimits: configuration.backupNewKeyLimits,
                newKeyAddressLimits: configuration.backupNewKeyAddressLimits
            )
        )
        return try JSONResponse.ok(SaveBackupResponse(updatedAt: saved.updatedAt, version: saved.version, size: saved.size))
    }

    @Sendable func restore(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (userId, storageKey) = try Self.identity(request)
        var version: Int?
        if let text = request.uri.queryParameters["version"].map(String.init) {
            guard let number = Validation.integer(text, in: 1...Validation.maximumCounter) else {
                throw APIError.invalidQuery("version", "must be a positive integer (1…\(Validation.maximumCounter))")
            }
            version = Int(number)
        }
        let backup = try await store.backup(userId: userId, storageKey: storageKey, version: version)
        return try JSONResponse.ok(
            BackupResponse(
                data: backup.data, createdAt: backup.createdAt, updatedAt: backup.updatedAt, version: backup.version, size: backup.size
            )
        )
    }

    @Sendable func versions(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (userId, storageKey) = try Self.identity(request)
        let versions = try await store.backupVersions(userId: userId, storageKey: storageKey)
        return try JSONResponse.ok(BackupVersionsResponse(versions: versions))
    }

    @Sendable func deleteUser(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(DeleteBackupUserRequest.self, limit: configuration.maxRequestBody)
        try Self.requireHash(body.userId, field: "userId")
        if let storageKey = body.storageKey { try Self.requireHash(storageKey, field: "storageKey") }
        let deleted = try await store.deleteBackupUser(userId: body.userId, storageKey: body.storageKey)
        return try JSONResponse.ok(DeleteBackupUserResponse(deletedBackups: deleted))
    }

    private static func requireHash(_ value: String, field: String) throws {
        guard Validation.isHexHash(value) else {
            throw APIError.invalidField(field, "must be 64 lowercase hexadecimal characters")
        }
    }

    private static func identity(_ request: Request) throws -> (userId: String, storageKey: String) {
        let query = request.uri.queryParameters
        var values: [String] = []
        for name in ["userId", "storageKey"] {
            guard let value = query[Substring(name)].map(String.init), !value.isEmpty else {
                throw APIError.invalidQuery(name, "is required")
            }
            guard Validation.isHexHash(value) else {
                throw APIError.invalidQuery(name, "must be 64 lowercase hexadecimal characters")
            }
            values.append(value)
        }
        return (values[0], values[1])
    }
}
