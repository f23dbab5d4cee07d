import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// SPEC.md §3: bad input always gets a clear 4xx with a JSON error, never a 5xx or a hang.
@Suite("Bad input")
struct BadInputTests {
    @Test(arguments: TestBackend.available)
    func malformedBodies(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let id = randomHash()
            let cases: [(String, [UInt8], String?, HTTPResponse.Status, String, String?)] = [
                ("malformed JSON", Array(#"{"userId": "#.utf8), "application/json", .badRequest, "invalid_json", nil),
                ("not an object", Array(#"["a"]"#.utf8), "application/json", .badRequest, "invalid_json", nil),
                ("empty body", [], "application/json", .badRequest, "invalid_json", nil),
                ("bad UTF-8", [0x7b, 0x22, 0x75, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d], "application/json", .badRequest, "invalid_json", nil),
                ("wrong type", Array(#"{"userId": 42}"#.utf8), "application/json", .badRequest, "invalid_field", "userId"),
                ("null", Array(#"{"userId": null}"#.utf8), "application/json", .badRequest, "invalid_field", "userId"),
                ("missing field", Array(#"{"user": "x"}"#.utf8), "application/json", .badRequest, "missing_field", "userId"),
                ("short id", Array(#"{"userId": "abc"}"#.utf8), "application/json", .badRequest, "invalid_field", "userId"),
                ("uppercase id", Array(#"{"userId": "\#(id.uppercased())"}"#.utf8), "application/json", .badRequest, "invalid_field", "userId"),
                ("non-hex id", Array(#"{"userId": "\#(String(repeating: "g", count: 64))"}"#.utf8), "application/json", .badRequest, "invalid_field", "userId"),
                ("wrong content type", Array(#"{"userId": "\#(id)"}"#.utf8), "text/plain", .unsupportedMediaType, "unsupported_media_type", nil),
                ("no content type", Array(#"{"userId": "\#(id)"}"#.utf8), nil, .unsupportedMediaType, "unsupported_media_type", nil),
            ]
            for (name, body, contentType, status, code, field) in cases {
                let response = try await client.raw(.post, "/api/register", body, contentType: contentType)
                #expect(response.status == status, "\(name)")
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(name)")
                #expect(response.error?.code == code, "\(name)")
                if let field { #expect(response.error?.error.contains(field) == true, "\(name): \(response.error?.error ?? "")") }
            }
            let saveMissing = try await client.raw(.post, "/api/backup", Array(#"{"userId":"\#(id)","storageKey":"\#(id)"}"#.utf8))
            #expect(saveMissing.status == .badRequest)
            #expect(saveMissing.error?.error == "missing field 'data'")
        }
    }

    @Test(arguments: TestBackend.available)
    func oversizedBodiesAreRefusedBeforeBeingRead(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.maxRequestBody = 1024; $0.maxBackupSize = 2048 }).test(.router) { client in
            let big = Array(repeating: UInt8(ascii: "a"), count: 64 * 1024)
            let register = try await client.raw(.post, "/api/register", big)
            #expect(register.status == .contentTooLarge)
            #expect(register.error?.code == "payload_too_large")
            // The backup route allows base64 of the cap plus room for JSON; far past that is refused too.
            let save = try await client.raw(.post, "/api/backup", Array(repeating: UInt8(ascii: "a"), count: 200 * 1024))
            #expect(save.status == .contentTooLarge)
            #expect(save.error?.code == "payload_too_large")
        }
    }

    @Test func oversizedStreamedBodyOnLiveServer() async throws {
        // Live: a body larger than the limit, sent without waiting, is cut off with 413 rather than buffered.
        try await makeTestApp(.sqlite, { $0.maxRequestBody = 1024 }).test(.live) { client in
            let response = try await client.raw(.post, "/api/register", Array(repeating: UInt8(ascii: "a"), count: 4 * 1024 * 1024))
            #expect(response.status == .contentTooLarge)
            #expect(response.error?.code == "payload_too_large")
            #expect(try await client.get("/health").status == .ok)
        }
    }

    @Test(arguments: TestBackend.available)
    func unknownRoutesAndMethods(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let missing = try await client.get("/api/nothing-here")
            #expect(missing.status == .notFound)
            #expect(missing.error?.code == "not_found")
            let wrongMethod = try await client.execute(uri: "/api/register", method: .get)
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "POST")
            #expect(wrongMethod.error?.code == "method_not_allowed")
            let put = try await client.execute(uri: "/api/backup", method: .put)
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers[.allow] == "GET, POST")
        }
    }
}
