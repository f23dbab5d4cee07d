import CofferCrypto
import CofferProtocol
@testable import CofferServer
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Ed25519 identity keys on SQLite and PostgreSQL: registering with one, setting one once for an
/// account made before them, and handing them out with lookups and member lists.
@Suite("Identity keys")
struct IdentityAPITests {
    /// A fresh identity key and the wire fields that give it to an account.
    struct TestIdentity {
        let key = Curve25519.Signing.PrivateKey()

        var identityKey: String { Base64URL.encode(key.publicKey.rawRepresentation) }

        /// The three fields, the certificate vouching for `sharingKey` as `email`'s.
        func payload(sharingKey: String, email: String) throws -> IdentityKeysPayload {
            IdentityKeysPayload(
                identityKey: identityKey, sharingKeyCertificate: try IdentityKey.certify(sharingKey: sharingKey, email: email, identity: key),
                encryptedIdentityKey: try Envelope.seal(
                    key.rawRepresentation, key: SymmetricKey(size: .bits256),
                    context: EnvelopeContext(purpose: IdentityKey.privateKeyPurpose, owner: "test")
                )
            )
        }

        func payload(for account: TestAccount) throws -> IdentityKeysPayload {
            try payload(sharingKey: account.bundle.publicKey, email: account.email)
        }
    }

    /// Registers `account` with exactly these identity fields (none when nil), whatever the
    /// shared test account would send by default.
    static func register(
        _ client: some TestClientProtocol, _ account: TestAccount, identityKey: String?, certificate: String?, encryptedIdentityKey: String?,
        email: String? = nil
    ) async throws -> TestResponse {
        var request = account.registerRequest(email: email)
        request.identityKey = identityKey
        request.sharingKeyCertificate = certificate
        request.encryptedIdentityKey = encryptedIdentityKey
        return try await client.json(.post, "/api/auth/register", request)
    }

    static func register(_ client: some TestClientProtocol, _ account: TestAccount, identity: IdentityKeysPayload?) async throws -> SessionResponse {
        let response = try await register(
            client, account, identityKey: identity?.identityKey, certificate: identity?.sharingKeyCertificate,
            encryptedIdentityKey: identity?.encryptedIdentityKey
        )
        #expect(response.status == .created, "\(response.error?.error ?? "")")
        return try response.decode(SessionResponse.self)
    }

    static func me(_ client: some TestClientProtocol, token: String) async throws -> MeResponse {
        let response = try await client.authorized(.get, "/api/auth/me", token: token)
        #expect(response.status == .ok)
        return try response.decode(MeResponse.self)
    }

    /// The JSON object at `path` (keys into nested objects) of a response body.
    static func object(_ response: TestResponse, _ path: String...) throws -> [String: Any] {
        var value = try JSONSerialization.jsonObject(with: Data(buffer: response.body))
        for key in path { value = try #require((value as? [String: Any])?[key]) }
        return try #require(value as? [String: Any])
    }

    static let identityFields = ["identityKey", "sharingKeyCertificate", "encryptedIdentityKey"]

    @Test(arguments: TestBackend.available)
    func registeringWithAnIdentityKeepsIt(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let identity = try TestIdentity().payload(for: account)
            let session = try await Self.register(client, account, identity: identity)
            #expect(session.keys.identity == identity)
            #expect(try await Self.me(client, token: session.accessToken).keys.identity == identity)
            let login = try await account.login(client)
            #expect(login.status == .ok)
            #expect(try login.decode(SessionResponse.self).keys.identity == identity)

            // The certificate covers the normalised email, so a differently written one is the same account.
            let shouting = try TestAccount()
            let shoutingIdentity = try TestIdentity().payload(for: shouting)
            let response = try await Self.register(
                client, shouting, identityKey: shoutingIdentity.identityKey, certificate: shoutingIdentity.sharingKeyCertificate,
                encryptedIdentityKey: shoutingIdentity.encryptedIdentityKey, email: "  " + shouting.email.uppercased()
            )
            #expect(response.status == .created)
            #expect(try response.decode(SessionResponse.self).keys.identity == shoutingIdentity)
        }
    }

