import CofferProtocol
import Hummingbird
import Prometheus

/// Operational routes: `/health`, `/metrics`, `/openapi.yaml`.
struct SystemController {
    let store: any Store
    let registry: PrometheusCollectorRegistry

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("health", use: health)
        // Uptime monitors often probe with HEAD: the same status and headers, no body.
        router.head("health") { request, context in
            var response = try await health(request, context: context)
            response.body = ResponseBody()
            return response
        }
        router.get("metrics", use: metrics)
        router.get("openapi.yaml", use: openAPI)
        router.answerMethodNotAllowed(path: "/health", allowed: [.get, .head])
        for path in ["/metrics", "/openapi.yaml"] {
            router.answerMethodNotAllowed(path: path, allowed: [.get])
        }
    }

    @Sendable func health(_ request: Request, context: AppRequestContext) async throws -> Response {
        let databaseUp: Bool
        do {
            try await withTimeout(seconds: 2) { try await store.ping() }
            databaseUp = true
        } catch {
            context.logger.warning("health check: database did not answer", metadata: ["error": "\(String(reflecting: error))"])
            databaseUp = false
        }
        return try JSONResponse.make(
            databaseUp ? .ok : .serviceUnavailable,
            HealthResponse(status: databaseUp ? "ok" : "degraded", database: databaseUp ? "ok" : "down", version: CofferVersion.current)
        )
    }

    @Sendable func metrics(_ request: Request, context: AppRequestContext) async throws -> Response {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: buffer))
        )
    }

    @Sendable func openAPI(_ request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml))
        )
    }
}

/// Runs `body`, failing with `TimeoutError` when it takes longer than `seconds`.
func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A deadline passed.
struct TimeoutError: Error {}
