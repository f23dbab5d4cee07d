import CofferProtocol
import CofferServer
import CompressNIO
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The connection guard, over raw sockets: every request the HTTP/1.1 parser refuses is answered
/// with the right status and the JSON error body and then closed; slow and idle connections are
/// dropped without holding up anybody else.
@Suite("Connection guard")
struct ConnectionGuardTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var bytes: [UInt8]
        var status: Int
        var code: String
        var testDescription: String { name }

        init(_ name: String, _ text: String, _ status: Int, _ code: String) {
            self.init(name, Array(text.utf8), status, code)
        }

        init(_ name: String, _ bytes: [UInt8], _ status: Int, _ code: String) {
            self.name = name
            self.bytes = bytes
            self.status = status
            self.code = code
        }
    }

    static let malformed = ErrorCode.malformedRequest
    static func get(_ target: String = "/health", headers: String = "") -> String {
        "GET \(target) HTTP/1.1\r\nHost: x\r\n\(headers)\r\n"
    }

    static let cases: [Case] = [
        Case("invalid UTF-8 in the path", Array("GET /api/".utf8) + [0xFF, 0xFE] + Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8), 400, malformed),
        Case("invalid UTF-8 in the query", Array("GET /health?a=".utf8) + [0xC3, 0x28] + Array(" HTTP/1.1\r\nHost: x\r\n\r\n".utf8), 400, malformed),
        Case("NUL in a header value", get(headers: "X-A: a\u{0}b\r\n"), 400, malformed),
        Case("a control character in a header value", get(headers: "X-A: a\u{1}b\r\n"), 400, malformed),
        Case("a header without a colon", get(headers: "NoColonHere\r\n"), 400, malformed),
        Case("a space before the colon", get(headers: "X-A : b\r\n"), 400, malformed),
        Case("obs-fold", get(headers: "X-A: a\r\n folded\r\n"), 400, malformed),
        Case("bare LF line ends", "GET /health HTTP/1.1\nHost: x\n\n", 400, malformed),
        Case("a 100 KB header", get(headers: "X-A: \(String(repeating: "a", count: 100_000))\r\n"), 431, ErrorCode.headersTooLarge),
        Case("a 1 MiB header", get(headers: "X-A: \(String(repeating: "a", count: 1 << 20))\r\n"), 431, ErrorCode.headersTooLarge),
        Case("2000 headers", get(headers: (0..<2000).map { "X-\($0): a\r\n" }.joined()), 431, ErrorCode.headersTooLarge),
        Case("101 short headers", get(headers: (0..<100).map { "X-\($0): a\r\n" }.joined()), 431, ErrorCode.headersTooLarge),
        Case("a 100 KB URL", get("/health?q=" + String(repeating: "a", count: 100_000)), 414, ErrorCode.uriTooLong),
        Case("a 9 KB URL", get("/health?q=" + String(repeating: "a", count: 9_000)), 414, ErrorCode.uriTooLong),
        Case("a 100 KB bearer token", get("/api/sync/status", headers: "Authorization: Bearer \(String(repeating: "a", count: 100_000))\r\n"), 431, ErrorCode.headersTooLarge),
        Case("Content-Length -1", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, malformed),
        Case("Content-Length past 2^64", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, malformed),
        Case("Content-Length in hex", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400, malformed),
        Case("two different Content-Lengths", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, malformed),
        Case("Content-Length with Transfer-Encoding", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, malformed),
        Case("a bad chunk size", "POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, malformed),
        Case("a chunk size past 2^64", "POST /api/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n", 400, malformed),
        Case("an unknown method", "FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501, ErrorCode.methodNotImplemented),
        Case("a lowercase method", "get /health HTTP/1.1\r\nHost: x\r\n\r\n", 501, ErrorCode.methodNotImplemented),
        Case("HTTP/0.9", "GET /\r\n\r\n", 505, ErrorCode.httpVersionNotSupported),
        Case("HTTP/3.0", "GET /health HTTP/3.0\r\nHost: x\r\n\r\n", 505, ErrorCode.httpVersionNotSupported),
        Case("HTTP/1.2", "GET /health HTTP/1.2\r\nHost: x\r\n\r\n", 505, ErrorCode.httpVersionNotSupported),
        Case("an HTTP/2 preface in cleartext", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, malformed),
        Case("random binary", (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }, 501, ErrorCode.methodNotImplemented),
        Case("NUL bytes", [UInt8](repeating: 0, count: 64), 501, ErrorCode.methodNotImplemented),
        Case("a TLS ClientHello", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03] + [UInt8](repeating: 0x42, count: 32), 501, ErrorCode.methodNotImplemented),
    ]

    @Test(arguments: TestBackend.available, cases)
    func refusedRequestIsAnsweredAndClosed(_ backend: TestBackend, _ request: Case) async throws {
        try await makeTestApp(backend).test(.live) { client in
            let answer = try await RawConnection.exchange(port: try #require(client.port), request.bytes)
            #expect(answer.status == request.status, "\(request.name): \(answer.text.prefix(200))")
            #expect(answer.closedByServer, "\(request.name): the connection stayed open")
            #expect(answer.responseCount == 1)
            #expect(answer.head.contains("connection: close"))
            #expect(answer.head.contains("content-type: application/json"))
            #expect(answer.head.contains("x-content-type-options: nosniff"))
            let body = try JSONDecoder().decode(ErrorBody.self, from: Data(answer.body.utf8))
            #expect(body.code == request.code)
            #expect(!body.error.isEmpty)
            // The server lives on: the next connection is served.
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func wellFormedRequestsStillWork(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.live) { client in
            let port = try #require(client.port)
            // Two requests in one write (pipelined), the second closing the connection.
            let two = try await RawConnection.exchange(port: port, Array((Self.get() + Self.get(headers: "Connection: close\r\n")).utf8))
            #expect(two.responseCount == 2)
            #expect(two.status == 200)
            #expect(two.closedByServer)
            // A chunked body and HTTP/1.0 are still fine, answered with the route's own error.
            let chunked = try await RawConnection.exchange(
                port: port,
                Array("POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n".utf8)
            )
            #expect(chunked.status == 400)
            #expect(chunked.body.contains("missing_field"))
            let old = try await RawConnection.exchange(port: port, Array("GET /health HTTP/1.0\r\n\r\n".utf8))
            #expect(old.text.hasPrefix("HTTP/1.0 200") || old.status == 200)
            // A 405 for TRACE on a known path comes from the router, not the guard.
            let accepted = try await client.execute(uri: "/health", method: .get)
            #expect(accepted.status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func slowHeadIsAnswered408AndSilentConnectionIsDropped(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.connectionLimits.requestHeadTimeout = 1 }).test(.live) { client in
            let port = try #require(client.port)
            let started = ContinuousClock.now
            let slow = try await RawConnection(port: port)
            await slow.send(Array("GET /health HTTP/1.1\r\nHo".utf8))
            let silent = try await RawConnection(port: port)
            let slowAnswer = await slow.readToClose(timeout: .seconds(10))
            let silentAnswer = await silent.readToClose(timeout: .seconds(10))
            #expect(slowAnswer.closedByServer)
            #expect(slowAnswer.status == 408)
            #expect(slowAnswer.body.contains(ErrorCode.requestTimeout))
            #expect(silentAnswer.closedByServer)
            #expect(silentAnswer.bytes.isEmpty)
            #expect(ContinuousClock.now - started < .seconds(8))
        }
    }

    @Test(arguments: TestBackend.available)
    func idleConnectionIsClosedAndStalledBodyIsAnswered408(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.connectionLimits.idleTimeout = 1 }).test(.live) { client in
            let port = try #require(client.port)
            let idle = try await RawConnection(port: port)
            await idle.send(Array(Self.get().utf8))
            let idleAnswer = await idle.readToClose(timeout: .seconds(10))
            #expect(idleAnswer.status == 200)
            #expect(idleAnswer.closedByServer)

            let stalled = try await RawConnection(port: port)
            await stalled.send(Array("POST /api/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":".utf8))
            let stalledAnswer = await stalled.readToClose(timeout: .seconds(10))
            #expect(stalledAnswer.closedByServer)
            #expect(stalledAnswer.status == 408)
        }
    }

    /// 200 connections each holding a half-sent head do not slow anybody else down.
    @Test(arguments: TestBackend.available)
    func slowConnectionsDoNotBlockOthers(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.connectionLimits.requestHeadTimeout = 30 }).test(.live) { client in
            let port = try #require(client.port)
            var slow: [RawConnection] = []
            for _ in 0..<200 {
                let connection = try await RawConnection(port: port)
                await connection.send(Array("GET /health HTTP/1.1\r\nX-Slow: ".utf8))
                slow.append(connection)
            }
            for _ in 0..<20 {
                let answer = try await RawConnection.exchange(port: port, Array(Self.get(headers: "Connection: close\r\n").utf8), timeout: .seconds(5))
                #expect(answer.status == 200)
            }
            #expect(slow.allSatisfy { $0.isOpen && $0.bytesSoFar.isEmpty }, "the slow connections are still waiting (their timeout is 30 s)")
            for connection in slow { connection.close() }
        }
    }

    /// gzip bodies are inflated only after authentication and rate limits, and only within bounds.
    @Test(arguments: TestBackend.available)
    func gzipBombsAreRefusedWithinBounds(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let alice = try await SignedInUser.register(client)
            var zeros = ByteBuffer(repeating: 0x20, count: 16 << 20)
            let bomb = try zeros.compress(with: .gzip())
            #expect(bomb.readableBytes < 64 * 1024)

            // Unauthenticated: refused as such, never inflated.
            let anonymous = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: bomb
            )
            #expect(anonymous.status == .unauthorized)

            // Authenticated: inflation stops at 100 times the compressed size.
            let refused = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "gzip"], body: bomb
            )
            #expect(refused.status == .contentTooLarge)
            #expect(String(buffer: refused.body).contains("100 times"))

            // A stream cut short, and bytes after the stream, are not gzip.
            var plain = ByteBuffer(bytes: try JSONEncoder().encode(PushRequest(changes: [])))
            let whole = try plain.compress(with: .gzip())
            for broken in [whole.getSlice(at: whole.readerIndex, length: whole.readableBytes - 6)!, whole + ByteBuffer(string: "trailing")] {
                let answer = try await client.execute(
                    uri: "/api/sync/push", method: .post,
                    headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "gzip"], body: broken
                )
                #expect(answer.status == .badRequest)
            }
            let fine = try await client.execute(
                uri: "/api/sync/push", method: .post,
                headers: [.authorization: "Bearer \(alice.token)", .contentType: "application/json", .contentEncoding: "gzip"], body: whole
            )
            #expect(fine.status == .ok)
        }
    }

    /// SQLite only: PostgreSQL's address counters are shared by every test.
    @Test func gzipBombOverTheRateLimitIsNotInflated() async throws {
        try await makeTestApp(.sqlite, { $0.addressLimits = [RateLimit(count: 1, window: .hour)] }).test(.router) { client in
            var zeros = ByteBuffer(repeating: 0x20, count: 16 << 20)
            let bomb = try zeros.compress(with: .gzip())
            // The first request uses the only one allowed.
            _ = try await client.execute(uri: "/api/sync/status", method: .get)
            let limited = try await client.execute(
                uri: "/api/register", method: .post,
                headers: [.contentType: "application/json", .contentEncoding: "gzip"], body: bomb
            )
            #expect(limited.status == .tooManyRequests)
        }
    }
}

private extension ByteBuffer {
    static func + (lhs: ByteBuffer, rhs: ByteBuffer) -> ByteBuffer {
        var joined = lhs
        var rhs = rhs
        joined.writeBuffer(&rhs)
        return joined
    }
}
