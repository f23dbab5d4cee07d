import CofferCrypto
import CofferKit
import CofferProtocol
import Foundation
import CofferTestSupport
import Crypto
import Testing

/// `coffer vault share|members|revoke` and `coffer contacts` with two accounts on a live server.
@Suite("Sharing end to end", .serialized)
struct SharingEndToEndTests {
    @Test("owner shares, the recipient reads and edits, the owner sees the edit, revokes, and the recipient loses access")
    func shareEditRevoke() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        func as_(_ who: String) -> @Sendable ([String], String?) async throws -> CommandResult {
            let config = directory.appendingPathComponent("config-\(who)").path
            return { arguments, stdin in
                try await run(Paths.coffer, arguments + ["--server", server.url, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
            }
        }
        let owner = as_("owner")
        let rick = as_("rick")
        let ownerEmail = "olivia-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        let rickEmail = "rick-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await owner(["account", "register", "--email", ownerEmail, "--password-stdin", "--pbkdf2"], "pw olivia\n").status == 0)
        #expect(try await rick(["account", "register", "--email", rickEmail, "--password-stdin", "--pbkdf2"], "pw rick\n").status == 0)
        #expect(try await owner(["vault", "create", "Team"], nil).status == 0)
        let add = try await owner(["item", "add", "Team", "--title", "Wi-Fi", "--secret-stdin", "--json"], "guest-123\n")
        let id = try #require((try JSONSerialization.jsonObject(with: add.stdout) as? [String: Any])?["id"] as? String)

        // Rick's own fingerprint, as he would read it out to Olivia.
        let own = try await rick(["contacts", "verify", rickEmail, "--json"], nil)
        let rickFingerprint = try #require((try JSONSerialization.jsonObject(with: own.stdout) as? [String: Any])?["fingerprint"] as? String)

        // Declining the prompt shares nothing; confirming shares and pins Rick's key.
        let declined = try await owner(["vault", "share", "Team", rickEmail, "--role", "write"], "n\n")
        #expect(declined.status == 1 && declined.stderr.hasSuffix("error: not confirmed; nothing was shared\n"))
        #expect(declined.stderr.contains("is a new contact. Fingerprint of their identity key:\n  \(rickFingerprint)\n"))
        let shared = try await owner(["vault", "share", "Team", rickEmail, "--role", "write"], "y\n")
        #expect(shared.status == 0, "\(shared.stderr)")
        #expect(shared.stdoutText == "Shared \"Team\" with \(rickEmail) as write (fingerprint \(rickFingerprint)).\n")
        let again = try await owner(["vault", "share", "Team", rickEmail, "--role", "read", "--yes"], nil)
        #expect(again.status == 1 && again.stderr.hasSuffix("error: server refused (409): this user is already a member of the vault\n"), "\(again.stderr)")

        // Rick sees the vault as an invitation from Olivia's key, reads the item, edits only after
        // accepting it (which pins Olivia); Olivia sees the edit.
        let ownerOwn = try await owner(["contacts", "verify", ownerEmail, "--json"], nil)
        let ownerFingerprint = try #require((try JSONSerialization.jsonObject(with: ownerOwn.stdout) as? [String: Any])?["fingerprint"] as? String)
        let invited = try await rick(["vault", "list"], nil)
        #expect(invited.stdoutText.contains("write  ") && invited.stdoutText.contains("(invitation, not accepted: shared by \(ownerEmail), fingerprint \(ownerFingerprint);"), "\(invited.stdoutText)")
        #expect(try await rick(["item", "get", id, "--reveal"], nil).stdoutText.contains("password: guest-123"))
        #expect(try await rick(["item", "list", "Team"], nil).stdoutText.hasPrefix("Team (invitation, not accepted;"))
        let early = try await rick(["item", "edit", id, "--url", "https://wifi.example"], nil)
        #expect(early.status == 1 && early.stderr.contains("`coffer vault accept \"Team\"`"), "\(early.stderr)")
        let accepted = try await rick(["vault", "accept", "Team"], nil)
        #expect(accepted.stdoutText == "Accepted \"Team\" shared by \(ownerEmail) (fingerprint \(ownerFingerprint)); this device now writes into it.\n", "\(accepted.stderr)")
        #expect(try await rick(["contacts", "list"], nil).stdoutText.contains(ownerFingerprint))
        #expect(!(try await rick(["vault", "list"], nil).stdoutText.contains("invitation")))
        let edit = try await rick(["item", "edit", id, "--url", "https://wifi.example"], nil)
        #expect(edit.stdoutText == "Saved \"Wi-Fi\" as version 2.\n", "\(edit.stderr)")
        let seen = try await owner(["item", "get", id, "--json"], nil)
        #expect((try JSONSerialization.jsonObject(with: seen.stdout) as? [String: Any])?["url"] as? String == "https://wifi.example")

        let members = try await owner(["vault", "members", "Team", "--json"], nil)
        let rows = try #require(try JSONSerialization.jsonObject(with: members.stdout) as? [[String: Any]])
        #expect(rows.map { $0["role"] as? String } == ["owner", "write"])
        #expect(rows.last?["pin"] as? String == "pinned" && rows.last?["fingerprint"] as? String == rickFingerprint)
        #expect(rows.map { $0["membership"] as? String } == ["owner", "signed"])
        // Rick checks the memberships against the owner he pinned on accepting.
        let seenByRick = try #require(try JSONSerialization.jsonObject(with: try await rick(["vault", "members", "Team", "--json"], nil).stdout) as? [[String: Any]])
        #expect(seenByRick.map { $0["membership"] as? String } == ["owner", "signed"])
        let contacts = try await owner(["contacts", "list"], nil)
        #expect(contacts.stdoutText.contains(rickEmail) && contacts.stdoutText.contains(rickFingerprint))

        // Olivia revokes: key rotated, the item re-encrypted; Rick loses access at once.
        let revoke = try await owner(["vault", "revoke", "Team", rickEmail], nil)
        #expect(revoke.stdoutText == "Removed \(rickEmail) from \"Team\"; rotated the vault key (key 2) and re-encrypted 1 items.\n", "\(revoke.stderr)")
        // Nothing is deleted on the server's word: Rick's copy stays, read-only, until he drops it.
        let kept = try await rick(["item", "list", "Team"], nil)
        #expect(kept.status == 0 && kept.stdoutText.contains("Wi-Fi"), "\(kept.stderr)")
        #expect(kept.stderr.contains("access lost — kept on this device, read-only"), "\(kept.stderr)")
        let listed = try await rick(["vault", "list"], nil)
        #expect(listed.status == 0 && listed.stdoutText.contains("(access lost — kept on this device, read-only)"), "\(listed.stdoutText) \(listed.stderr)")
        let refusedEdit = try await rick(["item", "edit", id, "--url", "https://elsewhere.example"], nil)
        #expect(refusedEdit.status == 1 && refusedEdit.stderr.contains("access to vault \"Team\" was lost"), "\(refusedEdit.stderr)")
        let forget = try await rick(["vault", "forget", "Team"], nil)
        #expect(forget.status == 0 && forget.stdoutText == "Dropped this device's copy of vault \"Team\".\n", "\(forget.stderr)")
        let gone = try await rick(["item", "list", "Team"], nil)
        #expect(gone.status == 1 && gone.stderr == "error: no vault \"Team\" (see `coffer vault list`)\n")
        #expect(try await rick(["item", "get", id], nil).stderr == "error: not found (or you have no access to it)\n")
        #expect(try await owner(["item", "get", id, "--reveal"], nil).stdoutText.contains("password: guest-123"))
        let cannot = try await owner(["vault", "revoke", "Team", ownerEmail], nil)
        #expect(cannot.stderr == "error: the owner cannot be removed from a vault\n")
    }

