import CofferProtocol
import Foundation
import Hummingbird

/// Who an authenticated request comes from.
public struct AuthIdentity: Sendable, Equatable {
    public var userId: String
    public var deviceId: String
    public var sessionId: String
}

/// Turns an access token into the identity behind it, if its session is still active: a revoked
/// device, a logged-out session, a password change elsewhere or a deleted account all fail.
/// Shared by HTTP requests and the real-time channel.
struct SessionAuthenticator: Sendable {
    let tokens: TokenService
    let store: any Store
    let clock: @Sendable () -> Timestamp

    enum Failure: Error {
        case invalidToken
        case sessionEnded
    }

    /// The identity and when its token expires.
    func authenticate(token: String) async throws -> (AuthIdentity, expiresAt: Timestamp) {
        guard let claims = await tokens.verify(token) else { throw Failure.invalidToken }
        guard let session = try await store.activeSession(id: claims.sid, at: clock()),
            session.userId == claims.sub.value, session.deviceId == claims.did
        else {
            throw Failure.sessionEnded
        }
        return (AuthIdentity(userId: session.userId, deviceId: session.deviceId, sessionId: session.id), Timestamp(claims.exp.value))
    }
}

/// Requires a valid access token whose session is still active (see `SessionAuthenticator`); 401 otherwise.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: SessionAuthenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else {
            throw Self.unauthorized("missing access token (Authorization: Bearer …)")
        }
        let token = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        var context = context
        do {
            context.identity = try await authenticator.authenticate(token: token).0
        } catch SessionAuthenticator.Failure.invalidToken {
            throw Self.unauthorized("the access token is invalid or expired")
        } catch SessionAuthenticator.Failure.sessionEnded {
            throw Self.unauthorized("this session has ended; log in again")
        }
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
