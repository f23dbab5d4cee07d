import HTTPTypes
import Hummingbird

/// Security headers on every response: no sniffing, no framing, no referrer, no caching of API
/// answers, and HSTS when the request reached us over TLS (directly or via a trusted proxy).
struct SecurityHeadersMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let trustForwardedHeaders: Bool

    /// On every answer, also those the connection guard writes itself.
    static let always: [(HTTPField.Name, String)] = [
        (.xContentTypeOptions, "nosniff"),
        (.xFrameOptions, "DENY"),
        (.referrerPolicy, "no-referrer"),
        (.contentSecurityPolicy, "default-src 'none'; frame-ancestors 'none'"),
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        for (name, value) in Self.always { response.headers[name] = value }
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
