import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Rules docs/openapi.yaml states that scripts/schemathesis holds the server to, pinned here so a
/// plain `swift test` keeps them too.
@Suite("OpenAPI contract")
struct OpenAPIContractTests {
    @Test(arguments: TestBackend.available)
    func everyUndeclaredMethodIs405WithAllow(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let methods: [HTTPRequest.Method] = [.trace, .head, .options, .patch, HTTPRequest.Method("QUERY")!]
            for (path, allow) in [("/api/audit", "GET"), ("/health", "GET, HEAD"), ("/openapi.yaml", "GET"), ("/api/auth/logout", "POST")] {
                for method in methods where !(path == "/health" && method == .head) {
                    let response = try await client.execute(uri: path, method: method)
                    #expect(response.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(response.headers[.allow] == allow, "\(method) \(path)")
                    if method != .head { #expect(response.error?.code == "method_not_allowed", "\(method) \(path)") }
                }
            }
        }
        // HEAD /health answers as GET does, without the body.
        try await makeTestApp(backend).test(.router) { client in
            let head = try await client.execute(uri: "/health", method: .head)
            #expect(head.status == .ok)
            #expect(head.body.readableBytes == 0)
        }
        // A CORS preflight is still answered by the CORS middleware, not as a 405.
        try await makeTestApp(backend, { $0.corsAllowedOrigins = ["https://app.example"] }).test(.router) { client in
            let preflight = try await client.execute(
                uri: "/api/audit", method: .options, headers: [.origin: "https://app.example", .accessControlRequestMethod: "GET"]
            )
            #expect(preflight.status == .noContent)
        }
    }

    @Test(arguments: TestBackend.available)
    func aNULInAnyBodyStringIs400(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let refused = try await client.raw(.post, "/api/auth/prelogin", Array(#"{"email": "a\u0000@example.com"}"#.utf8))
            #expect(refused.status == .badRequest)
            #expect(refused.error?.code == "invalid_json")
            // An escaped backslash followed by the text u0000 is no NUL.
            let text = try await client.raw(.post, "/api/auth/prelogin", Array(#"{"email": "a\\u0000@example.com"}"#.utf8))
            #expect(text.status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func emailsAreCheckedInUnicodeScalarsAsTheSchemaCounts(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let cases: [(String, HTTPResponse.Status)] = [
                (" \u{2003}bob@example.com\u{3000}\n", .ok),  // surrounding Unicode whitespace is trimmed
                ("bob@example.\u{301}com", .ok),  // a combining mark does not hide the dot
                ("bob@\u{301}example.com", .ok),  // nor the @
                ("bob@ex ample.com", .badRequest),
                ("bob@example\u{2028}.com", .badRequest),
                ("bob@examplecom", .badRequest),
                ("@example.com", .badRequest),
                ("bob@@example.com", .badRequest),
                ("b@" + String(repeating: "e", count: 248) + ".com", .ok),  // 254 scalars
                ("b@" + String(repeating: "e", count: 249) + ".com", .badRequest),  // 255
                (" b@" + String(repeating: "e", count: 248) + ".com", .badRequest),  // 255 before trimming, as the schema counts
            ]
            for (email, status) in cases {
                let response = try await client.json(.post, "/api/auth/prelogin", PreloginRequest(email: email))
                #expect(response.status == status, "\(email.debugDescription): \(response.error?.error ?? "")")
            }
        }
    }

    @Test(arguments: TestBackend.available)
    func scryptParametersInRangeButTooCostlyTogetherAre422(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            let cases: [(KDFDescriptor, HTTPResponse.Status)] = [
                (KDFDescriptor(algorithm: "scrypt", n: 1 << 22, r: 8, p: 1), .unprocessableContent),  // 4 GiB of memory
                (KDFDescriptor(algorithm: "scrypt", n: 1 << 18, r: 32, p: 16), .unprocessableContent),  // N·r·p above 2^26
                (KDFDescriptor(algorithm: "scrypt", n: 1 << 23, r: 8, p: 1), .badRequest),  // N itself out of range
            ]
            for (kdf, status) in cases {
                let response = try await client.json(.post, "/api/auth/register", account.registerRequest(kdf: kdf))
                #expect(response.status == status, "\(kdf)")
                #expect(response.error?.code == "weak_kdf", "\(kdf)")
            }
        }
    }

    @Test(arguments: TestBackend.available)
    func deviceNamesAreCountedBeforeTrimming(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let account = try TestAccount()
            var blank = account.registerRequest()
            blank.device.name = "\u{00a0}\u{3000}"
            let refusedBlank = try await client.json(.post, "/api/auth/register", blank)
            #expect(refusedBlank.status == .badRequest && refusedBlank.error?.error.contains("device.name") == true)
            var padded = account.registerRequest()
            padded.device.name = " " + String(repeating: "n", count: 100)
            let refusedLong = try await client.json(.post, "/api/auth/register", padded)
            #expect(refusedLong.status == .badRequest && refusedLong.error?.error.contains("device.name") == true)
        }
    }
}
