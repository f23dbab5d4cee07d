import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Anti-abuse limits of SPEC.md §4, kept in the database and checked atomically.
@Suite("Backup limits")
struct BackupLimitTests {
    func registered(_ client: some TestClientProtocol) async throws -> (userId: String, storageKey: String) {
        let user = (userId: randomHash(), storageKey: randomHash())
        #expect(try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: user.userId)).status == .ok)
        return user
    }

    func save(_ client: some TestClientProtocol, userId: String, storageKey: String) async throws -> TestResponse {
        try await client.json(.post, "/api/backup", SaveBackupRequest(userId: userId, storageKey: storageKey, data: randomCiphertext(bytes: 32)))
    }

    @Test(arguments: TestBackend.available)
    func sixthWriteInAnHourIsRefused(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock, {
            $0.backupWriteLimits = [RateLimit(count: 5, window: .hour), RateLimit(count: 20, window: .day)]
        }).test(.router) { client in
            let user = try await registered(client)
            for _ in 1...5 {
                #expect(try await save(client, userId: user.userId, storageKey: user.storageKey).status == .ok)
                clock.advance(seconds: 60)
            }
            let sixth = try await save(client, userId: user.userId, storageKey: user.storageKey)
            #expect(sixth.status == .tooManyRequests)
            #expect(sixth.error?.code == "rate_limited")
            // The first write leaves the window 3600 s after it was made; 300 s have passed.
            let retryAfter = try #require(sixth.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter > 3000 && retryAfter <= 3300)
            // Refused writes are not counted: once the window moves, writes pass again.
            clock.advance(seconds: Int64(retryAfter))
            #expect(try await save(client, userId: user.userId, storageKey: user.storageKey).status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func concurrentWritesCannotPassTheLimit(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.backupWriteLimits = [RateLimit(count: 5, window: .hour)] }).test(.ahc(.http)) { client in
            let user = try await registered(client)
            // Create the key first so all 20 race on the same existing storage key.
            #expect(try await save(client, userId: user.userId, storageKey: user.storageKey).status == .ok)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await save(client, userId: user.userId, storageKey: user.storageKey).status }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 4)
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 16)
        }
    }

    @Test(arguments: TestBackend.available)
    func wrongStorageKeysDoNotConsumeTheOwnersQuota(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, {
            $0.backupWriteLimits = [RateLimit(count: 5, window: .hour)]
            $0.backupNewKeyLimits = [RateLimit(count: 3, window: .hour)]
        }).test(.router) { client in
            let owner = try await registered(client)
            #expect(try await save(client, userId: owner.userId, storageKey: owner.storageKey).status == .ok)
            // Someone who knows only the username (so the user id) tries many passwords.
            var attackerStatuses: [HTTPResponse.Status] = []
            for _ in 0..<10 {
                attackerStatuses.append(try await save(client, userId: owner.userId, storageKey: randomHash()).status)
            }
            // New keys for the user id are capped separately…
            #expect(attackerStatuses.filter { $0 == .ok }.count == 2)
            #expect(attackerStatuses.filter { $0 == .tooManyRequests }.count == 8)
            // …and the owner's own key still has its 4 remaining writes.
            for _ in 0..<4 {
                #expect(try await save(client, userId: owner.userId, storageKey: owner.storageKey).status == .ok)
            }
            #expect(try await save(client, userId: owner.userId, storageKey: owner.storageKey).status == .tooManyRequests)
        }
    }

    @Test(arguments: TestBackend.available)
    func newKeysPerAddressAreLimitedAcrossUsers(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, {
            $0.backupNewKeyAddressLimits = [RateLimit(count: 3, window: .hour)]
            $0.trustForwardedHeaders = true
        }).test(.router) { client in
            let address = "198.51.100.\(Int.random(in: 1...250))"
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<5 {
                let user = try await registered(client)
                let response = try await client.json(
                    .post, "/api/backup", SaveBackupRequest(userId: user.userId, storageKey: user.storageKey, data: randomCiphertext(bytes: 32)),
                    headers: [.forwardedFor: address]
                )
                statuses.append(response.status)
            }
            #expect(statuses == [.ok, .ok, .ok, .tooManyRequests, .tooManyRequests])
        }
    }

    @Test(arguments: TestBackend.available)
    func addressLimitsOnEveryRouteAndStricterOnRegister(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, {
            $0.addressLimits = [RateLimit(count: 10, window: .minute)]
            $0.registerAddressLimits = [RateLimit(count: 2, window: .hour)]
            $0.trustForwardedHeaders = true
        }).test(.router) { client in
            let registerAddress = "203.0.113.\(Int.random(in: 1...250))"
            var registerStatuses: [HTTPResponse.Status] = []
            for _ in 0..<3 {
                registerStatuses.append(
                    try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: randomHash()), headers: [.forwardedFor: registerAddress]).status
                )
            }
            #expect(registerStatuses == [.ok, .ok, .tooManyRequests])

            let address = "192.0.2.\(Int.random(in: 1...250))"
            var last: TestResponse?
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<12 {
                let response = try await client.get("/api/backup?userId=\(randomHash())&storageKey=\(randomHash())", headers: [.forwardedFor: address])
                statuses.append(response.status)
                last = response
            }
            #expect(statuses.prefix(10).allSatisfy { $0 == .notFound })
            #expect(statuses.suffix(2).allSatisfy { $0 == .tooManyRequests })
            #expect(last?.headers[.retryAfter].flatMap { Int($0) }.map { $0 >= 1 && $0 <= 60 } == true)
            // Another address is unaffected, and health probes are never limited.
            #expect(try await client.get("/api/backup?userId=\(randomHash())&storageKey=\(randomHash())", headers: [.forwardedFor: "192.0.2.251"]).status == .notFound)
            #expect(try await client.get("/health", headers: [.forwardedFor: address]).status == .ok)
        }
    }
}

