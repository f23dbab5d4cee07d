import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer conflicts …`.
    struct Conflicts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, inspect and settle sync conflicts; set a vault's conflict policy.",
            subcommands: [List.self, Show.self, Resolve.self, Policy.self]
        )
    }
}

/// A conflict as printed; passwords only with `--reveal`.
struct ConflictView: Encodable {
    var id: Int64
    var itemId: String
    var vault: String
    var state: String
    var outcome: String
    var policy: String
    var serverVersion: Int
    var createdAt: Timestamp
    var resolvedAt: Timestamp?
    var detail: String?
    var local: ItemFieldsView?
    var server: ItemFieldsView?
    var earlierEdits: Int
}

struct ItemFieldsView: Encodable {
    var title: String
    var username: String?
    var password: String?
    var url: String?
    var notes: String?
    var modifiedAt: Timestamp

    init(_ document: ItemDocument, reveal: Bool) {
        title = document.title
        username = document.username
        password = document.password.map { reveal ? $0 : "********" }
        url = document.url
        notes = document.notes
        modifiedAt = document.modifiedAt
    }

    var lines: [String] {
        var lines = ["title:    \(title)"]
        if let username { lines.append("username: \(username)") }
        if let password { lines.append("password: \(password)") }
        if let url { lines.append("url:      \(url)") }
        if let notes { lines.append("notes:    \(notes)") }
        lines.append("edited:   \(modifiedAt)")
        return lines
    }
}

extension ConflictView {
    static func make(_ record: ConflictRecord, local session: LocalSession, reveal: Bool) async throws -> ConflictView {
        let localSide = try await session.engine.localSide(of: record)
        let server = try await session.engine.item(id: record.itemId)
        return ConflictView(
            id: record.id, itemId: record.itemId, vault: await session.vaultName(record.vaultId), state: record.state.rawValue,
            outcome: record.outcome, policy: record.policy, serverVersion: record.serverVersion, createdAt: record.createdAt,
            resolvedAt: record.resolvedAt, detail: record.detail, local: localSide.map { ItemFieldsView($0, reveal: reveal) },
            server: server?.item.document.map { ItemFieldsView($0, reveal: reveal) }, earlierEdits: record.earlier.count
        )
    }

    var summary: String {
        let title = local?.title ?? server?.title ?? itemId
        let side = local == nil ? "your deletion" : "your edit"
        return "#\(id)  \(state.padding(toLength: 8, withPad: " ", startingAt: 0)) \(vault) / \"\(title)\": \(side) vs server version \(serverVersion) → \(outcome)"
    }
}

extension Coffer.Conflicts {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List open conflicts (--all: also settled and refused ones).")
        @OptionGroup var options: AccountOptions
        @Flag(help: "Include conflicts already settled by a policy, and changes the server refused.") var all = false

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let records = try await local.engine.conflicts(state: all ? nil : .open)
                var views: [ConflictView] = []
                for record in records { views.append(try await ConflictView.make(record, local: local, reveal: false)) }
                let text = views.isEmpty ? (all ? "No conflicts." : "No open conflicts.") : views.map(\.summary).joined(separator: "\n")
                try options.client.emit(views, text: text)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show both sides of a conflict.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Conflict number (see `coffer conflicts list`).") var id: Int64
        @Flag(help: "Show passwords.") var reveal = false

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                guard let record = try await local.engine.conflicts().first(where: { $0.id == id }) else {
                    throw CLIError("no conflict #\(id) (see `coffer conflicts list --all`)")
                }
                let view = try await ConflictView.make(record, local: local, reveal: reveal)
                var lines = [view.summary, "", "This device:"]
                lines += view.local.map { $0.lines.map { "  " + $0 } } ?? ["  (deleted the item)"]
                lines += ["", "Server (now):"]
                lines += view.server.map { $0.lines.map { "  " + $0 } } ?? ["  (deleted)"]
                if view.earlierEdits > 0 { lines += ["", "\(view.earlierEdits) earlier edits from this device are kept with it."] }
                if let detail = view.detail { lines += ["", "Detail: \(detail)"] }
                if record.state == .open { lines += ["", "Settle it with `coffer conflicts resolve \(id) --keep local|server`."] }
                try options.client.emit(view, text: lines.joined(separator: "\n"))
            }
        }
    }

    struct Resolve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Settle an open conflict by keeping this device's side or the server's.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Conflict number (see `coffer conflicts list`).") var id: Int64
        @Option(help: "Which side to keep: local or server.") var keep: String

        func run() async throws {
            try await runClientCommand {
                guard let choice = SyncEngine.ConflictChoice(rawValue: keep) else { throw CLIError("--keep must be local or server") }
                let local = try await LocalSession.open(options)
                let item = try await local.engine.resolveConflict(id: id, keep: choice)
                try options.client.emit(item, text: "Settled conflict #\(id): kept the \(choice == .local ? "local" : "server") side; the item is at version \(item.version).")
            }
        }
    }

    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show or set how this device settles conflicts in a vault.")
        @OptionGroup var options: AccountOptions
        @Argument(help: "Vault id or name.") var vault: String
        @Argument(help: "last-write-wins, manual or merge (omit to show the current one).") var policy: ConflictPolicy?

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let target = try await local.vault(vault)
                if let policy { try await local.engine.setPolicy(policy, vaultId: target.summary.id) }
                let current = try await local.engine.policy(vaultId: target.summary.id)
                try options.client.emit(["vault": target.summary.id, "policy": current.rawValue], text: "\(target.metadata.name): \(current.rawValue)")
            }
        }
    }
}
