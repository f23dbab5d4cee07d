import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer backup …`: the blind backup API, with the browser client's encryption.
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save and restore end-to-end encrypted backups (compatible with the browser backup client).",
            subcommands: [Save.self, Restore.self, Versions.self, Delete.self]
        )
    }
}

/// Who the backup belongs to and how to sign requests.
struct BackupIdentityOptions: ParsableArguments {
    @Option(help: "Backup username (never sent: the server sees only its hash). (env: COFFER_USERNAME)")
    var username: String?

    @Flag(help: "Read the password from the first line of standard input instead of prompting.")
    var passwordStdin = false

    @Option(help: "Secret for signed backup requests, if the server requires them. (env: COFFER_BACKUP_SIGNATURE_SECRET)")
    var signatureSecret: String?

    func credentials() throws -> BackupClient.Credentials {
        let environment = ProcessInfo.processInfo.environment
        guard let username = username ?? environment["COFFER_USERNAME"], !username.isEmpty else {
            throw CLIError("a username is required: --username NAME")
        }
        let password = passwordStdin ? try Terminal.readPasswordFromStdin() : try Terminal.promptPassword("Backup password: ")
        guard !password.isEmpty else { throw CLIError("the password must not be empty") }
        return try BackupClient.Credentials(username: username, password: password)
    }

    func client(_ options: ClientOptions) -> BackupClient {
        let secret = signatureSecret ?? ProcessInfo.processInfo.environment["COFFER_BACKUP_SIGNATURE_SECRET"]
        return BackupClient(api: APIClient(baseURL: options.serverURL, signatureSecret: secret.flatMap { $0.isEmpty ? nil : $0 }))
    }
}

extension Coffer.Backup {
    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt a file (or standard input) and save it as the current backup.")

        @OptionGroup var options: ClientOptions
        @OptionGroup var identity: BackupIdentityOptions

        @Option(name: .shortAndLong, help: "File to back up; standard input when omitted.")
        var file: String?

        func run() async throws {
            try await runClientCommand {
                if identity.passwordStdin && file == nil {
                    throw CLIError("--password-stdin needs --file: standard input cannot carry both the password and the data")
                }
                let credentials = try identity.credentials()
                let plaintext: Data
                if let file {
                    guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
                    plaintext = data
                } else {
                    plaintext = FileHandle.standardInput.readDataToEndOfFile()
                }
                let progress = Terminal.ProgressLine(label: "Uploading")
                let saved = try await identity.client(options).save(plaintext, credentials: credentials) { sent, total in
                    progress.update(done: sent, total: total)
                }
                try options.emit(saved, text: "Saved backup version \(saved.version) (\(ByteCount.format(saved.size)) encrypted) at \(saved.updatedAt).")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download and decrypt the current backup, or a kept version.")

        @OptionGroup var options: ClientOptions
        @OptionGroup var identity: BackupIdentityOptions

        @Option(name: .shortAndLong, help: "Write the backup to this file; standard output when omitted.")
        var output: String?

        @Option(help: "A kept version to restore instead of the current one.")
        var version: Int?

        func run() async throws {
            try await runClientCommand {
                if let version, version < 1 { throw CLIError("--version must be 1 or more") }
                let credentials = try identity.credentials()
                let (plaintext, backup) = try await identity.client(options).restore(credentials: credentials, version: version)
                struct Summary: Encodable {
                    var version: Int
                    var updatedAt: Timestamp
                    var size: Int
                    var output: String
                }
                if let output {
                    guard FileManager.default.createFile(atPath: output, contents: plaintext) else {
                        throw CLIError("cannot write \(output)")
                    }
                    try options.emit(
                        Summary(version: backup.version, updatedAt: backup.updatedAt, size: plaintext.count, output: output),
                        text: "Restored backup version \(backup.version) from \(backup.updatedAt) to \(output) (\(ByteCount.format(plaintext.count)))."
                    )
                } else {
                    FileHandle.standardOutput.write(plaintext)
                }
            }
        }
    }

    struct Versions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the kept versions of the backup, newest first.")

        @OptionGroup var options: ClientOptions
        @OptionGroup var identity: BackupIdentityOptions

        func run() async throws {
            try await runClientCommand {
                let versions = try await identity.client(options).versions(credentials: try identity.credentials())
                let lines = ["VERSION  SAVED AT                  SIZE"]
                    + versions.map { "\(String($0.version).padding(toLength: 9, withPad: " ", startingAt: 0))\($0.updatedAt)  \(ByteCount.format($0.size))" }
                try options.emit(BackupVersionsResponse(versions: versions), text: lines.joined(separator: "\n"))
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the backup user and every backup and version it owns.")

        @OptionGroup var options: ClientOptions
        @OptionGroup var identity: BackupIdentityOptions

        func run() async throws {
            try await runClientCommand {
                let deleted = try await identity.client(options).deleteUser(credentials: try identity.credentials())
                try options.emit(
                    DeleteBackupUserResponse(deletedBackups: deleted),
                    text: "Deleted the backup user and \(deleted) backup\(deleted == 1 ? "" : "s") with all their versions."
                )
            }
        }
    }
}