    @Test("a server substituting its own key on lookup: share refuses a pinned contact's changed key and shows the substituted fingerprint on first use")
    func substitutedKey() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        func as_(_ who: String, via url: String? = nil) -> @Sendable ([String], String?) async throws -> CommandResult {
            let config = directory.appendingPathComponent("config-\(who)").path
            let target = url ?? server.url
            return { arguments, stdin in
                try await run(Paths.coffer, arguments + ["--server", target, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
            }
        }
        var emails: [String: String] = [:]
        for who in ["olivia", "rick", "dave"] {
            emails[who] = "\(who)-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            #expect(try await as_(who)(["account", "register", "--email", emails[who]!, "--password-stdin", "--pbkdf2"], "pw \(who)\n").status == 0)
        }
        let owner = as_("olivia")
        #expect(try await owner(["vault", "create", "Team"], nil).status == 0)
        #expect(try await owner(["vault", "create", "Other"], nil).status == 0)
        func identity(_ who: String) async throws -> (userId: String, fingerprint: String) {
            let own = try await as_(who)(["contacts", "verify", emails[who]!, "--json"], nil)
            let object = try #require(try JSONSerialization.jsonObject(with: own.stdout) as? [String: Any])
            return (try #require(object["userId"] as? String), try #require(object["fingerprint"] as? String))
        }
        let rick = try await identity("rick")
        let dave = try await identity("dave")
        // Rick's real key gets pinned by a share through the honest server.
        #expect(try await owner(["vault", "share", "Team", emails["rick"]!, "--yes"], nil).status == 0)

        let evilKey = Base64URL.encode((0..<32).map { _ in UInt8.random(in: 0...255) })
        let ownerConfig = directory.appendingPathComponent("config-olivia").path
        let rickEmail = emails["rick"]!
        let daveEmail = emails["dave"]!
        // The server's own identity certifies the substituted key (it cannot certify it with Rick's).
        let serverIdentity = Curve25519.Signing.PrivateKey()
        let serverIdentityKey = Base64URL.encode(serverIdentity.publicKey.rawRepresentation)
        try await withKeySubstitutingProxy(upstream: server.url, substitutedKey: evilKey, identity: serverIdentity) { proxy in
            let ownerViaProxy: @Sendable ([String], String?) async throws -> CommandResult = { arguments, stdin in
                try await run(Paths.coffer, arguments + ["--server", proxy, "--config-dir", ownerConfig], stdin: stdin.map { Data($0.utf8) })
            }
            let refused = try await ownerViaProxy(["vault", "share", "Other", rickEmail, "--yes"], nil)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("error: the key of \(rickEmail) changed since it was pinned (pinned fingerprint \(rick.fingerprint), now \(KeyFingerprint.of(userId: rick.userId, identityKey: serverIdentityKey)))"), "\(refused.stderr)")
            // Dave was never pinned: the prompt shows the substituted key's fingerprint, not Dave's.
            let firstUse = try await ownerViaProxy(["vault", "share", "Other", daveEmail], "n\n")
            let shown = KeyFingerprint.of(userId: dave.userId, identityKey: serverIdentityKey)
            #expect(shown != dave.fingerprint)
            #expect(firstUse.stderr.contains("is a new contact. Fingerprint of their identity key:\n  \(shown)\n"), "\(firstUse.stderr)")
            #expect(firstUse.stderr.hasSuffix("error: not confirmed; nothing was shared\n"))
        }
        let members = try await owner(["vault", "members", "Other", "--json"], nil)
        #expect(try #require(try JSONSerialization.jsonObject(with: members.stdout) as? [[String: Any]]).count == 1)
    }
}
