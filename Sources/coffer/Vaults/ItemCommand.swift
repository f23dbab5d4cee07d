import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer item …`.
    struct ItemCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "item",
            abstract: "Add, show, edit, delete and list items; browse and restore their history.",
            subcommands: [Add.self, Get.self, Edit.self, Delete.self, List.self, History.self, Restore.self]
        )
    }
}

/// Item fields given on the command line.
struct ItemFieldOptions: ParsableArguments {
    @Option(help: "Title.") var title: String?
    @Option(help: "User name.") var username: String?
    @Option(help: "URL.") var url: String?
    @Option(help: "Notes.") var notes: String?
    @Flag(help: "Read the item's password from the first line of standard input.") var secretStdin = false

    func apply(to document: inout ItemDocument) throws {
        if let title { document.title = title }
        if let username { document.username = username }
        if let url { document.url = url }
        if let notes { document.notes = notes }
        if secretStdin {
            guard let line = readLine(strippingNewline: true) else { throw CLIError("--secret-stdin was given but standard input is empty") }
            document.password = line
        }
    }
}

/// An item as printed; the password only with `--reveal`.
struct ItemView: Encodable {
    var id: String
    var vaultId: String
    var version: Int
    var revision: Int64
    var deleted: Bool
    var updatedAt: Timestamp
    var title: String?
    var username: String?
    var password: String?
    var url: String?
    var notes: String?

    init(_ item: DecryptedItem, reveal: Bool) {
        id = item.item.id
        vaultId = item.item.vaultId
        version = item.item.version
        revision = item.item.revision
        deleted = item.item.deleted
        updatedAt = item.item.updatedAt
        title = item.document?.title
        username = item.document?.username
        password = item.document?.password.map { reveal ? $0 : "********" }
        url = item.document?.url
        notes = item.document?.notes
    }

    var text: String {
        var lines = ["\(title ?? "(deleted)")  [\(id), version \(version)]"]
        if let username { lines.append("  username: \(username)") }
        if let password { lines.append("  password: \(password)") }
        if let url { lines.append("  url:      \(url)") }
        if let notes { lines.append("  notes:    \(notes)") }
        return lines.joined(separator: "\n")
    }
}

extension Coffer.ItemCommand {
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an item to a vault.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String
        @OptionGroup var fields: ItemFieldOptions

        func run() async throws {
            try await runClientCommand {
                guard let title = fields.title, !title.isEmpty else { throw CLIError("an item needs a --title") }
                var document = ItemDocument(title: title)
                try fields.apply(to: &document)
                let vaults = VaultClient(client: try options.makeClient())
                let target = try await VaultLookup.find(vault, in: vaults)
                let item = try await vaults.addItem(document, to: target)
                try options.client.emit(ItemView(item, reveal: false), text: "Added \"\(title)\" (\(item.item.id)) to \(target.metadata.name).")
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an item (the password is hidden unless --reveal).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String
        @Flag(help: "Show the password.") var reveal = false

        func run() async throws {
            try await runClientCommand {
                let (item, _) = try await VaultClient(client: try options.makeClient()).item(id: id)
                let view = ItemView(item, reveal: reveal)
                try options.client.emit(view, text: view.text)
            }
        }
    }

    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change fields of an item.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String
        @OptionGroup var fields: ItemFieldOptions

        func run() async throws {
            try await runClientCommand {
                let vaults = VaultClient(client: try options.makeClient())
                let (item, vault) = try await vaults.item(id: id)
                guard var document = item.document else { throw CLIError("this item is deleted; restore it first (`coffer item history`)") }
                try fields.apply(to: &document)
                let updated = try await vaults.editItem(item, document: document, in: vault)
                try options.client.emit(ItemView(updated, reveal: false), text: "Saved \"\(document.title)\" as version \(updated.item.version).")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an item (its history is kept).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String

        func run() async throws {
            try await runClientCommand {
                let vaults = VaultClient(client: try options.makeClient())
                let (item, _) = try await vaults.item(id: id)
                let tombstone = try await vaults.deleteItem(item)
                try options.client.emit(tombstone, text: "Deleted \"\(item.document?.title ?? id)\"; restore it with `coffer item restore \(id) --version \(item.item.version)`.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the items of a vault.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let vaults = VaultClient(client: try options.makeClient())
                let target = try await VaultLookup.find(vault, in: vaults)
                let items = try await vaults.items(in: target).sorted { ($0.document?.title ?? "") < ($1.document?.title ?? "") }
                let views = items.map { ItemView($0, reveal: false) }
                let text = views.isEmpty ? "No items in \(target.metadata.name)." :
                    views.map { "\($0.id)  \(($0.title ?? "").padding(toLength: 24, withPad: " ", startingAt: 0)) \($0.username ?? "")" }.joined(separator: "\n")
                try options.client.emit(views, text: text)
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the kept versions of an item.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String

        func run() async throws {
            try await runClientCommand {
                let vaults = VaultClient(client: try options.makeClient())
                let (item, vault) = try await vaults.item(id: id)
                let history = try await vaults.history(of: item, in: vault)
                struct Entry: Encodable {
                    var version: Int
                    var createdAt: Timestamp
                    var deleted: Bool
                    var title: String?
                    var deviceId: String?
                    var resolution: String?
                }
                let entries = history.map { Entry(version: $0.0.version, createdAt: $0.0.createdAt, deleted: $0.0.deleted, title: $0.1?.title, deviceId: $0.0.deviceId, resolution: $0.0.resolution) }
                let text = entries.map { "v\($0.version)  \($0.createdAt)  \($0.deleted ? "(deleted)" : $0.title ?? "")\($0.resolution.map { "  [resolved: \($0)]" } ?? "")" }
                    .joined(separator: "\n")
                try options.client.emit(entries, text: text)
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write an old version back as the newest one.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String
        @Option(help: "The version to restore (see `coffer item history`).") var version: Int

        func run() async throws {
            try await runClientCommand {
                let vaults = VaultClient(client: try options.makeClient())
                let (item, vault) = try await vaults.item(id: id)
                let restored = try await vaults.restore(item, version: version, in: vault)
                try options.client.emit(ItemView(restored, reveal: false), text: "Restored version \(version) as version \(restored.item.version).")
            }
        }
    }
}
