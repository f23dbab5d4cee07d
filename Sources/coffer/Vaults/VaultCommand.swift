import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer vault …`.
    struct Vault: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, create, delete and share vaults (names and contents are encrypted on this device).",
            subcommands: [List.self, Create.self, Rename.self, Delete.self, Share.self, Members.self, Revoke.self, Leave.self, Accept.self, Decline.self, Forget.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List your vaults.")
            @OptionGroup var options: AccountOptions

            func run() async throws {
                try await runClientCommand {
                    var vaults: [DecryptedVault]
                    // Vaults that failed verification are kept out, named, and make the command fail after the list.
                    var refused: [RefusedVault] = []
                    var kept: Set<String> = []
                    do {
                        let listing = try await VaultClient(client: options.makeClient()).verifiedVaults()
                        vaults = listing.vaults
                        let local = await Self.catchUp(options, with: listing.vaults)
                        refused = listing.refused.map { server in local.refused.first { $0.vaultId == server.vaultId } ?? server }
                        refused += local.refused.filter { round in !refused.contains { $0.vaultId == round.vaultId } }
                        vaults += local.kept
                        kept = Set(local.kept.map(\.summary.id))
                    } catch let error as CofferClientError where RetryPolicy.classify(error) == .offline {
                        // Offline: the vaults this device synced last.
                        Terminal.note("offline (\(ClientErrorText.describe(error))); listing the local copy")
                        let engine = try await LocalSession.open(options).engine
                        vaults = try await engine.vaults()
                        kept = try await engine.keptVaultIds()
                    }
                    let invitations = await Invitations.of(vaults, options)
                    let rows = vaults.map {
                        VaultRow(
                            id: $0.summary.id, name: $0.metadata.name, role: $0.summary.role.rawValue, revision: $0.summary.revision,
                            invitation: invitations[$0.summary.id].map(InvitationRow.init),
                            access: kept.contains($0.summary.id) ? VaultRow.keptNote : nil
                        )
                    }
                    let text = rows.isEmpty ? "No vaults. Create one with `coffer vault create NAME`." :
                        (["ID                                    ROLE   REVISION  NAME"]
                            + rows.map { "\($0.id)  \($0.role.padding(toLength: 6, withPad: " ", startingAt: 0)) \(String($0.revision).padding(toLength: 9, withPad: " ", startingAt: 0)) \($0.name)\($0.invitation.map { "  \($0.text)" } ?? "")\($0.access.map { "  (\($0))" } ?? "")" })
                        .joined(separator: "\n")
                    try options.client.emit(rows, text: text)
                    try RefusedVaultText.fail(refused)
                }
            }

            /// Brings the local copy up to date when it lists other vaults, names or roles than the
            /// server (a vault deleted, renamed, shared or created elsewhere), so that `item list` and
            /// an offline `vault list` agree with what was just printed. Best effort: the server's list
            /// is printed whatever happens here.
            /// Returns the vaults kept on this device after access was lost (listed too, marked), and
            /// the vaults the round refused, named from the local copy.
            private static func catchUp(_ options: AccountOptions, with server: [DecryptedVault]) async -> (kept: [DecryptedVault], refused: [RefusedVault]) {
                func shape(_ vaults: [DecryptedVault]) -> Set<[String]> {
                    Set(vaults.map { [$0.summary.id, $0.metadata.name, $0.summary.role.rawValue] })
                }
                var refused: [RefusedVault] = []
                do {
                    let local = try await LocalSession.open(options)
                    let keptIds = try await local.engine.keptVaultIds()
                    if let cached = try? await local.engine.vaults(), shape(cached.filter { !keptIds.contains($0.summary.id) }) == shape(server) {
                        return (cached.filter { keptIds.contains($0.summary.id) }, [])
                    }
                    refused = try await local.engine.sync(refreshVaults: true).refusedVaults
                    let keptNow = try await local.engine.keptVaultIds()
                    return (try await local.engine.vaults().filter { keptNow.contains($0.summary.id) }, refused)
                } catch {
                    Terminal.note("the local copy could not be brought up to date: \(describeFailure(error))")
                    return ([], refused)
                }
            }
        }

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a vault.")
            @OptionGroup var options: AccountOptions
            @Argument(help: "The vault's name (encrypted; the server never sees it).") var name: String

            func run() async throws {
                try await runClientCommand {
                    guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw CLIError("the vault name must not be empty") }
                    let vault = try await VaultClient(client: options.makeClient()).createVault(name: name)
                    try options.client.emit(
                        VaultRow(id: vault.summary.id, name: name, role: vault.summary.role.rawValue, revision: vault.summary.revision),
                        text: "Created vault \"\(name)\" (\(vault.summary.id))."
                    )
                }
            }
        }

        struct Rename: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Rename a vault (owner and admins; the name is encrypted).")
            @OptionGroup var options: AccountOptions
            @Argument(help: "Vault id or name.") var vault: String
            @Argument(help: "The new name.") var name: String

            func run() async throws {
                try await runClientCommand {
                    guard !name.trimmingCharacters(in: .whitespaces).isEmpty else { throw CLIError("the vault name must not be empty") }
                    let vaults = VaultClient(client: try options.makeClient())
                    let target = try await VaultLookup.find(vault, in: vaults)
                    try await Invitations.requireAccepted(target, options)
                    let renamed = try await vaults.renameVault(target, to: name)
                    try options.client.emit(
                        VaultRow(id: renamed.summary.id, name: name, role: renamed.summary.role.rawValue, revision: renamed.summary.revision),
                        text: "Renamed \"\(target.metadata.name)\" to \"\(name)\"."
                    )
                }
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Delete a vault and all its items (owner only).")
            @OptionGroup var options: AccountOptions
            @Argument(help: "Vault id or name.") var vault: String
            @Flag(help: "Do not ask for confirmation.") var yes = false

            func run() async throws {
                try await runClientCommand {
                    let vaults = VaultClient(client: try options.makeClient())
                    let target = try await VaultLookup.find(vault, in: vaults)
                    if !yes {
                        print("Delete vault \"\(target.metadata.name)\" and all its items? Type the vault name to confirm: ", terminator: "")
                        guard readLine() == target.metadata.name else { throw CLIError("not confirmed; nothing was deleted") }
                    }
                    try await vaults.deleteVault(id: target.summary.id)
                    // The server confirmed it: the local copy forgets the vault now, not at the next sync.
                    var text = "Deleted vault \"\(target.metadata.name)\"."
                    do {
                        let kept = try await LocalSession.open(options).engine.forgetDeletedVault(id: target.summary.id)
                        if kept > 0 {
                            text = "Deleted vault \"\(target.metadata.name)\"; changes to \(kept) \(kept == 1 ? "item" : "items") on this device that were never pushed "
                                + "are kept as refused changes (see `coffer conflicts list --all`)."
                        }
                    } catch {
                        text = "Deleted vault \"\(target.metadata.name)\" on the server; this device's copy keeps it until the next `coffer sync` (\(describeFailure(error)))."
                    }
                    try options.client.emit(SuccessResponse(), text: text)
                }
            }
        }
    }
}

extension Coffer.Vault {
    /// `coffer vault forget`: drops this device's copy of a vault the server no longer serves to
    /// this account (access lost, or refused), on the person's say-so; nothing on the server changes.
    struct Forget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop this device's copy of a vault whose access was lost or that was refused (nothing changes on the server)."
        )
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                guard let target = try VaultLookup.match(vault, in: try await local.engine.vaults()) else { throw VaultLookup.notFound(vault) }
                let kept = try await local.engine.forgetKeptVault(id: target.summary.id)
                var text = "Dropped this device's copy of vault \"\(target.metadata.name)\"."
                if kept > 0 {
                    text += " Changes to \(kept) \(kept == 1 ? "item" : "items") that were never pushed are kept as refused changes (see `coffer conflicts list --all`)."
                }
                try options.client.emit(SuccessResponse(), text: text)
            }
        }
    }
}

struct VaultRow: Encodable {
    var id: String
    var name: String
    var role: String
    var revision: Int64
    /// Set for a vault shared with this account that this device has not accepted.
    var invitation: InvitationRow?
    /// Set for a vault whose access the server says was lost, kept read-only on this device.
    var access: String? = nil

    static let keptNote = "access lost — kept on this device, read-only"
}

/// Finds a vault by id or (case-insensitive) name.
enum VaultLookup {
    static func find(_ reference: String, in vaults: VaultClient) async throws -> DecryptedVault {
        guard let match = try match(reference, in: try await vaults.vaults()) else { throw notFound(reference) }
        return match
    }

    /// The vault `reference` names among `all`, nil when none does.
    static func match(_ reference: String, in all: [DecryptedVault]) throws -> DecryptedVault? {
        if let byId = all.first(where: { $0.summary.id == reference.lowercased() }) { return byId }
        let byName = all.filter { $0.metadata.name.lowercased() == reference.lowercased() }
        guard byName.count <= 1 else { throw CLIError("several vaults are named \"\(reference)\"; use its id") }
        return byName.first
    }

    static func notFound(_ reference: String) -> CLIError {
        CLIError("no vault \"\(reference)\" (see `coffer vault list`)")
    }
}
