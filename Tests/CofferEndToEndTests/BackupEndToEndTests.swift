import CofferKit
import CofferProtocol
import Foundation
import Testing

/// The backup API through real processes: the `coffer` binary as server and as CLI, the SDK,
/// and the browser client's own code under Node.
@Suite("Backup end to end", .serialized)
struct BackupEndToEndTests {
    @Test("A save acknowledged just before SIGKILL survives the restart", arguments: E2EBackend.available)
    func acknowledgedSaveSurvivesSIGKILL(_ backend: E2EBackend) async throws {
        let directory = try Paths.temporaryDirectory()
        let database = backend.database(in: directory)
        let server = try await ServerProcess(database: database)
        let client = BackupClient(api: APIClient(baseURL: server.url))
        let credentials = try BackupClient.Credentials(username: "kill-\(UUID().uuidString)", password: "pw-\(UUID().uuidString)")
        let plaintext = Data((0..<300_000).map { _ in UInt8.random(in: 0...255) })
        let saved = try await client.save(plaintext, credentials: credentials)
        await server.kill()
        #expect(server.process.terminationReason == .uncaughtSignal)

        let restarted = try await ServerProcess(database: database)
        let restored = try await BackupClient(api: APIClient(baseURL: restarted.url)).restore(credentials: credentials)
        #expect(restored.plaintext == plaintext)
        #expect(restored.backup.version == saved.version)
        await restarted.terminate()
        #expect(restarted.process.terminationStatus == 0, "graceful shutdown exits cleanly:\n\(restarted.logText)")
    }

    @Test("coffer backup save/restore/versions/delete round-trips a 4 MiB file")
    func cliRoundTrip() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let input = directory.appendingPathComponent("input.bin")
        let output = directory.appendingPathComponent("output.bin")
        let original = Data((0..<(4 * 1024 * 1024)).map { _ in UInt8.random(in: 0...255) })
        try original.write(to: input)
        let username = "cli-\(UUID().uuidString)"
        let common = ["--server", server.url, "--username", username, "--password-stdin"]
        let password = Data("a long passphrase\n".utf8)

        let save = try await run(Paths.coffer, ["backup", "save", "--file", input.path] + common, stdin: password)
        #expect(save.status == 0, "\(save.stderr)")
        #expect(save.stdoutText.contains("Saved backup version 1"))
        let saveAgain = try await run(Paths.coffer, ["backup", "save", "--file", input.path, "--json"] + common, stdin: password)
        let second = try JSONDecoder().decode(SaveBackupResponse.self, from: saveAgain.stdout)
        #expect(second.version == 2 && second.size == original.count + 16)

        let restore = try await run(Paths.coffer, ["backup", "restore", "--output", output.path] + common, stdin: password)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(try Data(contentsOf: output) == original)

        let versions = try await run(Paths.coffer, ["backup", "versions", "--json"] + common, stdin: password)
        let listed = try JSONDecoder().decode(BackupVersionsResponse.self, from: versions.stdout)
        #expect(listed.versions.map(\.version) == [2, 1])
        let versionsText = try await run(Paths.coffer, ["backup", "versions"] + common, stdin: password)
        #expect(versionsText.stdoutText.contains("VERSION"))

        let oldVersion = try await run(Paths.coffer, ["backup", "restore", "--version", "1"] + common, stdin: password)
        #expect(oldVersion.stdout == original)

        let wrongPassword = try await run(Paths.coffer, ["backup", "restore"] + common, stdin: Data("wrong\n".utf8))
        #expect(wrongPassword.status == 1)
        #expect(wrongPassword.stderr == "error: no backup found for this username and password\n")

        let delete = try await run(Paths.coffer, ["backup", "delete", "--json"] + common, stdin: password)
        #expect(try JSONDecoder().decode(DeleteBackupUserResponse.self, from: delete.stdout).deletedBackups == 1)
        let afterDelete = try await run(Paths.coffer, ["backup", "restore"] + common, stdin: password)
        #expect(afterDelete.status == 1)
        #expect(afterDelete.stderr.contains("no backup"))
    }

    @Test("The CLI reports an unreachable server in one line")
    func unreachableServer() async throws {
        let port = try freePort()
        let result = try await run(
            Paths.coffer, ["backup", "versions", "--server", "http://127.0.0.1:\(port)", "--username", "x", "--password-stdin"],
            stdin: Data("pw\n".utf8)
        )
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: cannot reach the server"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    static let node = ["/usr/bin/node", "/usr/local/bin/node"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test("The browser client's code and BackupClient restore each other's backups", .enabled(if: node != nil))
    func browserClientInterop() async throws {
        let node = try #require(Self.node)
        let script = Paths.packageRoot.appendingPathComponent("scripts/browser-backup-client.mjs").path
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let username = "Browser-\(UUID().uuidString)"
        let password = "pässword-\(UUID().uuidString)"
        let document = #"{"workouts":[{"day":"2026-11-23","reps":42}]}"#

        let browserSave = try await run(node, [script, "save", server.url, username, password, document])
        #expect(browserSave.status == 0, "\(browserSave.stderr)")
        let client = BackupClient(api: APIClient(baseURL: server.url))
        let credentials = try BackupClient.Credentials(username: username, password: password)
        let restored = try await client.restore(credentials: credentials)
        #expect(String(decoding: restored.plaintext, as: UTF8.self) == document)

        let swiftDocument = #"{"workouts":[{"day":"2026-11-24","reps":7}],"from":"swift"}"#
        _ = try await client.save(Data(swiftDocument.utf8), credentials: credentials)
        let browserRestore = try await run(node, [script, "restore", server.url, username, password])
        #expect(browserRestore.status == 0, "\(browserRestore.stderr)")
        #expect(browserRestore.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == swiftDocument)
    }
}
