import CofferCrypto
import CofferKit
import CofferProtocol
import CofferServer
import CofferTestSupport
import Crypto
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// A malicious server (a rewriting proxy in front of a real one) against the sharing trust
/// rules (issue 15): an owned vault takes its key only from the account's own wrapping, a newly
/// shared vault is an invitation the engine does not write into until accepted, and a rotation
/// seals only to members pinned on this device or confirmed by the person.
@Suite("Sharing trust against a malicious server")
struct SharingTrustTests {
    /// A client of the same device (session, cache, contacts) talking to `base` instead of its server.
    static func client(_ device: TestDevice, via base: String) throws -> CofferClient {
        try CofferClient(api: APIClient(baseURL: base), sessionStore: SessionStore(directory: device.directory))
    }

    static func sharing(_ device: TestDevice, client: CofferClient? = nil) async throws -> SharingClient {
        SharingClient(vaults: VaultClient(client: client ?? device.client), contacts: ContactStore(directory: device.directory, userId: await device.client.session!.userId))
    }

    /// A key pair the server made for itself: HPKE base mode lets it seal to anyone in anyone's name.
    static func serverKeyPair() -> (Curve25519.KeyAgreement.PrivateKey, String) {
        let key = Curve25519.KeyAgreement.PrivateKey()
        return (key, Base64URL.encode(Array(key.publicKey.rawRepresentation)))
    }

    /// A vault name sealed as the client seals it, under a key the server chose.
    static func sealName(_ name: String, vaultId: String, key: SymmetricKey) throws -> String {
        try Envelope.seal(try JSONEncoder().encode(VaultMetadata(name: name)), key: key, context: EnvelopeContext(purpose: "vault-metadata", owner: vaultId), keyEpoch: 1)
    }

