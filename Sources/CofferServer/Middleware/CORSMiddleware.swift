import CofferProtocol
import Hummingbird

/// CORS for an allow-list of origins: answers preflights, echoes an allowed `Origin`, and exposes
/// `Retry-After` and `X-Request-Id` so browser clients can honour limits and report ids.
/// Requests from other origins get no CORS headers (the browser then hides the answer), and
/// their preflights a 403.
struct AllowListCORSMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let allowedOrigins: Set<String>

    static let allowedMethods = "GET, POST, PUT, DELETE, OPTIONS"
    static let allowedHeaders = "Content-Type, Authorization, X-Request-Id, X-Coffer-Timestamp, X-Coffer-Signature, Content-Encoding"
    static let exposedHeaders = "Retry-After, X-Request-Id"

    init(origins: [String]) {
        self.allowedOrigins = Set(origins)
    }

    private func allows(_ origin: String) -> Bool {
        allowedOrigins.contains("*") || allowedOrigins.contains(origin)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else {
            return try await next(request, context)
        }
        let isPreflight = request.method == .options && request.headers[.accessControlRequestMethod] != nil
        if isPreflight {
            guard allows(origin) else {
                throw APIError(.forbidden, code: ErrorCode.originNotAllowed, message: "origin is not allowed by this server's CORS settings")
            }
            var headers = HTTPFields()
            addAllowHeaders(&headers, origin: origin)
            headers[.accessControlAllowMethods] = Self.allowedMethods
            headers[.accessControlAllowHeaders] = Self.allowedHeaders
            headers[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        if allows(origin) {
            addAllowHeaders(&response.headers, origin: origin)
        }
        return response
    }

    private func addAllowHeaders(_ headers: inout HTTPFields, origin: String) {
        headers[.accessControlAllowOrigin] = origin
        headers[.accessControlExposeHeaders] = Self.exposedHeaders
        headers[.vary] = "Origin"
    }
}
