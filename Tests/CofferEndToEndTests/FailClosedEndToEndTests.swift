import CofferTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// The built `coffer` against a malicious server (a rewriting proxy in front of a real one): what
/// a person sees when one vault is refused, a redirect is answered, or a KDF switch is offered.
@Suite("Fail closed end to end", .serialized)
struct FailClosedEndToEndTests {
    final class Paths_: Sendable {
        let seen = Mutex<[String]>([])
        func add(_ path: String) { seen.withLock { $0.append(path) } }
        var all: [String] { seen.withLock { $0 } }
    }

    /// The answer with `change` applied to every JSON object in it.
    static func rewritingJSON(_ status: Int, _ body: ByteBuffer, _ change: (inout [String: Any]) -> Void) -> (Int, ByteBuffer) {
        JSONRewrite.objects(status, body, change)
    }

    @Test("one vault whose key does not open: sync and vault list name it, do the rest and exit 1; status shows it; the local copy is unchanged")
    func refusedVaultIsNamed() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let config = directory.appendingPathComponent("config").path
        @Sendable func coffer(_ arguments: [String], via url: String? = nil, stdin: String? = nil) async throws -> CommandResult {
            try await run(Paths.coffer, arguments + ["--server", url ?? server.url, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
        }
        let email = "closed-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await coffer(["account", "register", "--email", email, "--password-stdin", "--pbkdf2"], stdin: "pw\n").status == 0)
        #expect(try await coffer(["vault", "create", "Good"]).status == 0)
        let created = try await coffer(["vault", "create", "Bad", "--json"])
        let bad = try #require((try JSONSerialization.jsonObject(with: created.stdout) as? [String: Any])?["id"] as? String)
        #expect(try await coffer(["item", "add", "Good", "--title", "good one"]).status == 0)
        #expect(try await coffer(["item", "add", "Bad", "--title", "bad one"]).status == 0)
        #expect(try await coffer(["sync"]).status == 0)
        let before = try await coffer(["item", "list", "Bad"])

        try await withRewritingProxy(upstream: server.url, decide: { request in
            guard request.method == "GET", request.path.hasPrefix("/api/vaults") else { return .forward }
            return .rewrite { status, body in Self.rewritingJSON(status, body) { object in
                // Bad's wrapped key, altered by one character.
                guard object["id"] as? String == bad, var key = object["wrappedKey"] as? String else { return }
                let index = key.index(key.startIndex, offsetBy: 30)
                key.replaceSubrange(index...index, with: key[index] == "A" ? "B" : "A")
                object["wrappedKey"] = key
            } }
        }) { proxy in
            let sync = try await coffer(["sync"], via: proxy)
            #expect(sync.status == 1)
            #expect(sync.stdoutText.hasPrefix("Synced: pulled 0, pushed 0."), "\(sync.stdoutText)")
            #expect(sync.stderr.contains("error: vault \"Bad\" (\(bad)) was refused and kept out: tamper error"), "\(sync.stderr)")
            #expect(sync.stderr.contains("its local copy is unchanged and its queued changes wait"))
            let list = try await coffer(["vault", "list"], via: proxy)
            #expect(list.status == 1)
            #expect(list.stdoutText.contains("Good") && !list.stdoutText.contains("Bad"), "\(list.stdoutText)")
            #expect(list.stderr.contains("error: vault") && list.stderr.contains("\(bad)) was refused and kept out: tamper error"), "\(list.stderr)")
            let status = try await coffer(["status"], via: proxy)
            #expect(status.status == 0)
            #expect(status.stdoutText.contains("Refused:    vault \"Bad\" (\(bad)) was refused and kept out: tamper error"), "\(status.stdoutText)")
        }
        #expect(try await coffer(["item", "list", "Bad"]).stdoutText == before.stdoutText)
        #expect(try await coffer(["sync"]).status == 0)
        #expect(!(try await coffer(["status"])).stdoutText.contains("Refused:"))
    }

    @Test("a pull answered with a redirect fails naming it, and nothing reaches the other server")
    func redirectIsRefused() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let config = directory.appendingPathComponent("config").path
        @Sendable func coffer(_ arguments: [String], via url: String? = nil, stdin: String? = nil) async throws -> CommandResult {
            try await run(Paths.coffer, arguments + ["--server", url ?? server.url, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
        }
        let email = "redirect-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await coffer(["account", "register", "--email", email, "--password-stdin", "--pbkdf2"], stdin: "pw\n").status == 0)
        #expect(try await coffer(["vault", "create", "Home"]).status == 0)
        let received = Paths_()
        // The other server records whatever reaches it.
        try await withRewritingProxy(upstream: server.url, decide: { request in
            received.add(request.path)
            return .answer(status: 200, json: "{}")
        }) { elsewhere in
            try await withRewritingProxy(upstream: server.url, decide: { request in
                request.path == "/api/sync/pull" ? .redirect(status: 307, location: elsewhere + "/api/sync/pull") : .forward
            }) { proxy in
                let sync = try await coffer(["sync"], via: proxy)
                #expect(sync.status == 1)
                #expect(sync.stderr.contains("the server answered with a redirect to \"\(elsewhere)/api/sync/pull\""), "\(sync.stderr)")
                #expect(sync.stderr.contains("refusing to follow it"))
            }
        }
        #expect(received.all.isEmpty)
    }

    @Test("account login refuses a PBKDF2 offer for a scrypt account before signing, on this device and on a new one")
    func kdfSwitchIsRefused() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let email = "scrypt-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        @Sendable func coffer(_ arguments: [String], config: String, via url: String? = nil) async throws -> CommandResult {
            try await run(
                Paths.coffer, arguments + ["--server", url ?? server.url, "--config-dir", directory.appendingPathComponent(config).path], stdin: Data("pw\n".utf8)
            )
        }
        #expect(try await coffer(["account", "register", "--email", email, "--password-stdin"], config: "seen").status == 0)
        let seen = Paths_()
        try await withRewritingProxy(upstream: server.url, decide: { request in
            seen.add(request.path)
            guard request.path == "/api/auth/prelogin" else { return .forward }
            return .rewrite { status, body in Self.rewritingJSON(status, body) { object in
                if object["kdf"] != nil { object["kdf"] = ["algorithm": "pbkdf2-sha256", "iterations": 600_000] }
            } }
        }) { proxy in
            let again = try await coffer(["account", "login", "--email", email, "--password-stdin"], config: "seen", via: proxy)
            #expect(again.status == 1)
            #expect(again.stderr.contains("error: refusing to log in: the server asks for pbkdf2-sha256 key derivation") && again.stderr.contains("refusing the switch"), "\(again.stderr)")
            let fresh = try await coffer(["account", "login", "--email", email, "--password-stdin"], config: "new", via: proxy)
            #expect(fresh.status == 1)
            #expect(fresh.stderr.contains("error: refusing to log in: the server offers pbkdf2-sha256") && fresh.stderr.contains("log in with --pbkdf2"), "\(fresh.stderr)")
        }
        #expect(seen.all == ["/api/auth/prelogin", "/api/auth/prelogin"])
        #expect(try await coffer(["account", "login", "--email", email, "--password-stdin"], config: "new").status == 0)
    }
}
