import CofferCrypto
import CofferProtocol
import Crypto
import Foundation
import Hummingbird

/// Zero-knowledge accounts (SPEC.md §5): the server stores a login *public* key and wrapped keys;
/// logging in is signing a single-use challenge, so nothing it ever receives lets it log in.
struct AuthController {
    let store: any Store
    let tokens: TokenService
    let configuration: ServerConfiguration
    let clock: @Sendable () -> Timestamp
    let audit: AuditLog
    let events: RealtimeEvents

    static let challengeLifetime: Int64 = 120

    func addRoutes(to router: Router<AppRequestContext>, authenticated: RouterGroup<AppRequestContext>) {
        let auth = router.group("api/auth")
        auth.post("prelogin", use: prelogin)
        auth.post("register", use: register)
        auth.post("challenge", use: challenge)
        auth.post("login", use: login)
        auth.post("refresh", use: refresh)
        authenticated.post("auth/logout", use: logout)
        authenticated.get("auth/me", use: me)
        authenticated.post("auth/password", use: changePassword)
        authenticated.put("auth/identity", use: setIdentity)
        authenticated.delete("auth/account", use: deleteAccount)
    }

    static let routes: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/auth/prelogin", [.post]), ("/api/auth/register", [.post]), ("/api/auth/challenge", [.post]),
        ("/api/auth/login", [.post]), ("/api/auth/refresh", [.post]), ("/api/auth/logout", [.post]),
        ("/api/auth/me", [.get]), ("/api/auth/password", [.post]), ("/api/auth/account", [.delete]),
        ("/api/auth/identity", [.put]),
    ]

    // MARK: Unauthenticated

    @Sendable func prelogin(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(PreloginRequest.self, limit: configuration.maxRequestBody)
        let email = try Self.validEmail(body.email)
        let fake = try await fakeSalt(for: email)
        // Both paths do the lookup and the HMAC, so timing does not tell them apart.
        if let account = try await store.account(email: email), let kdf = try? JSONDecoder().decode(KDFDescriptor.self, from: Data(account.kdf.utf8)) {
            return try JSONResponse.ok(PreloginResponse(kdf: kdf, salt: account.salt))
        }
        return try JSONResponse.ok(PreloginResponse(kdf: KDFParameters.recommended.descriptor, salt: fake))
    }

    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(RegisterAccountRequest.self, limit: configuration.maxRequestBody)
        let email = try Self.validEmail(body.email)
        let kdf = try Self.validKDF(body.kdf)
        try Self.requireBytes(body.salt, field: "salt", minimum: 16, maximum: 64)
        try Self.requireBytes(body.loginPublicKey, field: "loginPublicKey", exactly: 32)
        try Self.requireBytes(body.publicKey, field: "publicKey", exactly: 32)
        try Self.requireEnvelope(body.encryptedAccountKey, field: "encryptedAccountKey")
        try Self.requireEnvelope(body.encryptedPrivateKey, field: "encryptedPrivateKey")
        let identity = try Self.validIdentity(
            identityKey: body.identityKey, certificate: body.sharingKeyCertificate, encryptedIdentityKey: body.encryptedIdentityKey,
            sharingKey: body.publicKey, email: email
        )
        let device = try Self.validDevice(body.device)
        try await limitAttempts(email: email, context: context)

        let now = clock()
        let account = AccountRecord(
            id: UUID().uuidString.lowercased(), email: email, kdf: try Self.json(kdf), salt: body.salt,
            loginPublicKey: body.loginPublicKey, encryptedAccountKey: body.encryptedAccountKey,
            publicKey: body.publicKey, encryptedPrivateKey: body.encryptedPrivateKey, createdAt: now, identity: identity
        )
        let (session, refreshToken) = newSession(userId: account.id, deviceId: device.id, at: now)
        do {
            try await store.createAccount(account, device: deviceRecord(device, userId: account.id, at: now), session: session)
        } catch StoreError.emailTaken {
            throw APIError(.conflict, code: ErrorCode.emailTaken, message: "an account with this email already exists")
        }
        await audit.record(AuditEventType.register, userId: account.id, deviceId: device.id)
        return try JSONResponse.make(.created, try await sessionResponse(account: account, session: session, refreshToken: refreshToken))
    }

    @Sendable func challenge(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(ChallengeRequest.self, limit: configuration.maxRequestBody)
        let email = try Self.validEmail(body.email)
        let action = body.action ?? AuthAction.login
        guard AuthAction.all.contains(action) else {
            throw APIError.invalidField("action", "must be one of \(AuthAction.all.sorted().joined(separator: ", "))")
        }
        // Issued for unknown emails too, stored the same way: the answer reveals nothing.
        let challenge = Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
        let expiresAt = clock().adding(seconds: Self.challengeLifetime)
        try await store.storeChallenge(challenge, email: email, action: action, expiresAt: expiresAt)
        return try JSONResponse.ok(ChallengeResponse(challenge: challenge, expiresAt: expiresAt))
    }

    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(LoginRequest.self, limit: configuration.maxRequestBody)
        let email = try Self.validEmail(body.email)
        let device = try Self.validDevice(body.device)
        try await limitAttempts(email: email, context: context)
        let now = clock()
        let fresh = try await store.consumeChallenge(body.challenge, email: email, action: AuthAction.login, at: now)
        let account = try await store.account(email: email)
        guard fresh, let account,
            LoginProof.verify(signature: body.signature, publicKey: account.loginPublicKey, email: email, challenge: body.challenge, action: AuthAction.login)
        else {
            if let account {
                await audit.record(AuditEventType.loginFailed, userId: account.id, deviceId: device.id)
            }
            throw Self.invalidCredentials
        }
        let (session, refreshToken) = newSession(userId: account.id, deviceId: device.id, at: now)
        try await store.startSession(device: deviceRecord(device, userId: account.id, at: now), session: session)
        await audit.record(AuditEventType.loginSucceeded, userId: account.id, deviceId: device.id)
        return try JSONResponse.ok(try await sessionResponse(account: account, session: session, refreshToken: refreshToken))
    }

    @Sendable func refresh(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decodeJSON(RefreshRequest.self, limit: configuration.maxRequestBody)
        let now = clock()
        let newToken = Self.randomToken()
        let outcome = try await store.rotateRefreshToken(
            hash: Self.hash(body.refreshToken), newHash: Self.hash(newToken),
            newExpiresAt: now.adding(seconds: Int64(configuration.refreshTokenLifetime)), at: now
        )
        switch outcome {
        case .rotated(let session):
            try await store.touchDevice(userId: session.userId, deviceId: session.deviceId, at: now)
            let access = try await tokens.issue(userId: session.userId, deviceId: session.deviceId, sessionId: session.id)
            return try JSONResponse.ok(TokenResponse(accessToken: access, refreshToken: newToken, expiresIn: tokens.accessLifetime))
        case .reused(let session):
            await audit.record(AuditEventType.refreshReused, userId: session.userId, deviceId: session.deviceId)
            await events.sessionsRevoked(userId: session.userId, deviceId: session.deviceId, reason: "a spent refresh token was reused; this session was revoked")
            throw AuthMiddleware.unauthorized("this refresh token was already used; the session is revoked, log in again")
        case .unknown:
            throw AuthMiddleware.unauthorized("the refresh token is invalid or expired")
        }
    }

    // MARK: Authenticated

    @Sendable func logout(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try await store.revokeSession(id: identity.sessionId, at: clock())
        await audit.record(AuditEventType.logout, userId: identity.userId, deviceId: identity.deviceId)
        await events.sessionsRevoked(userId: identity.userId, deviceId: identity.deviceId, reason: "logged out")
        return try JSONResponse.ok(SuccessResponse())
    }

    @Sendable func me(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard let account = try await store.account(id: identity.userId) else { throw AuthMiddleware.unauthorized("this account no longer exists") }
        return try JSONResponse.ok(
            MeResponse(
                user: UserSummary(id: account.id, email: account.email), deviceId: identity.deviceId, createdAt: account.createdAt,
                kdf: (try? JSONDecoder().decode(KDFDescriptor.self, from: Data(account.kdf.utf8))) ?? KDFParameters.recommended.descriptor,
                keys: Self.keys(account)
            )
        )
    }

    @Sendable func changePassword(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(ChangePasswordRequest.self, limit: configuration.maxRequestBody)
        let kdf = try Self.validKDF(body.kdf)
        try Self.requireBytes(body.salt, field: "salt", minimum: 16, maximum: 64)
        try Self.requireBytes(body.loginPublicKey, field: "loginPublicKey", exactly: 32)
        try Self.requireEnvelope(body.encryptedAccountKey, field: "encryptedAccountKey")
        try Self.requireEnvelope(body.encryptedPrivateKey, field: "encryptedPrivateKey")
        let account = try await provenAccount(identity, challenge: body.challenge, signature: body.signature, action: AuthAction.changePassword)
        let update = PasswordUpdate(
            userId: account.id, kdf: try Self.json(kdf), salt: body.salt, loginPublicKey: body.loginPublicKey,
            encryptedAccountKey: body.encryptedAccountKey, encryptedPrivateKey: body.encryptedPrivateKey
        )
        try await store.changePassword(update, keepSession: identity.sessionId, at: clock())
        await audit.record(AuditEventType.passwordChanged, userId: account.id, deviceId: identity.deviceId)
        await events.sessionsRevoked(userId: account.id, keepSession: identity.sessionId, reason: "the password was changed on another device")
        return try JSONResponse.ok(SuccessResponse())
    }

    /// Gives an account made before identity keys its identity, once; the same identity again is
    /// a no-op (a retry), a different one is refused so a stolen access token cannot replace it.
    @Sendable func setIdentity(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(SetIdentityRequest.self, limit: configuration.maxRequestBody)
        guard let account = try await store.account(id: identity.userId) else { throw AuthMiddleware.unauthorized("this account no longer exists") }
        // Checked against what the server holds, so the certificate vouches for this account's sharing key and email.
        guard let valid = try Self.validIdentity(
            identityKey: body.identityKey, certificate: body.sharingKeyCertificate, encryptedIdentityKey: body.encryptedIdentityKey,
            sharingKey: account.publicKey, email: account.email
        ) else { throw Self.incompleteIdentity }
        let outcome: IdentityUpdate
        do {
            outcome = try await store.setIdentity(valid, userId: account.id)
        } catch StoreError.userNotFound {
            throw AuthMiddleware.unauthorized("this account no longer exists")
        }
        switch outcome {
        case .stored:
            await audit.record(AuditEventType.identitySet, userId: account.id, deviceId: identity.deviceId)
        case .unchanged:
            break
        case .conflict:
            throw APIError(.conflict, code: ErrorCode.identityExists, message: "this account already has a different identity key, which cannot be replaced")
        }
        return try JSONResponse.ok(SuccessResponse())
    }

    @Sendable func deleteAccount(_ request: Request, context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decodeJSON(DeleteAccountRequest.self, limit: configuration.maxRequestBody)
        let account = try await provenAccount(identity, challenge: body.challenge, signature: body.signature, action: AuthAction.deleteAccount)
        try await store.deleteAccount(userId: account.id, at: clock())
        await events.sessionsRevoked(userId: account.id, reason: "the account was deleted")
        return try JSONResponse.ok(SuccessResponse())
    }

    /// The caller's account, after checking a fresh signature by its current login key.
    private func provenAccount(_ identity: AuthIdentity, challenge: String, signature: String, action: String) async throws -> AccountRecord {
        guard let account = try await store.account(id: identity.userId) else { throw AuthMiddleware.unauthorized("this account no longer exists") }
        let fresh = try await store.consumeChallenge(challenge, email: account.email, action: action, at: clock())
        guard fresh, LoginProof.verify(signature: signature, publicKey: account.loginPublicKey, email: account.email, challenge: challenge, action: action) else {
            throw APIError(.unauthorized, code: ErrorCode.invalidCredentials, message: "the proof of the current password is not valid (challenge expired or wrong password)")
        }
        return account
    }

    // MARK: Helpers

    private func limitAttempts(email: String, context: AppRequestContext) async throws {
        let now = clock()
        for (bucket, limits) in [
            ("login-address:" + AddressHash.of(context.clientAddress), configuration.loginAddressLimits),
            ("login-account:" + AddressHash.of(email), configuration.loginAccountLimits),
        ] {
            if case .limited(let retryAfter) = try await store.consumeRateLimit(bucket: bucket, limits: limits, at: now) {
                throw APIError.rateLimited(retryAfter: retryAfter, "too many login attempts")
            }
        }
    }

    private func newSession(userId: String, deviceId: String, at now: Timestamp) -> (SessionRecord, String) {
        let refreshToken = Self.randomToken()
        let session = SessionRecord(
            id: UUID().uuidString.lowercased(), userId: userId, deviceId: deviceId, refreshHash: Self.hash(refreshToken),
            createdAt: now, expiresAt: now.adding(seconds: Int64(configuration.refreshTokenLifetime))
        )
        return (session, refreshToken)
    }

    private func deviceRecord(_ device: DeviceInfo, userId: String, at now: Timestamp) -> DeviceRecord {
        DeviceRecord(id: device.id, userId: userId, name: device.name, platform: device.platform, createdAt: now, lastSeenAt: now, revokedAt: nil)
    }

    private func sessionResponse(account: AccountRecord, session: SessionRecord, refreshToken: String) async throws -> SessionResponse {
        let access = try await tokens.issue(userId: account.id, deviceId: session.deviceId, sessionId: session.id)
        return SessionResponse(
            accessToken: access, refreshToken: refreshToken, expiresIn: tokens.accessLifetime,
            user: UserSummary(id: account.id, email: account.email), keys: Self.keys(account)
        )
    }

    private func fakeSalt(for email: String) async throws -> String {
        let secret = try await store.serverSecret(named: "prelogin") { Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }) }
        let mac = HMAC<SHA256>.authenticationCode(for: Data("prelogin\n\(email)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Base64URL.encode(Data(mac))
    }

    static let invalidCredentials = APIError(
        .unauthorized, code: ErrorCode.invalidCredentials, message: "login failed: wrong email or password, or the challenge expired"
    )

    static func keys(_ account: AccountRecord) -> AccountKeysPayload {
        AccountKeysPayload(
            encryptedAccountKey: account.encryptedAccountKey, publicKey: account.publicKey, encryptedPrivateKey: account.encryptedPrivateKey,
            identity: account.identity
        )
    }

    static let incompleteIdentity = APIError(
        .unprocessableContent, code: ErrorCode.invalidIdentity,
        message: "identityKey, sharingKeyCertificate and encryptedIdentityKey go together: give all three or none"
    )

    /// The identity in a request, nil when none of its three fields is given; 422
    /// `invalid_identity` when only some are, or they are not well formed, or the certificate
    /// does not vouch for `sharingKey` as `email`'s (the normalised email).
    static func validIdentity(
        identityKey: String?, certificate: String?, encryptedIdentityKey: String?, sharingKey: String, email: String
    ) throws -> IdentityKeysPayload? {
        if identityKey == nil, certificate == nil, encryptedIdentityKey == nil { return nil }
        guard let identityKey, let certificate, let encryptedIdentityKey else { throw incompleteIdentity }
        func invalid(_ message: String) -> APIError { APIError(.unprocessableContent, code: ErrorCode.invalidIdentity, message: message) }
        // The specific messages first; `isWellFormed` below is the rule itself.
        guard IdentityKey.publicKey(identityKey) != nil else { throw invalid("identityKey must be an Ed25519 public key (32 bytes in base64url)") }
        guard Base64URL.decode(certificate)?.count == 64 else { throw invalid("sharingKeyCertificate must be an Ed25519 signature (64 bytes in base64url)") }
        guard encryptedIdentityKey.utf8.count <= 4096, Envelope.isWellFormed(encryptedIdentityKey) else {
            throw invalid("encryptedIdentityKey must be a Coffer envelope (base64url ciphertext)")
        }
        guard IdentityKey.isWellFormed(
            identityKey: identityKey, certificate: certificate, encryptedIdentityKey: encryptedIdentityKey, sharingKey: sharingKey, email: email
        ) else {
            throw invalid("sharingKeyCertificate is not identityKey's signature of this account's email and sharing key (publicKey)")
        }
        return IdentityKeysPayload(identityKey: identityKey, sharingKeyCertificate: certificate, encryptedIdentityKey: encryptedIdentityKey)
    }

    static func randomToken() -> String {
        Base64URL.encode(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    static func hash(_ token: String) -> String {
        Hex.encode(SHA256.hash(data: Data(token.utf8)))
    }

    /// The rule of the OpenAPI `Email` schema, counted in Unicode scalars as JSON Schema counts
    /// (a combining mark after `@` or `.` must not hide it, as it would in a Character count);
    /// no NUL, which PostgreSQL text cannot hold (a query parameter can carry one).
    static func validEmail(_ raw: String) throws -> String {
        let email = AccountEmail.normalized(raw)
        let scalars = email.unicodeScalars
        let at = scalars.firstIndex(of: "@")
        guard raw.unicodeScalars.count <= 254, let at, at != scalars.startIndex,
            !scalars[scalars.index(after: at)...].contains("@"), scalars[at...].contains("."),
            !scalars.contains(where: { $0.properties.isWhitespace || $0 == "\0" })
        else {
            throw APIError.invalidField("email", "must be an email address")
        }
        return email
    }

    static func validKDF(_ descriptor: KDFDescriptor) throws -> KDFParameters {
        let parameters: KDFParameters
        do {
            parameters = try KDFParameters(descriptor: descriptor)
        } catch {
            throw APIError.invalidField("kdf.algorithm", "must be scrypt or pbkdf2-sha256")
        }
        do {
            try parameters.validate()
        } catch {
            // Each parameter in range but together too costly (scrypt memory or work) is a 422:
            // a schema can state each range, not their product.
            switch error {
            case .aboveMaximum(.scryptMemory, _, _), .aboveMaximum(.scryptWork, _, _):
                throw APIError(.unprocessableContent, code: ErrorCode.weakKDF, message: "kdf: \(error)")
            default:
                throw APIError(.badRequest, code: ErrorCode.weakKDF, message: "kdf: \(error)")
            }
        }
        return parameters
    }

    static func json(_ parameters: KDFParameters) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(parameters), as: UTF8.self)
    }

    static func requireBytes(_ value: String, field: String, exactly count: Int) throws {
        guard Base64URL.decode(value)?.count == count else {
            throw APIError.invalidField(field, "must be \(count) bytes in base64url")
        }
    }

    static func requireBytes(_ value: String, field: String, minimum: Int, maximum: Int) throws {
        guard let bytes = Base64URL.decode(value), (minimum...maximum).contains(bytes.count) else {
            throw APIError.invalidField(field, "must be \(minimum)–\(maximum) bytes in base64url")
        }
    }

    static func requireEnvelope(_ value: String, field: String) throws {
        guard value.utf8.count <= 4096, Envelope.isWellFormed(value) else {
            throw APIError(.unprocessableContent, code: ErrorCode.notCiphertext, message: "field '\(field)' must be a Coffer envelope (base64url ciphertext)")
        }
    }

    static func validDevice(_ device: DeviceInfo) throws -> DeviceInfo {
        guard UUID(uuidString: device.id) != nil else { throw APIError.invalidField("device.id", "must be a UUID") }
        // Lengths in Unicode scalars before trimming, as the OpenAPI schema's maxLength counts.
        let name = device.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, device.name.unicodeScalars.count <= 100 else { throw APIError.invalidField("device.name", "must be 1–100 characters") }
        let platform = device.platform.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !platform.isEmpty, device.platform.unicodeScalars.count <= 50 else {
            throw APIError.invalidField("device.platform", "must be 1–50 characters")
        }
        return DeviceInfo(id: device.id.lowercased(), name: name, platform: platform)
    }
}
