import CofferKit
import CofferProtocol
import Foundation
import Testing

/// `coffer sync|status|conflicts|history` and offline item commands against a live `coffer serve`.
@Suite("Sync end to end", .serialized, .timeLimit(.minutes(3)))
struct SyncEndToEndTests {
    /// Runs `coffer` as one device (its own config directory) against `server`.
    struct Device {
        let config: String

        func callAsFunction(_ arguments: [String], server: String, stdin: String? = nil) async throws -> CommandResult {
            try await run(Paths.coffer, arguments + ["--server", server, "--config-dir", config], stdin: stdin.map { Data($0.utf8) })
        }

        func json(_ arguments: [String], server: String) async throws -> [String: Any] {
            let result = try await self(arguments + ["--json"], server: server)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        }
    }

    /// A server with one account, a vault "Personal", and two devices that have synced.
    static func setUp(_ directory: URL, server: ServerProcess) async throws -> (Device, Device) {
        let a = Device(config: directory.appendingPathComponent("config-a").path)
        let b = Device(config: directory.appendingPathComponent("config-b").path)
        let email = "sync-\(UUID().uuidString.prefix(8).lowercased())@example.test"
        #expect(try await a(["account", "register", "--email", email, "--password-stdin", "--pbkdf2"], server: server.url, stdin: "pw sync\n").status == 0)
        #expect(try await b(["account", "login", "--email", email, "--password-stdin", "--pbkdf2"], server: server.url, stdin: "pw sync\n").status == 0)
        #expect(try await a(["vault", "create", "Personal"], server: server.url).status == 0)
        #expect(try await a(["sync"], server: server.url).status == 0)
        #expect(try await b(["sync"], server: server.url).status == 0)
        return (a, b)
    }

    @Test("With the server stopped, item add works offline and status says offline with 1 pending; after it returns, sync pushes it and status is idle with 0 pending")
    func offlineThenBack() async throws {
        let directory = try Paths.temporaryDirectory()
        let database = directory.appendingPathComponent("coffer.sqlite").path
        let first = try await ServerProcess(database: database)
        let (a, b) = try await Self.setUp(directory, server: first)
        await first.terminate()

        let add = try await a(["item", "add", "Personal", "--title", "Written offline", "--username", "alice"], server: first.url)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdoutText.contains("on this device; not yet pushed: offline (cannot reach the server"))
        #expect(add.stdoutText.contains("`coffer sync` pushes it when the server is back"))
        // The local copy and its journal are private to the user.
        let files = try FileManager.default.contentsOfDirectory(atPath: a.config).filter { $0.hasPrefix("cache-") }
        #expect(!files.isEmpty)  // the database (its write-ahead log is removed on a clean exit)
        for file in files {
            let mode = try FileManager.default.attributesOfItem(atPath: a.config + "/" + file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file) has mode \(String(mode ?? 0, radix: 8))")
        }
        let offline = try await a.json(["status"], server: first.url)
        #expect(offline["state"] as? String == "offline")
        #expect(offline["pending"] as? Int == 1)
        let text = try await a(["status"], server: first.url).stdoutText
        #expect(text.contains("State:      offline") && text.contains("Pending:    1 change waiting"))
        // The local copy still answers; what only the server has says so.
        #expect(try await a(["item", "list", "Personal"], server: first.url).stdoutText.contains("Written offline  "))
        #expect(try await a(["vault", "list"], server: first.url).stdoutText.contains("Personal"))
        let addedId = try #require((try JSONSerialization.jsonObject(with: try await a(["item", "list", "Personal", "--json"], server: first.url).stdout) as? [[String: Any]])?.first?["id"] as? String)
        let history = try await a(["item", "history", addedId], server: first.url)
        #expect(history.status == 1 && history.stderr.contains("has not reached the server yet"))

