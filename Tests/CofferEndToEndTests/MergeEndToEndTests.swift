import CofferKit
import CofferProtocol
import Foundation
import Testing

/// The default `merge` policy through the built CLI: edits of different fields made offline on two
/// devices both survive, a field both changed goes by the tie-break with the losing value visible
/// in `conflicts show`, and `item history` says what each version changed.
@Suite("Merge end to end", .serialized, .timeLimit(.minutes(3)))
struct MergeEndToEndTests {
    typealias Device = SyncEndToEndTests.Device

    @Test("Offline edits of username+notes and username+url: notes and url both kept, username by the tie-break, the loss shown by conflicts show and item history")
    func offlineEditsMergeFieldByField() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let one = Device(config: directory.appendingPathComponent("config-1").path)
        let three = Device(config: directory.appendingPathComponent("config-3").path)
        let reader = Device(config: directory.appendingPathComponent("config-reader").path)
        let email = "merge-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await one(["account", "register", "--email", email, "--password-stdin", "--pbkdf2"], server: server.url, stdin: "pw merge\n").status == 0)
        for device in [three, reader] {
            #expect(try await device(["account", "login", "--email", email, "--password-stdin", "--pbkdf2"], server: server.url, stdin: "pw merge\n").status == 0)
        }
        #expect(try await one(["vault", "create", "Personal"], server: server.url).status == 0)
        #expect(try await one(["sync"], server: server.url).status == 0)

        let added = try await one(
            ["item", "add", "Personal", "--title", "Mail", "--username", "alice", "--url", "https://mail.example", "--notes", "base notes", "--secret-stdin", "--json"],
            server: server.url, stdin: "s3cret-base\n"
        )
        #expect(added.status == 0, "\(added.stderr)")
        let add = try #require(try JSONSerialization.jsonObject(with: added.stdout) as? [String: Any])
        let id = try #require(add["id"] as? String)
        #expect(try await three(["sync"], server: server.url).status == 0)
        #expect(try await three(["item", "get", id], server: server.url).stdoutText.contains("base notes"))

        // Both devices edit while they cannot reach the server (nothing listens on that port).
        let offline = "http://127.0.0.1:\(try freePort())"
        let edit1 = try await one(["item", "edit", id, "--username", "alice-from-1", "--notes", "notes from device 1"], server: offline)
        #expect(edit1.status == 0, "\(edit1.stderr)")
        let edit3 = try await three(["item", "edit", id, "--username", "alice-from-3", "--url", "https://three.example"], server: offline)
        #expect(edit3.status == 0, "\(edit3.stderr)")
        #expect(try await one.json(["status"], server: offline)["pending"] as? Int == 1)
        #expect(try await three.json(["status"], server: offline)["pending"] as? Int == 1)

        // Device 1 syncs first (applied); device 3 meets the conflict and merges.
        #expect(try await one.json(["sync"], server: server.url)["pushed"] as? Int == 1)
        let settled = try await three.json(["sync"], server: server.url)
        #expect(settled["conflicts"] as? Int == 1)
        #expect(try await one(["sync"], server: server.url).status == 0)

        // Read on a device that edited nothing: both one-sided changes are there; the username
        // went by the tie-break, and device 3's edit is the later one.
        let final = try await reader.json(["item", "get", id], server: server.url)
        #expect(final["notes"] as? String == "notes from device 1")
        #expect(final["url"] as? String == "https://three.example")
        #expect(final["username"] as? String == "alice-from-3")
        #expect(final["version"] as? Int == 3)
        #expect(try await one.json(["item", "get", id], server: server.url)["notes"] as? String == "notes from device 1")

