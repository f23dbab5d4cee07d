import CofferCrypto
import CofferKit
import CofferProtocol
import CofferTestSupport
import Crypto
import Foundation
import NIOCore
import Synchronization
import Testing

/// The sharing trust rules through the built `coffer` binary with a malicious server (a proxy
/// in front of a real one, issue 15): an owned vault relabelled as "sealed" with the server's
/// key, and members injected or substituted during `coffer vault revoke`.
@Suite("Sharing trust end to end", .serialized)
struct SharingTrustEndToEndTests {
    typealias Setup = RotationEndToEndTests.Setup

    static func json(_ body: ByteBuffer) throws -> Any { try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) }
    static func buffer(_ value: Any) throws -> ByteBuffer { ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: value)) }

    @Test("an owned vault relabelled as sealed by the user with the server's key: sync and vault list refuse it, and item add stays under the real key", arguments: E2EBackend.available)
    func ownedVaultRelabelled(_ backend: E2EBackend) async throws {
        let (setup, id) = try await RotationEndToEndTests.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        try await RotationEndToEndTests.expectOK(a(["sync"], nil))
        let client = try CofferClient(api: APIClient(baseURL: setup.server.url), sessionStore: SessionStore(directory: setup.directory.appendingPathComponent("config-a")))
        let session = try #require(await client.session)
        let listing = try await RotationEndToEndTests.expectOK(a(["vault", "list", "--json"], nil))
        let vaultId = try #require((try JSONSerialization.jsonObject(with: listing.stdout) as? [[String: Any]])?.first?["id"] as? String)
        // The server's own key, sealed to the user "by" the user (HPKE base mode lets anyone do that).
        var forged = try await VaultClient(client: client).vault(id: vaultId).summary
        forged.keySealedBy = session.userId
        forged.wrappedKey = try SealedVaultKey.sealUnsigned(
            SymmetricKey(size: .bits256), to: session.keys.publicKey, vaultId: vaultId, sealerId: session.userId, recipientId: session.userId
        )
        let forgedData = try JSONEncoder().encode(forged)
        try await withRewritingProxy(upstream: setup.server.url, decide: { request in
            if request.method == "GET", request.path.hasPrefix("/api/vaults") {
                return .rewrite(JSONRewrite.replacingVault(vaultId, with: forgedData))
            }
            if request.path == "/api/sync/pull" {
                return .rewrite { status, body in
                    guard status == 200, var answer = try Self.json(body) as? [String: Any] else { return (status, body) }
                    answer["gained"] = ((answer["gained"] as? [Any]) ?? []) + [try JSONSerialization.jsonObject(with: forgedData)]
                    return (status, try Self.buffer(answer))
                }
            }
            return .forward
        }) { proxy in
            let attacked = setup.device("a", via: proxy)
            let sync = try await attacked(["sync"], nil)
            let list = try await attacked(["vault", "list"], nil)
            for result in [sync, list] {
                let shown = result.stderr + result.stdoutText
                #expect(shown.contains("owned by this account") && shown.contains("sealed by"), "\(shown)")
            }
            let add = try await attacked(["item", "add", "Team", "--title", "New card", "--secret-stdin"], "secret-9\n")
            #expect(add.status == 0, "\(add.stderr)")
        }
        // The local copy kept the real key: the item pushes through the honest server and another device reads it.
        #expect(try await RotationEndToEndTests.expectOK(a(["item", "get", id, "--json"], nil)).stdoutText.contains("Router"))
        try await RotationEndToEndTests.expectOK(a(["sync"], nil))
        let b = setup.device("b")
        try await RotationEndToEndTests.expectOK(b(["account", "login", "--email", setup.ownerEmail, "--password-stdin", "--pbkdf2"], "pw owner\n"))
        let onB = try await RotationEndToEndTests.expectOK(b(["item", "list", "Team"], nil))
        #expect(onB.stdoutText.contains("New card") && onB.stdoutText.contains("Router"), "\(onB.stdoutText)")
    }

    @Test("a fake rotation against a member, a key the server made \"sealed by the owner\" and signed with the server's identity: sync names the vault and the changed identity, and the item the member adds meanwhile goes out under the real key", arguments: E2EBackend.available)
    func fakeRotationAgainstMember(_ backend: E2EBackend) async throws {
        let (setup, _) = try await RotationEndToEndTests.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        let m = setup.device("m")
        try await RotationEndToEndTests.expectOK(a(["vault", "share", "Team", setup.memberEmail, "--role", "write", "--yes"], nil))
        try await RotationEndToEndTests.expectOK(m(["sync"], nil))
        try await RotationEndToEndTests.expectOK(m(["vault", "accept", "Team"], nil))

        let client = try CofferClient(api: APIClient(baseURL: setup.server.url), sessionStore: SessionStore(directory: setup.directory.appendingPathComponent("config-m")))
        let session = try #require(await client.session)
        let real = try #require(try await VaultClient(client: client).vaults().first).summary
        let vaultId = real.id
        let forged = try ServerForgery.rotation(
            of: real, name: "Team", sealedBy: real.ownerId, to: session.userId, recipientKey: session.keys.publicKey, signer: Curve25519.Signing.PrivateKey()
        )
        let forgedData = try JSONEncoder().encode(forged)
        let underServerKey = Atomic(0)
        try await withRewritingProxy(upstream: setup.server.url, decide: { request in
            if request.method == "POST", request.path == "/api/sync/push" {
                let push = try JSONDecoder().decode(PushRequest.self, from: Data(request.body.readableBytesView))
                if push.changes.contains(where: { $0.encryptedData.flatMap(Envelope.keyEpoch(of:)) == 2 }) { underServerKey.add(1, ordering: .relaxed) }
                return .forward
            }
            guard request.method == "GET", request.path.hasPrefix("/api/vaults") else { return .forward }
            return .rewrite(JSONRewrite.replacingVault(vaultId, with: forgedData))
        }) { proxy in
            let attacked = setup.device("m", via: proxy)
            let sync = try await attacked(["sync"], nil)
            let shown = sync.stderr + sync.stdoutText
            #expect(shown.contains("Team") && shown.contains("changed since it was pinned"), "\(shown)")
            let add = try await attacked(["item", "add", "Team", "--title", "Card", "--secret-stdin"], "secret-7\n")
            #expect(add.status == 0, "\(add.stderr)")
            _ = try await attacked(["sync"], nil)
        }
        #expect(underServerKey.load(ordering: .relaxed) == 0, "an item went out under the server's key")
        // Through the honest server the queued item goes out under key 1, and the owner reads it.
        try await RotationEndToEndTests.expectOK(m(["sync"], nil))
        try await RotationEndToEndTests.expectOK(a(["sync"], nil))
        let onOwner = try await RotationEndToEndTests.expectOK(a(["item", "list", "Team"], nil))
        #expect(onOwner.stdoutText.contains("Card"), "\(onOwner.stdoutText)")
    }

    @Test("a member injected into the member list during `vault revoke` is shown with its fingerprint and refused; injected later, the revoke stays recorded and `coffer status` says why", arguments: E2EBackend.available)
    func injectedMemberDuringRevoke(_ backend: E2EBackend) async throws {
        let (setup, _) = try await RotationEndToEndTests.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        try await RotationEndToEndTests.expectOK(a(["vault", "share", "Team", setup.memberEmail, "--role", "write", "--yes"], nil))
        let strangerKey = Base64URL.encode(Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation))
        let strangerId = UUID().uuidString.lowercased()
        let fingerprint = KeyFingerprint.of(userId: strangerId, publicKey: strangerKey)
        let strangerData = try JSONEncoder().encode(VaultMember(
            userId: strangerId, email: "stranger@example.test", role: .write, publicKey: strangerKey, shareId: UUID().uuidString.lowercased(), grantedBy: nil, since: .now
        ))
        let memberGets = Mutex(0)
        let rotations = Mutex(0)
        // `skip` member listings pass untouched, the later ones carry the stranger.
        func proxy(skip: Int) -> @Sendable (ProxiedRequest) async throws -> ProxyAction {
            { request in
                if request.method == "POST", request.path.hasSuffix("/keys") { rotations.withLock { $0 += 1 } }
                guard request.method == "GET", request.path.hasSuffix("/members") else { return .forward }
                guard memberGets.withLock({ $0 += 1; return $0 }) > skip else { return .forward }
                return .rewrite { status, body in
                    guard status == 200, var answer = try Self.json(body) as? [String: Any] else { return (status, body) }
                    answer["members"] = ((answer["members"] as? [Any]) ?? []) + [try JSONSerialization.jsonObject(with: strangerData)]
                    return (status, try Self.buffer(answer))
                }
            }
        }
        try await withRewritingProxy(upstream: setup.server.url, decide: proxy(skip: 0)) { url in
            let refused = try await setup.device("a", via: url)(["vault", "revoke", "Team", setup.memberEmail], "n\n")
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("stranger@example.test  fingerprint \(fingerprint)"), "\(refused.stderr)")
            #expect(refused.stderr.contains("not confirmed; nobody was removed and the key was not rotated"), "\(refused.stderr)")
        }
        memberGets.withLock { $0 = 0 }
        try await withRewritingProxy(upstream: setup.server.url, decide: proxy(skip: 2)) { url in
            let refused = try await setup.device("a", via: url)(["vault", "revoke", "Team", setup.memberEmail], nil)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("did not finish") && refused.stderr.contains("stranger@example.test"), "\(refused.stderr)")
        }
        #expect(rotations.withLock { $0 } == 0, "a rotation was sent")
        // Nobody removed, the key unchanged, the stranger not pinned; status names the reason.
        let members = try await RotationEndToEndTests.expectOK(a(["vault", "members", "Team", "--json"], nil))
        #expect(try #require(try JSONSerialization.jsonObject(with: members.stdout) as? [[String: Any]]).count == 2)
        #expect(!(try await RotationEndToEndTests.expectOK(a(["contacts", "list"], nil)).stdoutText.contains("stranger")))
        let status = try await RotationEndToEndTests.expectOK(a(["status"], nil))
        #expect(status.stdoutText.contains("Revoke:     \(setup.memberEmail) from Team: removal and key rotation not done yet (last attempt: the vault key was not rotated: stranger@example.test (fingerprint \(fingerprint))"), "\(status.stdoutText)")
        // The honest server: the next sync finishes it.
        try await RotationEndToEndTests.expectOK(a(["sync"], nil))
        #expect(!(try await RotationEndToEndTests.expectOK(a(["status"], nil)).stdoutText.contains("Revoke:")))
        let left = try await RotationEndToEndTests.expectOK(a(["vault", "members", "Team", "--json"], nil))
        #expect(try #require(try JSONSerialization.jsonObject(with: left.stdout) as? [[String: Any]]).count == 1)
    }
}
