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
                // Queued from here on: whatever the round does, the command reports the item as added.
                let (outcome, current) = await local.push(queuedChangeOf: queued.item.item.id)
                let item = current ?? queued
                let added = "Added \"\(title)\" (\(item.item.item.id)) to \(target.metadata.name)"
                try outcome.throwIfRefused("\"\(title)\"")
                try options.client.emit(QueuedChangeJSON(base: ItemView(item.item, reveal: false), outcome: outcome), text: outcome.onThisDevice(added) ?? "\(added).")
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
                let queued = try await local.engine.editItem(id: item.item.item.id, document: document)
                // Queued from here on: whatever the round does, the command reports the edit as saved.
                let (outcome, current) = await local.push(queuedChangeOf: item.item.item.id)
                let updated = current ?? queued
                let saved = "Saved \"\(document.title)\""
                try outcome.throwIfRefused("\"\(document.title)\"")
                let text = switch outcome {
                case .pushed: "\(saved) as version \(updated.item.item.version)."
                case .settled(let conflict):
                    "\(saved) as version \(updated.item.item.version) after settling a conflict with another device (conflict \(conflict), see `coffer conflicts list --all`)."
                case .waiting, .conflict, .refused: outcome.onThisDevice(saved) ?? "\(saved)."
                }
                try options.client.emit(QueuedChangeJSON(base: ItemView(updated.item, reveal: false), outcome: outcome), text: text)
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
                // Queued from here on: whatever the round does, the command reports the item as deleted.
                let (outcome, current) = await local.push(queuedChangeOf: item.item.item.id)
                let title = item.item.document?.title ?? id
                var tombstone = current?.item.item ?? item.item.item
                if current == nil { tombstone.deleted = true }
                try outcome.throwIfRefused("\"\(title)\"")
                let text = switch outcome {
                case .settled(let conflict) where !tombstone.deleted:
                    // An edit beats a delete: the other device's change is kept, the deletion is recorded.
                    "Not deleted \"\(title)\": another device changed it meanwhile, and the change was kept (conflict \(conflict), see `coffer conflicts list --all`)."
                case .pushed, .settled:
                    "Deleted \"\(title)\"; restore it with `coffer item restore \(tombstone.id) --version \(max(tombstone.version, 1) - 1)`."
                case .waiting, .conflict, .refused: outcome.onThisDevice("Deleted \"\(title)\"") ?? "Deleted \"\(title)\"."
                }
                try options.client.emit(QueuedChangeJSON(base: tombstone, outcome: outcome), text: text)
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
                let invitation = try await local.engine.isAccepted(target.summary) ? "" : "\(target.metadata.name) (invitation, not accepted; `coffer vault accept` to write into it)\n"
                let text = invitation + (views.isEmpty ? "No items in \(target.metadata.name)." :
                    zip(views, items).map { view, item in
                        "\(view.id)  \((view.title ?? "").padding(toLength: 24, withPad: " ", startingAt: 0)) \(view.username ?? "")\(item.pendingChanges > 0 ? "  (not yet pushed)" : "")"
                    }.joined(separator: "\n"))
                try options.client.emit(views, text: text)
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the kept versions of an item (kept on the server) and what changed in each; --version N shows one whole."
        )
        @OptionGroup var options: AccountOptions
        @Argument(help: "Item id.") var id: String
        @Option(name: .customLong("version"), help: "Show this kept version whole, as `coffer item restore --version` would write it back.") var shownVersion: Int?
        @Flag(help: "Show passwords.") var reveal = false

        /// One field a version changed, with its new value (nil: the field was cleared).
        struct FieldChange: Encodable {
            var field: String
            var value: String?
        }

        /// One kept version, and how it differs from the previous kept one.
        struct Entry: Encodable {
            var version: Int
            var createdAt: Timestamp
            var deleted: Bool
            var title: String?
            var deviceId: String?
            /// `client` or `server` when this version records a conflict resolution.
            var resolution: String?
            /// `created`, `edited`, `deleted`, `restored`, or `oldest-kept` (the versions before it are no longer kept).
            var change: String
            /// The version this one restored, when its content is exactly an earlier kept version's.
            var restoredFrom: Int?
            /// The fields that differ from the previous kept (not deleted) version; every field for the first.
            var changes: [FieldChange]
        }

        /// A kept version shown whole.
        struct VersionView: Encodable {
            var id: String
            var version: Int
            var createdAt: Timestamp
            var deleted: Bool
            var deviceId: String?
            var resolution: String?
            var title: String?
            var username: String?
            var password: String?
            var url: String?
            var notes: String?
            var modifiedAt: Timestamp?
        }

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let vaults = VaultClient(client: local.client)
                let item = try await local.item(id)
                guard item.item.item.version > 0 else { throw CLIError("this item has not reached the server yet, so it has no history; run `coffer sync`") }
                let vault = try await local.vault(item.item.item.vaultId)
                let history: [(ItemVersion, ItemDocument?)]
                do {
                    // Times and devices as sealed inside each version, not as the server lists them
                    // (only a deletion written before tombstones has none: the server's are shown).
                    history = try await vaults.versions(of: item.item, in: vault).map { entry in
                        var version = entry.version
                        if let modifiedAt = entry.modifiedAt {
                            version.createdAt = modifiedAt
                            version.deviceId = entry.modifiedBy
                        }
                        return (version, entry.document)
                    }
                } catch let error as CofferClientError where RetryPolicy.classify(error) == .offline {
                    throw CLIError("the version history is kept on the server, which cannot be reached (\(ClientErrorText.describe(error))); `coffer item get \(id)` shows the local copy")
                }
                let itemId = item.item.item.id
                if let shownVersion {
                    guard let (version, document) = history.first(where: { $0.0.version == shownVersion }) else {
                        let kept = history.map { "v\($0.0.version)" }.joined(separator: ", ")
                        throw CLIError("version \(shownVersion) of this item is not kept (kept: \(kept.isEmpty ? "none" : kept))")
                    }
                    let view = VersionView(
                        id: itemId, version: version.version, createdAt: version.createdAt, deleted: version.deleted, deviceId: version.deviceId,
                        resolution: version.resolution, title: document?.title, username: document?.username,
                        password: document?.password.map { reveal ? $0 : "********" }, url: document?.url, notes: document?.notes, modifiedAt: document?.modifiedAt
                    )
                    try options.client.emit(view, text: Self.text(view, current: item.item.item.version))
                    return
                }
                let entries = Self.entries(history, reveal: reveal)
                var lines: [String] = []
                for entry in entries {
                    var label: [String] = switch entry.change {
                    case "created": ["created"]
                    case "deleted": ["deleted"]
                    case "restored": [entry.restoredFrom.map { "restored v\($0)" } ?? "restored"]
                    case "oldest-kept": ["oldest kept version"]
                    default: entry.changes.isEmpty ? ["no field changed"] : []
                    }
                    if entry.change == "edited" || entry.change == "restored", !entry.changes.isEmpty {
                        label.append("changed " + entry.changes.map(\.field).joined(separator: ", "))
                    }
                    let resolution = switch entry.resolution {
                    case "client": "  [settled a conflict]"
                    case "server": "  [kept when a conflict was settled]"
                    case let other?: "  [resolved: \(other)]"
                    case nil: ""
                    }
                    lines.append("v\(entry.version)  \(entry.createdAt)  \(entry.deleted ? "(deleted)" : entry.title ?? "")  \(label.joined(separator: "; "))\(resolution)")
                    for change in entry.changes {
                        lines.append("      " + "\(change.field):".padding(toLength: 10, withPad: " ", startingAt: 0) + (change.value ?? "(cleared)"))
                    }
                }
                if let earlier = entries.first(where: { !$0.deleted && $0.version != item.item.item.version }) {
                    lines += ["", "Show a version whole with `coffer item history \(itemId) --version \(earlier.version)`; write it back with `coffer item restore \(itemId) --version \(earlier.version)`."]
                }
                try options.client.emit(entries, text: lines.joined(separator: "\n"))
            }
        }

        /// The history newest first, as the server lists it, each version compared with the
        /// previous kept one that still had content (a restore after a deletion is compared with
        /// what was deleted).
        static func entries(_ history: [(ItemVersion, ItemDocument?)], reveal: Bool) -> [Entry] {
            let oldestFirst = history.sorted { $0.0.version < $1.0.version }
            var entries: [Entry] = []
            var previous: ItemDocument?
            var previousDeleted = false
            var earlier: [(version: Int, document: ItemDocument)] = []
            func masked(_ field: ItemField, _ document: ItemDocument) -> String? {
                let value = field.value(in: document)
                return field == .password && !reveal ? value.map { _ in "********" } : value
            }
            for (index, (version, document)) in oldestFirst.enumerated() {
                var entry = Entry(
                    version: version.version, createdAt: version.createdAt, deleted: version.deleted, title: document?.title,
                    deviceId: version.deviceId, resolution: version.resolution, change: "edited", changes: []
                )
                if let document, !version.deleted {
                    // A restore writes an old version's content back exactly, modification time included.
                    entry.restoredFrom = earlier.last(where: { $0.document == document })?.version
                    if let previous {
                        entry.changes = ItemField.differing(previous, document).map { FieldChange(field: $0.rawValue, value: masked($0, document)) }
                        if previousDeleted || entry.restoredFrom != nil { entry.change = "restored" }
                    } else {
                        entry.change = index == 0 && version.version > 1 ? "oldest-kept" : "created"
                        entry.changes = ItemField.allCases.compactMap { field in masked(field, document).map { FieldChange(field: field.rawValue, value: $0) } }
                    }
                    previous = document
                    earlier.append((version.version, document))
                } else {
                    entry.change = "deleted"
                }
                previousDeleted = version.deleted
                entries.append(entry)
            }
            return entries.reversed()
        }

        static func text(_ view: VersionView, current: Int) -> String {
            var lines = ["Version \(view.version) of \(view.id), written \(view.createdAt)\(view.version == current ? " (the current version)" : "")"]
            guard !view.deleted else {
                lines.append("  (the item was deleted in this version; restore an earlier one)")
                return lines.joined(separator: "\n")
            }
            lines.append("  title:    \(view.title ?? "")")
            if let username = view.username { lines.append("  username: \(username)") }
            if let password = view.password { lines.append("  password: \(password)") }
            if let url = view.url { lines.append("  url:      \(url)") }
            if let notes = view.notes { lines.append("  notes:    \(notes)") }
            if let modifiedAt = view.modifiedAt { lines.append("  edited:   \(modifiedAt)") }
            if view.version != current { lines += ["", "Write it back with `coffer item restore \(view.id) --version \(view.version)`."] }
            return lines.joined(separator: "\n")
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
