import CofferCrypto
@testable import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("Identity keys: accounts and shares made before them keep working")
struct IdentityUpgradeTests {
    static let password = "legacy password"

    /// An account registered as a client made before identity keys did (no identity fields),
    /// and a client of a new device for it that has not logged in yet.
    static func legacyAccount(_ base: String) async throws -> (email: String, userId: String, sharingKey: String) {
        let email = "legacy-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        let salt = MasterKey.randomSalt()
        let kdf = KDFParameters.browserCompatible
        let masterKey = try MasterKey.derive(password: password, salt: salt, parameters: kdf)
        let (bundle, secrets) = try AccountKeyBundle.create(masterKey: masterKey, email: email)
        let request = RegisterAccountRequest(
            email: email, kdf: kdf.descriptor, salt: Base64URL.encode(salt), loginPublicKey: secrets.keys.loginPublicKey,
            encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey, encryptedPrivateKey: bundle.encryptedPrivateKey,
            identity: nil, device: DeviceInfo(id: UUID().uuidString.lowercased(), name: "old client", platform: "test")
        )
        let response: SessionResponse = try await APIClient(baseURL: base).send(.POST, "/api/auth/register", body: request)
        #expect(response.keys.identity == nil)
        return (email, response.user.id, bundle.publicKey)
    }

