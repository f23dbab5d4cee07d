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
        static let configuration = CommandConfiguration(abstract: "Add an item to a vault (works offline: it is queued and pushed by the next sync).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String
        @OptionGroup var fields: ItemFieldOptions

        func run() async throws {
            try await runClientCommand {
                guard let title = fields.title, !title.isEmpty else { throw CLIError("an item needs a --title") }
                var document = ItemDocument(title: title)
                try fields.apply(to: &document)
                let local = try await LocalSession.open(options)
                let target = try await local.vault(vault)
                // On disk before anything goes over the network: a crash from here on loses nothing.
                let queued = try await local.engine.addItem(document, vaultId: target.summary.id)
                let online = try await local.syncIfOnline() != nil
                let item = try await local.engine.item(id: queued.item.item.id) ?? queued
                let text = online
                    ? "Added \"\(title)\" (\(item.item.item.id)) to \(target.metadata.name)."
                    : "Added \"\(title)\" (\(item.item.item.id)) to \(target.metadata.name) on this device; `coffer sync` pushes it when the server is back."
                try options.client.emit(ItemView(item.item, reveal: false), text: text)
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
                let local = try await LocalSession.open(options)
                try await local.syncIfOnline()
                let item = try await local.item(id)
                guard !item.item.item.deleted else { throw CLIError("not found (or you have no access to it)") }
                let view = ItemView(item.item, reveal: reveal)
                try options.client.emit(view, text: view.text)
            }
        }
    }

    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change fields of an item (works offline).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String
        @OptionGroup var fields: ItemFieldOptions

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let item = try await local.item(id)
                guard var document = item.item.document, !item.item.item.deleted else {
                    throw CLIError("this item is deleted; restore it first (`coffer item history`)")
                }
                try fields.apply(to: &document)
                try await local.engine.editItem(id: item.item.item.id, document: document)
                let report = try await local.syncIfOnline()
                let updated = try await local.item(id)
                let text: String
                if report == nil {
                    text = "Saved \"\(document.title)\" on this device; `coffer sync` pushes it when the server is back."
                } else if updated.pendingChanges > 0 {
                    text = "Saved \"\(document.title)\" on this device; it is still waiting to be pushed (see `coffer status`)."
                } else if (report?.conflicts ?? 0) > 0 {
                    text = "Saved \"\(document.title)\" as version \(updated.item.item.version) after settling a conflict with another device (see `coffer conflicts list --all`)."
                } else {
                    text = "Saved \"\(document.title)\" as version \(updated.item.item.version)."
                }
                try options.client.emit(ItemView(updated.item, reveal: false), text: text)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an item (works offline; its history is kept).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let item = try await local.item(id)
                guard !item.item.item.deleted else { throw CLIError("not found (or you have no access to it)") }
                try await local.engine.deleteItem(id: item.item.item.id)
                let online = try await local.syncIfOnline() != nil
                let tombstone = try await local.item(id)
                let title = item.item.document?.title ?? id
                let text = online && tombstone.pendingChanges == 0
                    ? "Deleted \"\(title)\"; restore it with `coffer item restore \(tombstone.item.item.id) --version \(tombstone.item.item.version - 1)`."
                    : "Deleted \"\(title)\" on this device; `coffer sync` pushes the deletion when the server is back."
                try options.client.emit(tombstone.item.item, text: text)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the items of a vault (from the local copy when offline).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                try await local.syncIfOnline()
                let target = try await local.vault(vault)
                let items = try await local.engine.items(vaultId: target.summary.id).sorted { ($0.item.document?.title ?? "") < ($1.item.document?.title ?? "") }
                let views = items.map { ItemView($0.item, reveal: false) }
                let text = views.isEmpty ? "No items in \(target.metadata.name)." :
                    zip(views, items).map { view, item in
                        "\(view.id)  \((view.title ?? "").padding(toLength: 24, withPad: " ", startingAt: 0)) \(view.username ?? "")\(item.pendingChanges > 0 ? "  (not yet pushed)" : "")"
                    }.joined(separator: "\n")
                try options.client.emit(views, text: text)
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the kept versions of an item (kept on the server).")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let vaults = VaultClient(client: local.client)
                let item = try await local.item(id)
                guard item.item.item.version > 0 else { throw CLIError("this item has not reached the server yet, so it has no history; run `coffer sync`") }
                let vault = try await local.vault(item.item.item.vaultId)
                let history: [(ItemVersion, ItemDocument?)]
                do {
                    history = try await vaults.history(of: item.item, in: vault)
                } catch let error as CofferClientError where RetryPolicy.classify(error) == .offline {
                    throw CLIError("the version history is kept on the server, which cannot be reached (\(ClientErrorText.describe(error))); `coffer item get \(id)` shows the local copy")
                }
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
                let local = try await LocalSession.open(options)
                let vaults = VaultClient(client: local.client)
                let item = try await local.item(id)
                let vault = try await local.vault(item.item.item.vaultId)
                let restored: DecryptedItem
                do {
                    restored = try await vaults.restore(item.item, version: version, in: vault)
                } catch let error as CofferClientError where RetryPolicy.classify(error) == .offline {
                    throw CLIError("old versions are kept on the server, which cannot be reached (\(ClientErrorText.describe(error))); try again when it is back")
                }
                try await local.syncIfOnline()
                try options.client.emit(ItemView(restored, reveal: false), text: "Restored version \(version) as version \(restored.item.version).")
            }
        }
    }
}
