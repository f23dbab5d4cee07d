import CofferProtocol
import CofferServer
import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// gzip `Content-Encoding` on sync traffic, both ways.
@Suite("Compression")
struct CompressionTests {
    @Test(arguments: TestBackend.available)
    func gzipRequestsAndResponses(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            let vault = try await client.createVault(alice)
            var changes: [PushChange] = []
            for _ in 0..<50 {
                changes.append(PushChange(vaultId: vault.id, itemId: UUID().uuidString.lowercased(), baseVersion: 0, encryptedData: try envelope(300)))
            }
            var plain = ByteBuffer(bytes: try JSONEncoder().encode(PushRequest(changes: changes)))
            let compressed = try plain.compress(with: .gzip())
            let pushed = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "gzip"],
                body: compressed
            )
            #expect(pushed.status == .ok)
            #expect(try pushed.decode(PushResponse.self).results.allSatisfy { $0.status == .applied })

            let body = ByteBuffer(bytes: try JSONEncoder().encode(PullRequest(vaults: [vault.id: 0])))
            let pulled = try await client.execute(
                uri: "/api/sync/pull", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .acceptEncoding: "gzip, deflate"],
                body: body
            )
            #expect(pulled.status == .ok)
            #expect(pulled.headers[.contentEncoding] == "gzip")
            var zipped = pulled.body
            let inflated = try zipped.decompress(with: .gzip())
            #expect(zipped.readableBytes == 0 || pulled.body.readableBytes < inflated.readableBytes)
            let answer = try JSONDecoder().decode(PullResponse.self, from: Data(buffer: inflated))
            #expect(answer.vaults.first?.items.count == 50)

            // Without Accept-Encoding the answer is plain; small answers are never compressed.
            let plainPull = try await client.authorized(.post, "/api/sync/pull", token: alice.token, json: PullRequest(vaults: [vault.id: 0]))
            #expect(plainPull.headers[.contentEncoding] == nil)
            let small = try await client.execute(uri: "/api/sync/status", method: .get, headers: [.authorization: "Bearer \(alice.token)", .acceptEncoding: "gzip"])
            #expect(small.headers[.contentEncoding] == nil)

            let garbage = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "gzip"],
                body: ByteBuffer(string: "not gzip at all")
            )
            #expect(garbage.status == .badRequest)
            let brotli = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "br"],
                body: ByteBuffer(string: "{}")
            )
            #expect(brotli.status == .unsupportedMediaType)
        }
    }
}