        let second = try await ServerProcess(database: database)
        defer { Task { await second.terminate() } }
        let sync = try await a.json(["sync"], server: second.url)
        #expect(sync["pushed"] as? Int == 1)
        let back = try await a.json(["status"], server: second.url)
        #expect(back["state"] as? String == "idle")
        #expect(back["pending"] as? Int == 0)
        #expect(try await b(["item", "list", "Personal"], server: second.url).stdoutText.contains("Written offline"))
        let log = try await a(["history"], server: second.url).stdoutText
        #expect(log.contains("pushed") && log.contains("queued"))
        #expect(try await a(["item", "history", addedId], server: second.url).stdoutText.hasPrefix("v1  "))
    }

    @Test("A queued change survives SIGKILL of the CLI before it synced and is pushed by the next coffer sync")
    func survivesSIGKILL() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let (a, b) = try await Self.setUp(directory, server: server)

        // A server that accepts the connection and never answers: the CLI queues the item, then
        // hangs in its sync; it is killed there.
        let silent = try SilentServer()
        defer { silent.stop() }
        let process = try StreamingProcess(
            Paths.coffer, ["item", "add", "Personal", "--title", "Survivor", "--server", silent.url, "--config-dir", a.config]
        )
        var connections = silent.accepted.makeAsyncIterator()
        _ = await connections.next()  // the CLI reached the network, so the item is already queued
        await process.kill()

        let status = try await a.json(["status"], server: server.url)
        #expect(status["pending"] as? Int == 1)
        let sync = try await a.json(["sync"], server: server.url)
        #expect(sync["pushed"] as? Int == 1)
        #expect(try await a.json(["status"], server: server.url)["pending"] as? Int == 0)
        #expect(try await b(["item", "list", "Personal"], server: server.url).stdoutText.contains("Survivor"))
    }

    @Test("sync --watch on device A prints a change made on device B within 1 s")
    func watchSeesOtherDevice() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path)
        defer { Task { await server.terminate() } }
        let (a, b) = try await Self.setUp(directory, server: server)

        let watcher = try StreamingProcess(Paths.coffer, ["sync", "--watch", "--json", "--server", server.url, "--config-dir", a.config])
        var lines = watcher.lines.makeAsyncIterator()
        func next() async -> [String: Any]? {
            guard let line = await lines.next() else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
        while let event = await next(), event["event"] as? String != "connected" {}

        // Timed from the start of B's command (process start included): an upper bound on the delay.
        let changedAt = ContinuousClock.now
        let add = try await b(["item", "add", "Personal", "--title", "From B", "--json"], server: server.url)
        #expect(add.status == 0, "\(add.stderr)")
        var seen: [String: Any]?
        while let event = await next() {
            if event["event"] as? String == "pulled", event["title"] as? String == "From B" {
                seen = event
                break
            }
        }
        let delay = ContinuousClock.now - changedAt
        await watcher.kill()
        let event = try #require(seen)
        #expect(event["version"] as? Int == 1)
        #expect(delay < .seconds(1), "printed \(delay) after B's change")
        print("sync --watch printed B's change \(delay) after B's command started")
    }

    @Test("sync --watch reconnects after the server restarts and catches up on a change made while it was away")
    func watchReconnects() async throws {
        let directory = try Paths.temporaryDirectory()
        let database = directory.appendingPathComponent("coffer.sqlite").path
        let first = try await ServerProcess(database: database)
        let (a, b) = try await Self.setUp(directory, server: first)

        let watcher = try StreamingProcess(Paths.coffer, ["sync", "--watch", "--json", "--server", first.url, "--config-dir", a.config])
        var lines = watcher.lines.makeAsyncIterator()
        func next(_ wanted: String) async -> [String: Any]? {
            while let line = await lines.next() {
                if let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], event["event"] as? String == wanted { return event }
            }
            return nil
        }
        #expect(await next("connected") != nil)
        await first.terminate()
        #expect(await next("disconnected") != nil)

        // While the watcher is away, B writes through a server on the same address.
        let second = try await ServerProcess(database: database, port: first.port)
        defer { Task { await second.terminate() } }
        #expect(try await b(["item", "add", "Personal", "--title", "While away"], server: second.url).status == 0)
        // Reconnected (with backoff), it catches up from its stored cursor.
        let pulled = await next("pulled")
        await watcher.kill()
        #expect(pulled?["title"] as? String == "While away")
    }
}
