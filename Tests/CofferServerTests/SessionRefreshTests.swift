import CofferKit
import CofferProtocol
import CofferServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// Access-token renewal: one refresh in flight per device, inside a process and across processes
/// sharing a configuration directory, and a watch that stays connected through renewals.
@Suite("Session refresh")
struct SessionRefreshTests {
    /// Counts `POST /api/auth/refresh` requests and lets a test wait for the next ones.
    final class RefreshCounter: Sendable {
        private let counted = Mutex(0)
        let refreshes: AsyncStream<Int>
        private let continuation: AsyncStream<Int>.Continuation

        init() {
            (refreshes, continuation) = AsyncStream.makeStream(of: Int.self)
        }

        var count: Int { counted.withLock { $0 } }

        func api(_ base: String) -> APIClient {
            var api = APIClient(baseURL: base)
            api.requestObserver = { [self] method, path, _ in
                guard method == "POST", path == "/api/auth/refresh" else { return }
                continuation.yield(counted.withLock { $0 += 1; return $0 })
            }
            return api
        }
    }

    /// A registered device whose stored access token is marked expired (as after a night
    /// offline); the tokens themselves are untouched.
    static func deviceWithExpiredToken(_ base: String) async throws -> SessionStore {
        let store = SessionStore(directory: FileManager.default.temporaryDirectory.appendingPathComponent("coffer-refresh-\(UUID().uuidString)"))
        let client = try CofferClient(api: APIClient(baseURL: base), sessionStore: store)
        let device = DeviceInfo(id: UUID().uuidString.lowercased(), name: "laptop", platform: "test")
        try await client.register(email: "refresh-\(UUID().uuidString.prefix(8).lowercased())@example.test", password: "pw", device: device, kdf: .browserCompatible)
        var session = try #require(try store.loadSession())
        session.accessExpiresAt = Timestamp.now.adding(seconds: -60)
        try store.saveSession(session)
        return store
    }

    static func reusedRefreshes(_ client: CofferClient) async throws -> Int {
        try await client.audit(limit: 200).events.filter { $0.type == AuditEventType.refreshReused }.count
    }

