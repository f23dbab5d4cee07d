import CofferCrypto
import CofferKit
import CofferProtocol
import Crypto
import Foundation
import Testing

@Suite("Signed membership grants")
struct MembershipGrantTests {
    struct Person {
        let id = UUID().uuidString.lowercased()
        let identity = Curve25519.Signing.PrivateKey()
        var identityKey: String { Base64URL.encode(identity.publicKey.rawRepresentation) }
    }

    let vaultId = UUID().uuidString.lowercased()
    let owner = Person()
    let admin = Person()
    let member = Person()

    func grant(to person: Person, role: VaultRole, by granter: Person, vaultId: String? = nil, identityKey: String? = nil) throws -> String {
        try MembershipGrant(
            vaultId: vaultId ?? self.vaultId, memberId: person.id, memberIdentityKey: identityKey ?? person.identityKey, role: role.rawValue,
            granterId: granter.id, granterIdentityKey: granter.identityKey, issuedAt: 1
        ).signed(by: granter.identity)
    }

    func listed(_ person: Person, role: VaultRole, grant: String?, identityKey: String? = nil) -> VaultMember {
        VaultMember(
            userId: person.id, email: "\(person.id)@example.test", role: role, publicKey: "k", shareId: UUID().uuidString, grantedBy: nil, since: .now,
            identityKey: identityKey ?? person.identityKey, sharingKeyCertificate: nil, grant: grant
        )
    }

    @Test("a statement round-trips and any changed byte breaks its signature")
    func roundTrip() throws {
        let wire = try grant(to: member, role: .write, by: owner)
        let opened = try MembershipGrant.open(wire)
        #expect(opened.memberId == member.id && opened.role == "write" && opened.granterIdentityKey == owner.identityKey)
        var bytes = try #require(Base64URL.decode(wire))
        bytes[bytes.count / 3] ^= 1
        #expect(throws: (any Error).self) { try MembershipGrant.open(Base64URL.encode(bytes)) }
        #expect(throws: MembershipGrantError.wrongSigner) {
            try MembershipGrant(vaultId: vaultId, memberId: member.id, memberIdentityKey: member.identityKey, role: "read", granterId: owner.id, granterIdentityKey: owner.identityKey, issuedAt: 1)
                .signed(by: admin.identity)
        }
        #expect(throws: MembershipGrantError.malformed) { try MembershipGrant.open("not-a-grant") }
    }

    @Test("grants chain to the owner: by the owner, or by an admin the owner granted; others get no verdict")
    func chain() throws {
        let checks = SharingTrust.grants(
            of: [
                listed(owner, role: .owner, grant: nil),
                listed(admin, role: .admin, grant: try grant(to: admin, role: .admin, by: owner)),
                listed(member, role: .write, grant: try grant(to: member, role: .write, by: admin)),
            ],
            vaultId: vaultId, ownerId: owner.id, ownerIdentity: owner.identityKey
        )
        guard case .verified? = checks[admin.id], case .verified? = checks[member.id] else { Issue.record("\(checks)"); return }
        #expect(checks[owner.id] == nil)

        // An admin granted only "write" cannot grant; a grant "by the owner" signed by the server's identity verifies nothing.
        let server = Person()
        let forgedOwner = try MembershipGrant(
            vaultId: vaultId, memberId: server.id, memberIdentityKey: server.identityKey, role: "write", granterId: owner.id, granterIdentityKey: server.identityKey, issuedAt: 1
        ).signed(by: server.identity)
        let weak = SharingTrust.grants(
            of: [
                listed(admin, role: .admin, grant: try grant(to: admin, role: .write, by: owner)),
                listed(member, role: .write, grant: try grant(to: member, role: .write, by: admin)),
                listed(server, role: .write, grant: forgedOwner),
            ],
            vaultId: vaultId, ownerId: owner.id, ownerIdentity: owner.identityKey
        )
        #expect(weak[member.id] == nil && weak[server.id] == nil)
        guard case .verified? = weak[admin.id] else { Issue.record("\(weak)"); return }
    }

    @Test("a listed identity other than the one granted, another vault's grant, or a broken statement is a mismatch")
    func mismatches() throws {
        let substitute = Person()
        let checks = SharingTrust.grants(
            of: [
                listed(member, role: .write, grant: try grant(to: member, role: .write, by: owner), identityKey: substitute.identityKey),
                listed(admin, role: .write, grant: try grant(to: admin, role: .write, by: owner, vaultId: "another vault")),
                listed(substitute, role: .read, grant: "AAAA"),
            ],
            vaultId: vaultId, ownerId: owner.id, ownerIdentity: owner.identityKey
        )
        for person in [member, admin, substitute] {
            guard case .mismatch? = checks[person.id] else { Issue.record("\(person.id): \(String(describing: checks[person.id]))"); continue }
        }
    }
}
