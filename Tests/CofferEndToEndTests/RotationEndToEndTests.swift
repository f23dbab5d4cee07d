import CofferCrypto
import CofferProtocol
import CofferTestSupport
import Foundation
import Testing

/// Key rotation through the built `coffer` binary, as people use it (issue 14, flows 1 and 2):
/// several accounts and devices, one config directory each, against a real server.
@Suite("Key rotation end to end", .serialized)
struct RotationEndToEndTests {
    typealias Device = @Sendable ([String], String?) async throws -> CommandResult

    struct Setup {
        let server: ServerProcess
        let directory: URL
        let ownerEmail: String
        let memberEmail: String

        func device(_ name: String, via url: String? = nil) -> Device {
            let config = directory.appendingPathComponent("config-\(name)").path
            let target = url ?? server.url
            return { arguments, stdin in
                try await run(Paths.coffer, arguments + ["--server", target, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
            }
        }
    }

    /// A server, an owner (device "a") with vault Team and one item, and a member account "m".
    static func setup(_ backend: E2EBackend) async throws -> (Setup, itemId: String) {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: backend.database(in: directory))
        let setup = Setup(
            server: server, directory: directory, ownerEmail: "owner-\(UUID().uuidString.prefix(8).lowercased())@example.test",
            memberEmail: "m-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        )
        let a = setup.device("a")
        try await expectOK(a(["account", "register", "--email", setup.ownerEmail, "--password-stdin", "--pbkdf2"], "pw owner\n"))
        try await expectOK(setup.device("m")(["account", "register", "--email", setup.memberEmail, "--password-stdin", "--pbkdf2"], "pw m\n"))
        try await expectOK(a(["vault", "create", "Team"], nil))
        let add = try await expectOK(a(["item", "add", "Team", "--title", "Router", "--username", "admin", "--notes", "base", "--json"], nil))
        let id = try #require((try JSONSerialization.jsonObject(with: add.stdout) as? [String: Any])?["id"] as? String)
        return (setup, id)
    }

    @discardableResult
    static func expectOK(_ result: CommandResult, sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
        #expect(result.status == 0, "stderr: \(result.stderr) stdout: \(result.stdoutText)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("tamper") && !result.stdoutText.contains("tamper"), "\(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    static func field(_ result: CommandResult, _ name: String) throws -> String? {
        (try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])?[name] as? String
    }

    @Test("edit, share, revoke, edit again: the owner's device keeps working, and so does every other device", arguments: E2EBackend.available)
    func revokeDoesNotBrickTheOwner(_ backend: E2EBackend) async throws {
        let (setup, id) = try await Self.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        try await Self.expectOK(a(["item", "edit", id, "--username", "root"], nil))
        try await Self.expectOK(a(["vault", "share", "Team", setup.memberEmail, "--role", "write", "--yes"], nil))
        let revoke = try await Self.expectOK(a(["vault", "revoke", "Team", setup.memberEmail], nil))
        #expect(revoke.stdoutText == "Removed \(setup.memberEmail) from \"Team\"; rotated the vault key (key 2) and re-encrypted 1 items.\n")

        let edit = try await Self.expectOK(a(["item", "edit", id, "--notes", "after the revoke"], nil))
        #expect(edit.stdoutText.hasPrefix("Saved \"Router\" as version"), "\(edit.stdoutText)")
        let list = try await Self.expectOK(a(["item", "list", "Team"], nil))
        #expect(list.stdoutText.contains("Router") && !list.stdoutText.contains("not yet pushed"))
        try await Self.expectOK(a(["sync"], nil))
        let status = try await Self.expectOK(a(["status"], nil))
        #expect(status.stdoutText.contains("Pending:    0 changes"), "\(status.stdoutText)")
        let shown = try await Self.expectOK(a(["item", "get", id, "--json"], nil))
        #expect(try Self.field(shown, "notes") == "after the revoke" && Self.field(shown, "username") == "root")

        // Logging out and in keeps working; a second device of the owner reads everything.
        try await Self.expectOK(a(["account", "logout"], nil))
        try await Self.expectOK(a(["account", "login", "--email", setup.ownerEmail, "--password-stdin"], "pw owner\n"))
        try await Self.expectOK(a(["item", "list", "Team"], nil))
        let b = setup.device("b")
        try await Self.expectOK(b(["account", "login", "--email", setup.ownerEmail, "--password-stdin", "--pbkdf2"], "pw owner\n"))
        let onB = try await Self.expectOK(b(["item", "get", id, "--json"], nil))
        #expect(try Self.field(onB, "notes") == "after the revoke")
        let history = try await Self.expectOK(b(["item", "history", id], nil))
        #expect(!history.stdoutText.isEmpty)
        // The removed member reads nothing.
        let gone = try await setup.device("m")(["item", "list", "Team"], nil)
        #expect(gone.status == 1)
    }

