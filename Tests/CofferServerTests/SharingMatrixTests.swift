import CofferCrypto
import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Every vault-scoped route × every relation to the vault, with the exact answer for each cell,
/// on both backends (SPEC.md §8). Each cell runs against a fresh vault, so no cell depends on
/// what another did. The matrix is printed.
@Suite("Sharing: role matrix")
struct SharingMatrixTests {
    enum Relation: String, CaseIterable {
        case owner, admin, write, read
        case nonMember = "non-member"
        case revoked = "revoked member"
    }

    /// One vault with a member of each role, a revoked member, an outsider, one item, and an
    /// extra reader whose share the share routes act on.
    struct Fixture {
        var users: [Relation: SignedInUser] = [:]
        var vault: VaultSummary
        var item: Item
        var shares: [String: Share] = [:]
        var newcomer: SignedInUser
        var extra: SignedInUser

        func user(_ relation: Relation) -> SignedInUser { users[relation]! }
    }

    static func wrappedKey() -> String { Base64URL.encode((0..<81).map { _ in UInt8.random(in: 0...255) }) }

    static func makeFixture(_ client: some TestClientProtocol) async throws -> Fixture {
        var users: [Relation: SignedInUser] = [:]
        for relation in Relation.allCases { users[relation] = try await SignedInUser.register(client) }
        let owner = users[.owner]!
        let vault = try await client.createVault(owner)
        let item = try await client.createItem(owner, vault: vault.id)
        var fixture = Fixture(
            users: users, vault: vault, item: item, newcomer: try await SignedInUser.register(client), extra: try await SignedInUser.register(client)
        )
        for (relation, role) in [(Relation.admin, VaultRole.admin), (.write, .write), (.read, .read), (.revoked, .read)] {
            fixture.shares[relation.rawValue] = try await share(client, owner, vault: vault.id, with: users[relation]!, role: role)
        }
        fixture.shares["extra"] = try await share(client, owner, vault: vault.id, with: fixture.extra, role: .read)
        let revoke = try await client.authorized(.delete, "/api/shares/\(fixture.shares[Relation.revoked.rawValue]!.id)", token: owner.token)
        #expect(revoke.status == .ok)
        return fixture
    }

    static func share(_ client: some TestClientProtocol, _ by: SignedInUser, vault: String, with user: SignedInUser, role: VaultRole) async throws -> Share {
        let response = try await client.authorized(
            .post, "/api/vaults/\(vault)/share", token: by.token, json: ShareVaultRequest(userId: user.session.user.id, role: role, wrappedKey: wrappedKey())
        )
        #expect(response.status == .created)
        return try response.decode(Share.self)
    }

    /// A route and how to read its answer for one cell.
    struct Route: Sendable {
        var name: String
        var expected: [Relation: String]
        var run: @Sendable (any TestClientProtocol, Fixture, SignedInUser) async throws -> String
    }

    static func status(_ response: TestResponse) -> String { String(response.status.code) }

    static func expect(_ owner: String, _ admin: String, _ write: String, _ read: String, _ outsider: String, _ revoked: String) -> [Relation: String] {
        [.owner: owner, .admin: admin, .write: write, .read: read, .nonMember: outsider, .revoked: revoked]
    }

