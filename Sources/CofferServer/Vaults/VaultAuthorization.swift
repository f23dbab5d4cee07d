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

    // MARK: Sharing (SPEC.md §8)

    /// Whether a member with role `actor` may grant `role`: owners any role below owner, admins
    /// only roles below admin, everyone else nothing.
    static func mayGrant(_ role: VaultRole, as actor: VaultRole) -> Bool {
        switch actor {
        case .owner: role < .owner
        case .admin: role < .admin
        case .write, .read: false
        }
    }

    /// The caller's view of the vault, if it may share it with `role`.
    func requireSharing(_ role: VaultRole, vaultId: String, userId: String) async throws -> VaultSummary {
        guard role != .owner else { throw APIError.invalidField("role", "must be read, write or admin") }
        let vault = try await require(.admin, vaultId: vaultId, userId: userId)
        guard Self.mayGrant(role, as: vault.role) else { throw Self.forbidden("an admin can share only with roles below admin") }
        return vault
    }

    /// A share, if the caller may change its role to `role` (nil: may revoke it). The recipient
    /// may always leave; managing others' shares needs authority over both the old and new role.
    func requireShare(id: String, changingTo role: VaultRole?, userId: String) async throws -> (Share, VaultSummary) {
        guard let id = VaultIdentifiers.normalized(id), let share = try await store.share(id: id),
            let vault = try await store.vault(id: share.vaultId, userId: userId)
        else {
            throw Self.notFound("share")
        }
        if role == nil && share.userId == userId { return (share, vault) }
        guard vault.role >= .admin else { throw Self.forbidden("your role in this vault (\(vault.role.rawValue)) does not allow managing shares") }
        if let role, role == .owner { throw APIError.invalidField("role", "must be read, write or admin") }
        guard Self.mayGrant(share.role, as: vault.role), role.map({ Self.mayGrant($0, as: vault.role) }) ?? true else {
            throw Self.forbidden("an admin can manage only shares with roles below admin")
        }
        return (share, vault)
    }

    static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: ErrorCode.forbidden, message: message)
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