        // The device that settled it shows both sides, the base, and which field lost what.
        let show = try await three(["conflicts", "show", "1"], server: server.url)
        #expect(show.status == 0, "\(show.stderr)")
        let text = show.stdoutText
        #expect(text.contains("alice-from-1") && text.contains("alice-from-3"), "\(text)")
        #expect(text.contains("* username:") && text.contains("changed on both sides; this device's value kept"), "\(text)")
        #expect(text.contains("* notes:") && text.contains("changed on the server"), "\(text)")
        #expect(text.contains("* url:") && text.contains("changed on this device"), "\(text)")
        #expect(text.contains("← lost (kept in this record)"), "\(text)")
        #expect(!text.contains("s3cret-base") && text.contains("password:  ********"), "\(text)")
        #expect(try await three(["conflicts", "show", "1", "--reveal"], server: server.url).stdoutText.contains("s3cret-base"))
        let shown = try await three.json(["conflicts", "show", "1"], server: server.url)
        let fields = try #require(shown["fields"] as? [[String: Any]])
        let username = try #require(fields.first { $0["field"] as? String == "username" })
        #expect(username["differs"] as? Bool == true && username["changedOn"] as? String == "both" && username["kept"] as? String == "local")
        #expect(username["local"] as? String == "alice-from-3" && username["server"] as? String == "alice-from-1" && username["base"] as? String == "alice")
        #expect(fields.first { $0["field"] as? String == "title" }?["differs"] as? Bool == false)
        #expect(try await three(["conflicts", "list", "--all"], server: server.url).stdoutText.contains("→ merged"))

        // The history says what each version changed, passwords masked.
        let history = try await reader(["item", "history", id], server: server.url)
        #expect(history.status == 0, "\(history.stderr)")
        let lines = history.stdoutText.split(separator: "\n").map(String.init)
        let v3 = try #require(lines.firstIndex { $0.hasPrefix("v3  ") }, "\(lines)")
        let v2 = try #require(lines.firstIndex { $0.hasPrefix("v2  ") }, "\(lines)")
        let v1 = try #require(lines.firstIndex { $0.hasPrefix("v1  ") }, "\(lines)")
        try #require(v3 < v2 && v2 < v1)
        #expect(lines[v3].contains("changed username, url") && lines[v3].contains("[settled a conflict]"), "\(lines[v3])")
        #expect(lines[(v3 + 1)..<v2].contains { $0.contains("username:") && $0.contains("alice-from-3") })
        #expect(lines[v2].contains("changed username, notes"), "\(lines[v2])")
        #expect(lines[(v2 + 1)..<v1].contains { $0.contains("notes:") && $0.contains("notes from device 1") })
        #expect(lines[v1].contains("created") && lines.contains { $0.contains("password:") && $0.contains("********") })
        #expect(!history.stdoutText.contains("s3cret-base"))
        #expect(try await reader(["item", "history", id, "--reveal"], server: server.url).stdoutText.contains("s3cret-base"))
        let entries = try #require(try JSONSerialization.jsonObject(with: try await reader(["item", "history", id, "--json"], server: server.url).stdout) as? [[String: Any]])
        #expect(entries.map { $0["version"] as? Int } == [3, 2, 1])
        #expect((entries[0]["changes"] as? [[String: Any]])?.compactMap { $0["field"] as? String } == ["username", "url"])
        #expect(entries[0]["resolution"] as? String == "client" && entries[2]["change"] as? String == "created")

        // An old version can be read whole before it is written back.
        let old = try await reader(["item", "history", id, "--version", "2"], server: server.url)
        #expect(old.status == 0, "\(old.stderr)")
        #expect(old.stdoutText.contains("alice-from-1") && old.stdoutText.contains("notes from device 1") && old.stdoutText.contains("https://mail.example"))
        #expect(old.stdoutText.contains("coffer item restore \(id) --version 2") && !old.stdoutText.contains("s3cret-base"))
        let oldJSON = try await reader.json(["item", "history", id, "--version", "2", "--reveal"], server: server.url)
        #expect(oldJSON["username"] as? String == "alice-from-1" && oldJSON["password"] as? String == "s3cret-base")
        let missing = try await reader(["item", "history", id, "--version", "9"], server: server.url)
        #expect(missing.status != 0 && missing.stderr.contains("version 9 of this item is not kept"))

        // Restored, the history labels it.
        #expect(try await reader(["item", "restore", id, "--version", "2"], server: server.url).status == 0)
        let restored = try await reader(["item", "history", id], server: server.url).stdoutText
        #expect(restored.split(separator: "\n").first { $0.hasPrefix("v4  ") }?.contains("restored v2") == true, "\(restored)")
    }
}
