import CofferProtocol
import Foundation
import Hummingbird

/// Who an authenticated request comes from.
public struct AuthIdentity: Sendable, Equatable {
    public var userId: String
    public var deviceId: String
    public var sessionId: String

    /// Whether `session`, an active session read from the store, is the one this identity claims.
    func isHeld(by session: SessionRecord?) -> Bool {
        session?.userId == userId && session?.deviceId == deviceId
    }
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
        let (identity, expiresAt) = try await claimedIdentity(token: token)
        guard try await isActive(identity) else { throw Failure.sessionEnded }
        return (identity, expiresAt)
    }

    /// What a token claims, checked by its signature and expiry alone (no database): not yet
    /// proof that the session is still active.
    func claimedIdentity(token: String) async throws -> (AuthIdentity, expiresAt: Timestamp) {
        guard let claims = await tokens.verify(token) else { throw Failure.invalidToken }
        return (AuthIdentity(userId: claims.sub.value, deviceId: claims.did, sessionId: claims.sid), Timestamp(claims.exp.value))
    }

    /// Whether the claimed session, and its device, are still active.
    func isActive(_ identity: AuthIdentity) async throws -> Bool {
        identity.isHeld(by: try await store.activeSession(id: identity.sessionId, at: clock()))
    }
}

/// Requires a valid access token whose session is still active (see `SessionAuthenticator`); 401 otherwise.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let authenticator: SessionAuthenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasCaseInsensitivePrefix("bearer ") else {
            throw Self.unauthorized("missing access token (Authorization: Bearer …)")
        }
        let token = String(header.dropFirst("bearer ".count).trimmingHTTPWhitespace())
        var context = context
        let identity: AuthIdentity
        do {
            identity = try await authenticator.claimedIdentity(token: token).0
        } catch {
            throw Self.unauthorized("the access token is invalid or expired")
        }
        context.identity = identity
        switch Self.sessionCheck(for: request) {
        case .first:
            guard try await authenticator.isActive(identity) else { throw Self.sessionEnded }
            return try await next(request, context)
        case .alongside:
            // A read changes nothing, so it runs while the session is checked: one database round
            // trip less. Nothing is answered, not even an error, before the check passes.
            async let active = authenticator.isActive(identity)
            let result: Result<Response, any Error>
            do {
                result = .success(try await next(request, context))
            } catch {
                result = .failure(error)
            }
            guard try await active else { throw Self.sessionEnded }
            return try result.get()
        case .byHandler:
            // The handler's read checks the session in the same database round trip and answers
            // 401 itself (`SyncController.pull`). Should it fail before that read, the session is
            // checked here, so an ended session still hears 401 and nothing else.
            do {
                return try await next(request, context)
            } catch let error as APIError where error.status == .unauthorized {
                throw error
            } catch {
                guard try await authenticator.isActive(identity) else { throw Self.sessionEnded }
                throw error
            }
        }
    }

    /// When a request's session is checked against the database.
    enum SessionCheck: Equatable {
        /// Before the handler runs: every request that may change something.
        case first
        /// While the handler runs, answering only once it passed: requests that only read.
        case alongside
        /// By the handler, inside its own read: a sync pull, the most frequent request.
        case byHandler
    }

    /// GET and HEAD only read; so does a pull (a POST for its body), which checks for itself. User
    /// lookups are left out: they count against a per-account limit, which only a live session may spend.
    static func sessionCheck(for request: Request) -> SessionCheck {
        let path = request.uri.path
        if request.method == .post && path == "/api/sync/pull" { return .byHandler }
        if path == "/api/users/lookup" { return .first }
        return request.method == .get || request.method == .head ? .alongside : .first
    }

    static var sessionEnded: APIError { unauthorized("this session has ended; log in again") }

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
