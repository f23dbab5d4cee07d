import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer sync [--watch]`.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pull changes from the server and push this device's queued changes.",
            discussion: "With --watch, stays connected and syncs whenever another device changes something, printing each change."
        )
        @OptionGroup var options: AccountOptions
        @Flag(help: "Stay connected and print changes as they happen (Ctrl-C to stop).") var watch = false
        @Option(help: "Conflict policy for this sync: last-write-wins, manual or merge (default: each vault's, else merge).")
        var policy: ConflictPolicy?
        @Option(help: "With --watch: also sync every this many seconds, whatever happens.") var interval = 60

        func run() async throws {
            try await runClientCommand {
                guard (1...86_400).contains(interval) else { throw CLIError("--interval must be 1–86400 seconds") }
                let local = try await LocalSession.open(options, policy: policy, interval: .seconds(interval))
                if watch {
                    try await watchChanges(local)
                    return
                }
                let events = await local.engine.events()
                let progress = Terminal.ProgressLine(label: "Syncing", counting: true)
                let printer = Task {
                    for await event in events {
                        if case .progress(let done, let total?) = event { progress.update(done: done, total: total) }
                    }
                }
                defer { printer.cancel() }
                let report = try await local.engine.sync(policy: policy, refreshVaults: true)
                var text = "Synced: pulled \(report.pulled), pushed \(report.pushed)"
                if report.conflicts > 0 { text += ", \(report.conflicts) conflicts settled or listed" }
                if report.rejected > 0 { text += ", \(report.rejected) changes refused by the server (see `coffer conflicts list --all`)" }
                text += "."
                if report.pending > 0 { text += " \(report.pending) changes still waiting." }
                if report.openConflicts > 0 { text += " \(report.openConflicts) open conflicts: see `coffer conflicts list`." }
                for vaultId in report.keptVaults {
                    text += "\nLost access to vault \(await local.vaultName(vaultId)): access lost — kept on this device, read-only (`coffer vault forget` drops it)."
                }
                try options.client.emit(report, text: text)
                try RefusedVaultText.fail(report.refusedVaults)
            }
        }

        private func watchChanges(_ local: LocalSession) async throws {
            let events = await local.engine.events()
            let names = NameCache(local: local)
            let printer = Task {
                for await event in events {
                    guard let line = await names.describe(event) else { continue }
                    // Written straight to the descriptor: a pipe must see each change at once, not when a buffer fills.
                    let text = options.client.json ? line.json : "\(Timestamp.now)  \(line.text)"
                    FileHandle.standardOutput.write(Data((text + "\n").utf8))
                }
            }
            defer { printer.cancel() }
            try await local.engine.watch(client: local.client)
        }
    }
}

/// Turns events into lines, naming vaults from the local copy.
private actor NameCache {
    let local: LocalSession
    var vaults: [String: String] = [:]

    init(local: LocalSession) { self.local = local }

    struct Line {
        var text: String
        var json: String
    }

    func name(_ vaultId: String) async -> String {
        if let known = vaults[vaultId] { return known }
        let name = await local.vaultName(vaultId)
        vaults[vaultId] = name
        return name
    }

    func describe(_ event: SyncEvent) async -> Line? {
        func line(_ text: String, _ fields: [String: Any]) -> Line {
            let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return Line(text: text, json: String(decoding: data, as: UTF8.self))
        }
        switch event {
        case .connected:
            return line("connected; watching for changes (Ctrl-C to stop)", ["event": "connected"])
        case .disconnected(let reason):
            return line("disconnected (\(reason)); reconnecting", ["event": "disconnected", "reason": reason])
        case .pulled(let vaultId, let itemId, let version, let document, let deviceId):
            let vault = await name(vaultId)
            let what = document.map { "\"\($0.title)\"" } ?? "deleted item"
            return line(
                "\(document == nil ? "deleted" : "changed") \(what) in \(vault) (\(itemId), version \(version)\(deviceId.map { ", from device \($0.prefix(8))" } ?? ""))",
                ["event": "pulled", "vaultId": vaultId, "itemId": itemId, "version": version, "title": document?.title ?? NSNull(), "deleted": document == nil]
            )
        case .pushed(let vaultId, let itemId, let version):
            return line("pushed \(itemId) to \(await name(vaultId)) (version \(version))", ["event": "pushed", "vaultId": vaultId, "itemId": itemId, "version": version])
        case .conflict(let itemId, let outcome):
            return line("conflict on \(itemId): \(outcome)", ["event": "conflict", "itemId": itemId, "outcome": outcome])
        case .rejected(let itemId, let reason):
            return line("the server refused a change of \(itemId): \(reason)", ["event": "rejected", "itemId": itemId, "reason": reason])
        case .gainedVault(let vaultId):
            vaults[vaultId] = nil
            return line("gained access to vault \(await name(vaultId))", ["event": "gained", "vaultId": vaultId])
        case .lostVault(let vaultId):
            return line("lost access to vault \(vaults[vaultId] ?? vaultId)", ["event": "lost", "vaultId": vaultId])
        case .progress:
            return nil
        }
    }
}

extension Coffer {
    /// `coffer status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show sync status: online or offline, queued changes, last sync, open conflicts.")
        @OptionGroup var options: AccountOptions

        func run() async throws {
            try await runClientCommand {
                let local = try await LocalSession.open(options)
                let status = try await local.engine.probe()
                var lines = [
                    "State:      \(status.state.rawValue)\(status.lastError.map { " (\($0))" } ?? "")",
                    "Pending:    \(status.pending) \(status.pending == 1 ? "change" : "changes") waiting to be pushed",
                    "Last sync:  \(status.lastSync.map { "\($0)" } ?? "never")",
                    "Conflicts:  \(status.openConflicts) open",
                ]
                if status.openConflicts > 0 { lines.append("Run `coffer conflicts list` to settle them.") }
                for refused in status.refusedVaults { lines.append("Refused:    \(RefusedVaultText.line(refused))") }
                for vaultId in status.keptVaults {
                    lines.append("Kept:       vault \(await local.vaultName(vaultId)): access lost — kept on this device, read-only (`coffer vault forget` drops it)")
                }
                for revoke in try await local.engine.pendingRevokes() {
                    let step = revoke.step == "rotate" ? "removal and key rotation not done yet" : "key rotated; items not all re-encrypted yet"
                    lines.append("Revoke:     \(revoke.email) from \(await local.vaultName(revoke.vaultId)): \(step)\(revoke.lastError.map { " (last attempt: \($0))" } ?? ""); the next sync finishes it")
                }
                try options.client.emit(status, text: lines.joined(separator: "\n"))
            }
        }
    }

    /// `coffer history`.
    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show what recent syncs pulled, pushed, merged and refused.")
        @OptionGroup var options: AccountOptions
        @Option(help: "How many entries.") var limit = 50

        func run() async throws {
            try await runClientCommand {
                guard limit > 0 else { throw CLIError("--limit must be at least 1") }
                let local = try await LocalSession.open(options)
                let entries = try await local.engine.history(limit: limit)
                var lines: [String] = []
                for entry in entries {
                    var parts = ["\(entry.at)", entry.kind.padding(toLength: 8, withPad: " ", startingAt: 0)]
                    if let vaultId = entry.vaultId { parts.append(await local.vaultName(vaultId)) }
                    if let itemId = entry.itemId { parts.append(itemId) }
                    if let version = entry.version { parts.append("v\(version)") }
                    if let detail = entry.detail { parts.append(detail) }
                    lines.append(parts.joined(separator: "  "))
                }
                try options.client.emit(entries, text: lines.isEmpty ? "Nothing synced yet." : lines.joined(separator: "\n"))
            }
        }
    }
}

/// How refused vaults are shown: one line each. A command that synced or listed the other vaults
/// but refused some exits with status 1 after printing its result (it is not a clean success);
/// `coffer status` only reports them.
enum RefusedVaultText {
    static func line(_ refused: RefusedVault) -> String {
        "vault \(refused.label) was refused and kept out: \(refused.reason); its local copy is unchanged and its queued changes wait"
    }

    /// Prints one error line per refused vault and exits 1; does nothing when there are none.
    static func fail(_ refused: [RefusedVault]) throws {
        guard !refused.isEmpty else { return }
        for vault in refused { Terminal.printError("error: \(line(vault))") }
        throw ExitCode.failure
    }
}
