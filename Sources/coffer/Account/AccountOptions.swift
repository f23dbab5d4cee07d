import ArgumentParser
import CofferKit
import CofferProtocol
import Foundation

/// Options of commands that use the stored account session.
struct AccountOptions: ParsableArguments {
    @OptionGroup var client: ClientOptions

    @Option(help: "Directory holding the session (mode 0600). (env: COFFER_CONFIG_DIR, default: ~/.config/coffer)")
    var configDir: String?

    @Flag(help: "Read passwords from standard input, one per line, instead of prompting.")
    var passwordStdin = false

    var sessionStore: SessionStore {
        SessionStore(directory: configDir.map { URL(fileURLWithPath: $0) } ?? SessionStore.defaultDirectory())
    }

    /// The sharing client of the logged-in account, with its pinned contacts.
    func makeSharingClient() async throws -> SharingClient {
        let client = try makeClient()
        guard let userId = await client.session?.userId else { throw CofferError.notLoggedIn }
        return SharingClient(vaults: VaultClient(client: client), contacts: ContactStore(directory: sessionStore.directory, userId: userId))
    }

    /// A client for the stored session's server (or `--server` when given or not logged in).
    func makeClient() throws -> CofferClient {
        let store = sessionStore
        let stored = try store.loadSession()
        let server = client.server ?? ProcessInfo.processInfo.environment["COFFER_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? stored?.server ?? client.serverURL
        return try CofferClient(api: APIClient(baseURL: server), sessionStore: store)
    }

    func password(_ prompt: String) throws -> String {
        let password = passwordStdin ? try Terminal.readPasswordFromStdin() : try Terminal.promptPassword(prompt)
        guard !password.isEmpty else { throw CLIError("the password must not be empty") }
        return password
    }

    /// This machine as a device: a stable id kept in the config directory, the host name, the OS.
    func device(name: String?) throws -> DeviceInfo {
        let host = ProcessInfo.processInfo.hostName
        #if os(Linux)
        let platform = "linux-cli"
        #else
        let platform = "macos-cli"
        #endif
        return DeviceInfo(id: try sessionStore.deviceId(), name: name ?? (host.isEmpty ? "coffer CLI" : host), platform: platform)
    }
}
