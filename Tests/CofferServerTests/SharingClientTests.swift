import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `SharingClient` against a live server: keys sealed on the device, pinned contacts, and key
/// rotation after a revoke (SPEC.md §8).
@Suite("Sharing client")
struct SharingClientTests {
    struct Person {
        let client: CofferClient
        let vaults: VaultClient
        let sharing: SharingClient
        let directory: URL
        var userId: String { get async { await client.session!.userId } }
        let email: String

        static func register(_ base: String, _ name: String) async throws -> Person {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coffer-share-\(UUID().uuidString)")
            return try await make(base, name, directory: directory, register: true)
        }

        /// The same local account (config directory, session, pinned contacts) talking to another URL.
        func via(_ base: String) async throws -> Person {
            try await Person.make(base, email, directory: directory, register: false)
        }

        private static func make(_ base: String, _ name: String, directory: URL, register: Bool) async throws -> Person {
            let store = SessionStore(directory: directory)
            let client = try CofferClient(api: APIClient(baseURL: base), sessionStore: store)
            let email = register ? "\(name)-\(UUID().uuidString.prefix(8).lowercased())@example.test" : name
            if register {
                try await client.register(
                    email: email, password: "a strong password", device: DeviceInfo(id: UUID().uuidString.lowercased(), name: name, platform: "test"),
                    kdf: .browserCompatible
                )
            }
            let vaults = VaultClient(client: client)
            let userId = await client.session!.userId
            return Person(client: client, vaults: vaults, sharing: SharingClient(vaults: vaults, contacts: ContactStore(directory: directory, userId: userId)), directory: directory, email: email)
        }
    }

    @Test("share, read, edit as writer, revoke with key rotation: the old key opens nothing new", arguments: TestBackend.available)
    func shareEditRevokeRotate(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let alice = try await Person.register(base, "alice")
            let bob = try await Person.register(base, "bob")
            let carol = try await Person.register(base, "carol")
            let team = try await alice.vaults.createVault(name: "Team")
            let wifi = try await alice.vaults.addItem(ItemDocument(title: "Wi-Fi", password: "guest-123"), to: team)
            _ = try await alice.vaults.addItem(ItemDocument(title: "Printer", username: "admin", password: "toner"), to: team)

            // First use: the contact is new, its fingerprint is shown and then pinned.
            let bobCheck = try await alice.sharing.lookup(email: bob.email)
            guard case .new(let bobContact) = bobCheck else { Issue.record("expected a new contact, got \(bobCheck)"); return }
            let bobPublicKey = await bob.client.session!.keys.publicKey
            let bobId = await bob.userId
            let aliceId = await alice.userId
            // The fingerprint is of Bob's identity key, which certifies his sharing key.
            let bobIdentity = try #require(await bob.client.session!.keys.identityKey)
            #expect(bobContact.fingerprint == KeyFingerprint.of(userId: bobId, identityKey: bobIdentity))
            #expect(bobContact.identityKey == bobIdentity)
            _ = try await alice.sharing.share(team, with: bobCheck, role: .write)
            #expect(try alice.sharing.contacts.contact(userId: bobId)?.publicKey == bobPublicKey)
            _ = try await alice.sharing.share(team, with: try await alice.sharing.lookup(email: carol.email), role: .read)

            // Bob opens the shared vault with his sharing key and reads the items.
            let bobsTeam = try #require(try await bob.vaults.vaults().first { $0.summary.id == team.summary.id })
            #expect(bobsTeam.metadata.name == "Team" && bobsTeam.summary.role == .write && bobsTeam.summary.keySealedBy == aliceId)
            let bobsItems = try await bob.vaults.items(in: bobsTeam)
            #expect(Set(bobsItems.compactMap(\.document?.title)) == ["Wi-Fi", "Printer"])

            // Bob (write) edits; Alice sees the edit. Carol (read) cannot edit.
            let bobsWifi = try #require(bobsItems.first { $0.item.id == wifi.item.id })
            _ = try await bob.vaults.editItem(bobsWifi, document: ItemDocument(title: "Wi-Fi", password: "guest-456"), in: bobsTeam)
            #expect(try await alice.vaults.item(id: wifi.item.id).0.document?.password == "guest-456")
            let carolsTeam = try #require(try await carol.vaults.vaults().first { $0.summary.id == team.summary.id })
            let carolsWifi = try await carol.vaults.item(id: wifi.item.id).0
            await #expect { _ = try await carol.vaults.editItem(carolsWifi, document: ItemDocument(title: "hacked"), in: carolsTeam) } throws: { error in
                (error as? CofferClientError).map { if case .server(403, _, _, _) = $0 { true } else { false } } ?? false
            }

