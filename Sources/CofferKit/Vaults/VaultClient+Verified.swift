import CofferProtocol
import Foundation

/// The server's vault list, each vault verified on its own.
public struct VerifiedVaults: Sendable {
    /// The vaults whose key, history and name opened.
    public var vaults: [DecryptedVault]
    /// The vaults that failed verification, with why (named by id: their name did not open).
    public var refused: [RefusedVault]
}

extension VaultClient {
    /// Every vault with its key unwrapped; one whose key, history or name fails verification is
    /// kept out and reported, and does not stop the others (`vaults()` throws instead).
    public func verifiedVaults() async throws -> VerifiedVaults {
        let response: VaultsResponse = try await client.authorized(.GET, "/api/vaults", body: Optional<Int>.none)
        var result = VerifiedVaults(vaults: [], refused: [])
        for summary in response.vaults {
            do {
                result.vaults.append(try await decrypt(summary))
            } catch where SyncEngine.isVerificationFailure(error) {
                result.refused.append(RefusedVault(vaultId: summary.id, name: nil, reason: "\(error)"))
            }
        }
        return result
    }
}
