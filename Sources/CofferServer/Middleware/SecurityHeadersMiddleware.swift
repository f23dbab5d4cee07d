import HTTPTypes
import Hummingbird

/// Security headers on every response: no sniffing, no framing, no referrer, no caching of API
/// answers, and HSTS when the request reached us over TLS (directly or via a trusted proxy).
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let trustForwardedHeaders: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.xFrameOptions] = "DENY"
        response.headers[.referrerPolicy] = "no-referrer"
        response.headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        if request.uri.path.hasPrefix("/api/") || response.headers[.cacheControl] == nil {
            response.headers[.cacheControl] = "no-store"
        }
        let overTLS = request.uri.scheme == .https
            || (trustForwardedHeaders && request.headers[.forwardedProto]?.lowercased() == "https")
        if overTLS {
            response.headers[.strictTransportSecurity] = "max-age=63072000; includeSubDomains"
        }
        return response
    }
}

extension HTTPField.Name {
    public static let xFrameOptions = Self("X-Frame-Options")!
    public static let referrerPolicy = Self("Referrer-Policy")!
}
