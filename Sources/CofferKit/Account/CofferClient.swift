import CofferCrypto
import CofferProtocol
import Crypto
import Foundation
import NIOHTTP1

/// The Coffer account client: registration, zero-knowledge login, sessions, devices and audit.
/// All key derivation and unwrapping happens here; the server receives only public keys,
/// signatures and ciphertext.
public actor CofferClient {
    public let api: APIClient
    public let sessionStore: SessionStore?
    public private(set) var session: StoredSession?
    /// How long the last key derivation took (reported apart from server time).
    public private(set) var lastKDFDuration: Duration = .zero
    /// The renewal in flight, which concurrent callers share.
    private var refreshing: Task<StoredSession, any Error>?
    /// Refresh tokens this client has spent, newest last.
    private var spentRefreshTokens: [String] = []

    public init(api: APIClient, sessionStore: SessionStore? = nil) throws {
        self.api = api
        self.sessionStore = sessionStore
        self.session = try sessionStore?.loadSession()
    }

    // MARK: Register and log in

    /// Creates an account: derives keys from the password on this device and sends only public and wrapped keys.
    @discardableResult
    public func register(email rawEmail: String, password: String, device: DeviceInfo, kdf: KDFParameters = .recommended) async throws -> StoredSession {
        let email = AccountEmail.normalized(rawEmail)
        let salt = MasterKey.randomSalt()
        let masterKey = try derive(password: password, salt: salt, parameters: kdf)
        let (bundle, secrets) = try AccountKeyBundle.create(masterKey: masterKey, email: email)
        let request = RegisterAccountRequest(
            email: email, kdf: kdf.descriptor, salt: Base64URL.encode(salt), loginPublicKey: secrets.keys.loginPublicKey,
            encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey, encryptedPrivateKey: bundle.encryptedPrivateKey,
            identity: bundle.identity, device: device
        )
        var response: SessionResponse = try await api.send(.POST, "/api/auth/register", body: request)
        // The keys this device just made, not the server's echo of them.
        response.keys = bundle.payload
        if let identity = bundle.identity { try sessionStore?.rememberIdentity(identity.identityKey, server: api.baseURL, email: email) }
        return try await established(response, email: email, deviceId: device.id, kdf: kdf.descriptor, accountKey: secrets.accountKey)
    }

    /// Logs in by signing a fresh server challenge with the password-derived login key.
    /// `allowPBKDF2`: the person says the account uses PBKDF2 (made with `register --pbkdf2`, for
    /// browsers); without it a PBKDF2 offer is refused, since a server could offer the cheaper
    /// derivation to obtain a signature it can guess passwords against.
    @discardableResult
    public func login(email rawEmail: String, password: String, device: DeviceInfo, allowPBKDF2: Bool = false) async throws -> StoredSession {
        let email = AccountEmail.normalized(rawEmail)
        let prelogin: PreloginResponse = try await api.send(.POST, "/api/auth/prelogin", body: PreloginRequest(email: email))
        let parameters = try checkedParameters(prelogin.kdf, email: email, allowPBKDF2: allowPBKDF2)
        guard let salt = Base64URL.decode(prelogin.salt) else { throw CofferClientError.invalidResponse("prelogin salt is not base64url") }
        let masterKey = try derive(password: password, salt: salt, parameters: parameters)
        let keys = try AccountKeys(masterKey: masterKey)
        let challenge: ChallengeResponse = try await api.send(.POST, "/api/auth/challenge", body: ChallengeRequest(email: email, action: AuthAction.login))
        let signature = try LoginProof.sign(email: email, challenge: challenge.challenge, action: AuthAction.login, loginKey: keys.loginKey)
        let response: SessionResponse = try await api.send(
            .POST, "/api/auth/login", body: LoginRequest(email: email, challenge: challenge.challenge, signature: signature, device: device)
        )
        let secrets = try openBundle(response.keys, masterKey: masterKey, email: email)
        try sessionStore?.rememberKDF(prelogin.kdf, email: email)
        _ = try await established(response, email: email, deviceId: device.id, kdf: prelogin.kdf, accountKey: secrets.accountKey)
        // An account made before identity keys gets its identity now.
        _ = try await identityKey()
        guard let session else { throw CofferError.notLoggedIn }
        return session
    }

    /// This account's Ed25519 identity key, checked against its certificate and against the
    /// identity this device has seen for the account. An account made before identity keys is
    /// given one here (sealed under the account key the session holds, so no password is
    /// needed): made on this device and stored with `PUT /api/auth/identity`, or, when another
    /// device gave it one first, that one.
    public func identityKey() async throws -> Curve25519.Signing.PrivateKey {
        guard let session, let raw = Base64URL.decode(session.accountKey) else { throw CofferError.notLoggedIn }
        let accountKey = SymmetricKey(data: raw)
        if let key = try identityKey(in: session.keys, accountKey: accountKey, email: session.email) { return key }
        // A session saved before identity keys: the server's copy may have one by now.
        var keys = try await me().keys
        if keys.identity == nil {
            let (bundle, _) = try AccountKeyBundle(keys).withIdentity(accountKey: accountKey, email: session.email)
            guard let identity = bundle.identity else { throw CofferError.tampered("no identity key could be made") }
            do {
                let _: SuccessResponse = try await authorized(.PUT, "/api/auth/identity", body: identity)
                keys = bundle.payload
            } catch let error as CofferClientError where error.code == ErrorCode.identityExists {
                keys = try await me().keys
            }
        }
        guard let key = try identityKey(in: keys, accountKey: accountKey, email: session.email) else {
            throw CofferError.tampered("the server gives this account no identity key although it said it has one")
        }
        let upgraded = keys
        try await updateSession { $0.keys = upgraded }
        return key
    }

    /// The identity key in `keys`, verified, or nil when there is none and this device has never
    /// seen one for the account (a missing identity where one was seen is the server hiding it).
    private func identityKey(in keys: AccountKeysPayload, accountKey: SymmetricKey, email: String) throws -> Curve25519.Signing.PrivateKey? {
        let remembered = try sessionStore?.rememberedIdentity(server: api.baseURL, email: email)
        let key: Curve25519.Signing.PrivateKey?
        do {
            key = try AccountKeyBundle(keys).openIdentityKey(accountKey: accountKey, email: email)
        } catch {
            throw CofferError.tampered("the identity key of \(email) does not open with its account key or does not match its certificate")
        }
        guard let key else {
            if remembered != nil {
                throw CofferError.tampered("the server no longer gives the identity key this device has seen for \(email): refused")
            }
            return nil
        }
        let identityKey = Base64URL.encode(key.publicKey.rawRepresentation)
        if let remembered, remembered != identityKey {
            throw CofferError.tampered("the server gives \(email) another identity key than the one this device has seen: refused")
        }
        if remembered == nil { try sessionStore?.rememberIdentity(identityKey, server: api.baseURL, email: email) }
        return key
    }

    /// Ends this device's session on the server and forgets it locally.
    public func logout() async throws {
        do {
            let _: SuccessResponse = try await authorized(.POST, "/api/auth/logout", body: Optional<Int>.none)
        } catch {
            await forgetSession()
            throw error
        }
        await forgetSession()
    }

    public func me() async throws -> MeResponse {
        try await authorized(.GET, "/api/auth/me", body: Optional<Int>.none)
    }

    /// Changes the password: new master key, same account key re-wrapped, proven with the old login key.
    public func changePassword(current: String, new: String, kdf: KDFParameters = .recommended) async throws {
        guard let session else { throw CofferError.notLoggedIn }
        let me = try await me()
        let currentParameters = try checkedParameters(me.kdf, email: session.email)
        let prelogin: PreloginResponse = try await api.send(.POST, "/api/auth/prelogin", body: PreloginRequest(email: session.email))
        guard let oldSalt = Base64URL.decode(prelogin.salt) else { throw CofferClientError.invalidResponse("prelogin salt is not base64url") }
        let oldMaster = try derive(password: current, salt: oldSalt, parameters: currentParameters)
        let oldKeys = try AccountKeys(masterKey: oldMaster)
        let secrets = try openBundle(me.keys, masterKey: oldMaster, email: session.email)

        let newSalt = MasterKey.randomSalt()
        let newMaster = try derive(password: new, salt: newSalt, parameters: kdf)
        let bundle = try AccountKeyBundle(me.keys)
            .rewrapped(for: newMaster, email: session.email, accountKey: secrets.accountKey)
        let newKeys = try AccountKeys(masterKey: newMaster)
        let proof = try await signedChallenge(action: AuthAction.changePassword, email: session.email, loginKey: oldKeys.loginKey)
        let request = ChangePasswordRequest(
            challenge: proof.challenge, signature: proof.signature, kdf: kdf.descriptor, salt: Base64URL.encode(newSalt),
            loginPublicKey: newKeys.loginPublicKey, encryptedAccountKey: bundle.encryptedAccountKey, encryptedPrivateKey: bundle.encryptedPrivateKey
        )
        let _: SuccessResponse = try await authorized(.POST, "/api/auth/password", body: request)
        try sessionStore?.rememberKDF(kdf.descriptor, email: session.email)
        try await updateSession { updated in
            updated.kdf = kdf.descriptor
            updated.keys = bundle.payload
        }
    }

    /// Deletes the account and everything it owns, after proving the password once more.
    public func deleteAccount(password: String) async throws {
        guard let session else { throw CofferError.notLoggedIn }
        let me = try await me()
        let parameters = try checkedParameters(me.kdf, email: session.email)
        let prelogin: PreloginResponse = try await api.send(.POST, "/api/auth/prelogin", body: PreloginRequest(email: session.email))
        guard let salt = Base64URL.decode(prelogin.salt) else { throw CofferClientError.invalidResponse("prelogin salt is not base64url") }
        let keys = try AccountKeys(masterKey: try derive(password: password, salt: salt, parameters: parameters))
        let proof = try await signedChallenge(action: AuthAction.deleteAccount, email: session.email, loginKey: keys.loginKey)
        let _: SuccessResponse = try await authorized(.DELETE, "/api/auth/account", body: DeleteAccountRequest(challenge: proof.challenge, signature: proof.signature))
        await forgetSession()
    }

    // MARK: Devices and audit

    public func devices() async throws -> [DeviceSummary] {
        let response: DevicesResponse = try await authorized(.GET, "/api/devices", body: Optional<Int>.none)
        return response.devices
    }

    public func revokeDevice(id: String) async throws {
        let _: SuccessResponse = try await authorized(.DELETE, "/api/devices/\(id)", body: Optional<Int>.none)
    }

    public func audit(limit: Int = 50, before: Int64? = nil) async throws -> AuditResponse {
        var path = "/api/audit?limit=\(limit)"
        if let before { path += "&before=\(before)" }
        return try await authorized(.GET, path, body: Optional<Int>.none)
    }

    // MARK: Plumbing

    /// Sends with the access token, refreshing it first when it is within its margin of expiry
    /// and once more after a 401.
    public func authorized<Response: Decodable & Sendable>(_ method: HTTPMethod, _ path: String, body: (some Encodable & Sendable)?) async throws -> Response {
        let session = try await usableSession()
        do {
            return try await api.send(method, path, body: body, bearer: session.accessToken)
        } catch let error as CofferClientError where error.status == 401 && error.code == ErrorCode.unauthorized {
            let renewed = try await renewed(after: session, rejected: true)
            return try await api.send(method, path, body: body, bearer: renewed.accessToken)
        }
    }

    /// An access token outside its refresh margin (for the WebSocket AUTH message).
    public func freshAccessToken() async throws -> String {
        try await usableSession().accessToken
    }

    /// An access token outside its refresh margin, and when it is due for renewal: a long-lived
    /// WebSocket authenticates again with a new one then.
    public func freshAccessGrant() async throws -> (token: String, renewAt: Timestamp) {
        let session = try await usableSession()
        return (session.accessToken, session.renewAt)
    }

    /// The session, renewed first if its access token is within its margin of expiry.
    private func usableSession() async throws -> StoredSession {
        guard let session else { throw CofferError.notLoggedIn }
        return session.needsRefresh() ? try await renewed(after: session, rejected: false) : session
    }

    /// One renewal at a time: callers that arrive while one is in flight wait for it, and a caller
    /// whose session was renewed while it waited for an answer takes the renewed one.
    /// `rejected`: the server refused `stale`'s access token (401), whatever its expiry says.
    private func renewed(after stale: StoredSession, rejected: Bool) async throws -> StoredSession {
        if let refreshing { return try await refreshing.value }
        guard let current = session else { throw CofferError.notLoggedIn }
        let renewedMeanwhile = current.accessToken != stale.accessToken
        if renewedMeanwhile, !current.needsRefresh() { return current }
        // Always from the newest session this client holds: `stale`'s refresh token may be spent.
        let task = Task { try await self.renewUnderLock(current, rejected: rejected && !renewedMeanwhile) }
        refreshing = task
        defer { refreshing = nil }
        return try await task.value
    }

    /// Holding the session lock: another process of this device may have renewed the session
    /// already, spending the refresh token this one holds; then its session, read back from the
    /// file, is taken without a network call (or renewed from its own, unspent, refresh token).
    private func renewUnderLock(_ held: StoredSession, rejected: Bool) async throws -> StoredSession {
        guard let sessionStore else { return try await exchange(held) }
        let lock = try await sessionStore.lockSession()
        defer { lock.release() }
        guard let onDisk = try sessionStore.loadSession() else {
            // Logged out by another command: nothing left to renew.
            session = nil
            throw CofferError.notLoggedIn
        }
        guard onDisk.userId == held.userId, onDisk.deviceId == held.deviceId, onDisk.server == held.server else {
            throw CofferClientError.server(
                status: 401, code: ErrorCode.unauthorized, message: "this device has since logged in to another account or server"
            )
        }
        guard onDisk.refreshToken != held.refreshToken, !spentRefreshTokens.contains(onDisk.refreshToken) else {
            return try await exchange(held)
        }
        let usable = !onDisk.needsRefresh() && (!rejected || onDisk.accessToken != held.accessToken)
        if usable {
            session = onDisk
            return onDisk
        }
        return try await exchange(onDisk)
    }

    /// Spends `current`'s refresh token for new tokens and saves them (the caller holds the lock).
    private func exchange(_ current: StoredSession) async throws -> StoredSession {
        let tokens: TokenResponse = try await api.send(.POST, "/api/auth/refresh", body: RefreshRequest(refreshToken: current.refreshToken))
        // Remembered so that a session file left behind by a failed write is never spent again.
        spentRefreshTokens.append(current.refreshToken)
        if spentRefreshTokens.count > 16 { spentRefreshTokens.removeFirst() }
        var updated = current
        updated.accessToken = tokens.accessToken
        updated.refreshToken = tokens.refreshToken
        updated.accessExpiresAt = Timestamp.now.adding(seconds: Int64(tokens.expiresIn))
        updated.accessLifetime = Int64(tokens.expiresIn)
        try store(updated)
        return updated
    }

    private func signedChallenge(action: String, email: String, loginKey: Curve25519.Signing.PrivateKey) async throws -> (challenge: String, signature: String) {
        let challenge: ChallengeResponse = try await api.send(.POST, "/api/auth/challenge", body: ChallengeRequest(email: email, action: action))
        return (challenge.challenge, try LoginProof.sign(email: email, challenge: challenge.challenge, action: action, loginKey: loginKey))
    }

    private func established(_ response: SessionResponse, email: String, deviceId: String, kdf: KDFDescriptor, accountKey: SymmetricKey) async throws -> StoredSession {
        let stored = StoredSession(
            server: api.baseURL, userId: response.user.id, email: email, deviceId: deviceId, accessToken: response.accessToken,
            accessExpiresAt: Timestamp.now.adding(seconds: Int64(response.expiresIn)), refreshToken: response.refreshToken, kdf: kdf,
            accountKey: accountKey.withUnsafeBytes { Base64URL.encode(Data($0)) }, keys: response.keys,
            accessLifetime: Int64(response.expiresIn)
        )
        try sessionStore?.rememberKDF(kdf, email: email)
        // Under the lock, so that a refresh in another process cannot write its older session over this one.
        let lock = try await sessionStore?.lockSession()
        defer { lock?.release() }
        try store(stored)
        return stored
    }

    /// Changes the stored session under the lock, starting from the file (which may hold tokens
    /// another process renewed) so that no newer refresh token is overwritten by a spent one.
    private func updateSession(_ change: (inout StoredSession) -> Void) async throws {
        let lock = try await sessionStore?.lockSession()
        defer { lock?.release() }
        guard var updated = session else { return }
        if let onDisk = try sessionStore?.loadSession(), onDisk.userId == updated.userId, onDisk.deviceId == updated.deviceId,
            !spentRefreshTokens.contains(onDisk.refreshToken) {
            updated = onDisk
        }
        change(&updated)
        try store(updated)
    }

    /// Deletes the session file under the lock, so that a renewal in another process cannot
    /// write it back afterwards.
    private func forgetSession() async {
        let lock = try? await sessionStore?.lockSession()
        defer { lock?.release() }
        session = nil
        try? sessionStore?.deleteSession()
    }

    private func store(_ session: StoredSession) throws {
        self.session = session
        try sessionStore?.saveSession(session)
    }

    private func derive(password: String, salt: [UInt8], parameters: KDFParameters) throws -> SymmetricKey {
        let start = ContinuousClock.now
        defer { lastKDFDuration = ContinuousClock.now - start }
        return try MasterKey.derive(password: password, salt: salt, parameters: parameters)
    }

    private func openBundle(_ keys: AccountKeysPayload, masterKey: SymmetricKey, email: String) throws -> AccountSecrets {
        do {
            return try AccountKeyBundle.open(bundle: AccountKeyBundle(keys), masterKey: masterKey, email: email)
        } catch {
            throw CofferError.tampered("the account keys from the server do not decrypt with this password")
        }
    }

    /// Validates server-supplied parameters before anything is derived or signed: below the
    /// minimum, absurd, weaker than what this device used before for the account, a switch from
    /// the algorithm it used before to PBKDF2, or PBKDF2 for an account it has never seen without
    /// `allowPBKDF2` → refused. (A move from PBKDF2 up to scrypt is what a password change made
    /// by a native client does, and costs a guesser more, so it is taken.)
    private func checkedParameters(_ descriptor: KDFDescriptor, email: String, allowPBKDF2: Bool = false) throws -> KDFParameters {
        let parameters: KDFParameters
        do {
            parameters = try KDFParameters(descriptor: descriptor)
            try parameters.validate()
        } catch let error as KDFError {
            throw CofferError.weakKeyDerivation(error.description)
        } catch {
            throw CofferError.weakKeyDerivation("the server sent unknown key derivation parameters (\(descriptor.algorithm))")
        }
        let remembered = try sessionStore?.rememberedKDF(email: email)
        if let remembered, remembered.algorithm != descriptor.algorithm, descriptor.algorithm != "scrypt", !allowPBKDF2 {
            throw CofferError.weakKeyDerivation(
                "the server asks for \(descriptor.algorithm) key derivation for \(email), but this device logged in to it with \(remembered.algorithm); "
                    + "refusing the switch (if you changed the account to \(descriptor.algorithm) yourself, log in with --pbkdf2)"
            )
        }
        if let remembered, remembered.algorithm == descriptor.algorithm, Self.cost(descriptor) < Self.cost(remembered) {
            throw CofferError.weakKeyDerivation("the server asks for weaker key derivation than this device used before for \(email)")
        }
        if remembered == nil, descriptor.algorithm != "scrypt", !allowPBKDF2 {
            throw CofferError.weakKeyDerivation(
                "the server offers \(descriptor.algorithm) key derivation for \(email), which this device has not logged in to before; "
                    + "if the account was made for browsers (register --pbkdf2), log in with --pbkdf2"
            )
        }
        return parameters
    }

    /// A comparable work factor; PBKDF2 and scrypt are not directly comparable, so switching is treated as weaker.
    private static func cost(_ kdf: KDFDescriptor) -> Double {
        switch kdf.algorithm {
        case "scrypt": Double(kdf.n ?? 0) * Double(kdf.r ?? 0) * Double(kdf.p ?? 0) * 1_000
        default: Double(kdf.iterations ?? 0)
        }
    }
}
