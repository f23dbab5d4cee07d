import CofferKit
import CofferProtocol
import Foundation
import Synchronization
import Testing

/// Sessions that last: `coffer sync --watch` through many access-token renewals, and commands of
/// one device that start together with an expired token, against a live `coffer serve` whose
/// tokens last 30 s (the least it allows).
@Suite("Sessions end to end", .serialized, .timeLimit(.minutes(5)))
struct SessionEndToEndTests {
    typealias Device = SyncEndToEndTests.Device

    /// The JSON lines a `coffer sync --watch --json` prints, read as they come.
    final class WatchLog: Sendable {
        private let lines = Mutex<[String]>([])
        private let ended = Mutex(false)
        private let stream: AsyncStream<String>

        init(_ process: StreamingProcess) {
            let (stream, continuation) = AsyncStream.makeStream(of: String.self)
            self.stream = stream
            Task { [self] in
                for await line in process.lines {
                    lines.withLock { $0.append(line) }
                    continuation.yield(line)
                }
                ended.withLock { $0 = true }
                continuation.finish()
            }
        }

        static func event(_ line: String) -> [String: Any]? {
            try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }

        var all: [String] { lines.withLock { $0 } }
        var hasEnded: Bool { ended.withLock { $0 } }
        func count(_ kind: String) -> Int { all.compactMap(Self.event).filter { $0["event"] as? String == kind }.count }

        /// The next event of this kind (and title, if given), or nil if the watch ended first.
        func next(_ kind: String, title: String? = nil) async -> [String: Any]? {
            for await line in stream {
                guard let event = Self.event(line), event["event"] as? String == kind else { continue }
                if title == nil || event["title"] as? String == title { return event }
            }
            return nil
        }
    }

    static func server(_ directory: URL) async throws -> ServerProcess {
        try await ServerProcess(database: directory.appendingPathComponent("coffer.sqlite").path, extraArguments: ["--access-token-lifetime", "30"])
    }

    static func storedSession(_ device: Device) throws -> StoredSession? {
        try SessionStore(directory: URL(fileURLWithPath: device.config)).loadSession()
    }

    /// Waits (a bounded poll of the session file: another process writes it) until the device's
    /// refresh token has changed `count` more times; returns how many changes were seen.
    static func refreshes(of device: Device, count: Int, within limit: Duration) async throws -> Int {
        var last = try storedSession(device)?.refreshToken
        var seen = 0
        let deadline = ContinuousClock.now + limit
        while seen < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            let current = try storedSession(device)?.refreshToken
            if current != last {
                seen += 1
                last = current
            }
        }
        return seen
    }

    static func reusedRefreshes(_ device: Device, server: ServerProcess) async throws -> [String] {
        let result = try await device(["audit", "--limit", "500", "--json"], server: server.url)
        #expect(result.status == 0, "\(result.stderr)")
        let page = try JSONDecoder().decode(AuditResponse.self, from: result.stdout)
        return page.events.map(\.type).filter { $0 == AuditEventType.refreshReused }
    }

    @Test("sync --watch with 30 s tokens stays connected through 10 refreshes, prints another device's change, and no refresh token is reused")
    func watchOutlivesItsTokens() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await Self.server(directory)
        defer { Task { await server.terminate() } }
        let (a, b) = try await SyncEndToEndTests.setUp(directory, server: server)

        let watcher = try StreamingProcess(Paths.coffer, ["sync", "--watch", "--json", "--server", server.url, "--config-dir", a.config])
        let log = WatchLog(watcher)
        #expect(await log.next("connected") != nil)
        let started = ContinuousClock.now

        // A token of 30 s is renewed 15 s before it expires: one refresh every 15 s.
        #expect(try await Self.refreshes(of: a, count: 5, within: .seconds(120)) == 5)
        let add = try await b(["item", "add", "Personal", "--title", "After five refreshes"], server: server.url)
        #expect(add.status == 0, "\(add.stderr)")
        let pulled = await log.next("pulled", title: "After five refreshes")
        #expect(pulled != nil, "the watch did not print B's change: \(log.all)")
        #expect(try await Self.refreshes(of: a, count: 5, within: .seconds(120)) == 5)
        let lasted = ContinuousClock.now - started

        #expect(!log.hasEnded, "the watch exited: \(log.all)")
        #expect(log.count("connected") == 1 && log.count("disconnected") == 0, "\(log.all)")
        await watcher.kill()
        #expect(try await Self.reusedRefreshes(a, server: server).isEmpty)
        print("sync --watch stayed connected for \(lasted) through 10 refreshes of 30 s tokens")
    }

    @Test("Started with an expired access token while other commands of the same device run at once: nothing fails, no refresh token is reused")
    func expiredTokenWithConcurrentCommands() async throws {
        let directory = try Paths.temporaryDirectory()
        let server = try await Self.server(directory)
        defer { Task { await server.terminate() } }
        let (a, b) = try await SyncEndToEndTests.setUp(directory, server: server)
        // As after a night away: every process of the device finds the stored token expired.
        let store = SessionStore(directory: URL(fileURLWithPath: a.config))
        var session = try #require(try store.loadSession())
        let spent = session.refreshToken
        session.accessExpiresAt = Timestamp.now.adding(seconds: -3600)
        try store.saveSession(session)

        let watcher = try StreamingProcess(Paths.coffer, ["sync", "--watch", "--json", "--server", server.url, "--config-dir", a.config])
        let log = WatchLog(watcher)
        let commands: [[String]] = [
            ["status"], ["item", "list", "Personal"], ["vault", "list"], ["sync"], ["account", "whoami"], ["devices", "list"],
            ["item", "add", "Personal", "--title", "Added while refreshing"],
        ]
        let results = try await withThrowingTaskGroup(of: ([String], CommandResult).self) { group in
            for command in commands { group.addTask { (command, try await a(command, server: server.url)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for (command, result) in results {
            #expect(result.status == 0, "\(command): \(result.stderr)")
        }
        #expect(await log.next("connected") != nil)
        #expect(try await b(["item", "add", "Personal", "--title", "From B"], server: server.url).status == 0)
        #expect(await log.next("pulled", title: "From B") != nil, "\(log.all)")
        #expect(!log.hasEnded && log.count("disconnected") == 0, "\(log.all)")
        await watcher.kill()

        #expect(try Self.storedSession(a)?.refreshToken != spent)
        #expect(try await Self.reusedRefreshes(a, server: server).isEmpty)
        #expect(try await b(["item", "list", "Personal"], server: server.url).stdoutText.contains("Added while refreshing"))
    }
}
