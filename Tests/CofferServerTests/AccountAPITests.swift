import CofferCrypto
import CofferProtocol
import CofferServer
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// SPEC.md §5 on SQLite and PostgreSQL: registration, zero-knowledge login, sessions, devices, audit.
@Suite("Accounts")
struct AccountAPITests {
    @Test(arguments: TestBackend.available)
    func registerValidatesEverything(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let session = try await account.register(client)
            #expect(session.user.email == account.email)
            #expect(session.keys.encryptedAccountKey == account.bundle.encryptedAccountKey)
            #expect(session.expiresIn == 900 && !session.accessToken.isEmpty && !session.refreshToken.isEmpty)

            let duplicate = try await client.json(.post, "/api/auth/register", account.registerRequest(email: account.email.uppercased()))
            #expect(duplicate.status == .conflict)
            #expect(duplicate.error?.code == "email_taken")

            let other = try TestAccount()
            let cases: [(String, RegisterAccountRequest, HTTPResponse.Status, String)] = [
                ("weak scrypt", other.registerRequest(kdf: KDFDescriptor(algorithm: "scrypt", n: 1 << 14, r: 8, p: 1)), .badRequest, "weak_kdf"),
                ("weak pbkdf2", other.registerRequest(kdf: KDFDescriptor(algorithm: "pbkdf2-sha256", iterations: 100_000)), .badRequest, "weak_kdf"),
                ("unknown kdf", other.registerRequest(kdf: KDFDescriptor(algorithm: "md5")), .badRequest, "invalid_field"),
                ("bad email", other.registerRequest(email: "not-an-email"), .badRequest, "invalid_field"),
            ]
            for (name, request, status, code) in cases {
                let response = try await client.json(.post, "/api/auth/register", request)
                #expect(response.status == status, "\(name)")
                #expect(response.error?.code == code, "\(name): \(response.error?.error ?? "")")
            }
            var badKey = other.registerRequest()
            badKey.loginPublicKey = "short"
            #expect(try await client.json(.post, "/api/auth/register", badKey).error?.error.contains("loginPublicKey") == true)
            var notCiphertext = other.registerRequest()
            notCiphertext.encryptedAccountKey = "aGVsbG8"
            let refused = try await client.json(.post, "/api/auth/register", notCiphertext)
            #expect(refused.status == .unprocessableContent)
            var badDevice = other.registerRequest()
            badDevice.device.id = "laptop"
            #expect(try await client.json(.post, "/api/auth/register", badDevice).error?.error.contains("device.id") == true)
        }
    }

    @Test(arguments: TestBackend.available)
    func preloginAndChallengeDoNotRevealAccounts(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            try await account.register(client)
            let known = try await client.json(.post, "/api/auth/prelogin", PreloginRequest(email: account.email))
            #expect(known.status == .ok)
            #expect(try known.decode(PreloginResponse.self) == PreloginResponse(kdf: TestAccount.kdf, salt: account.salt))

            let stranger = "nobody-\(UUID().uuidString)@example.test"
            let first = try await client.json(.post, "/api/auth/prelogin", PreloginRequest(email: stranger))
            let second = try await client.json(.post, "/api/auth/prelogin", PreloginRequest(email: stranger.uppercased()))
            #expect(first.status == known.status)
            let fake = try first.decode(PreloginResponse.self)
            #expect(fake == (try second.decode(PreloginResponse.self)))
            #expect(fake.kdf == TestAccount.kdf)
            #expect(Base64URL.decode(fake.salt)?.count == 32)
            #expect((try JSONSerialization.jsonObject(with: Data(buffer: first.body)) as? [String: Any])?.keys.sorted() == ["kdf", "salt"])
            let otherFake = try await client.json(.post, "/api/auth/prelogin", PreloginRequest(email: "x" + stranger)).decode(PreloginResponse.self)
            #expect(otherFake.salt != fake.salt)

            let knownChallenge = try await client.json(.post, "/api/auth/challenge", ChallengeRequest(email: account.email))
            let unknownChallenge = try await client.json(.post, "/api/auth/challenge", ChallengeRequest(email: stranger))
            #expect(knownChallenge.status == .ok && unknownChallenge.status == .ok)
            #expect(Base64URL.decode(try unknownChallenge.decode(ChallengeResponse.self).challenge)?.count == 32)

            // Logging in to the unknown account fails exactly like a wrong password.
            let challenge = try unknownChallenge.decode(ChallengeResponse.self).challenge
            let unknownLogin = try await client.json(
                .post, "/api/auth/login",
                LoginRequest(email: stranger, challenge: challenge, signature: try LoginProof.sign(email: stranger, challenge: challenge, action: "login", loginKey: .init()), device: account.device())
            )
            let wrong = try await account.login(client, signingKey: .init())
            #expect(unknownLogin.status == .unauthorized && wrong.status == .unauthorized)
            #expect(unknownLogin.error == wrong.error)

            let badAction = try await client.json(.post, "/api/auth/challenge", ChallengeRequest(email: account.email, action: "root"))
            #expect(badAction.status == .badRequest)
        }
    }

    @Test(arguments: TestBackend.available)
    func loginNeedsAFreshSignatureByTheLoginKey(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock).test(.router) { client in
            let account = try TestAccount()
            try await account.register(client)
            let ok = try await account.login(client)
            #expect(ok.status == .ok)
            let session = try ok.decode(SessionResponse.self)
            #expect(session.keys.encryptedPrivateKey == account.bundle.encryptedPrivateKey)

            // A stolen database row holds only public and wrapped keys: no signature can be made from them.
            let stolenPublicKey = try Curve25519.Signing.PublicKey(rawRepresentation: Base64URL.decode(account.keys.loginPublicKey)!)
            #expect(stolenPublicKey.rawRepresentation.count == 32)
            #expect(try await account.login(client, signingKey: .init()).status == .unauthorized)
            let challenge = try await account.challenge(client)
            for forged in [account.keys.loginPublicKey, account.bundle.encryptedAccountKey, "", challenge] {
                let response = try await client.json(.post, "/api/auth/login", LoginRequest(email: account.email, challenge: challenge, signature: forged, device: account.device()))
                #expect(response.status == .unauthorized)
                #expect(response.error?.code == "invalid_credentials")
            }

            // Challenges are single use, bound to the email and the action, and short-lived.
            let used = try await account.challenge(client)
            let signature = try LoginProof.sign(email: account.email, challenge: used, action: "login", loginKey: account.keys.loginKey)
            let request = LoginRequest(email: account.email, challenge: used, signature: signature, device: account.device())
            #expect(try await client.json(.post, "/api/auth/login", request).status == .ok)
            #expect(try await client.json(.post, "/api/auth/login", request).status == .unauthorized)

            let forPassword = try await account.challenge(client, action: AuthAction.changePassword)
            let wrongAction = LoginRequest(
                email: account.email, challenge: forPassword,
                signature: try LoginProof.sign(email: account.email, challenge: forPassword, action: "login", loginKey: account.keys.loginKey),
                device: account.device()
            )
            #expect(try await client.json(.post, "/api/auth/login", wrongAction).status == .unauthorized)

            let late = try await account.challenge(client)
            clock.advance(seconds: 121)
            let expired = LoginRequest(
                email: account.email, challenge: late,
                signature: try LoginProof.sign(email: account.email, challenge: late, action: "login", loginKey: account.keys.loginKey), device: account.device()
            )
            #expect(try await client.json(.post, "/api/auth/login", expired).status == .unauthorized)
        }
    }

    @Test(arguments: TestBackend.available)
    func tokensExpireAndRefreshRotates(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock).test(.router) { client in
            let account = try TestAccount()
            let session = try await account.register(client)
            let me = try await client.authorized(.get, "/api/auth/me", token: session.accessToken)
            #expect(me.status == .ok)
            #expect(try me.decode(MeResponse.self).user.email == account.email)
            #expect(try await client.get("/api/auth/me").status == .unauthorized)
            #expect(try await client.authorized(.get, "/api/auth/me", token: "garbage.token.here").status == .unauthorized)

            clock.advance(seconds: 901)
            let expired = try await client.authorized(.get, "/api/auth/me", token: session.accessToken)
            #expect(expired.status == .unauthorized)
            #expect(expired.headers[.wwwAuthenticate] == "Bearer")

            let refreshed = try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: session.refreshToken))
            #expect(refreshed.status == .ok)
            let tokens = try refreshed.decode(TokenResponse.self)
            #expect(tokens.refreshToken != session.refreshToken)
            #expect(try await client.authorized(.get, "/api/auth/me", token: tokens.accessToken).status == .ok)

            // Reusing the spent refresh token revokes the session: even the fresh access token stops working.
            let reuse = try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: session.refreshToken))
            #expect(reuse.status == .unauthorized)
            #expect(try await client.authorized(.get, "/api/auth/me", token: tokens.accessToken).status == .unauthorized)
            #expect(try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: tokens.refreshToken)).status == .unauthorized)
            #expect(try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: "unknown")).status == .unauthorized)

            let relogin = try await account.login(client).decode(SessionResponse.self)
            let events = try await client.authorized(.get, "/api/audit", token: relogin.accessToken).decode(AuditResponse.self)
            #expect(events.events.map(\.type) == ["login_succeeded", "refresh_reused", "register"])
        }
    }

    @Test(arguments: TestBackend.available)
    func logoutRevokeAndIsolation(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try TestAccount()
            let laptop = try await alice.register(client)
            let phoneId = UUID().uuidString.lowercased()
            let phone = try await alice.login(client, deviceId: phoneId).decode(SessionResponse.self)

            let devices = try await client.authorized(.get, "/api/devices", token: laptop.accessToken).decode(DevicesResponse.self)
            #expect(devices.devices.count == 2)
            #expect(devices.devices.first { $0.current }?.id == alice.deviceId)

            let bob = try TestAccount()
            let bobSession = try await bob.register(client)
            // Bob can neither see nor revoke Alice's devices.
            let bobDevices = try await client.authorized(.get, "/api/devices", token: bobSession.accessToken).decode(DevicesResponse.self)
            #expect(bobDevices.devices.map(\.id) == [bob.deviceId])
            let foreign = try await client.authorized(.delete, "/api/devices/\(phoneId)", token: bobSession.accessToken)
            #expect(foreign.status == .notFound)
            #expect(try await client.authorized(.get, "/api/auth/me", token: phone.accessToken).status == .ok)
            #expect(try await client.authorized(.delete, "/api/devices/\(UUID().uuidString)", token: laptop.accessToken).status == .notFound)
            #expect(try await client.authorized(.delete, "/api/devices/not-a-uuid", token: laptop.accessToken).status == .notFound)

            // Alice revokes her phone: its next request is refused, its refresh token too.
            #expect(try await client.authorized(.delete, "/api/devices/\(phoneId)", token: laptop.accessToken).status == .ok)
            #expect(try await client.authorized(.get, "/api/auth/me", token: phone.accessToken).status == .unauthorized)
            // Reads run while the session is checked, but answer nothing else, not even a 404, to an ended session.
            #expect(try await client.authorized(.get, "/api/items/\(UUID().uuidString.lowercased())", token: phone.accessToken).status == .unauthorized)
            #expect(try await client.authorized(.get, "/api/vaults", token: phone.accessToken).status == .unauthorized)
            #expect(try await client.authorized(.post, "/api/sync/pull", token: phone.accessToken, json: PullRequest()).status == .unauthorized)
            // A pull checks its session inside its own read; one it refuses for its body still hears 401, not 422.
            #expect(try await client.authorized(.post, "/api/sync/pull", token: phone.accessToken, json: PullRequest(limit: 0)).status == .unauthorized)
            #expect(try await client.authorized(.post, "/api/sync/push", token: phone.accessToken, json: PushRequest(changes: [])).status == .unauthorized)
            #expect(try await client.json(.post, "/api/auth/refresh", RefreshRequest(refreshToken: phone.refreshToken)).status == .unauthorized)
            let listed = try await client.authorized(.get, "/api/devices", token: laptop.accessToken).decode(DevicesResponse.self)
            #expect(listed.devices.first { $0.id == phoneId }?.revoked == true)

            // Logging out ends the laptop's session.
            #expect(try await client.authorized(.post, "/api/auth/logout", token: laptop.accessToken).status == .ok)
            #expect(try await client.authorized(.get, "/api/auth/me", token: laptop.accessToken).status == .unauthorized)

            // Bob's audit log holds only his own events.
            let bobEvents = try await client.authorized(.get, "/api/audit", token: bobSession.accessToken).decode(AuditResponse.self)
            #expect(bobEvents.events.map(\.type) == ["register"])
            let aliceAgain = try await alice.login(client).decode(SessionResponse.self)
            let aliceEvents = try await client.authorized(.get, "/api/audit", token: aliceAgain.accessToken).decode(AuditResponse.self)
            #expect(aliceEvents.events.map(\.type) == ["login_succeeded", "logout", "device_revoked", "login_succeeded", "register"])
            #expect(aliceEvents.events.first { $0.type == "device_revoked" }?.detail == phoneId)
        }
    }

    @Test(arguments: TestBackend.available)
    func passwordChangeRevokesOtherDevices(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let laptop = try await account.register(client)
            let phone = try await account.login(client, deviceId: UUID().uuidString.lowercased()).decode(SessionResponse.self)

            let newMaster = SymmetricKey(size: .bits256)
            let newKeys = try AccountKeys(masterKey: newMaster)
            let secrets = try AccountKeyBundle.open(bundle: account.bundle, masterKey: account.masterKey, email: account.email)
            let rewrapped = try account.bundle.rewrapped(for: newMaster, email: account.email, accountKey: secrets.accountKey)
            func request(signedBy key: Curve25519.Signing.PrivateKey) async throws -> ChangePasswordRequest {
                let challenge = try await account.challenge(client, action: AuthAction.changePassword)
                return ChangePasswordRequest(
                    challenge: challenge, signature: try LoginProof.sign(email: account.email, challenge: challenge, action: AuthAction.changePassword, loginKey: key),
                    kdf: TestAccount.kdf, salt: Base64URL.encode(MasterKey.randomSalt()), loginPublicKey: newKeys.loginPublicKey,
                    encryptedAccountKey: rewrapped.encryptedAccountKey, encryptedPrivateKey: rewrapped.encryptedPrivateKey
                )
            }
            let unproven = try await client.authorized(.post, "/api/auth/password", token: laptop.accessToken, json: try await request(signedBy: .init()))
            #expect(unproven.status == .unauthorized)
            #expect(try await client.authorized(.get, "/api/auth/me", token: laptop.accessToken).status == .ok)

            let changed = try await client.authorized(.post, "/api/auth/password", token: laptop.accessToken, json: try await request(signedBy: account.keys.loginKey))
            #expect(changed.status == .ok)
            #expect(try await client.authorized(.get, "/api/auth/me", token: laptop.accessToken).status == .ok)
            #expect(try await client.authorized(.get, "/api/auth/me", token: phone.accessToken).status == .unauthorized)
            #expect(try await account.login(client).status == .unauthorized)
            #expect(try await account.login(client, signingKey: newKeys.loginKey).status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func accountDeletion(_ backend: TestBackend) async throws {
        var logger = Logger(label: "coffer-test")
        logger.logLevel = .warning
        let configuration = testConfiguration(backend)
        let store = try await openStore(configuration.database, poolSize: 4, logger: logger)
        try await buildApplication(configuration: configuration, store: store, logger: logger).test(.router) { client in
            let account = try TestAccount()
            let session = try await account.register(client)
            let challenge = try await account.challenge(client, action: AuthAction.deleteAccount)
            let wrong = DeleteAccountRequest(
                challenge: challenge, signature: try LoginProof.sign(email: account.email, challenge: challenge, action: AuthAction.deleteAccount, loginKey: .init())
            )
            #expect(try await client.authorized(.delete, "/api/auth/account", token: session.accessToken, json: wrong).status == .unauthorized)
            let fresh = try await account.challenge(client, action: AuthAction.deleteAccount)
            let proof = DeleteAccountRequest(
                challenge: fresh, signature: try LoginProof.sign(email: account.email, challenge: fresh, action: AuthAction.deleteAccount, loginKey: account.keys.loginKey)
            )
            #expect(try await client.authorized(.delete, "/api/auth/account", token: session.accessToken, json: proof).status == .ok)
            #expect(try await client.authorized(.get, "/api/auth/me", token: session.accessToken).status == .unauthorized)
            #expect(try await account.login(client).status == .unauthorized)
            // Everything the account owned is gone; one tombstone records the deletion.
            #expect(try await store.account(id: session.user.id) == nil)
            #expect(try await store.devices(userId: session.user.id).isEmpty)
            #expect(try await store.auditEvents(userId: session.user.id, before: nil, limit: 10).map(\.type) == ["account_deleted"])
            // The email is free again.
            #expect(try await client.json(.post, "/api/auth/register", account.registerRequest()).status == .created)
        }
    }

    @Test(arguments: TestBackend.available)
    func auditPagesNewestFirst(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            try await account.register(client)
            var last: SessionResponse?
            for _ in 0..<4 { last = try await account.login(client).decode(SessionResponse.self) }
            let token = try #require(last).accessToken
            let first = try await client.authorized(.get, "/api/audit?limit=2", token: token).decode(AuditResponse.self)
            #expect(first.events.count == 2)
            let cursor = try #require(first.nextCursor)
            let second = try await client.authorized(.get, "/api/audit?limit=2&before=\(cursor)", token: token).decode(AuditResponse.self)
            let third = try await client.authorized(.get, "/api/audit?limit=2&before=\(try #require(second.nextCursor))", token: token).decode(AuditResponse.self)
            let all = first.events + second.events + third.events
            #expect(all.map(\.type) == ["login_succeeded", "login_succeeded", "login_succeeded", "login_succeeded", "register"])
            #expect(all.map(\.id) == all.map(\.id).sorted(by: >))
            #expect(third.nextCursor == nil)
            #expect(try await client.authorized(.get, "/api/audit?limit=0", token: token).status == .badRequest)
            #expect(try await client.authorized(.get, "/api/audit?before=x", token: token).status == .badRequest)
        }
    }

    @Test(arguments: TestBackend.available)
    func loginAttemptsAreLimitedPerAccount(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock, {
            $0.loginAccountLimits = [RateLimit(count: 3, window: .minute)]
            $0.loginAddressLimits = []
        }).test(.router) { client in
            let account = try TestAccount()
            try await account.register(client)
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<4 { statuses.append(try await account.login(client, signingKey: .init()).status) }
            #expect(statuses == [.unauthorized, .unauthorized, .tooManyRequests, .tooManyRequests])
            // The window is short: a minute later the owner gets in.
            clock.advance(seconds: 120)
            #expect(try await account.login(client).status == .ok)
        }
    }
}
