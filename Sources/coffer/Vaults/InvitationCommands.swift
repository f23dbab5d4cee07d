import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer.Vault {
    /// `coffer vault accept VAULT`.
    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accept a vault shared with you on this device: pins the sharer's key, then this device writes into it."
        )
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let target = try await VaultLookup.find(vault, in: VaultClient(client: options.makeClient()))
                let local = try await LocalSession.open(options)
                guard try await local.engine.invitation(for: target.summary) != nil else {
                    try options.client.emit(SuccessResponse(), text: "\"\(target.metadata.name)\" is already accepted on this device.")
                    return
                }
                let accepted = try await local.engine.accept(target.summary)
                try options.client.emit(
                    InvitationRow(accepted),
                    text: "Accepted \"\(target.metadata.name)\" shared by \(accepted.email ?? accepted.sharerId) (fingerprint \(accepted.fingerprint ?? "unknown")); "
                        + "this device now writes into it."
                )
            }
        }
    }

    /// `coffer vault decline VAULT`: leaves a vault shared with you.
    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline (leave) a vault shared with you.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let target = try await VaultLookup.find(vault, in: VaultClient(client: options.makeClient()))
                let local = try await LocalSession.open(options)
                try await local.engine.decline(target.summary)
                _ = try? await local.engine.sync()
                try options.client.emit(SuccessResponse(), text: "Declined \"\(target.metadata.name)\"; you are no longer a member.")
            }
        }
    }
}

/// Invitations as the CLI shows and enforces them.
enum Invitations {
    /// The invitations among `vaults`, by vault id (none when the local cache cannot be opened).
    static func of(_ vaults: [DecryptedVault], _ options: AccountOptions) async -> [String: VaultInvitation] {
        guard let local = try? await LocalSession.open(options) else { return [:] }
        var found: [String: VaultInvitation] = [:]
        for vault in vaults {
            if let invitation = try? await local.engine.invitation(for: vault.summary) { found[vault.summary.id] = invitation }
        }
        return found
    }

    /// Refuses a change to a vault this device has not accepted.
    static func requireAccepted(_ vault: DecryptedVault, _ options: AccountOptions) async throws {
        let local = try await LocalSession.open(options)
        guard try await local.engine.isAccepted(vault.summary) else {
            throw InvitationError.notAccepted(vaultId: vault.summary.id, name: vault.metadata.name)
        }
        try await local.engine.requireTrustedKey(vault)
    }
}

struct InvitationRow: Encodable {
    var sharerId: String
    var sharerEmail: String?
    var fingerprint: String?
    /// Whether the sharer's key differs from the one pinned for it.
    var keyChanged: Bool
    /// Whether the key copy carries the sharer's signature (copies made before identity keys do not).
    var signed: Bool
    /// Accepted on this device before, but its current key comes from someone not pinned here.
    var reconfirm: Bool

    init(_ invitation: VaultInvitation) {
        sharerId = invitation.sharerId
        sharerEmail = invitation.email
        fingerprint = invitation.fingerprint
        if case .changed = invitation.sharer { keyChanged = true } else { keyChanged = false }
        signed = invitation.signed
        reconfirm = invitation.reconfirm
    }

    /// How `vault list` marks it.
    var text: String {
        let from = sharerEmail.map { "\($0), fingerprint \(fingerprint ?? "unknown")\(keyChanged ? " (KEY CHANGED since pinned)" : "")" } ?? "unknown sharer \(sharerId)"
        let unsigned = signed ? "" : ", key unsigned (shared before identity keys)"
        if reconfirm {
            return "(new key from \(from), not pinned on this device\(unsigned): nothing is written into it until `coffer vault accept`)"
        }
        return "(invitation, not accepted: shared by \(from)\(unsigned); `coffer vault accept` to write into it)"
    }
}
