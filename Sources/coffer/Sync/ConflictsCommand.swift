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
    var baseVersion: Int
    var createdAt: Timestamp
    var resolvedAt: Timestamp?
    var detail: String?
    var local: ItemFieldsView?
    /// The server's side the conflict was met against; for records that did not keep it, the
    /// server's version as this device holds it now (`serverRecorded` false).
    var server: ItemFieldsView?
    var serverRecorded: Bool
    var base: ItemFieldsView?
    /// The item now (the settled result, or what came after it).
    var now: ItemFieldsView?
    var nowVersion: Int?
    /// Field by field, when both sides are edits (not deletions).
    var fields: [ConflictFieldView]
    var earlierEdits: Int
}

/// One field of a conflict: its value on each side, and which side's value the item kept.
struct ConflictFieldView: Encodable {
    var field: String
    var base: String?
    var local: String?
    var server: String?
    /// The two sides hold different values.
    var differs: Bool
    /// `local`, `server` or `both` for a field changed on both sides, nil when not changed or unknown (no base).
    var changedOn: String?
    /// Whose value the settled item took: `local` or `server`; nil while open, or when the sides agree.
    var kept: String?
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

    func value(_ field: ItemField) -> String? {
        switch field {
        case .title: title
        case .username: username
        case .password: password
        case .url: url
        case .notes: notes
        }
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
        let sides = try await session.engine.sides(of: record)
        let current = sides.current.flatMap { $0.item.item.deleted ? nil : $0.item.document }
        let server = sides.serverRecorded ? sides.server : current
        return ConflictView(
            id: record.id, itemId: record.itemId, vault: await session.vaultName(record.vaultId), state: record.state.rawValue,
            outcome: record.outcome, policy: record.policy, serverVersion: record.serverVersion, baseVersion: record.baseVersion,
            createdAt: record.createdAt, resolvedAt: record.resolvedAt, detail: record.detail,
            local: sides.local.map { ItemFieldsView($0, reveal: reveal) }, server: server.map { ItemFieldsView($0, reveal: reveal) },
            serverRecorded: sides.serverRecorded, base: sides.base.map { ItemFieldsView($0, reveal: reveal) },
            now: current.map { ItemFieldsView($0, reveal: reveal) }, nowVersion: sides.current?.item.item.version,
            fields: fields(record, local: sides.local, server: server, base: sides.base, reveal: reveal), earlierEdits: record.earlier.count
        )
    }

    /// Compares the sides field by field (values masked as the views are), and says whose value was kept.
    private static func fields(_ record: ConflictRecord, local: ItemDocument?, server: ItemDocument?, base: ItemDocument?, reveal: Bool) -> [ConflictFieldView] {
        guard let local, let server else { return [] }
        let views = (ItemFieldsView(local, reveal: reveal), ItemFieldsView(server, reveal: reveal), base.map { ItemFieldsView($0, reveal: reveal) })
        return ItemField.allCases.map { field in
            let localValue = field.value(in: local), serverValue = field.value(in: server)
            let differs = localValue != serverValue
            var changedOn: String?
            if differs, let base {
                let baseValue = field.value(in: base)
                changedOn = localValue == baseValue ? "server" : serverValue == baseValue ? "local" : "both"
            } else if differs, record.merge != nil {
                changedOn = "both"  // merged without the base: every differing field was contested
            }
            return ConflictFieldView(
                field: field.rawValue, base: views.2?.value(field), local: views.0.value(field), server: views.1.value(field), differs: differs,
                changedOn: changedOn, kept: differs ? kept(field, record: record, changedOn: changedOn)?.rawValue : nil
            )
        }
    }

