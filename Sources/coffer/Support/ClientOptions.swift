import ArgumentParser
import CofferKit
import Foundation

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "Coffer server URL. (env: COFFER_SERVER, default: http://127.0.0.1:8080)")
    var server: String?

    @Flag(help: "Print machine-readable JSON instead of text.")
    var json = false

    var serverURL: String {
        server ?? ProcessInfo.processInfo.environment["COFFER_SERVER"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://127.0.0.1:8080"
    }

    /// Prints `value` as JSON, or `text` for people.
    func emit(_ value: some Encodable, text: String) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            print(text)
        }
    }
}

/// Runs a client command body, turning every failure into one clear line and exit status 1.
func runClientCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        Terminal.printError("error: \(error.description)")
        throw ExitCode.failure
    } catch let error as CofferError {
        Terminal.printError("error: \(error.description)")
        throw ExitCode.failure
    } catch let error as CofferClientError {
        Terminal.printError("error: \(ClientErrorText.describe(error))")
        throw ExitCode.failure
    } catch let error as ExitCode {
        throw error
    } catch {
        Terminal.printError("error: \(error)")
        throw ExitCode.failure
    }
}

/// Wording for server errors that people meet often.
enum ClientErrorText {
    static func describe(_ error: CofferClientError) -> String {
        switch error.code {
        case "backup_not_found": "no backup found for this username and password"
        case "user_not_found": "no backup user with this username"
        case "rate_limited": "the server is rate limiting these requests: \(serverMessage(error))"
        case "invalid_credentials": "wrong email or password"
        case "conflict": "the item changed on another device since you loaded it; run the command again to edit the latest version"
        case "not_found": "not found (or you have no access to it)"
        case "email_taken": "an account with this email already exists"
        case "unauthorized": "your session has ended (logged out, revoked, or password changed elsewhere); run `coffer account login`"
        default: error.description
        }
    }

    private static func serverMessage(_ error: CofferClientError) -> String {
        if case .server(_, _, let message, _) = error { return message }
        return error.description
    }
}
