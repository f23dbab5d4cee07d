import CofferProtocol
import Hummingbird

/// Who an authenticated request comes from.
public struct AuthIdentity: Sendable, Equatable {
    public var userId: String
    public var deviceId: String
    public var sessionId: String
}

/// Requires a valid access token whose session is still active: a revoked device, a logged-out
/// session, a password change elsewhere or a deleted account all answer 401 on the next request.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let tokens: TokenService
    let store: any Store
    let clock: @Sendable () -> Timestamp

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw Self.unauthorized("missing access token (Authorization: Bearer …)")
        }
        let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let claims = await tokens.verify(token) else {
            throw Self.unauthorized("the access token is invalid or expired")
        }
        guard let session = try await store.activeSession(id: claims.sid, at: clock()),
            session.userId == claims.sub.value, session.deviceId == claims.did
        else {
            throw Self.unauthorized("this session has ended; log in again")
        }
        var context = context
        context.identity = AuthIdentity(userId: session.userId, deviceId: session.deviceId, sessionId: session.id)
        return try await next(request, context)
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, code: ErrorCode.unauthorized, message: message, headers: [.wwwAuthenticate: "Bearer"])
    }
}

extension AppRequestContext {
    /// The identity set by `AuthMiddleware`; routes behind it can rely on it.
    func requireIdentity() throws -> AuthIdentity {
        guard let identity else { throw AuthMiddleware.unauthorized("authentication required") }
        return identity
    }
}