    static let routes: [Route] = [
        Route(name: "GET /api/vaults/:id", expected: expect("200", "200", "200", "200", "404", "404")) { client, f, user in
            status(try await client.authorized(.get, "/api/vaults/\(f.vault.id)", token: user.token))
        },
        Route(name: "PUT /api/vaults/:id", expected: expect("200", "200", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.put, "/api/vaults/\(f.vault.id)", token: user.token, json: UpdateVaultRequest(encryptedMetadata: try envelope())))
        },
        Route(name: "DELETE /api/vaults/:id", expected: expect("200", "403", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.delete, "/api/vaults/\(f.vault.id)", token: user.token))
        },
        Route(name: "GET /api/vaults/:id/items", expected: expect("200", "200", "200", "200", "404", "404")) { client, f, user in
            status(try await client.authorized(.get, "/api/vaults/\(f.vault.id)/items", token: user.token))
        },
        Route(name: "POST /api/vaults/:id/items", expected: expect("201", "201", "201", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.post, "/api/vaults/\(f.vault.id)/items", token: user.token, json: CreateItemRequest(id: UUID().uuidString.lowercased(), encryptedData: try envelope())))
        },
        Route(name: "GET /api/items/:id", expected: expect("200", "200", "200", "200", "404", "404")) { client, f, user in
            status(try await client.authorized(.get, "/api/items/\(f.item.id)", token: user.token))
        },
        Route(name: "PUT /api/items/:id", expected: expect("200", "200", "200", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.put, "/api/items/\(f.item.id)", token: user.token, json: UpdateItemRequest(baseVersion: 1, encryptedData: try envelope())))
        },
        Route(name: "DELETE /api/items/:id", expected: expect("200", "200", "200", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.delete, "/api/items/\(f.item.id)", token: user.token, json: DeleteItemRequest(baseVersion: 1)))
        },
        Route(name: "GET /api/items/:id/versions", expected: expect("200", "200", "200", "200", "404", "404")) { client, f, user in
            status(try await client.authorized(.get, "/api/items/\(f.item.id)/versions", token: user.token))
        },
        Route(name: "POST /api/items/:id/restore", expected: expect("200", "200", "200", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.post, "/api/items/\(f.item.id)/restore", token: user.token, json: RestoreItemRequest(version: 1)))
        },
        Route(name: "POST /api/sync/pull", expected: expect("200 items", "200 items", "200 items", "200 items", "200 lost", "200 lost")) { client, f, user in
            let response = try await client.authorized(.post, "/api/sync/pull", token: user.token, json: PullRequest(vaults: [f.vault.id: 0]))
            let page = try response.decode(PullResponse.self)
            let sees = page.vaults.first { $0.vaultId == f.vault.id }.map { !$0.items.isEmpty } ?? false
            return "\(status(response)) \(sees ? "items" : page.lost.contains(f.vault.id) ? "lost" : "nothing")"
        },
        Route(name: "POST /api/sync/push", expected: expect("applied", "applied", "applied", "rejected 403", "rejected 404", "rejected 404")) { client, f, user in
            let results = try await client.push(user, [PushChange(vaultId: f.vault.id, itemId: f.item.id, baseVersion: 1, encryptedData: try envelope())])
            let result = try #require(results.first)
            switch result.status {
            case .applied: return "applied"
            case .conflict: return "conflict"
            case .rejected: return "rejected \(result.error?.code == ErrorCode.forbidden ? "403" : result.error?.code == ErrorCode.notFound ? "404" : result.error?.code ?? "?")"
            }
        },
        Route(name: "POST /api/sync/resolve", expected: expect("200", "200", "200", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.post, "/api/sync/resolve", token: user.token, json: ResolveRequest(itemId: f.item.id, baseVersion: 1, strategy: "server")))
        },
        Route(name: "GET /api/sync/status", expected: expect("listed", "listed", "listed", "listed", "absent", "absent")) { client, f, user in
            let response = try await client.authorized(.get, "/api/sync/status", token: user.token)
            return try response.decode(SyncStatusResponse.self).vaults.contains { $0.vaultId == f.vault.id } ? "listed" : "absent"
        },
        Route(name: "POST /api/vaults/:id/share (read)", expected: expect("201", "201", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.post, "/api/vaults/\(f.vault.id)/share", token: user.token, json: ShareVaultRequest(userId: f.newcomer.session.user.id, role: .read, wrappedKey: wrappedKey())))
        },
        Route(name: "POST /api/vaults/:id/share (admin)", expected: expect("201", "403", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.post, "/api/vaults/\(f.vault.id)/share", token: user.token, json: ShareVaultRequest(userId: f.newcomer.session.user.id, role: .admin, wrappedKey: wrappedKey())))
        },
        Route(name: "GET /api/vaults/:id/members", expected: expect("200", "200", "200", "200", "404", "404")) { client, f, user in
            status(try await client.authorized(.get, "/api/vaults/\(f.vault.id)/members", token: user.token))
        },
        Route(name: "POST /api/vaults/:id/keys", expected: expect("200", "200", "403", "403", "404", "404")) { client, f, user in
            var keys: [String: String] = [:]
            for relation in [Relation.owner, .admin, .write, .read] { keys[f.user(relation).session.user.id] = wrappedKey() }
            keys[f.extra.session.user.id] = wrappedKey()
            return status(try await client.authorized(.post, "/api/vaults/\(f.vault.id)/keys", token: user.token, json: RotateVaultKeyRequest(encryptedMetadata: try envelope(), wrappedKeys: keys)))
        },
        Route(name: "PUT /api/shares/:id (a reader's, to write)", expected: expect("200", "200", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.put, "/api/shares/\(f.shares["extra"]!.id)", token: user.token, json: UpdateShareRequest(role: .write)))
        },
        Route(name: "PUT /api/shares/:id (the admin's, to read)", expected: expect("200", "403", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.put, "/api/shares/\(f.shares[Relation.admin.rawValue]!.id)", token: user.token, json: UpdateShareRequest(role: .read)))
        },
        Route(name: "DELETE /api/shares/:id (a reader's)", expected: expect("200", "200", "403", "403", "404", "404")) { client, f, user in
            status(try await client.authorized(.delete, "/api/shares/\(f.shares["extra"]!.id)", token: user.token))
        },
        Route(name: "DELETE /api/shares/:id (the admin's)", expected: expect("200", "200", "403", "403", "404", "404")) { client, f, user in
            // The admin removing its own share is leaving, which any member may do.
            status(try await client.authorized(.delete, "/api/shares/\(f.shares[Relation.admin.rawValue]!.id)", token: user.token))
        },
        // Outgoing: shares of vaults the caller manages, its own excluded.
        Route(name: "GET /api/shares", expected: expect("200 out 4", "200 out 3", "200 in 1", "200 in 1", "200 none", "200 none")) { client, f, user in
            let response = try await client.authorized(.get, "/api/shares", token: user.token)
            let shares = try response.decode(SharesResponse.self)
            let incoming = shares.incoming.filter { $0.vaultId == f.vault.id }.count
            let outgoing = shares.outgoing.filter { $0.vaultId == f.vault.id }.count
            if outgoing > 0 { return "\(status(response)) out \(outgoing)" }
            return "\(status(response)) \(incoming > 0 ? "in \(incoming)" : "none")"
        },
    ]

    @Test("every route × owner, admin, write, read, non-member, revoked member", arguments: TestBackend.available)
    func matrix(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            var table = "| route (\(backend)) | " + Relation.allCases.map(\.rawValue).joined(separator: " | ") + " |\n"
            table += "|---|" + Relation.allCases.map { _ in "---" }.joined(separator: "|") + "|\n"
            for route in Self.routes {
                var cells: [String] = []
                for relation in Relation.allCases {
                    let fixture = try await Self.makeFixture(client)
                    let got = try await route.run(client, fixture, fixture.user(relation))
                    #expect(got == route.expected[relation], "\(route.name) as \(relation.rawValue)")
                    cells.append(got == route.expected[relation] ? got : "\(got) (expected \(route.expected[relation] ?? "?"))")
                }
                table += "| \(route.name) | " + cells.joined(separator: " | ") + " |\n"
            }
            print(table)
        }
    }

    @Test("an admin cannot grant admin, promote to admin, or drop the owner; the owner has no share to revoke", arguments: TestBackend.available)
    func adminLimits(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let fixture = try await Self.makeFixture(client)
            let admin = fixture.user(.admin)
            let members = try await client.authorized(.get, "/api/vaults/\(fixture.vault.id)/members", token: admin.token).decode(VaultMembersResponse.self)
            let owner = try #require(members.members.first)
            #expect(owner.role == .owner && owner.shareId == nil && owner.userId == fixture.user(.owner).session.user.id)
            let promote = try await client.authorized(.put, "/api/shares/\(fixture.shares["extra"]!.id)", token: admin.token, json: UpdateShareRequest(role: .admin))
            #expect(promote.status == .forbidden)
            let grant = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: admin.token,
                json: ShareVaultRequest(userId: fixture.newcomer.session.user.id, role: .admin, wrappedKey: Self.wrappedKey())
            )
            #expect(grant.status == .forbidden)
            // A key rotation that leaves the owner out is refused, so an admin cannot lock the owner out either.
            var keys: [String: String] = [:]
            for member in members.members where member.role != .owner { keys[member.userId] = Self.wrappedKey() }
            let rotation = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/keys", token: admin.token, json: RotateVaultKeyRequest(encryptedMetadata: try envelope(), wrappedKeys: keys)
            )
            #expect(try rotation.status == .conflict && rotation.decode(ErrorBody.self).code == ErrorCode.membersChanged)
            // Owner-only: the owner role itself cannot be granted, and the vault cannot be deleted by an admin.
            let ownerRole = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: fixture.user(.owner).token,
                json: ShareVaultRequest(userId: fixture.newcomer.session.user.id, role: .owner, wrappedKey: Self.wrappedKey())
            )
            #expect(ownerRole.status == .badRequest)
            // Sharing with yourself, with nobody, or twice.
            let yourself = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: admin.token,
                json: ShareVaultRequest(userId: admin.session.user.id, role: .read, wrappedKey: Self.wrappedKey())
            )
            #expect(yourself.status == .conflict || yourself.status == .badRequest)
            let nobody = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: admin.token,
                json: ShareVaultRequest(email: "nobody-\(UUID().uuidString.prefix(6))@example.test", role: .read, wrappedKey: Self.wrappedKey())
            )
            #expect(try nobody.status == .notFound && nobody.decode(ErrorBody.self).code == ErrorCode.userNotFound)
            let twice = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: admin.token,
                json: ShareVaultRequest(userId: fixture.user(.read).session.user.id, role: .read, wrappedKey: Self.wrappedKey())
            )
            #expect(try twice.status == .conflict && twice.decode(ErrorBody.self).code == ErrorCode.alreadyMember)
            let notAKey = try await client.authorized(
                .post, "/api/vaults/\(fixture.vault.id)/share", token: admin.token,
                json: ShareVaultRequest(userId: fixture.newcomer.session.user.id, role: .read, wrappedKey: "short")
            )
            #expect(notAKey.status == .unprocessableContent)
            // The lookup answers id, email and sharing key, and 404 for an unknown email.
            let lookup = try await client.authorized(.get, "/api/users/lookup?email=\(fixture.newcomer.account.email)", token: admin.token)
            #expect(try lookup.decode(UserLookupResponse.self).userId == fixture.newcomer.session.user.id)
            #expect(try await client.authorized(.get, "/api/users/lookup?email=nobody@example.test", token: admin.token).status == .notFound)
            #expect(try await client.authorized(.get, "/api/users/lookup?email=not-an-email", token: admin.token).status == .badRequest)
        }
    }

    @Test("user lookups are rate limited per account", arguments: TestBackend.available)
    func lookupsAreLimited(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.lookupLimits = [RateLimit(count: 3, window: .minute)] }).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            var statuses: [UInt16] = []
            for _ in 0..<5 {
                statuses.append(UInt16(try await client.authorized(.get, "/api/users/lookup?email=\(alice.account.email)", token: alice.token).status.code))
            }
            #expect(statuses == [200, 200, 200, 429, 429])
        }
    }
}
