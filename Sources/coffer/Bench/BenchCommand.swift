import ArgumentParser

extension Coffer {
    /// `coffer bench …`: reproducible performance measurements (run with `swift run -c release`).
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure Coffer's performance on this machine (build with -c release).",
            subcommands: [BackupBench.self, AuthBench.self, SyncBench.self, EngineBench.self, WebSocketBench.self, KeysBench.self]
        )
    }
}
