import CofferCrypto
import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Membership statements (`grant`) on SQLite and PostgreSQL: the server stores the granter's
/// statement with the membership, serves it in the member list as sent, replaces or clears it
/// with a role change, keeps it through a key rotation, and refuses only a malformed one.
@Suite("Membership grants")
struct MembershipGrantAPITests {
    /// Random bytes in base64url: the server treats a grant as opaque, so any will do.
    static func grant(_ size: Int = 160) -> String { Base64URL.encode((0..<size).map { _ in UInt8.random(in: 0...255) }) }

    static func wrappedKey() -> String { Base64URL.encode((0..<81).map { _ in UInt8.random(in: 0...255) }) }

    static func share(
        _ client: some TestClientProtocol, _ by: SignedInUser, vault: String, with user: SignedInUser, role: VaultRole, grant: String?
    ) async throws -> TestResponse {
        try await client.authorized(
            .post, "/api/vaults/\(vault)/share", token: by.token,
            json: ShareVaultRequest(userId: user.session.user.id, role: role, wrappedKey: wrappedKey(), grant: grant)
        )
    }

    static func members(_ client: some TestClientProtocol, _ user: SignedInUser, vault: String) async throws -> [VaultMember] {
        let response = try await client.authorized(.get, "/api/vaults/\(vault)/members", token: user.token)
        #expect(response.status == .ok)
        return try response.decode(VaultMembersResponse.self).members
    }

    /// The member objects of the raw member list, by user id: to see a field absent, not null.
    static func rawMembers(_ client: some TestClientProtocol, _ user: SignedInUser, vault: String) async throws -> [String: [String: Any]] {
        let response = try await client.authorized(.get, "/api/vaults/\(vault)/members", token: user.token)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
        let members = try #require(object["members"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: members.map { ($0["userId"] as? String ?? "", $0) })
    }

    static func member(_ members: [VaultMember], _ user: SignedInUser) throws -> VaultMember {
        try #require(members.first { $0.userId == user.session.user.id })
    }