    @Test("an open conflict on one device survives a rotation made on another: it lists, shows and settles, and every device reads the result", arguments: E2EBackend.available)
    func conflictAcrossRotation(_ backend: E2EBackend) async throws {
        let (setup, id) = try await Self.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        let b = setup.device("b")
        try await Self.expectOK(b(["account", "login", "--email", setup.ownerEmail, "--password-stdin", "--pbkdf2"], "pw owner\n"))
        try await Self.expectOK(b(["sync"], nil))
        try await Self.expectOK(b(["conflicts", "policy", "Team", "manual"], nil))
        // B edits offline; A edits the same field and pushes first; B's edit becomes an open conflict.
        let offline = setup.device("b", via: "http://127.0.0.1:1")
        try await Self.expectOK(offline(["item", "edit", id, "--username", "from-b"], nil))
        try await Self.expectOK(a(["item", "edit", id, "--username", "from-a"], nil))
        try await Self.expectOK(b(["sync"], nil))
        let open = try await Self.expectOK(b(["conflicts", "list"], nil))
        #expect(open.stdoutText.contains("#1  open"), "\(open.stdoutText)")

        // A shares and revokes someone: the key rotates under B's open conflict.
        try await Self.expectOK(a(["vault", "share", "Team", setup.memberEmail, "--yes"], nil))
        try await Self.expectOK(a(["vault", "revoke", "Team", setup.memberEmail], nil))

        try await Self.expectOK(b(["conflicts", "list"], nil))
        try await Self.expectOK(b(["conflicts", "list", "--all"], nil))
        try await Self.expectOK(b(["conflicts", "show", "1"], nil))
        try await Self.expectOK(b(["conflicts", "resolve", "1", "--keep", "local"], nil))
        try await Self.expectOK(b(["conflicts", "list", "--all"], nil))

        let onA = try await Self.expectOK(a(["item", "get", id, "--json"], nil))
        #expect(try Self.field(onA, "username") == "from-b")
        try await Self.expectOK(a(["item", "list", "Team"], nil))
        let c = setup.device("c")
        try await Self.expectOK(c(["account", "login", "--email", setup.ownerEmail, "--password-stdin", "--pbkdf2"], "pw owner\n"))
        let onC = try await Self.expectOK(c(["item", "get", id, "--json"], nil))
        #expect(try Self.field(onC, "username") == "from-b")
        try await Self.expectOK(c(["item", "history", id], nil))
    }

    @Test("a revoke whose rotation is refused removes nobody, is shown by `coffer status`, and the next sync finishes it", arguments: E2EBackend.available)
    func interruptedRevokeIsFinished(_ backend: E2EBackend) async throws {
        let (setup, id) = try await Self.setup(backend)
        defer { Task { await setup.server.terminate() } }
        let a = setup.device("a")
        let m = setup.device("m")
        try await Self.expectOK(a(["vault", "share", "Team", setup.memberEmail, "--role", "write", "--yes"], nil))
        try await Self.expectOK(m(["item", "list", "Team"], nil))

        // The server (here a proxy in front of it) fails the rotation.
        try await withRewritingProxy(upstream: setup.server.url, decide: { request in
            request.method == "POST" && request.path.hasSuffix("/keys")
                ? .answer(status: 503, json: #"{"error":"the database is busy","code":"unavailable"}"#) : .forward
        }) { proxy in
            let failed = try await setup.device("a", via: proxy)(["vault", "revoke", "Team", setup.memberEmail], nil)
            #expect(failed.status == 1)
            #expect(failed.stderr.contains("did not finish") && failed.stderr.contains("coffer status"), "\(failed.stderr)")
        }
        // Nothing half done: the member is still a member, the key is unchanged.
        let members = try await Self.expectOK(a(["vault", "members", "Team", "--json"], nil))
        #expect(try #require(try JSONSerialization.jsonObject(with: members.stdout) as? [[String: Any]]).count == 2)
        let status = try await Self.expectOK(a(["status"], nil))
        #expect(status.stdoutText.contains("Revoke:     \(setup.memberEmail) from Team: removal and key rotation not done yet"), "\(status.stdoutText)")

        // The next command finishes it.
        try await Self.expectOK(a(["sync"], nil))
        let after = try await Self.expectOK(a(["status"], nil))
        #expect(!after.stdoutText.contains("Revoke:"), "\(after.stdoutText)")
        let left = try await Self.expectOK(a(["vault", "members", "Team", "--json"], nil))
        #expect(try #require(try JSONSerialization.jsonObject(with: left.stdout) as? [[String: Any]]).count == 1)
        // The removed member keeps what it had, read-only (nothing is deleted on the server's word).
        let kept = try await m(["item", "list", "Team"], nil)
        #expect(kept.status == 0 && kept.stderr.contains("access lost — kept on this device, read-only"), "\(kept.stderr)")
        let shown = try await Self.expectOK(a(["item", "get", id, "--json"], nil))
        #expect(try Self.field(shown, "title") == "Router")
    }
}