    static func json(_ body: ByteBuffer) throws -> Any { try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) }
    static func buffer(_ value: Any) throws -> ByteBuffer { ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: value)) }

    /// Everything an engine holds, to compare before and after an attack.
    struct Snapshot: Equatable {
        var vaults: [VaultSummary]
        var items: [String: String?]
        var pending: Int
        var conflicts: Int
    }

    static func snapshot(_ engine: SyncEngine) async throws -> Snapshot {
        var items: [String: String?] = [:]
        var pending = 0
        let vaults = try await engine.vaults().map(\.summary).sorted { $0.id < $1.id }
        for vault in vaults {
            for item in try await engine.items(vaultId: vault.id, includeDeleted: true) {
                items[item.item.item.id] = item.item.document?.title
                pending += item.pendingChanges
            }
        }
        return Snapshot(vaults: vaults, items: items, pending: pending, conflicts: try await engine.conflicts().count)
    }

    // MARK: 1. An owned vault's key comes only from the account's own wrapping

    @Test("an owned vault relabelled as sealed by the user, with a key the server made, is refused; what is queued next goes out under the real key", arguments: TestBackend.available)
    func ownedVaultRelabelledAsSealed(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let devices = try await TestDevice.account(server: base, devices: 2)
            let session = try #require(await devices[0].client.session)
            let vault = try await VaultClient(client: devices[0].client).createVault(name: "Personal")
            let vaultId = vault.summary.id
            let engine = try await devices[0].engine()
            try await engine.sync(refreshVaults: true)
            try await engine.addItem(ItemDocument(title: "Bank", password: "real"), vaultId: vaultId)
            try await engine.sync()
            let before = try await Self.snapshot(engine)

            // The server's own key, sealed to the user "by" the user, and the name sealed under it.
            let serverKey = SymmetricKey(size: .bits256)
            var forged = vault.summary
            forged.keySealedBy = session.userId
            forged.wrappedKey = try SealedVaultKey.sealUnsigned(
                serverKey, to: session.keys.publicKey, vaultId: vaultId, sealerId: session.userId, recipientId: session.userId, keyEpoch: 1
            )
            forged.encryptedMetadata = try Self.sealName("Personal", vaultId: vaultId, key: serverKey)
            let forgedData = try JSONEncoder().encode(forged)
            let outcome = try await withRewritingProxy(upstream: base, decide: { request in
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
            }) { proxy -> (sync: String, list: String, queued: String) in
                let client = try Self.client(devices[0], via: proxy)
                let attacked = try await SyncEngine.open(client: client, directory: devices[0].directory)
                var sync = ""
                do {
                    // Refused as a whole round, or (failing closed vault by vault) named in the report.
                    sync = "\(try await attacked.sync(refreshVaults: true))"
                } catch { sync = "\(error)" }
                var list = ""
                do {
                    let listed = try await VaultClient(client: client).vaults()
                    #expect(!listed.contains { $0.summary.keySealedBy != nil }, "a sealed copy of an owned vault was accepted")
                    list = "not listed"
                } catch { list = "\(error)" }
                let queued = try await attacked.addItem(ItemDocument(title: "New card", password: "secret"), vaultId: vaultId).item.item.id
                _ = try? await attacked.sync()
                return (sync, list, queued)
            }
            #expect(outcome.sync.contains("owned by this account") && outcome.sync.contains("sealed by"), "\(outcome.sync)")
            #expect(outcome.list.contains("owned by this account") || outcome.list == "not listed", "\(outcome.list)")

            // Nothing changed locally but the queued item, which the real key opens.
            let after = try await Self.snapshot(try await devices[0].engine())
            #expect(after.vaults == before.vaults)
            #expect(try await engine.vaults().first { $0.summary.id == vaultId }?.summary.keySealedBy == nil)
            #expect(after.items.filter { $0.key != outcome.queued } == before.items)
            try await engine.sync()
            let other = try await devices[1].engine()
            try await other.sync(refreshVaults: true)
            #expect(try await other.item(id: outcome.queued)?.item.document?.password == "secret")
        }
    }

    // MARK: 2. A newly shared vault is an invitation

    @Test("a shared vault nobody created is listed as an invitation with the sharer's fingerprint, and nothing is written into it", arguments: TestBackend.available)
    func inventedVaultIsAnInvitation(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let device = try await TestDevice.account(server: base, devices: 1)[0]
            let session = try #require(await device.client.session)
            let own = try await VaultClient(client: device.client).createVault(name: "Personal").summary.id
            let engine = try await device.engine()
            try await engine.sync(refreshVaults: true)
            try await engine.addItem(ItemDocument(title: "Mine"), vaultId: own)
            try await engine.sync()
            let before = try await Self.snapshot(engine)

            let (_, fakePublic) = Self.serverKeyPair()
            let fakeOwner = UUID().uuidString.lowercased()
            let familyId = UUID().uuidString.lowercased()
            let key = SymmetricKey(size: .bits256)
            let family = VaultSummary(
                id: familyId, ownerId: fakeOwner, role: .write,
                encryptedMetadata: try Self.sealName("Family", vaultId: familyId, key: key),
                wrappedKey: try SealedVaultKey.sealUnsigned(key, to: session.keys.publicKey, vaultId: familyId, sealerId: fakeOwner, recipientId: session.userId),
                revision: 0, createdAt: .now, updatedAt: .now, keySealedBy: fakeOwner
            )
            let familyData = try JSONEncoder().encode(family)
            let membersData = try JSONEncoder().encode(VaultMembersResponse(members: [
                VaultMember(userId: fakeOwner, email: "family@example.test", role: .owner, publicKey: fakePublic, shareId: nil, grantedBy: nil, since: .now),
                VaultMember(userId: session.userId, email: session.email, role: .write, publicKey: session.keys.publicKey, shareId: UUID().uuidString.lowercased(), grantedBy: fakeOwner, since: .now),
            ]))
            let attempts = try await withRewritingProxy(upstream: base, decide: { request in
                switch (request.method, request.path) {
                case ("GET", "/api/vaults"):
                    return .rewrite { status, body in
                        guard var answer = try Self.json(body) as? [String: Any] else { return (status, body) }
                        answer["vaults"] = ((answer["vaults"] as? [Any]) ?? []) + [try JSONSerialization.jsonObject(with: familyData)]
                        return (status, try Self.buffer(answer))
                    }
                case ("GET", "/api/vaults/\(familyId)"): return .answer(status: 200, json: String(decoding: familyData, as: UTF8.self))
                case ("GET", "/api/vaults/\(familyId)/members"): return .answer(status: 200, json: String(decoding: membersData, as: UTF8.self))
                case ("POST", "/api/sync/pull"):
                    return .rewrite { status, body in
                        guard status == 200, var answer = try Self.json(body) as? [String: Any] else { return (status, body) }
                        answer["gained"] = ((answer["gained"] as? [Any]) ?? []) + [try JSONSerialization.jsonObject(with: familyData)]
                        return (status, try Self.buffer(answer))
                    }
                default: return .forward
                }
            }) { proxy -> [String] in
                let attacked = try await SyncEngine.open(client: try Self.client(device, via: proxy), directory: device.directory)
                try await attacked.sync(refreshVaults: true)
                let listed = try #require(try await attacked.vaults().first { $0.summary.id == familyId })
                #expect(listed.metadata.name == "Family")
                let invitation = try #require(try await attacked.invitation(for: listed.summary))
                #expect(invitation.email == "family@example.test")
                #expect(invitation.fingerprint == KeyFingerprint.of(userId: fakeOwner, publicKey: fakePublic))
                #expect(try await attacked.invitation(for: try #require(try await attacked.vaults().first { $0.summary.id == own }).summary) == nil)
                #expect(try await attacked.items(vaultId: familyId).isEmpty)  // readable
                var refusals: [String] = []
                do {
                    try await attacked.addItem(ItemDocument(title: "Family PIN", password: "1234"), vaultId: familyId)
                } catch { refusals.append("\(error)") }
                return refusals
            }
            #expect(attempts.count == 1 && attempts[0].contains("coffer vault accept") && attempts[0].contains("\"Family\""), "\(attempts)")
            // Nothing was queued, and the account's own vault is as it was.
            let after = try await Self.snapshot(engine)
            #expect(after.pending == 0 && after.conflicts == before.conflicts)
            #expect(after.items == before.items)
            #expect(after.vaults.filter { $0.id != familyId } == before.vaults)
            #expect(try ContactStore(directory: device.directory, userId: session.userId).contact(userId: fakeOwner) == nil)
        }
    }

    @Test("a real share is an invitation until accepted; accepting pins the sharer and the member writes; the owner's vaults and an upgraded cache count as accepted", arguments: TestBackend.available)
    func acceptingAnInvitation(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let (owner, member, team) = try await Self.sharedTeam(base)
            let ownerSession = try #require(await owner.client.session)
            let memberSession = try #require(await member.client.session)
            let ownerEngine = try await owner.engine()
            try await ownerEngine.sync(refreshVaults: true)
            #expect(try await ownerEngine.isAccepted(team.summary))

            let engine = try await member.engine()
            try await engine.sync(refreshVaults: true)
            let shared = try #require(try await engine.vaults().first { $0.summary.id == team.summary.id })
            let invitation = try #require(try await engine.invitation(for: shared.summary))
            #expect(invitation.email == ownerSession.email)
            #expect(invitation.fingerprint == KeyFingerprint.of(userId: ownerSession.userId, identityKey: try #require(ownerSession.keys.identityKey)))
            #expect(invitation.signed)
            await #expect(throws: InvitationError.notAccepted(vaultId: team.summary.id, name: "Team")) {
                try await engine.addItem(ItemDocument(title: "too early"), vaultId: team.summary.id)
            }
            try await engine.accept(shared.summary)
            #expect(try ContactStore(directory: member.directory, userId: memberSession.userId).contact(userId: ownerSession.userId)?.publicKey == ownerSession.keys.publicKey)
            try await engine.addItem(ItemDocument(title: "after accepting"), vaultId: team.summary.id)
            #expect(try await engine.sync().pushed == 1)
        }
    }

    // MARK: 2b. A new key for a member is signed by a pinned identity

    /// An owner and a member, each one device, and the owner's vault "Team" shared with the member as a writer (not yet accepted).
    static func sharedTeam(_ base: String) async throws -> (owner: TestDevice, member: TestDevice, team: DecryptedVault) {
        let owner = try await TestDevice.account(server: base, devices: 1)[0]
        let member = try await TestDevice.account(server: base, devices: 1)[0]
        let sharing = try await Self.sharing(owner)
        let team = try await VaultClient(client: owner.client).createVault(name: "Team")
        _ = try await sharing.share(team, with: try await sharing.lookup(email: try #require(await member.client.session).email), role: .write)
        return (owner, member, team)
    }


    /// How the server forges a "rotation" of a member's vault: a key it made, sealed to the member
    /// in the owner's name, either unsigned or signed by the server's own identity key.
    enum ForgedRotation: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case unsigned, signedByServer
        var testDescription: String { rawValue }
    }

    @Test("a fake rotation of a member's vault \"sealed by the owner\" with the server's key is refused by name: nothing changes locally and what the member writes next goes out under the real key", arguments: TestBackend.available, ForgedRotation.allCases)
    func fakeRotationAgainstMember(_ backend: TestBackend, _ forgery: ForgedRotation) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let (owner, member, team) = try await Self.sharedTeam(base)
            let ownerSession = try #require(await owner.client.session)
            let memberSession = try #require(await member.client.session)
            let engine = try await member.engine()
            try await engine.sync(refreshVaults: true)
            try await engine.accept(try #require(try await engine.vaults().first { $0.summary.id == team.summary.id }).summary)
            try await engine.addItem(ItemDocument(title: "Wi-Fi", password: "real"), vaultId: team.summary.id)
            try await engine.sync()
            let before = try await Self.snapshot(engine)

            // Key 2, the server's, "sealed by the owner" to the member; the name sealed under it.
            let forged = try ServerForgery.rotation(
                of: try await VaultClient(client: member.client).vault(id: team.summary.id).summary, name: "Team", sealedBy: ownerSession.userId,
                to: memberSession.userId, recipientKey: memberSession.keys.publicKey, signer: forgery == .signedByServer ? Curve25519.Signing.PrivateKey() : nil
            )
            let forgedData = try JSONEncoder().encode(forged)
            let pushedUnderServerKey = RequestCount()
            let outcome = try await withRewritingProxy(upstream: base, decide: { request in
                if request.method == "POST", request.path == "/api/sync/push" {
                    // The attack succeeds if anything arrives sealed under key 2.
                    let push = try JSONDecoder().decode(PushRequest.self, from: Data(request.body.readableBytesView))
                    if push.changes.contains(where: { $0.encryptedData.flatMap(Envelope.keyEpoch(of:)) == 2 }) { pushedUnderServerKey.add() }
                    return .forward
                }
                guard request.method == "GET", request.path.hasPrefix("/api/vaults") else { return .forward }
                return .rewrite(JSONRewrite.replacingVault(team.summary.id, with: forgedData))
            }) { proxy -> (report: SyncReport, queued: String, wrote: Bool) in
                let attacked = try await SyncEngine.open(client: try Self.client(member, via: proxy), directory: member.directory)
                let report = try await attacked.sync(refreshVaults: true)
                let queued = try await attacked.addItem(ItemDocument(title: "New card", password: "secret"), vaultId: team.summary.id).item.item.id
                _ = try await attacked.sync()
                // The CLI's own write check (vault rename, share) refuses the forged key too.
                let listed = try await VaultClient(client: try Self.client(member, via: proxy)).vault(id: team.summary.id)
                let wrote = (try? await attacked.requireTrustedKey(listed)) != nil
                return (report, queued, wrote)
            }
            let refusal = try #require(outcome.report.refusedVaults.first { $0.vaultId == team.summary.id }, "the forged rotation was taken: \(outcome.report)")
            switch forgery {
            case .unsigned: #expect(refusal.reason.contains("without its sealer's signature"), "\(refusal.reason)")
            case .signedByServer: #expect(refusal.reason.contains("fingerprint") && refusal.reason.contains("changed") || refusal.reason.contains("KEY CHANGED") || refusal.reason.contains("identity"), "\(refusal.reason)")
            }
            #expect(!outcome.wrote, "a write check took the forged key")
            #expect(pushedUnderServerKey.value == 0, "something was pushed under the server's key")
            #expect(try await engine.keyEpoch(vaultId: team.summary.id) == 1)

            // Nothing changed locally but the queued item, which goes out under the real key.
            let reopened = try await member.engine()
            let after = try await Self.snapshot(reopened)
            #expect(after.vaults == before.vaults)
            #expect(after.items.filter { $0.key != outcome.queued } == before.items)
            try await reopened.sync()
            let ownerEngine = try await owner.engine()
            try await ownerEngine.sync(refreshVaults: true)
            #expect(try await ownerEngine.item(id: outcome.queued)?.item.document?.password == "secret")
        }
    }

    @Test("an unsigned key swapped into an invitation before it is accepted is refused: accepting cannot make the server's key writable", arguments: TestBackend.available)
    func unsignedKeyBeforeAcceptance(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let (owner, member, team) = try await Self.sharedTeam(base)
            let ownerSession = try #require(await owner.client.session)
            let memberSession = try #require(await member.client.session)
            let engine = try await member.engine()
            try await engine.sync(refreshVaults: true)
            #expect(try await engine.invitation(for: try #require(try await engine.vaults().first { $0.summary.id == team.summary.id }).summary) != nil)

            let forged = try ServerForgery.rotation(
                of: try await VaultClient(client: member.client).vault(id: team.summary.id).summary, name: "Team", sealedBy: ownerSession.userId,
                to: memberSession.userId, recipientKey: memberSession.keys.publicKey, signer: nil
            )
            let forgedData = try JSONEncoder().encode(forged)
            try await withRewritingProxy(upstream: base, decide: { request in
                guard request.method == "GET", request.path.hasPrefix("/api/vaults") else { return .forward }
                return .rewrite(JSONRewrite.replacingVault(team.summary.id, with: forgedData))
            }) { proxy in
                let attacked = try await SyncEngine.open(client: try Self.client(member, via: proxy), directory: member.directory)
                let report = try await attacked.sync(refreshVaults: true)
                let refusal = try #require(report.refusedVaults.first { $0.vaultId == team.summary.id }, "\(report)")
                #expect(refusal.reason.contains("without its sealer's signature"), "\(refusal.reason)")
                #expect(try await attacked.keyEpoch(vaultId: team.summary.id) == 1)
            }
            // Accepted through the honest server, the member writes under the owner's key 1.
            try await engine.accept(try #require(try await engine.vaults().first { $0.summary.id == team.summary.id }).summary)
            let queued = try await engine.addItem(ItemDocument(title: "Wi-Fi"), vaultId: team.summary.id).item.item.id
            #expect(try await engine.sync().pushed == 1)
            let ownerEngine = try await owner.engine()
            try await ownerEngine.sync(refreshVaults: true)
            #expect(try await ownerEngine.item(id: queued)?.item.document?.title == "Wi-Fi")
        }
    }

    @Test("a real rotation by the owner after an admin shared the vault: the member, who pinned only the admin, is asked to confirm the owner, then takes the new key", arguments: TestBackend.available)
    func rotationByUnpinnedOwnerNeedsConfirmation(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let owner = try await TestDevice.account(server: base, devices: 1)[0]
            let admin = try await TestDevice.account(server: base, devices: 1)[0]
            let member = try await TestDevice.account(server: base, devices: 1)[0]
            let ownerSession = try #require(await owner.client.session)
            let memberSession = try #require(await member.client.session)
            let ownerSharing = try await Self.sharing(owner)
            let team = try await VaultClient(client: owner.client).createVault(name: "Team")
            _ = try await ownerSharing.share(team, with: try await ownerSharing.lookup(email: try #require(await admin.client.session).email), role: .admin)
            let adminSharing = try await Self.sharing(admin)
            let adminsTeam = try await VaultClient(client: admin.client).vault(id: team.summary.id)
            _ = try await adminSharing.share(adminsTeam, with: try await adminSharing.lookup(email: memberSession.email), role: .write)

            let engine = try await member.engine()
            try await engine.sync(refreshVaults: true)
            let accepted = try await engine.accept(try #require(try await engine.vaults().first { $0.summary.id == team.summary.id }).summary)
            #expect(accepted.sharerId != ownerSession.userId)

            // The owner rotates (signed by the owner, whom the member has not pinned).
            let current = try await VaultClient(client: owner.client).vault(id: team.summary.id)
            _ = try await ownerSharing.rotateKey(of: current, confirming: try await ownerSharing.unconfirmedMembers(vaultId: team.summary.id))
            let report = try await engine.sync(refreshVaults: true)
            let refusal = try #require(report.refusedVaults.first { $0.vaultId == team.summary.id })
            #expect(refusal.reason.contains("not pinned on this device") && refusal.reason.contains(ownerSession.email), "\(refusal.reason)")
            #expect(try await engine.keyEpoch(vaultId: team.summary.id) == 1)

            // Shown as a new key to confirm; accepting pins the owner's identity, then the key is taken.
            let summary = try await VaultClient(client: member.client).vault(id: team.summary.id).summary
            let invitation = try #require(try await engine.invitation(for: summary))
            #expect(invitation.reconfirm && invitation.signed)
            #expect(invitation.fingerprint == KeyFingerprint.of(userId: ownerSession.userId, identityKey: try #require(ownerSession.keys.identityKey)))
            try await engine.accept(summary)
            #expect(try await engine.sync(refreshVaults: true).refusedVaults.isEmpty)
            #expect(try await engine.keyEpoch(vaultId: team.summary.id) == 2)
            try await engine.addItem(ItemDocument(title: "after the rotation"), vaultId: team.summary.id)
            #expect(try await engine.sync().pushed == 1)
        }
    }

    // MARK: 3. A rotation seals only to confirmed members

    /// Appends `stranger` to every member listing of `vaultId`, and counts rotation requests.
    static func injecting(_ stranger: VaultMember, into vaultId: String, rotations: RequestCount) -> @Sendable (ProxiedRequest) async throws -> ProxyAction {
        let strangerData = try! JSONEncoder().encode(stranger)
        return { request in
            if request.method == "POST", request.path == "/api/vaults/\(vaultId)/keys" { rotations.add() }
            guard request.method == "GET", request.path == "/api/vaults/\(vaultId)/members" else { return .forward }
            return .rewrite { status, body in
                guard status == 200, var answer = try json(body) as? [String: Any] else { return (status, body) }
                answer["members"] = ((answer["members"] as? [Any]) ?? []) + [try JSONSerialization.jsonObject(with: strangerData)]
                return (status, try buffer(answer))
            }
        }
    }

    @Test("a member the server injects during a revoke is refused: nothing rotated, nobody removed, the revoke stays recorded with the reason, and finishes without the stranger", arguments: TestBackend.available)
    func injectedMemberDuringRevoke(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await KeyRotationTests.world(base)
            let device = world.owner[0]
            let engine = try await device.engine()
            try await engine.sync(refreshVaults: true)
            let before = try await Self.snapshot(engine)
            let member = try await KeyRotationTests.member(world, on: device)
            let (_, strangerKey) = Self.serverKeyPair()
            let stranger = VaultMember(
                userId: UUID().uuidString.lowercased(), email: "stranger@example.test", role: .write, publicKey: strangerKey,
                shareId: UUID().uuidString.lowercased(), grantedBy: nil, since: .now
            )
            let rotations = RequestCount()
            let refusal = try await withRewritingProxy(upstream: base, decide: Self.injecting(stranger, into: world.vaultId, rotations: rotations)) { proxy -> String in
                let attacked = try await SyncEngine.open(client: try Self.client(device, via: proxy), directory: device.directory)
                do {
                    _ = try await attacked.revoke(member: member, vaultId: world.vaultId)
                    return "not refused"
                } catch { return "\(error)" }
            }
            let fingerprint = KeyFingerprint.of(userId: stranger.userId, publicKey: strangerKey)
            #expect(refusal.contains("stranger@example.test") && refusal.contains(fingerprint) && refusal.contains("not confirmed"), "\(refusal)")
            #expect(rotations.value == 0, "a rotation was sent")
            // Nobody removed, nothing rotated, the stranger not pinned, the revoke kept with its reason.
            let sharing = try await Self.sharing(device)
            #expect(try await sharing.members(vaultId: world.vaultId).count == 2)
            #expect(try await VaultClient(client: device.client).vault(id: world.vaultId).summary.keyEpoch == 1)
            #expect(try sharing.contacts.contact(userId: stranger.userId) == nil)
            let recorded = try await engine.pendingRevokes()
            #expect(recorded.count == 1 && recorded.first?.lastError?.contains("stranger@example.test") == true, "\(recorded)")
            #expect(try await Self.snapshot(engine) == before)

            // Without the stranger, the next round finishes it.
            try await engine.sync()
            #expect(try await engine.pendingRevokes().isEmpty)
            #expect(try await sharing.members(vaultId: world.vaultId).count == 1)
        }
    }

    @Test("a member this device removed, listed again by the server with the member's own old grant, is refused: nothing is rotated; shared again for real, the member is sealed to", arguments: TestBackend.available)
    func removedMemberListedAgain(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let owner = try await TestDevice.account(server: base, devices: 1)[0]
            let bob = try await TestDevice.account(server: base, devices: 1)[0]
            let carol = try await TestDevice.account(server: base, devices: 1)[0]
            let bobSession = try #require(await bob.client.session)
            let carolSession = try #require(await carol.client.session)
            let sharing = try await Self.sharing(owner)
            let vaults = VaultClient(client: owner.client)
            let team = try await vaults.createVault(name: "Team")
            _ = try await sharing.share(team, with: try await sharing.lookup(email: bobSession.email), role: .write)
            _ = try await sharing.share(team, with: try await sharing.lookup(email: carolSession.email), role: .read)
            let bobsEntry = try #require(try await sharing.members(vaultId: team.summary.id).first { $0.userId == bobSession.userId })
            #expect(bobsEntry.grant != nil)
            _ = try await sharing.rotateKey(of: try await vaults.vault(id: team.summary.id), removing: [bobSession.userId])

            // The server lists Bob again, with his genuine (old) grant and his real identity.
            let entryData = try JSONEncoder().encode(bobsEntry)
            let rotations = RequestCount()
            try await withRewritingProxy(upstream: base, decide: { request in
                if request.method == "POST", request.path.hasSuffix("/keys") { rotations.add() }
                guard request.method == "GET", request.path == "/api/vaults/\(team.summary.id)/members" else { return .forward }
                return .rewrite { status, body in
                    var answer = try JSONDecoder().decode(VaultMembersResponse.self, from: Data(body.readableBytesView))
                    answer.members.append(try JSONDecoder().decode(VaultMember.self, from: entryData))
                    return (status, ByteBuffer(bytes: try JSONEncoder().encode(answer)))
                }
            }) { proxy in
                let attacked = try await Self.sharing(owner, client: try Self.client(owner, via: proxy))
                let vault = try await attacked.vaults.vault(id: team.summary.id)
                await #expect { _ = try await attacked.rotateKey(of: vault, removing: [carolSession.userId]) } throws: { error in
                    "\(error)".contains("was removed from vault") && "\(error)".contains(bobSession.email)
                }
                await #expect { _ = try await attacked.unconfirmedMembers(vaultId: team.summary.id) } throws: { error in
                    "\(error)".contains("was removed from vault")
                }
            }
            #expect(rotations.value == 0, "a rotation was sent")
            #expect(try await sharing.members(vaultId: team.summary.id).count == 2)

            // Shared with Bob again for real (a new grant): the next rotation seals to him.
            _ = try await sharing.share(try await vaults.vault(id: team.summary.id), with: try await sharing.lookup(email: bobSession.email), role: .read)
            let rotated = try await sharing.rotateKey(of: try await vaults.vault(id: team.summary.id), removing: [carolSession.userId])
            #expect(rotated.vault.key.epoch == 3)
            let bobsView = try await VaultClient(client: bob.client).vault(id: team.summary.id)
            #expect(bobsView.key.epoch == 3)
        }
    }

    @Test("a member's key substituted for a revoke made on a second device without pins: the member's signed membership names the real identity, so the substitute is refused outright; a pinned device refuses it as a changed key", arguments: TestBackend.available)
    func substitutedKeyOnSecondDevice(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let world = try await KeyRotationTests.world(base)
            let second = try await TestDevice.account(server: base, devices: 1)[0]
            let secondSession = try #require(await second.client.session)
            let ownerSharing = try await Self.sharing(world.owner[0])
            let vault = try await VaultClient(client: world.owner[0].client).vault(id: world.vaultId)
            _ = try await ownerSharing.share(vault, with: try await ownerSharing.lookup(email: secondSession.email), role: .read)
            let removed = try await KeyRotationTests.member(world, on: world.owner[1])
            let (_, substitute) = Self.serverKeyPair()
            // The server's own identity, certifying its own sharing key for the member's email.
            let serverIdentity = Curve25519.Signing.PrivateKey()
            let serverIdentityKey = Base64URL.encode(serverIdentity.publicKey.rawRepresentation)
            let rotations = RequestCount()
            try await withRewritingProxy(upstream: base, decide: { request in
                if request.method == "POST", request.path.hasSuffix("/keys") { rotations.add() }
                guard request.method == "GET", request.path == "/api/vaults/\(world.vaultId)/members" else { return .forward }
                return .rewrite { status, body in
                    var answer = try JSONDecoder().decode(VaultMembersResponse.self, from: Data(body.readableBytesView))
                    for index in answer.members.indices where answer.members[index].userId == secondSession.userId {
                        answer.members[index].publicKey = substitute
                        answer.members[index].identityKey = serverIdentityKey
                        answer.members[index].sharingKeyCertificate = try IdentityKey.certify(sharingKey: substitute, email: answer.members[index].email, identity: serverIdentity)
                    }
                    return (status, ByteBuffer(bytes: try JSONEncoder().encode(answer)))
                }
            }) { proxy in
                // The owner's second device has pinned nobody, but the member's membership is a
                // statement this owner signed for the member's real identity: the substitute is
                // refused outright, without asking anyone to compare fingerprints.
                let unpinned = try await Self.sharing(world.owner[1], client: try Self.client(world.owner[1], via: proxy))
                await #expect { _ = try await unpinned.unconfirmedMembers(vaultId: world.vaultId, removing: [removed.userId]) } throws: { error in
                    "\(error)".contains("another identity key than the one its signed membership names")
                }
                let engine = try await SyncEngine.open(client: try Self.client(world.owner[1], via: proxy), directory: world.owner[1].directory)
                do {
                    _ = try await engine.revoke(member: removed, vaultId: world.vaultId)
                    Issue.record("a substituted member was sealed to")
                } catch {
                    #expect("\(error)".contains("another identity key than the one its signed membership names"), "\(error)")
                }
                // The first device pinned the real identity: a changed key is refused as such.
                let pinned = try await SyncEngine.open(client: try Self.client(world.owner[0], via: proxy), directory: world.owner[0].directory)
                do {
                    _ = try await pinned.revoke(member: removed, vaultId: world.vaultId)
                    Issue.record("a changed key was sealed to")
                } catch let error as CofferError {
                    guard case .contactKeyChanged(let email, _, let offered) = error else { Issue.record("\(error)"); return }
                    #expect(email == secondSession.email && offered == KeyFingerprint.of(userId: secondSession.userId, identityKey: serverIdentityKey))
                }
            }
            #expect(rotations.value == 0, "a rotation was sent")
            #expect(try await ownerSharing.members(vaultId: world.vaultId).count == 3)
            #expect(try ContactStore(directory: world.owner[1].directory, userId: await world.owner[1].client.session!.userId).all().isEmpty)
        }
    }
}

/// How many requests of some kind a proxy saw.
final class RequestCount: Sendable {
    private let count = Atomic(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
