import CofferKit
import CofferProtocol
import Foundation
import Testing

/// Commands that queue a change say what became of it (pushed, or saved on this device and why
/// not pushed, exit 0), and `vault delete` leaves nothing of the vault in the local copy.
@Suite("Queued changes end to end", .serialized, .timeLimit(.minutes(3)))
struct QueuedChangeEndToEndTests {
    typealias Device = SyncEndToEndTests.Device

    /// The items of `vault` on `device`, as `item list --json` prints them.
    static func items(_ device: Device, _ vault: String, server: String) async throws -> [[String: Any]] {
        let result = try await device(["item", "list", vault, "--json"], server: server)
        #expect(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]])
    }

    @Test("With the session ended (device revoked), item add and edit exit 0 saying not yet pushed and why; after account login one sync pushes them, once")
    func sessionEnded() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let (a, b) = try await SyncEndToEndTests.setUp(directory, server: server)
        let me = try await b.json(["account", "whoami"], server: server.url)
        let deviceId = try #require(me["deviceId"] as? String)
        let email = try #require((me["user"] as? [String: Any])?["email"] as? String)
        let revoke = try await a(["devices", "revoke", deviceId], server: server.url)
        #expect(revoke.status == 0, "\(revoke.stderr)")

        let add = try await b(["item", "add", "Personal", "--title", "After revoke"], server: server.url)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdoutText.hasPrefix("Added \"After revoke\" ("))
        #expect(add.stdoutText.contains(") to Personal on this device; not yet pushed: your session has ended"))
        #expect(add.stdoutText.contains("run `coffer account login`"))
        #expect(add.stdoutText.split(separator: "\n").count == 1)
        #expect(!add.stderr.contains("error"), "\(add.stderr)")
        #expect(try await b.json(["status"], server: server.url)["pending"] as? Int == 1)

        // The queued item can be changed again; --json says it is not on the server, and why.
        let id = try #require(add.stdoutText.split(separator: "(").dropFirst().first?.split(separator: ")").first.map(String.init))
        let edit = try await b.json(["item", "edit", id, "--username", "bob"], server: server.url)
        #expect(edit["id"] as? String == id && edit["title"] as? String == "After revoke" && edit["username"] as? String == "bob")
        #expect(edit["pushed"] as? Bool == false)
        #expect((edit["reason"] as? String)?.hasPrefix("your session has ended") == true)
        #expect(try await b.json(["status"], server: server.url)["pending"] as? Int == 2)

        // Logging in again opens the same local copy (cache-<user id>.sqlite), queue included.
        let login = try await b(["account", "login", "--email", email, "--password-stdin"], server: server.url, stdin: "pw sync\n")
        #expect(login.status == 0, "\(login.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: b.config).filter { $0.hasPrefix("cache-") && $0.hasSuffix(".sqlite") }.count == 1)
        #expect(try await b.json(["status"], server: server.url)["pending"] as? Int == 2)
        let sync = try await b.json(["sync"], server: server.url)
        #expect(sync["pushed"] as? Int == 2 && sync["pending"] as? Int == 0)
        #expect(try await b.json(["sync"], server: server.url)["pushed"] as? Int == 0)

        // Exactly one item reached the server, with the edit.
        #expect(try await a(["sync"], server: server.url).status == 0)
        let onA = try await Self.items(a, "Personal", server: server.url)
        #expect(onA.count == 1)
        #expect(onA.first?["id"] as? String == id && onA.first?["username"] as? String == "bob")
    }

    @Test("With the server unreachable, item add, edit and delete exit 0 saying not yet pushed: offline; the next sync pushes each once")
    func offline() async throws {
        let directory = try Paths.temporaryDirectory()
        let database = directory.appendingPathComponent("coffer.sqlite").path
        let first = try await ServerProcess(database: database)
        let (a, b) = try await SyncEndToEndTests.setUp(directory, server: first)
        let pushed = try await a.json(["item", "add", "Personal", "--title", "Bank"], server: first.url)
        #expect(pushed["pushed"] as? Bool == true && pushed["reason"] == nil && pushed["version"] as? Int == 1)
        let bank = try #require(pushed["id"] as? String)
        let old = try #require(try await a.json(["item", "add", "Personal", "--title", "Old"], server: first.url)["id"] as? String)
        await first.terminate()

        let add = try await a(["item", "add", "Personal", "--title", "Written offline"], server: first.url)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdoutText.contains(") to Personal on this device; not yet pushed: offline (cannot reach the server"))
        #expect(add.stdoutText.hasSuffix("`coffer sync` pushes it when the server is back.\n"))
        let edit = try await a(["item", "edit", bank, "--url", "https://bank.example"], server: first.url)
        #expect(edit.status == 0, "\(edit.stderr)")
        #expect(edit.stdoutText.hasPrefix("Saved \"Bank\" on this device; not yet pushed: offline (cannot reach the server"))
        let delete = try await a(["item", "delete", old, "--json"], server: first.url)
        #expect(delete.status == 0, "\(delete.stderr)")
        let deleted = try #require(try JSONSerialization.jsonObject(with: delete.stdout) as? [String: Any])
        #expect(deleted["id"] as? String == old && deleted["deleted"] as? Bool == true && deleted["pushed"] as? Bool == false)
        #expect((deleted["reason"] as? String)?.hasPrefix("offline (") == true)
        for result in [add, edit, delete] { #expect(result.stderr.isEmpty, "\(result.stderr)") }
        #expect(try await a.json(["status"], server: first.url)["pending"] as? Int == 3)

        let second = try await ServerProcess(database: database)
        defer { Task { await second.terminate() } }
        let sync = try await a.json(["sync"], server: second.url)
        #expect(sync["pushed"] as? Int == 3 && sync["pending"] as? Int == 0)
        #expect(try await b(["sync"], server: second.url).status == 0)
        let onB = try await Self.items(b, "Personal", server: second.url)
        #expect(onB.compactMap { $0["title"] as? String }.sorted() == ["Bank", "Written offline"])
        #expect(onB.first { $0["id"] as? String == bank }?["url"] as? String == "https://bank.example")
    }

    @Test("vault delete removes the vault from the local copy at once (items, queued changes kept as refused); another device's vault list catches up")
    func vaultDelete() async throws {
        let directory = try Paths.temporaryDirectory()
        let database = directory.appendingPathComponent("coffer.sqlite").path
        let first = try await ServerProcess(database: database)
        let (a, b) = try await SyncEndToEndTests.setUp(directory, server: first)
        #expect(try await a(["vault", "create", "Keep"], server: first.url).status == 0)
        #expect(try await a(["item", "add", "Personal", "--title", "Bank"], server: first.url).status == 0)
        #expect(try await a(["item", "add", "Keep", "--title", "Kept"], server: first.url).status == 0)
        #expect(try await b(["sync"], server: first.url).status == 0)
        // A change queued on A and never pushed (its round cannot reach any server).
        let nowhere = "http://127.0.0.1:\(try freePort())"
        let queued = try await a(["item", "add", "Personal", "--title", "Never pushed"], server: nowhere)
        #expect(queued.status == 0 && queued.stdoutText.contains("not yet pushed: offline"), "\(queued.stdoutText) \(queued.stderr)")

        let delete = try await a(["vault", "delete", "Personal", "--yes"], server: first.url)
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(delete.stdoutText == "Deleted vault \"Personal\"; changes to 1 item on this device that were never pushed are kept as refused changes (see `coffer conflicts list --all`).\n")
        #expect(try await a.json(["status"], server: first.url)["pending"] as? Int == 0)
        #expect(try await a(["history"], server: first.url).stdoutText.contains("rejected"))
        let names = try await a(["vault", "list"], server: first.url).stdoutText
        #expect(!names.contains("Personal") && names.contains("Keep"))

        // B lists the vaults online: its local copy catches up, so offline it agrees.
        let listedOnB = try await b(["vault", "list"], server: first.url)
        #expect(!listedOnB.stdoutText.contains("Personal") && listedOnB.stdoutText.contains("Keep"), "\(listedOnB.stdoutText)")

        // B cannot tell the deletion of a vault its account owns from a server's claim (it is not a
        // signed statement), so it keeps its local copy until the person drops it.
        let keptOnB = try await b(["item", "list", "Personal"], server: first.url)
        #expect(keptOnB.stdoutText.contains("Bank"), "\(keptOnB.stdoutText) \(keptOnB.stderr)")
        let forgot = try await b(["vault", "forget", "Personal"], server: first.url)
        #expect(forgot.status == 0, "\(forgot.stdoutText) \(forgot.stderr)")

        // Right after, with the server gone, neither device's local copy has the vault any more.
        await first.terminate()
        for device in [a, b] {
            let list = try await device(["item", "list", "Personal"], server: first.url)
            #expect(list.status == 1 && list.stderr.contains("no vault \"Personal\""), "\(list.stdoutText) \(list.stderr)")
            let vaults = try await device(["vault", "list"], server: first.url)
            #expect(vaults.status == 0 && !vaults.stdoutText.contains("Personal") && vaults.stdoutText.contains("Keep"), "\(vaults.stdoutText)")
            #expect(try await device(["item", "list", "Keep"], server: first.url).stdoutText.contains("Kept"))
        }
    }
}
