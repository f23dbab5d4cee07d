import ArgumentParser

/// `coffer`: the server and the command-line client in one binary.
@main
struct Coffer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coffer",
        abstract: "Coffer: a self-hostable, zero-knowledge sync and backup service.",
        version: "0.1.0",
        subcommands: [
            Serve.self, Account.self, Devices.self, Audit.self, Vault.self, ItemCommand.self, Sync.self, Status.self, Conflicts.self, History.self,
            Contacts.self, Backup.self, Bench.self,
        ]
    )
}
