import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

extension Coffer {
    /// `coffer account …`.
    struct Account: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account, log in and out, change the password.",
            subcommands: [Register.self, Login.self, Logout.self, Whoami.self, Password.self, Delete.self]
        )
    }
}

/// JSON for `--json` output of a session, without tokens or keys.
private struct SessionSummary: Encodable {
    var userId: String
    var email: String
    var deviceId: String
    var server: String

    init(_ session: StoredSession) {
        userId = session.userId
        email = session.email
        deviceId = session.deviceId
        server = session.server
    }
}

extension Coffer.Account {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account; keys are made on this device and never leave it unencrypted.")
        @OptionGroup var options: AccountOptions
        @Option(help: "Account email.") var email: String
        @Option(help: "Name of this device (default: the host name).") var deviceName: String?
        @Flag(help: "Use PBKDF2-SHA256 (600 000 rounds) instead of scrypt, for accounts also used from browsers.") var pbkdf2 = false

        func run() async throws {
            try await runClientCommand {
                let password = try options.password("New password: ")
                if !options.passwordStdin {
                    guard try options.password("Repeat password: ") == password else { throw CLIError("the passwords do not match") }
                }
                let client = try options.makeClient()
                let session = try await client.register(
                    email: email, password: password, device: try options.device(name: deviceName),
                    kdf: pbkdf2 ? .browserCompatible : .recommended
                )
                try options.client.emit(SessionSummary(session), text: "Created account \(session.email) and logged in on this device.")
            }
        }
    }

    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Log in: the password derives a key that signs the server's challenge.")
        @OptionGroup var options: AccountOptions
        @Option(help: "Account email.") var email: String
        @Option(help: "Name of this device (default: the host name).") var deviceName: String?
        @Flag(help: "The account uses PBKDF2-SHA256 (made with `register --pbkdf2`); without this a PBKDF2 offer from the server is refused.")
        var pbkdf2 = false

        func run() async throws {
            try await runClientCommand {
                let password = try options.password("Password: ")
                let client = try options.makeClient()
                let session = try await client.login(email: email, password: password, device: try options.device(name: deviceName), allowPBKDF2: pbkdf2)
                // Upgrade in place (best effort): memberships of owned vaults this device can vouch for get signed statements.
                let signed = (try? await options.makeSharingClient().signMissingGrants()) ?? 0
                let upgraded = signed == 0 ? "" : " Signed the membership of \(signed) member\(signed == 1 ? "" : "s") pinned on this device."
                try options.client.emit(SessionSummary(session), text: "Logged in as \(session.email).\(upgraded)")
            }
        }
    }

    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End this device's session.")
        @OptionGroup var options: AccountOptions

        func run() async throws {
            try await runClientCommand {
                let client = try options.makeClient()
                guard let session = await client.session else { throw CofferError.notLoggedIn }
                try await client.logout()
                try options.client.emit(SuccessResponse(), text: "Logged out \(session.email).")
            }
        }
    }

    struct Whoami: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the logged-in account and device.")
        @OptionGroup var options: AccountOptions

        func run() async throws {
            try await runClientCommand {
                let me = try await options.makeClient().me()
                try options.client.emit(me, text: "\(me.user.email) (user \(me.user.id), device \(me.deviceId), \(me.kdf.algorithm))")
            }
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change the password; every other device is logged out.")
        @OptionGroup var options: AccountOptions

        func run() async throws {
            try await runClientCommand {
                let current = try options.password("Current password: ")
                let new = try options.password("New password: ")
                if !options.passwordStdin {
                    guard try options.password("Repeat new password: ") == new else { throw CLIError("the new passwords do not match") }
                }
                try await options.makeClient().changePassword(current: current, new: new)
                try options.client.emit(SuccessResponse(), text: "Password changed; other devices have been logged out.")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the account and everything it owns.")
        @OptionGroup var options: AccountOptions
        @Flag(help: "Do not ask for confirmation.") var yes = false

        func run() async throws {
            try await runClientCommand {
                if !yes {
                    guard !options.passwordStdin else { throw CLIError("add --yes to delete the account non-interactively") }
                    print("This deletes the account and all its data for good. Type DELETE to confirm: ", terminator: "")
                    guard readLine() == "DELETE" else { throw CLIError("not confirmed; nothing was deleted") }
                }
                let password = try options.password("Password: ")
                try await options.makeClient().deleteAccount(password: password)
                try options.client.emit(SuccessResponse(), text: "The account has been deleted.")
            }
        }
    }
}