    @Test("Many concurrent calls on one client with an expired access token cause exactly one refresh", arguments: TestBackend.available)
    func concurrentCallsShareOneRefresh(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let store = try await Self.deviceWithExpiredToken(base)
            let counter = RefreshCounter()
            let client = try CofferClient(api: counter.api(base), sessionStore: store)
            let spent = try #require(await client.session?.refreshToken)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 { group.addTask { _ = try await client.me() } }
                group.addTask { _ = try await client.freshAccessToken() }
                try await group.waitForAll()
            }
            #expect(counter.count == 1)
            let renewed = try #require(try store.loadSession())
            let held = await client.session
            #expect(renewed.refreshToken != spent && renewed == held)
            #expect(renewed.accessLifetime == 900 && !renewed.needsRefresh())
            #expect(try await Self.reusedRefreshes(client) == 0)
        }
    }

    @Test("Two clients on one configuration directory (two processes) with an expired token both succeed; one refresh, none reused", arguments: TestBackend.available)
    func twoProcessesShareTheSessionFile(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let store = try await Self.deviceWithExpiredToken(base)
            let counter = RefreshCounter()
            // Each loaded the same session, as two `coffer` commands started together would.
            let first = try CofferClient(api: counter.api(base), sessionStore: store)
            let second = try CofferClient(api: counter.api(base), sessionStore: store)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<10 {
                    group.addTask { _ = try await first.me() }
                    group.addTask { _ = try await second.devices() }
                }
                try await group.waitForAll()
            }
            // The one that came second took the renewed session from the file without a network call.
            #expect(counter.count == 1)
            let (held, heldToo) = (await first.session, await second.session)
            #expect(held == heldToo && held != nil)
            #expect(try store.loadSession() == held)
            #expect(try await Self.reusedRefreshes(first) == 0)
        }
    }

    @Test("A 401 on a token that still looks fresh renews once, from the file when another process already did", arguments: TestBackend.available)
    func rejectedTokenRenewsOnce(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock).test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let store = try await Self.deviceWithExpiredToken(base)
            var session = try #require(try store.loadSession())
            session.accessExpiresAt = Timestamp.now.adding(seconds: 900)
            try store.saveSession(session)
            let counter = RefreshCounter()
            let first = try CofferClient(api: counter.api(base), sessionStore: store)
            let second = try CofferClient(api: counter.api(base), sessionStore: store)
            // The server's clock passes the token's expiry; the devices' clocks do not.
            clock.advance(seconds: 901)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<5 {
                    group.addTask { _ = try await first.me() }
                    group.addTask { _ = try await second.me() }
                }
                try await group.waitForAll()
            }
            #expect(counter.count == 1)
            let (held, heldToo) = (await first.session, await second.session)
            #expect(held?.refreshToken == heldToo?.refreshToken)
            #expect(try await Self.reusedRefreshes(first) == 0)
        }
    }

    @Test("A session file written before the token lifetime was recorded still loads; the margin is half the lifetime, at most 30 s")
    func storedSessionCompatibility() throws {
        let old = """
            {"accessExpiresAt":"2026-11-30T12:00:00.000Z","accessToken":"a","accountKey":"k","deviceId":"d","email":"e@example.test",
             "kdf":{"algorithm":"pbkdf2-sha256","iterations":600000},"keys":{"encryptedAccountKey":"x","encryptedPrivateKey":"y","publicKey":"z"},
             "refreshToken":"r","server":"http://127.0.0.1:1","userId":"u"}
            """
        var session = try JSONDecoder().decode(StoredSession.self, from: Data(old.utf8))
        #expect(session.accessLifetime == nil && session.refreshMargin == .seconds(30))
        let expiry = try #require(Timestamp(iso8601: "2026-11-30T12:00:00.000Z"))
        #expect(session.renewAt == expiry.adding(seconds: -30))
        session.accessLifetime = 30
        #expect(session.refreshMargin == .seconds(15) && session.renewAt == expiry.adding(seconds: -15))
        #expect(!session.needsRefresh(at: expiry.adding(seconds: -16)) && session.needsRefresh(at: expiry.adding(seconds: -15)))
        session.accessLifetime = 900
        #expect(session.refreshMargin == .seconds(30))
    }

    @Test("The watch re-authenticates its socket with each renewed token: connected once, never dropped, still hears changes", arguments: TestBackend.available)
    func watchStaysConnectedThroughRenewals(_ backend: TestBackend) async throws {
        var logger = Logger(label: "coffer-test")
        logger.logLevel = .warning
        // A real clock: the socket's expiry must move with each renewed token.
        let app = try await buildApplication(configuration: testConfiguration(backend, { $0.accessTokenLifetime = 2 }), logger: logger, clock: { .now })
        try await app.test(.live) { server in
            let base = "http://127.0.0.1:\(try #require(server.port))"
            let devices = try await TestDevice.account(server: base, devices: 2)
            let vault = try await VaultClient(client: devices[1].client).createVault(name: "Personal")
            let counter = RefreshCounter()
            let watcher = try CofferClient(api: counter.api(base), sessionStore: SessionStore(directory: devices[0].directory))
            let engine = try await SyncEngine.open(client: watcher, directory: devices[0].directory)
            let events = await engine.events()
            let watch = Task { try await engine.watch(client: watcher) }
            defer { watch.cancel() }

            // A 2 s token is renewed each second; five renewals outlive the first token twice over.
            var refreshes = counter.refreshes.makeAsyncIterator()
            while let count = await refreshes.next(), count < 5 {}
            let writer = try await devices[1].engine()
            try await writer.sync()
            let added = try await writer.addItem(ItemDocument(title: "After renewals"), vaultId: vault.summary.id)
            try await writer.sync()

            var seen: [SyncEvent] = []
            for await event in events {
                seen.append(event)
                if case .pulled(_, let itemId, _, _, _) = event, itemId == added.item.item.id { break }
            }
            #expect(seen.filter { $0 == .connected }.count == 1)
            #expect(!seen.contains { if case .disconnected = $0 { true } else { false } }, "\(seen)")
            #expect(try await Self.reusedRefreshes(devices[1].client) == 0)

            // A genuine revocation still ends the watch, with the session-ended error.
            try await devices[1].client.revokeDevice(id: devices[0].deviceId)
            await #expect(throws: CofferClientError.self) { try await watch.value }
        }
    }
}
