import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer vault …`.
    struct Vault: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, create, delete and share vaults (names and contents are encrypted on this device).",
            subcommands: [List.self, Create.self, Rename.self, Delete.self, Share.self, Members.self, Revoke.self, Leave.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List your vaults.")
            @OptionGroup var options: AccountOptions

            func run() async throws {
                try await runClientCommand {
                    let vaults: [DecryptedVault]
                    do {
                        vaults = try await VaultClient(client: options.makeClient()).vaults()
                        await Self.catchUp(options, with: vaults)
                    } catch let error as CofferClientError where RetryPolicy.classify(error) == .offline {
                        // Offline: the vaults this device synced last.
                        Terminal.note("offline (\(ClientErrorText.describe(error))); listing the local copy")
                        vaults = try await LocalSession.open(options).engine.vaults()
                    }
                    let rows = vaults.map { VaultRow(id: $0.summary.id, name: $0.metadata.name, role: $0.summary.role.rawValue, revision: $0.summary.revision) }
                    let text = rows.isEmpty ? "No vaults. Create one with `coffer vault create NAME`." :
                        (["ID                                    ROLE   REVISION  NAME"]
                            + rows.map { "\($0.id)  \($0.role.padding(toLength: 6, withPad: " ", startingAt: 0)) \(String($0.revision).padding(toLength: 9, withPad: " ", startingAt: 0)) \($0.name)" })
                        .joined(separator: "\n")
                    try options.client.emit(rows, text: text)
                }
            }

            /// Brings the local copy up to date when it lists other vaults, names or roles than the
            /// server (a vault deleted, renamed, shared or created elsewhere), so that `item list` and
            /// an offline `vault list` agree with what was just printed. Best effort: the server's list
            /// is printed whatever happens here.
            private static func catchUp(_ options: AccountOptions, with server: [DecryptedVault]) async {
                func shape(_ vaults: [DecryptedVault]) -> Set<[String]> {
                    Set(vaults.map { [$0.summary.id, $0.metadata.name, $0.summary.role.rawValue] })
                }
                do {
                    let local = try await LocalSession.open(options)
                    if let cached = try? await local.engine.vaults(), shape(cached) == shape(server) { return }
                    try await local.engine.sync(refreshVaults: true)
                } catch {
                    Terminal.note("the local copy could not be brought up to date: \(describeFailure(error))")
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

struct VaultRow: Encodable {
    var id: String
    var name: String
    var role: String
    var revision: Int64
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
