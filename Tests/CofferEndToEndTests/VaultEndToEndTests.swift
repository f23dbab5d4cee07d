import CofferKit
import CofferProtocol
import Foundation
import Testing

/// `coffer vault …` and `coffer item …` against a live `coffer serve`.
@Suite("Vaults end to end", .serialized)
struct VaultEndToEndTests {
    @Test("vault create/list/delete and item add/get/edit/list/history/delete/restore")
    func vaultAndItemCommands() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let config = directory.appendingPathComponent("config").path
        func coffer(_ arguments: [String], stdin: String? = nil) async throws -> CommandResult {
            let result = try await run(Paths.coffer, arguments + ["--server", server.url, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
            return result
        }
        let email = "vaults-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await coffer(["account", "register", "--email", email, "--password-stdin", "--pbkdf2"], stdin: "pw for vaults\n").status == 0)

        let create = try await coffer(["vault", "create", "Personal"])
        #expect(create.stdoutText.hasPrefix("Created vault \"Personal\""))
        let vaults = try await coffer(["vault", "list", "--json"])
        let listed = try #require(try JSONSerialization.jsonObject(with: vaults.stdout) as? [[String: Any]])
        #expect(listed.map { $0["name"] as? String } == ["Personal"])

        let add = try await coffer(["item", "add", "Personal", "--title", "Bank", "--username", "alice", "--secret-stdin", "--json"], stdin: "s3cret\n")
        #expect(add.status == 0, "\(add.stderr)")
        let added = try #require(try JSONSerialization.jsonObject(with: add.stdout) as? [String: Any])
        let id = try #require(added["id"] as? String)
        #expect(added["password"] as? String == "********")

        let hidden = try await coffer(["item", "get", id])
        #expect(hidden.stdoutText.contains("password: ********") && !hidden.stdoutText.contains("s3cret"))
        let revealed = try await coffer(["item", "get", id, "--reveal"])
        #expect(revealed.stdoutText.contains("password: s3cret"))

        let edit = try await coffer(["item", "edit", id, "--url", "https://bank.example"])
        #expect(edit.stdoutText == "Saved \"Bank\" as version 2.\n")
        let list = try await coffer(["item", "list", "Personal"])
        #expect(list.stdoutText.contains("Bank") && list.stdoutText.contains("alice"))

        let delete = try await coffer(["item", "delete", id])
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(try await coffer(["item", "list", "Personal"]).stdoutText == "No items in Personal.\n")
        let history = try await coffer(["item", "history", id, "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: history.stdout) as? [[String: Any]])
        #expect(entries.map { $0["version"] as? Int } == [3, 2, 1])
        let restore = try await coffer(["item", "restore", id, "--version", "2"])
        #expect(restore.stdoutText == "Restored version 2 as version 4.\n")
        let back = try await coffer(["item", "get", id, "--json", "--reveal"])
        let item = try #require(try JSONSerialization.jsonObject(with: back.stdout) as? [String: Any])
        #expect(item["url"] as? String == "https://bank.example" && item["password"] as? String == "s3cret")

        let missing = try await coffer(["item", "get", UUID().uuidString])
        #expect(missing.status == 1 && missing.stderr == "error: not found (or you have no access to it)\n")
        let unknownVault = try await coffer(["item", "list", "Nope"])
        #expect(unknownVault.stderr == "error: no vault \"Nope\" (see `coffer vault list`)\n")

        let rename = try await coffer(["vault", "rename", "Personal", "Home"])
        #expect(rename.stdoutText == "Renamed \"Personal\" to \"Home\".\n")
        #expect(try await coffer(["sync"]).status == 0)  // refreshes the local copy's names
        #expect(try await coffer(["item", "list", "Home"]).stdoutText.contains("Bank"))

        let deleteVault = try await coffer(["vault", "delete", "Home", "--yes"])
        #expect(deleteVault.stdoutText == "Deleted vault \"Home\".\n")
        #expect(try await coffer(["vault", "list"]).stdoutText.hasPrefix("No vaults."))
    }
}