    /// Whose value of `field` the settled item took, from the record's outcome.
    private static func kept(_ field: ItemField, record: ConflictRecord, changedOn: String?) -> ConflictSide? {
        switch record.outcome {
        case "pushed-local", "user-kept-local": return .local
        case "kept-server", "user-kept-server": return .server
        case "merged":
            guard let merge = record.merge else { return nil }
            if merge.fromLocal.contains(field.rawValue) { return .local }
            if merge.fromServer.contains(field.rawValue) { return .server }
            if merge.contested.contains(field.rawValue) { return merge.contestedWinner }
            return changedOn == "local" ? .local : changedOn == "server" ? .server : nil
        default: return nil  // open, refused, both deleted
        }
    }

    var summary: String {
        let title = local?.title ?? server?.title ?? itemId
        let side = local == nil ? "your deletion" : "your edit"
        return "#\(id)  \(state.padding(toLength: 8, withPad: " ", startingAt: 0)) \(vault) / \"\(title)\": \(side) vs server version \(serverVersion) → \(outcome)"
    }

    /// What `conflicts show` prints: field by field when both sides are edits, else each side whole.
    var text: String {
        var lines = [summary, ""]
        let serverName = serverRecorded ? "server (v\(serverVersion))" : "server (now\(nowVersion.map { ", v\($0)" } ?? ""))"
        if let local, let server, !fields.isEmpty {
            let names = [("this device", "local"), (serverName, "server")]
            for field in fields {
                let label = (field.field + ":").padding(toLength: 10, withPad: " ", startingAt: 0)
                guard field.differs else {
                    if let value = field.local { lines.append("  \(label) \(value)") }
                    continue
                }
                let change = switch field.changedOn {
                case "local": "changed on this device"
                case "server": "changed on the server"
                case "both": "changed on both sides"
                default: "the sides differ"
                }
                let outcome = switch field.kept {
                case "local": "; this device's value kept"
                case "server": "; the server's value kept"
                default: ""
                }
                lines.append("* \(label) differs (\(change)\(outcome))")
                let width = max(names.map(\.0.count).max() ?? 0, base == nil ? 0 : "base (v\(baseVersion))".count) + 2
                if base != nil { lines.append("      " + "base (v\(baseVersion)):".padding(toLength: width, withPad: " ", startingAt: 0) + (field.base ?? "(none)")) }
                for (name, side) in names {
                    let value = (side == "local" ? field.local : field.server) ?? "(none)"
                    // A side loses only what it changed (or, without the base, whatever differs).
                    let changedHere = field.changedOn == nil || field.changedOn == side || field.changedOn == "both"
                    let mark = field.kept == nil ? "" : field.kept == side ? "   ← kept" : changedHere ? "   ← lost (kept in this record)" : ""
                    lines.append("      " + "\(name):".padding(toLength: width, withPad: " ", startingAt: 0) + value + mark)
                }
            }
            lines.append("  edited:    this device \(local.modifiedAt), \(serverName) \(server.modifiedAt)")
            lines += ["", "* = the two sides differ."]
        } else {
            lines.append("This device:")
            lines += local.map { $0.lines.map { "  " + $0 } } ?? ["  (deleted the item)"]
            lines += ["", serverName.prefix(1).uppercased() + serverName.dropFirst() + ":"]
            lines += server.map { $0.lines.map { "  " + $0 } } ?? ["  (deleted)"]
            if let base { lines += ["", "Base (v\(baseVersion)):"] + base.lines.map { "  " + $0 } }
        }
        if serverRecorded, let nowVersion {
            lines += ["", "Now (v\(nowVersion)):"]
            lines += now.map { $0.lines.map { "  " + $0 } } ?? ["  (deleted)"]
        }
        if earlierEdits > 0 { lines += ["", "\(earlierEdits) earlier edits from this device are kept with it."] }
        if let detail { lines += ["", "Detail: \(detail)"] }
        if state == ConflictRecord.State.open.rawValue { lines += ["", "Settle it with `coffer conflicts resolve \(id) --keep local|server`."] }
        return lines.joined(separator: "\n")
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
        static let configuration = CommandConfiguration(abstract: "Show both sides of a conflict (and the base), marking the fields that differ.")
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
                try options.client.emit(view, text: view.text)
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
