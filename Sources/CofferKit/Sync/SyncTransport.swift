import CofferProtocol

/// What the sync engine needs from a Coffer server (SPEC.md §7). Tests wrap it to play a
/// server that misbehaves.
public protocol SyncTransport: Sendable {
    func pull(_ request: PullRequest) async throws -> PullResponse
    func push(_ request: PushRequest) async throws -> PushResponse
    /// A stale base version throws `CofferClientError` with status 409.
    func resolve(_ request: ResolveRequest) async throws -> Item
    func vault(id: String) async throws -> VaultSummary
    /// Every vault the user is a member of, with its current name, role and key.
    func vaults() async throws -> [VaultSummary]
    func status() async throws -> SyncStatusResponse
}

/// The sync routes over HTTP with the logged-in client's session (refreshed as needed).
public struct HTTPSyncTransport: SyncTransport {
    public let client: CofferClient

    public init(client: CofferClient) {
        self.client = client
    }

    public func pull(_ request: PullRequest) async throws -> PullResponse {
        try await client.authorized(.POST, "/api/sync/pull", body: request)
    }

    public func push(_ request: PushRequest) async throws -> PushResponse {
        try await client.authorized(.POST, "/api/sync/push", body: request)
    }

    public func resolve(_ request: ResolveRequest) async throws -> Item {
        try await client.authorized(.POST, "/api/sync/resolve", body: request)
    }

    public func vault(id: String) async throws -> VaultSummary {
        try await client.authorized(.GET, "/api/vaults/\(id)", body: Optional<Int>.none)
    }

    public func vaults() async throws -> [VaultSummary] {
        let response: VaultsResponse = try await client.authorized(.GET, "/api/vaults", body: Optional<Int>.none)
        return response.vaults
    }

    public func status() async throws -> SyncStatusResponse {
        try await client.authorized(.GET, "/api/sync/status", body: Optional<Int>.none)
    }
}