            // Alice revokes Bob: new key for Alice and Carol, both items re-encrypted.
            let rotation = try #require(try await alice.sharing.revoke(team, member: bobId))
            #expect(rotation.reencrypted == 2)
            let fresh = rotation.vault
            let later = try await alice.vaults.addItem(ItemDocument(title: "Alarm", password: "4711"), to: fresh)
            for item in try await alice.vaults.items(in: fresh) {
                // Everything in the vault now opens with the new key and fails with the old one.
                #expect(throws: (any Error).self) {
                    try VaultCrypto.openItem(item.item.encryptedData!, itemId: item.item.id, vaultId: team.summary.id, version: item.item.version, key: team.key)
                }
                #expect(item.document != nil)
            }
            #expect(throws: (any Error).self) {
                try VaultCrypto.openItem(later.item.encryptedData!, itemId: later.item.id, vaultId: team.summary.id, version: later.item.version, key: bobsTeam.key)
            }
            // Bob loses the vault; Carol keeps reading with the new key.
            #expect(try await bob.vaults.vaults().contains { $0.summary.id == team.summary.id } == false)
            let bobsPull: PullResponse = try await bob.client.authorized(.POST, "/api/sync/pull", body: PullRequest(vaults: [team.summary.id: 0]))
            #expect(bobsPull.lost == [team.summary.id] && bobsPull.vaults.isEmpty)
            let carolsFresh = try #require(try await carol.vaults.vaults().first { $0.summary.id == team.summary.id })
            #expect(Set(try await carol.vaults.items(in: carolsFresh).compactMap(\.document?.title)) == ["Wi-Fi", "Printer", "Alarm"])

            // Both sides see the grant and the revoke in their audit logs.
            #expect(try await alice.client.audit().events.map(\.type).filter { $0.hasPrefix("share_") } == ["share_revoked", "share_granted", "share_granted"])
            #expect(try await bob.client.audit().events.map(\.type).filter { $0.hasPrefix("share_") } == ["share_revoked", "share_granted"])
        }
    }

    @Test("a server substituting its own key: refused once pinned, and on first use the fingerprint shown is not the recipient's", arguments: TestBackend.available)
    func substitutedKeyIsCaught(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let alice = try await Person.register(base, "alice")
            let bob = try await Person.register(base, "bob")
            let dave = try await Person.register(base, "dave")
            let evilKey = Base64URL.encode(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
            let bobId = await bob.userId
            let bobKey = await bob.client.session!.keys.publicKey
            let realFingerprint = KeyFingerprint.of(userId: bobId, identityKey: try #require(await bob.client.session!.keys.identityKey))
            let serverIdentity = Curve25519.Signing.PrivateKey()
            let serverIdentityKey = Base64URL.encode(serverIdentity.publicKey.rawRepresentation)

            // Alice pins Bob's real key through the honest server.
            let first = try await alice.vaults.createVault(name: "First")
            _ = try await alice.sharing.share(first, with: try await alice.sharing.lookup(email: bob.email), role: .read)

            try await withKeySubstitutingProxy(upstream: base, substitutedKey: evilKey, identity: serverIdentity) { proxy in
                let aliceViaProxy = try await alice.via(proxy)
                let second = try await aliceViaProxy.vaults.createVault(name: "Second")

                // Pinned: the substituted key is refused and nothing is shared.
                let check = try await aliceViaProxy.sharing.lookup(email: bob.email)
                guard case .changed(let pinned, let offered) = check else { Issue.record("expected a changed key, got \(check)"); return }
                #expect(pinned.fingerprint == realFingerprint && offered.fingerprint != realFingerprint)
                await #expect { _ = try await aliceViaProxy.sharing.share(second, with: check, role: .read) } throws: { error in
                    guard case CofferError.contactKeyChanged(let email, let pinnedPrint, let offeredPrint) = error else { return false }
                    return email == bob.email && pinnedPrint == realFingerprint && offeredPrint == offered.fingerprint
                }
                #expect(try await aliceViaProxy.sharing.members(vaultId: second.summary.id).count == 1)
                #expect(try aliceViaProxy.sharing.contacts.contact(userId: bobId)?.publicKey == bobKey)

                // First use (Dave was never pinned): the fingerprint shown is the substituted key's,
                // which differs from the one Dave sees for himself, so comparing them exposes it.
                let daveCheck = try await aliceViaProxy.sharing.lookup(email: dave.email)
                guard case .new(let shown) = daveCheck else { Issue.record("expected a new contact, got \(daveCheck)"); return }
                let daveId = await dave.userId
                let davesOwn = KeyFingerprint.of(userId: daveId, identityKey: try #require(await dave.client.session!.keys.identityKey))
                #expect(shown.fingerprint == KeyFingerprint.of(userId: daveId, identityKey: serverIdentityKey))
                #expect(shown.fingerprint != davesOwn)
            }

            // A server that swaps only the sharing key, keeping the real identity and certificate,
            // is caught on first use too: the certificate does not vouch for the swapped key.
            try await withRewritingProxy(upstream: base, decide: { request in
                guard request.path == "/api/users/lookup" else { return .forward }
                return .rewrite { status, body in
                    guard status == 200, var found = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else { return (status, body) }
                    found["publicKey"] = evilKey
                    return (status, ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: found)))
                }
            }) { proxy in
                let aliceViaProxy = try await alice.via(proxy)
                await #expect { _ = try await aliceViaProxy.sharing.lookup(email: dave.email) } throws: { error in
                    "\(error)".contains("not certified by the identity key")
                }
            }
        }
    }
}
