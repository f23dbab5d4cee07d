import CofferCrypto
import CofferProtocol
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// A registered account with an access token, for vault and sync tests.
struct SignedInUser {
    let account: TestAccount
    let session: SessionResponse
    var token: String { session.accessToken }

    static func register(_ client: some TestClientProtocol) async throws -> SignedInUser {
        let account = try TestAccount()
        return SignedInUser(account: account, session: try await account.register(client))
    }
}

/// A well-formed Coffer envelope around random bytes (the server only checks the shape).
func envelope(_ size: Int = 64) throws -> String {
    try Envelope.seal(
        Data((0..<size).map { _ in UInt8.random(in: 0...255) }), key: SymmetricKey(size: .bits256),
        context: EnvelopeContext(purpose: "test", owner: "test")
    )
}

extension TestClientProtocol {
    func createVault(_ user: SignedInUser, id: String = UUID().uuidString.lowercased()) async throws -> VaultSummary {
        let response = try await authorized(.post, "/api/vaults", token: user.token, json: CreateVaultRequest(id: id, encryptedMetadata: try envelope(), wrappedKey: try envelope(32)))
        #expect(response.status == .created)
        return try response.decode(VaultSummary.self)
    }

    func createItem(_ user: SignedInUser, vault: String, id: String = UUID().uuidString.lowercased(), data: String? = nil) async throws -> Item {
        let response = try await authorized(.post, "/api/vaults/\(vault)/items", token: user.token, json: CreateItemRequest(id: id, encryptedData: try data ?? envelope()))
        #expect(response.status == .created)
        return try response.decode(Item.self)
    }

    func push(_ user: SignedInUser, _ changes: [PushChange]) async throws -> [PushResult] {
        let response = try await authorized(.post, "/api/sync/push", token: user.token, json: PushRequest(changes: changes))
        #expect(response.status == .ok)
        return try response.decode(PushResponse.self).results
    }

    func pull(_ user: SignedInUser, _ vaults: [String: Int64]? = nil, limit: Int? = nil) async throws -> PullResponse {
        let response = try await authorized(.post, "/api/sync/pull", token: user.token, json: PullRequest(vaults: vaults, limit: limit))
        #expect(response.status == .ok)
        return try response.decode(PullResponse.self)
    }
}
