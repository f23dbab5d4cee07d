import CofferProtocol
import CofferServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Cross-cutting HTTP behaviour: ids, security headers, CORS, health, metrics, OpenAPI.
@Suite("HTTP behaviour")
struct HTTPBehaviourTests {
    @Test(arguments: TestBackend.available)
    func healthMetricsAndOpenAPI(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let health = try await client.get("/health")
            #expect(health.status == .ok)
            #expect(try health.decode(HealthResponse.self) == HealthResponse(status: "ok", database: "ok", version: CofferVersion.current))
            let metrics = try await client.get("/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let openAPI = try await client.get("/openapi.yaml")
            #expect(openAPI.status == .ok)
            let yaml = String(buffer: openAPI.body)
            for path in ["/api/register:", "/api/backup:", "/api/backup/versions:", "/api/user:", "/health:", "/api/auth/login:", "/api/devices/{id}:", "/api/audit:", "/api/vaults/{id}/items:", "/api/sync/pull:", "/api/items/{id}/restore:"] {
                #expect(yaml.contains(path), "\(path)")
            }
        }
    }

    @Test func healthReportsADatabaseThatIsDown() async throws {
        let store = try await SQLiteStore.open(path: TestBackend.sqlite.location().description.replacingOccurrences(of: "sqlite:", with: ""), logger: .init(label: "test"))
        let app = buildApplication(configuration: testConfiguration(.sqlite), store: store, logger: .init(label: "test"))
        try await app.test(.router) { client in
            try await store.close()
            let health = try await client.get("/health")
            #expect(health.status == .serviceUnavailable)
            #expect(try health.decode(HealthResponse.self).database == "down")
        }
    }

    @Test(arguments: TestBackend.available)
    func requestIdsAndSecurityHeaders(_ backend: TestBackend) async throws {
        try await makeTestApp(backend).test(.router) { client in
            let echoed = try await client.get("/health", headers: [.requestId: "client-chosen-42"])
            #expect(echoed.headers[.requestId] == "client-chosen-42")
            let generated = try await client.get("/api/nope", headers: [.requestId: "bad id with spaces"])
            let id = try #require(generated.headers[.requestId])
            #expect(id != "bad id with spaces" && id.count == 36)
            for response in [echoed, generated] {
                #expect(response.headers[.xContentTypeOptions] == "nosniff")
                #expect(response.headers[.xFrameOptions] == "DENY")
                #expect(response.headers[.referrerPolicy] == "no-referrer")
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(response.headers[.strictTransportSecurity] == nil)
            }
        }
        try await makeTestApp(backend, { $0.trustForwardedHeaders = true }).test(.router) { client in
            let behindTLS = try await client.get("/health", headers: [.forwardedProto: "https"])
            #expect(behindTLS.headers[.strictTransportSecurity]?.hasPrefix("max-age=") == true)
        }
    }

    @Test(arguments: TestBackend.available)
    func corsAllowList(_ backend: TestBackend) async throws {
        try await makeTestApp(backend, { $0.corsAllowedOrigins = ["https://app.example"] }).test(.router) { client in
            let preflight = try await client.execute(
                uri: "/api/backup", method: .options,
                headers: [.origin: "https://app.example", .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "content-type"]
            )
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("POST") == true)
            #expect(preflight.headers[.accessControlAllowHeaders]?.contains("X-Coffer-Signature") == true)

            let denied = try await client.execute(
                uri: "/api/backup", method: .options, headers: [.origin: "https://evil.example", .accessControlRequestMethod: "POST"]
            )
            #expect(denied.status == .forbidden)
            #expect(denied.headers[.accessControlAllowOrigin] == nil)

            let simple = try await client.get("/api/backup?userId=\(randomHash())&storageKey=\(randomHash())", headers: [.origin: "https://app.example"])
            #expect(simple.status == .notFound)
            #expect(simple.headers[.accessControlAllowOrigin] == "https://app.example")
            #expect(simple.headers[.accessControlExposeHeaders]?.contains("Retry-After") == true)
            #expect(simple.headers[.accessControlExposeHeaders]?.contains("X-Request-Id") == true)

            let other = try await client.get("/health", headers: [.origin: "https://evil.example"])
            #expect(other.headers[.accessControlAllowOrigin] == nil)
        }
    }
}
