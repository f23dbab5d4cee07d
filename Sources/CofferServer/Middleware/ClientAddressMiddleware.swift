import Hummingbird

/// Decides which address a request counts against: the socket peer, or the first
/// `X-Forwarded-For` hop when the server is configured to trust its reverse proxy.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let trustForwardedHeaders: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if trustForwardedHeaders,
            let forwarded = request.headers[.forwardedFor]?.split(separator: ",").first?.trimmingHTTPWhitespace().description,
            !forwarded.isEmpty
        {
            context.clientAddress = forwarded
        } else if let address = context.remoteAddress?.ipAddress {
            context.clientAddress = address
        }
        return try await next(request, context)
    }
}