    static func device(_ base: String) throws -> TestDevice {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-device-\(UUID().uuidString)")
        return TestDevice(
            client: try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: directory)),
            deviceId: UUID().uuidString.lowercased(), directory: directory
        )
    }

    static func login(_ device: TestDevice, _ email: String) async throws {
        try await device.client.login(email: email, password: password, device: DeviceInfo(id: device.deviceId, name: "new client", platform: "test"), allowPBKDF2: true)
    }

    @Test("an account made before identity keys gets one at its next login, once: a second device takes the same one, and a server that hides it later is refused", arguments: TestBackend.available)
    func loginGivesTheIdentity(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let legacy = try await Self.legacyAccount(base)
            let first = try Self.device(base)
            try await Self.login(first, legacy.email)
            let identity = try #require(try await first.client.me().keys.identity)
            #expect(await first.client.session?.keys.identity == identity)
            #expect(IdentityKey.verify(certificate: identity.sharingKeyCertificate, identityKey: identity.identityKey, sharingKey: legacy.sharingKey, email: legacy.email))
            #expect(try await first.client.audit().events.contains { $0.type == "identity_set" })

            let second = try Self.device(base)
            try await Self.login(second, legacy.email)
            #expect(await second.client.session?.keys.identity == identity)

            // The server now answers without the identity: the device that has seen it refuses the login.
            try await withRewritingProxy(upstream: base, decide: { request in
                guard request.path == "/api/auth/login" || request.path == "/api/auth/me" else { return .forward }
                return .rewrite { status, body in
                    guard status == 200, var answer = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                        var keys = answer["keys"] as? [String: Any]
                    else { return (status, body) }
                    keys["identityKey"] = nil
                    keys["sharingKeyCertificate"] = nil
                    keys["encryptedIdentityKey"] = nil
                    answer["keys"] = keys
                    return (status, ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: answer)))
                }
            }) { proxy in
                let again = try CofferClient(api: APIClient(baseURL: proxy), sessionStore: SessionStore(directory: second.directory))
                await #expect { try await again.login(email: legacy.email, password: Self.password, device: DeviceInfo(id: second.deviceId, name: "new client", platform: "test"), allowPBKDF2: true) } throws: { error in
                    // Refused whichever way the server hides it (a device that saw it at this address says so; otherwise it is a 409 then nothing).
                    "\(error)".contains("tamper error") && "\(error)".contains("identity key")
                }
            }
        }
    }

    @Test("a vault shared before identity keys (an unsigned key copy) keeps working: the member who accepted it writes, a new device of the member sees an unsigned invitation, and the owner's next rotation is signed and taken", arguments: TestBackend.available)
    func sharedBeforeIdentityKeys(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let ownerAccount = try await Self.legacyAccount(base)
            let memberAccount = try await Self.legacyAccount(base)
            let owner = try Self.device(base)
            let member = try Self.device(base)
            try await Self.login(owner, ownerAccount.email)
            try await Self.login(member, memberAccount.email)

            // The share as a client before identity keys made it: an unsigned copy, the member's key pinned by its sharing key.
            let vaults = VaultClient(client: owner.client)
            let team = try await vaults.createVault(name: "Team")
            let ownerContacts = ContactStore(directory: owner.directory, userId: ownerAccount.userId)
            try ownerContacts.pin(PinnedContact(email: memberAccount.email, userId: memberAccount.userId, publicKey: memberAccount.sharingKey))
            let fullKey = try await SyncEngine.open(client: owner.client, directory: owner.directory)
            try await fullKey.sync(refreshVaults: true)
            let copy = try SealedVaultKey.sealUnsigned(
                try Self.rawKey(of: team), to: memberAccount.sharingKey, vaultId: team.summary.id, sealerId: ownerAccount.userId, recipientId: memberAccount.userId
            )
            let _: Share = try await owner.client.authorized(
                .POST, "/api/vaults/\(team.summary.id)/share", body: ShareVaultRequest(userId: memberAccount.userId, role: .write, wrappedKey: copy, keyEpoch: 1)
            )

            let engine = try await member.engine()
            try await engine.sync(refreshVaults: true)
            let shared = try #require(try await engine.vaults().first { $0.summary.id == team.summary.id })
            let invitation = try #require(try await engine.invitation(for: shared.summary))
            #expect(!invitation.signed)
            try await engine.accept(shared.summary)
            try await engine.addItem(ItemDocument(title: "before the rotation"), vaultId: team.summary.id)
            #expect(try await engine.sync().pushed == 1)

            // A new device of the member: the unsigned copy is an invitation, shown as unsigned.
            let memberSecond = try Self.device(base)
            try await Self.login(memberSecond, memberAccount.email)
            let secondEngine = try await memberSecond.engine()
            try await secondEngine.sync(refreshVaults: true)
            let seen = try #require(try await secondEngine.vaults().first { $0.summary.id == team.summary.id })
            #expect(try await secondEngine.invitation(for: seen.summary)?.signed == false)

            // The owner's next login signs the membership its device can vouch for: its pin of the
            // member, upgraded to the identity that certifies the very sharing key it pinned.
            let ownerSharing = SharingClient(vaults: vaults, contacts: ownerContacts)
            #expect(try await ownerSharing.signMissingGrants() == 1)
            #expect(try await ownerSharing.signMissingGrants() == 0)
            let ownerIdentity = try #require(try await owner.client.me().keys.identityKey)
            let checks = SharingTrust.grants(
                of: try await ownerSharing.members(vaultId: team.summary.id), vaultId: team.summary.id, ownerId: ownerAccount.userId, ownerIdentity: ownerIdentity
            )
            guard case .verified(let grant)? = checks[memberAccount.userId] else { Issue.record("\(checks)"); return }
            #expect(grant.role == "write")

            // The owner rotates: the copy is signed, the member's legacy pin of the owner is
            // upgraded to the identity that certifies the pinned sharing key, and the key is taken.
            _ = try await ownerSharing.rotateKey(of: try await vaults.vault(id: team.summary.id))
            #expect(try await engine.sync(refreshVaults: true).refusedVaults.isEmpty)
            #expect(try await engine.keyEpoch(vaultId: team.summary.id) == 2)
            let ownerPin = try #require(try ContactStore(directory: member.directory, userId: memberAccount.userId).contact(userId: ownerAccount.userId))
            #expect(ownerPin.identityKey == (try await owner.client.me().keys.identityKey))
            try await engine.addItem(ItemDocument(title: "after the rotation"), vaultId: team.summary.id)
            #expect(try await engine.sync().pushed == 1)
            // The owner's pin of the member was upgraded the same way when the rotation sealed to it.
            #expect(try ownerContacts.contact(userId: memberAccount.userId)?.identityKey == (try await member.client.me().keys.identityKey))
        }
    }

    /// The raw vault key, as the owner's client holds it (sealed into a legacy copy by hand).
    static func rawKey(of vault: DecryptedVault) throws -> SymmetricKey {
        vault.key.key
    }
}
