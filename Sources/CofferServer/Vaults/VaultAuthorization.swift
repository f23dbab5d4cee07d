import CofferProtocol
import Foundation
import Hummingbird

/// The one place vault roles are enforced. Non-members get 404 (a vault they cannot see does
/// not exist for them); members whose role is too low get 403.
struct VaultAuthorization: Sendable {
    let store: any Store

    /// The caller's view of the vault, if its role is at least `needed`.
    func require(_ needed: VaultRole, vaultId: String, userId: String) async throws -> VaultSummary {
        guard let id = VaultIdentifiers.normalized(vaultId), let vault = try await store.vault(id: id, userId: userId) else {
            throw Self.notFound("vault")
        }
        guard vault.role >= needed else {
            throw APIError(.forbidden, code: ErrorCode.forbidden, message: "your role in this vault (\(vault.role.rawValue)) does not allow this; it needs \(needed.rawValue)")
        }
        return vault
    }

    /// The item and the caller's view of its vault, if its role is at least `needed`.
    func requireItem(_ needed: VaultRole, itemId: String, userId: String) async throws -> (Item, VaultSummary) {
        guard let id = VaultIdentifiers.normalized(itemId), let item = try await store.item(id: id),
            let vault = try await store.vault(id: item.vaultId, userId: userId)
        else {
            throw Self.notFound("item")
        }
        guard vault.role >= needed else {
            throw APIError(.forbidden, code: ErrorCode.forbidden, message: "your role in this vault (\(vault.role.rawValue)) does not allow this; it needs \(needed.rawValue)")
        }
        return (item, vault)
    }

    static func notFound(_ what: String) -> APIError {
        APIError(.notFound, code: ErrorCode.notFound, message: "no such \(what)")
    }
}

/// Vault and item ids are UUIDs, chosen by clients so that offline-created objects keep them.
enum VaultIdentifiers {
    static func normalized(_ id: String) -> String? {
        UUID(uuidString: id).map { _ in id.lowercased() }
    }

    static func require(_ id: String, field: String) throws -> String {
        guard let normalized = normalized(id) else { throw APIError.invalidField(field, "must be a UUID") }
        return normalized
    }
}