    @Test(arguments: TestBackend.available)
    func aShareKeepsItsGrantAndTheMemberListServesIt(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let owner = try await SignedInUser.register(client)
            let granted = try await SignedInUser.register(client)
            let older = try await SignedInUser.register(client)
            let vault = try await client.createVault(owner)
            let statement = Self.grant()
            let response = try await Self.share(client, owner, vault: vault.id, with: granted, role: .write, grant: statement)
            #expect(response.status == .created, "\(response.error?.error ?? "")")
            // A client from before membership statements sends none: allowed, and none is served.
            let withoutGrant = try await Self.share(client, owner, vault: vault.id, with: older, role: .read, grant: nil)
            #expect(withoutGrant.status == .created)

            for viewer in [owner, granted, older] {
                let members = try await Self.members(client, viewer, vault: vault.id)
                #expect(try Self.member(members, granted).grant == statement)
                #expect(try Self.member(members, older).grant == nil)
                #expect(try Self.member(members, owner).grant == nil)
            }
            let raw = try await Self.rawMembers(client, owner, vault: vault.id)
            #expect(raw[granted.session.user.id]?["grant"] as? String == statement)
            #expect(raw[older.session.user.id]?.keys.contains("grant") == false)
            #expect(raw[owner.session.user.id]?.keys.contains("grant") == false)

            // The largest statement allowed, and an empty one, are stored exactly as sent.
            let largest = try await SignedInUser.register(client)
            let empty = try await SignedInUser.register(client)
            let big = String(repeating: "A", count: 4096)
            #expect(try await Self.share(client, owner, vault: vault.id, with: largest, role: .read, grant: big).status == .created)
            #expect(try await Self.share(client, owner, vault: vault.id, with: empty, role: .read, grant: "").status == .created)
            let members = try await Self.members(client, owner, vault: vault.id)
            #expect(try Self.member(members, largest).grant == big)
            #expect(try Self.member(members, empty).grant == "")
        }
    }

    @Test(arguments: TestBackend.available)
    func aRoleChangeReplacesTheGrantOrClearsIt(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let owner = try await SignedInUser.register(client)
            let member = try await SignedInUser.register(client)
            let vault = try await client.createVault(owner)
            let first = Self.grant()
            let created = try await Self.share(client, owner, vault: vault.id, with: member, role: .read, grant: first)
            #expect(created.status == .created)
            let share = try created.decode(Share.self)

            // A new role with its statement: the new statement replaces the old one.
            let second = Self.grant()
            let promoted = try await client.authorized(.put, "/api/shares/\(share.id)", token: owner.token, json: UpdateShareRequest(role: .write, grant: second))
            #expect(promoted.status == .ok)
            var current = try Self.member(try await Self.members(client, member, vault: vault.id), member)
            #expect(current.role == .write && current.grant == second)

            // A new role without a statement: the old role's statement does not stay.
            let demoted = try await client.authorized(.put, "/api/shares/\(share.id)", token: owner.token, json: UpdateShareRequest(role: .read))
            #expect(demoted.status == .ok)
            current = try Self.member(try await Self.members(client, member, vault: vault.id), member)
            #expect(current.role == .read && current.grant == nil)
            #expect(try await Self.rawMembers(client, owner, vault: vault.id)[member.session.user.id]?.keys.contains("grant") == false)

            // And one can be given again.
            let third = Self.grant()
            let again = try await client.authorized(.put, "/api/shares/\(share.id)", token: owner.token, json: UpdateShareRequest(role: .admin, grant: third))
            #expect(again.status == .ok)
            current = try Self.member(try await Self.members(client, owner, vault: vault.id), member)
            #expect(current.role == .admin && current.grant == third)
        }
    }

    @Test(arguments: TestBackend.available)
    func aKeyRotationKeepsEveryGrant(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let owner = try await SignedInUser.register(client)
            let writer = try await SignedInUser.register(client)
            let reader = try await SignedInUser.register(client)
            let leaving = try await SignedInUser.register(client)
            let vault = try await client.createVault(owner)
            let writerGrant = Self.grant()
            #expect(try await Self.share(client, owner, vault: vault.id, with: writer, role: .write, grant: writerGrant).status == .created)
            #expect(try await Self.share(client, owner, vault: vault.id, with: reader, role: .read, grant: nil).status == .created)
            #expect(try await Self.share(client, owner, vault: vault.id, with: leaving, role: .read, grant: Self.grant()).status == .created)

            var keys: [String: String] = [:]
            for user in [owner, writer, reader] { keys[user.session.user.id] = Self.wrappedKey() }
            let rotation = try await client.authorized(
                .post, "/api/vaults/\(vault.id)/keys", token: owner.token,
                json: RotateVaultKeyRequest(encryptedMetadata: try envelope(), wrappedKeys: keys, keyEpoch: vault.keyEpoch + 1, removeUserIds: [leaving.session.user.id])
            )
            #expect(rotation.status == .ok, "\(rotation.error?.error ?? "")")
            #expect(try rotation.decode(VaultSummary.self).keyEpoch == vault.keyEpoch + 1)

            let members = try await Self.members(client, owner, vault: vault.id)
            #expect(Set(members.map(\.userId)) == Set(keys.keys))
            #expect(try Self.member(members, writer).grant == writerGrant)
            #expect(try Self.member(members, reader).grant == nil)
            #expect(try Self.member(members, owner).grant == nil)
        }
    }

    /// Not base64url (a character outside the alphabet, a length of 4n+1, spare bits set) or
    /// longer than 4096 characters: 422 naming `grant`, and nothing was shared or changed.
    static let malformed: [(String, String)] = [
        ("standard base64 characters", "ab+c/d=="),
        ("a space", "abcd efgh"),
        ("a length of 4n+1", "abcde"),
        ("spare bits set", "AB"),
        ("padding cut short", "QQ="),
        ("padding (the pattern has none)", "QQ=="),
        ("4097 characters", String(repeating: "A", count: 4097)),
        ("4100 characters (decodable, too long)", String(repeating: "A", count: 4100)),
        ("non-ASCII", "grant\u{e9}"),
    ]

    static func expectGrantRefused(_ response: TestResponse, _ label: String) {
        #expect(response.status == .unprocessableContent, "\(label)")
        #expect(response.error?.code == ErrorCode.invalidField, "\(label)")
        #expect(response.error?.error.contains("grant") == true, "\(label): \(response.error?.error ?? "")")
    }

    @Test(arguments: TestBackend.available)
    func aMalformedGrantIsRefusedAndNothingChanges(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let owner = try await SignedInUser.register(client)
            let recipient = try await SignedInUser.register(client)
            let member = try await SignedInUser.register(client)
            let vault = try await client.createVault(owner)
            let kept = Self.grant()
            let created = try await Self.share(client, owner, vault: vault.id, with: member, role: .read, grant: kept)
            #expect(created.status == .created)
            let share = try created.decode(Share.self)

            for (label, grant) in Self.malformed {
                Self.expectGrantRefused(try await Self.share(client, owner, vault: vault.id, with: recipient, role: .write, grant: grant), "share: \(label)")
                Self.expectGrantRefused(
                    try await client.authorized(.put, "/api/shares/\(share.id)", token: owner.token, json: UpdateShareRequest(role: .write, grant: grant)),
                    "role change: \(label)"
                )
            }
            let members = try await Self.members(client, owner, vault: vault.id)
            #expect(Set(members.map(\.userId)) == [owner.session.user.id, member.session.user.id])
            let unchanged = try Self.member(members, member)
            #expect(unchanged.role == .read && unchanged.grant == kept)
            let shares = try await client.authorized(.get, "/api/shares", token: recipient.token).decode(SharesResponse.self)
            #expect(shares.incoming.isEmpty)
        }
    }
}
