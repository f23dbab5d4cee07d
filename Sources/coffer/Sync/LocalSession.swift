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
    func vault(_ reference: String) async throws -> DecryptedVault {
        if let found = try VaultLookup.match(reference, in: try await engine.vaults()) { return found }
        try await syncIfOnline()
        guard let found = try VaultLookup.match(reference, in: try await engine.vaults()) else { throw VaultLookup.notFound(reference) }
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
}

extension ConflictPolicy: ExpressibleByArgument {}