    @Test(arguments: TestBackend.available)
    func registeringRefusesAnIdentityThatDoesNotHoldTogether(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let identity = TestIdentity()
            let good = try identity.payload(for: account)
            let otherEmail = try identity.payload(sharingKey: account.bundle.publicKey, email: "someone-else@example.test")
            let otherSharingKey = try identity.payload(sharingKey: try TestAccount().bundle.publicKey, email: account.email)
            let otherSigner = try TestIdentity().payload(for: account)
            let cases: [(String, String?, String?, String?)] = [
                ("certificate for another email", good.identityKey, otherEmail.sharingKeyCertificate, good.encryptedIdentityKey),
                ("certificate of another sharing key", good.identityKey, otherSharingKey.sharingKeyCertificate, good.encryptedIdentityKey),
                ("certificate by another identity key", good.identityKey, otherSigner.sharingKeyCertificate, good.encryptedIdentityKey),
                ("no certificate", good.identityKey, nil, good.encryptedIdentityKey),
                ("no sealed key", good.identityKey, good.sharingKeyCertificate, nil),
                ("only the key", good.identityKey, nil, nil),
                ("only the sealed key", nil, nil, good.encryptedIdentityKey),
                ("key of 31 bytes", Base64URL.encode(Data(count: 31)), good.sharingKeyCertificate, good.encryptedIdentityKey),
                ("certificate of 63 bytes", good.identityKey, Base64URL.encode(Data(count: 63)), good.encryptedIdentityKey),
                ("sealed key not an envelope", good.identityKey, good.sharingKeyCertificate, "aGVsbG8"),
                ("empty strings", "", "", ""),
            ]
            for (name, key, certificate, sealed) in cases {
                let response = try await Self.register(client, account, identityKey: key, certificate: certificate, encryptedIdentityKey: sealed)
                #expect(response.status == .unprocessableContent, "\(name)")
                #expect(response.error?.code == "invalid_identity", "\(name): \(response.error?.error ?? "")")
            }
            // Nothing was created: the same email registers now, with its real identity.
            #expect(try await Self.register(client, account, identity: good).keys.identity == good)
        }
    }

    @Test(arguments: TestBackend.available)
    func anAccountWithoutIdentitySetsOneOnce(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let session = try await Self.register(client, account, identity: nil)
            let token = session.accessToken
            #expect(session.keys.identity == nil)
            let before = try await client.authorized(.get, "/api/auth/me", token: token)
            #expect(try Self.object(before, "keys").keys.filter(Self.identityFields.contains).isEmpty)

            // Refused before anything is stored: a certificate for someone else, or not the account's sharing key.
            let first = try TestIdentity().payload(for: account)
            let identity = TestIdentity()
            for (name, refused) in [
                ("another email", try identity.payload(sharingKey: account.bundle.publicKey, email: "x" + account.email)),
                ("another sharing key", try identity.payload(sharingKey: try TestAccount().bundle.publicKey, email: account.email)),
            ] {
                let response = try await client.authorized(.put, "/api/auth/identity", token: token, json: refused)
                #expect(response.status == .unprocessableContent, "\(name)")
                #expect(response.error?.code == "invalid_identity", "\(name)")
            }
            let partial = JSONObject(["identityKey": .string(first.identityKey), "sharingKeyCertificate": .string(first.sharingKeyCertificate)])
            #expect(try await client.authorized(.put, "/api/auth/identity", token: token, json: partial).status == .badRequest)
            #expect(try await client.json(.put, "/api/auth/identity", first).status == .unauthorized)
            #expect(try await Self.me(client, token: token).keys.identity == nil)

            let stored = try await client.authorized(.put, "/api/auth/identity", token: token, json: first)
            #expect(stored.status == .ok)
            #expect(try stored.decode(SuccessResponse.self) == SuccessResponse())
            // The same again (a retry whose answer was lost) changes nothing.
            #expect(try await client.authorized(.put, "/api/auth/identity", token: token, json: first).status == .ok)
            // Another identity, even one that verifies, never replaces it.
            let second = try TestIdentity().payload(for: account)
            var resealed = first
            resealed.encryptedIdentityKey = second.encryptedIdentityKey
            for other in [second, resealed] {
                let conflict = try await client.authorized(.put, "/api/auth/identity", token: token, json: other)
                #expect(conflict.status == .conflict)
                #expect(conflict.error?.code == "identity_exists")
            }
            #expect(try await Self.me(client, token: token).keys.identity == first)
            let login = try await account.login(client)
            #expect(try login.decode(SessionResponse.self).keys.identity == first)

            // One audit event, for the time it was stored.
            let events = try await client.authorized(.get, "/api/audit", token: token).decode(AuditResponse.self).events
            #expect(events.filter { $0.type == "identity_set" }.count == 1)
            #expect(events.first { $0.type == "identity_set" }?.deviceId == account.deviceId)
        }
    }

    @Test(arguments: TestBackend.available)
    func anIdentityGivenAtRegistrationCannotBeReplaced(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let identity = try TestIdentity().payload(for: account)
            let token = try await Self.register(client, account, identity: identity).accessToken
            #expect(try await client.authorized(.put, "/api/auth/identity", token: token, json: identity).status == .ok)
            let other = try await client.authorized(.put, "/api/auth/identity", token: token, json: try TestIdentity().payload(for: account))
            #expect(other.status == .conflict)
            #expect(other.error?.code == "identity_exists")
            #expect(try await Self.me(client, token: token).keys.identity == identity)
            let events = try await client.authorized(.get, "/api/audit", token: token).decode(AuditResponse.self).events
            #expect(!events.contains { $0.type == "identity_set" })
        }
    }

    @Test(arguments: TestBackend.available)
    func concurrentIdentitiesStoreExactlyOne(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let token = try await Self.register(client, account, identity: nil).accessToken
            let candidates = try (0..<6).map { _ in try TestIdentity().payload(for: account) }
            let statuses = try await withThrowingTaskGroup(of: (IdentityKeysPayload, HTTPResponse.Status).self) { group in
                for candidate in candidates {
                    group.addTask { (candidate, try await client.authorized(.put, "/api/auth/identity", token: token, json: candidate).status) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let winners = statuses.filter { $0.1 == .ok }.map(\.0)
            #expect(winners.count == 1)
            #expect(statuses.filter { $0.1 == .conflict }.count == candidates.count - 1)
            #expect(try await Self.me(client, token: token).keys.identity == winners.first)
        }
    }

    @Test(arguments: TestBackend.available)
    func lookupsAndMemberListsCarryTheIdentity(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let aliceAccount = try TestAccount()
            let aliceIdentity = try TestIdentity().payload(for: aliceAccount)
            let alice = SignedInUser(account: aliceAccount, session: try await Self.register(client, aliceAccount, identity: aliceIdentity))
            let bobAccount = try TestAccount()
            let bob = SignedInUser(account: bobAccount, session: try await Self.register(client, bobAccount, identity: nil))

            let lookupAlice = try await client.authorized(.get, "/api/users/lookup?email=\(aliceAccount.email)", token: bob.token)
            #expect(lookupAlice.status == .ok)
            let foundAlice = try lookupAlice.decode(UserLookupResponse.self)
            #expect(foundAlice.identityKey == aliceIdentity.identityKey)
            #expect(foundAlice.sharingKeyCertificate == aliceIdentity.sharingKeyCertificate)
            // What a lookup gives is enough to check the certificate, and it never carries the sealed private key.
            #expect(IdentityKey.verify(
                certificate: try #require(foundAlice.sharingKeyCertificate), identityKey: try #require(foundAlice.identityKey),
                sharingKey: foundAlice.publicKey, email: foundAlice.email
            ))
            #expect(try Self.object(lookupAlice)["encryptedIdentityKey"] == nil)

            let lookupBob = try await client.authorized(.get, "/api/users/lookup?email=\(bobAccount.email)", token: alice.token)
            #expect(lookupBob.status == .ok)
            #expect(try Self.object(lookupBob).keys.filter(Self.identityFields.contains).isEmpty)

            let vault = try await client.createVault(alice)
            let share = try await client.authorized(
                .post, "/api/vaults/\(vault.id)/share", token: alice.token,
                json: ShareVaultRequest(userId: bob.session.user.id, role: .read, wrappedKey: Base64URL.encode((0..<81).map { _ in UInt8.random(in: 0...255) }))
            )
            #expect(share.status == .created)

            func members(_ user: SignedInUser) async throws -> (TestResponse, [VaultMember]) {
                let response = try await client.authorized(.get, "/api/vaults/\(vault.id)/members", token: user.token)
                #expect(response.status == .ok)
                return (response, try response.decode(VaultMembersResponse.self).members)
            }
            let (raw, listed) = try await members(bob)
            #expect(listed.map(\.userId) == [alice.session.user.id, bob.session.user.id])
            #expect(listed[0].identityKey == aliceIdentity.identityKey && listed[0].sharingKeyCertificate == aliceIdentity.sharingKeyCertificate)
            #expect(listed[1].identityKey == nil && listed[1].sharingKeyCertificate == nil)
            let rawMembers = try #require(try Self.object(raw)["members"] as? [[String: Any]])
            #expect(rawMembers[1].keys.filter(Self.identityFields.contains).isEmpty)
            #expect(rawMembers[0]["encryptedIdentityKey"] == nil)

            // Once Bob sets his identity, both show it.
            let bobIdentity = try TestIdentity().payload(for: bobAccount)
            #expect(try await client.authorized(.put, "/api/auth/identity", token: bob.token, json: bobIdentity).status == .ok)
            let (_, after) = try await members(alice)
            #expect(after[1].identityKey == bobIdentity.identityKey && after[1].sharingKeyCertificate == bobIdentity.sharingKeyCertificate)
            let foundBob = try await client.authorized(.get, "/api/users/lookup?email=\(bobAccount.email)", token: alice.token).decode(UserLookupResponse.self)
            #expect(foundBob.identityKey == bobIdentity.identityKey && foundBob.sharingKeyCertificate == bobIdentity.sharingKeyCertificate)
        }
    }

    @Test(arguments: TestBackend.available)
    func otherMethodsOnTheIdentityRouteAre405(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            for method: HTTPRequest.Method in [.get, .post, .delete, .patch, .head, .trace] {
                let response = try await client.execute(uri: "/api/auth/identity", method: method)
                #expect(response.status == .methodNotAllowed, "\(method)")
                #expect(response.headers[.allow] == "PUT", "\(method)")
            }
        }
    }

    /// A database made before migration 6 keeps its accounts: they read as accounts without an
    /// identity and can set one. (SQLite only: the test PostgreSQL database is shared and
    /// already migrated; its NULL columns are what every account registered without one has.)
    @Test func aDatabaseFromBeforeIdentityKeysMigrates() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-test-\(UUID().uuidString)/coffer.sqlite").path
        var logger = Logger(label: "coffer-test")
        logger.logLevel = .warning
        let store = try await SQLiteStore.open(path: path, logger: logger)
        let account = try TestAccount()
        let userId = UUID().uuidString.lowercased()
        let email = account.email
        let publicKey = account.bundle.publicKey
        try await store.write { connection in
            try connection.query("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
            for migration in SQLiteMigrations.all where migration.version < 6 {
                for statement in migration.sql { try connection.query(statement) }
                try connection.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)", [.integer(migration.version), .text(migration.name)])
            }
            try connection.query(
                """
                INSERT INTO users (id, email, kdf, salt, login_public_key, encrypted_account_key, public_key, encrypted_private_key, created_at)
                VALUES (?, ?, '{}', 'salt', 'login', 'account', ?, 'private', 0)
                """,
                [.text(userId), .text(email), .text(publicKey)]
            )
        }
        try await store.migrate()
        let migrated = try #require(try await store.account(id: userId))
        #expect(migrated.email == email && migrated.identity == nil)
        let identity = try TestIdentity().payload(for: account)
        #expect(try await store.setIdentity(identity, userId: userId) == .stored)
        #expect(try await store.setIdentity(identity, userId: userId) == .unchanged)
        #expect(try await store.setIdentity(try TestIdentity().payload(for: account), userId: userId) == .conflict)
        #expect(try await store.account(email: email)?.identity == identity)
        await #expect(throws: StoreError.userNotFound) { try await store.setIdentity(identity, userId: "nobody") }
        try await store.close()
    }
}
