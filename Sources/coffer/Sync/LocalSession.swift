import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

/// The logged-in client with its sync engine (the local cache and offline queue).
struct LocalSession {
    let client: CofferClient
    let engine: SyncEngine

    static func open(_ options: AccountOptions, policy: ConflictPolicy? = nil, interval: Duration? = nil) async throws -> LocalSession {
        let client = try options.makeClient()
        var configuration = SyncConfiguration()
        if let policy { configuration.defaultPolicy = policy }
        if let interval { configuration.timerInterval = interval }
        let engine = try await SyncEngine.open(client: client, directory: options.sessionStore.directory, configuration: configuration)
        return LocalSession(client: client, engine: engine)
    }

    /// Runs a round; when the server cannot be reached, says so and carries on with the local
    /// copy (the queue is pushed by a later round). Any other failure (a rollback, an ended
    /// session) is thrown.
    @discardableResult
    func syncIfOnline() async throws -> SyncReport? {
        do {
            return try await engine.sync()
        } catch let error as CofferClientError {
            guard RetryPolicy.classify(error) == .offline || RetryPolicy.classify(error) == .backoff else { throw error }
            Terminal.note("offline (\(ClientErrorText.describe(error))); working on the local copy")
            return nil
        }
    }

    /// A vault by id or name from the local copy, syncing first when it is not there.
    /// A vault kept after access was lost is found too, with a note saying so.
    func vault(_ reference: String) async throws -> DecryptedVault {
        var found = try VaultLookup.match(reference, in: try await engine.vaults())
        if found == nil {
            try await syncIfOnline()
            found = try VaultLookup.match(reference, in: try await engine.vaults())
        }
        guard let found else { throw VaultLookup.notFound(reference) }
        if try await engine.keptVaultIds().contains(found.summary.id) {
            Terminal.note("vault \"\(found.metadata.name)\": access lost — kept on this device, read-only (`coffer vault forget` drops it)")
        }
        return found
    }

    /// An item from the local copy, syncing first when it is not there.
    func item(_ id: String) async throws -> LocalItem {
        let id = id.lowercased()
        if let found = try await engine.item(id: id) { return found }
        try await syncIfOnline()
        guard let found = try await engine.item(id: id) else { throw CLIError("not found (or you have no access to it)") }
        return found
    }

    /// The name of a vault in the local copy, or its id.
    func vaultName(_ id: String) async -> String {
        (try? await engine.vaults().first { $0.summary.id == id }?.metadata.name) ?? id
    }

    /// Runs a round for a change already queued for `itemId` and says what became of it, with
    /// the item as this device now sees it (nil if it cannot be read). Never throws: the change
    /// is on disk, so a failed round (offline, an ended session, a refusal of something else)
    /// only means that it waits for the next one.
    func push(queuedChangeOf itemId: String) async -> (outcome: QueuedChangeOutcome, item: LocalItem?) {
        let lastConflict = (try? await engine.conflicts().map(\.id).max()) ?? 0
        var failure: String?
        do {
            try await engine.sync()
        } catch {
            failure = QueuedChangeOutcome.reason(error)
        }
        let item: LocalItem?
        do {
            item = try await engine.item(id: itemId)
        } catch {
            return (.waiting(reason: failure ?? QueuedChangeOutcome.reason(error)), nil)
        }
        if let item, item.pendingChanges > 0 {
            // Without a failure, the round met a conflict on it that the server moved past while it was being settled.
            return (.waiting(reason: failure ?? "it changed on another device meanwhile; the next `coffer sync` settles it"), item)
        }
        // Not queued any more: pushed, or kept in a conflict record made by this round.
        let records = ((try? await engine.conflicts()) ?? []).filter { $0.id > lastConflict && $0.itemId == itemId }
        guard let record = records.last else { return (.pushed, item) }
        switch record.state {
        case .rejected: return (.refused(reason: record.detail ?? "refused", conflict: record.id), item)
        case .open: return (.conflict(id: record.id), item)
        case .resolved: return (.settled(conflict: record.id), item)
        }
    }
}

/// What became of a change this device queued, once a round tried to push it.
enum QueuedChangeOutcome {
    /// The server has it.
    case pushed
    /// The server has the item, settled by the vault's policy with a change from another device.
    case settled(conflict: Int64)
    /// Still queued on this device only; `reason` says why, in words.
    case waiting(reason: String)
    /// Kept on this device in an open conflict with another device's change, for the user to settle.
    case conflict(id: Int64)
    /// The server refused it; it is kept in a refused conflict record, not queued.
    case refused(reason: String, conflict: Int64)

    /// Whether the change reached the server.
    var pushed: Bool {
        switch self {
        case .pushed, .settled: true
        case .waiting, .conflict, .refused: false
        }
    }

    /// Why the change is not on the server, in words; nil once it is.
    var notPushedReason: String? {
        switch self {
        case .pushed, .settled: nil
        case .waiting(let reason): reason
        case .conflict(let id): "it conflicts with a change made on another device; settle it with `coffer conflicts resolve \(id) --keep local|server`"
        case .refused(let reason, _): "the server refused it (\(reason))"
        }
    }

    /// `<what> on this device; not yet pushed: <reason>.`, or nil once the server has the change.
    func onThisDevice(_ what: String) -> String? {
        notPushedReason.map { "\(what) on this device; not yet pushed: \($0)." }
    }

    /// A refused change never takes effect (retrying would be refused again), so the command failed;
    /// the change itself is kept where the user can find it.
    func throwIfRefused(_ what: String) throws {
        guard case .refused(let reason, let conflict) = self else { return }
        throw CLIError("the server refused the change to \(what) (\(reason)); it is kept on this device as conflict \(conflict) (see `coffer conflicts list --all`)")
    }

    /// Why a round failed, as a reason a queued change waits.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as CofferClientError where RetryPolicy.classify(error) == .offline:
            return "offline (\(ClientErrorText.describe(error))); `coffer sync` pushes it when the server is back"
        case let error as CofferClientError where error.status == 401 && error.code == ErrorCode.unauthorized:
            return "\(ClientErrorText.describe(error)), then `coffer sync`"
        default:
            let reason = describeFailure(error)
            return "\(reason.hasSuffix(".") ? String(reason.dropLast()) : reason); it stays queued for the next `coffer sync` (see `coffer status`)"
        }
    }
}

/// Any failure in the words `runClientCommand` would print it in.
func describeFailure(_ error: any Error) -> String {
    switch error {
    case let error as CofferClientError: ClientErrorText.describe(error)
    case let error as CLIError: error.description
    default: "\(error)"
    }
}

/// A command's JSON output with what became of its queued change added: `pushed`, and while
/// it is not, `reason`; `conflict` names the conflict record it met, if any.
struct QueuedChangeJSON<Base: Encodable>: Encodable {
    var base: Base
    var outcome: QueuedChangeOutcome

    private enum Key: String, CodingKey {
        case pushed
        case reason
        case conflict
    }

    func encode(to encoder: any Encoder) throws {
        try base.encode(to: encoder)
        // The same keyed container the base wrote to: the fields stay at the top level.
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(outcome.pushed, forKey: .pushed)
        try container.encodeIfPresent(outcome.notPushedReason, forKey: .reason)
        switch outcome {
        case .settled(let id), .conflict(let id), .refused(_, let id): try container.encode(id, forKey: .conflict)
        case .pushed, .waiting: break
        }
    }
}

extension ConflictPolicy: ExpressibleByArgument {}
