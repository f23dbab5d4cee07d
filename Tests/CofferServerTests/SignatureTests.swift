import CofferCrypto
import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// HMAC request signatures on the backup routes (SPEC.md §4).
@Suite("Backup signatures")
struct SignatureTests {
    func signed(
        _ client: some TestClientProtocol, secret: String, timestamp: Int64, userId: String, replayOf previous: (String, String)? = nil
    ) async throws -> (TestResponse, (String, String)) {
        let body = try JSONEncoder().encode(RegisterBackupUserRequest(userId: userId))
        let ts = previous?.0 ?? String(timestamp)
        let signature = previous?.1 ?? RequestSignature.sign(secret: secret, timestamp: ts, method: "POST", pathWithQuery: "/api/register", body: body)
        let response = try await client.execute(
            uri: "/api/register", method: .post,
            headers: [.contentType: "application/json", .cofferTimestamp: ts, .cofferSignature: signature],
            body: ByteBuffer(bytes: body)
        )
        return (response, (ts, signature))
    }

    @Test(arguments: TestBackend.available)
    func requiredSignatures(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock, {
            $0.backupSignatureSecrets = ["current-secret", "previous-secret"]
            $0.requireBackupSignatures = true
        }).test(.router) { client in
            let now = clock.now.milliseconds / 1000

            let missing = try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: randomHash()))
            #expect(missing.status == .unauthorized)
            #expect(missing.error?.code == "signature_required")

            let usedUserId = randomHash()
            let (valid, used) = try await signed(client, secret: "current-secret", timestamp: now, userId: usedUserId)
            #expect(valid.status == .ok)

            let (rotated, _) = try await signed(client, secret: "previous-secret", timestamp: now, userId: randomHash())
            #expect(rotated.status == .ok)

            let (retired, _) = try await signed(client, secret: "retired-secret", timestamp: now, userId: randomHash())
            #expect(retired.status == .unauthorized)
            #expect(retired.error?.code == "signature_invalid")

            let (stale, _) = try await signed(client, secret: "current-secret", timestamp: now - 301, userId: randomHash())
            #expect(stale.status == .unauthorized)
            #expect(stale.error?.code == "signature_stale")
            let (future, _) = try await signed(client, secret: "current-secret", timestamp: now + 301, userId: randomHash())
            #expect(future.status == .unauthorized)

            let (replayed, _) = try await signed(client, secret: "current-secret", timestamp: now, userId: usedUserId, replayOf: used)
            #expect(replayed.status == .unauthorized)
            #expect(replayed.error?.code == "signature_replayed")

            // A body changed after signing does not verify.
            let body = try JSONEncoder().encode(RegisterBackupUserRequest(userId: randomHash()))
            let signature = RequestSignature.sign(secret: "current-secret", timestamp: String(now), method: "POST", pathWithQuery: "/api/register", body: Data("{}".utf8))
            let tampered = try await client.execute(
                uri: "/api/register", method: .post,
                headers: [.contentType: "application/json", .cofferTimestamp: String(now), .cofferSignature: signature],
                body: ByteBuffer(bytes: body)
            )
            #expect(tampered.status == .unauthorized)

            // Query strings are signed too.
            let query = "/api/backup?userId=\(randomHash())&storageKey=\(randomHash())"
            let getSignature = RequestSignature.sign(secret: "current-secret", timestamp: String(now), method: "GET", pathWithQuery: query, body: Data())
            let get = try await client.execute(uri: query, method: .get, headers: [.cofferTimestamp: String(now), .cofferSignature: getSignature])
            #expect(get.status == .notFound)
        }
    }

    @Test(arguments: TestBackend.available)
    func optionalSignatures(_ backend: TestBackend) async throws {
        let clock = TestClock()
        try await makeTestApp(backend, clock: clock, { $0.backupSignatureSecrets = ["current-secret"] }).test(.router) { client in
            let now = clock.now.milliseconds / 1000
            let unsigned = try await client.json(.post, "/api/register", RegisterBackupUserRequest(userId: randomHash()))
            #expect(unsigned.status == .ok)
            let (invalid, _) = try await signed(client, secret: "wrong", timestamp: now, userId: randomHash())
            #expect(invalid.status == .unauthorized)
            let (valid, _) = try await signed(client, secret: "current-secret", timestamp: now, userId: randomHash())
            #expect(valid.status == .ok)
        }
    }
}
