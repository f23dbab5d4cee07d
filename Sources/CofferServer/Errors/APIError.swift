import CofferProtocol
import Foundation
import Hummingbird

/// Every failure a client can see: a status, a machine code and a human message. All other
/// errors are mapped to one of these in `ErrorMiddleware`, the one place errors become HTTP.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let body = (try? encoder.encode(ErrorBody(error: message, code: code))) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension APIError {
    static func invalidField(_ field: String, _ rule: String) -> APIError {
        APIError(.badRequest, code: ErrorCode.invalidField, message: "field '\(field)' \(rule)")
    }

    static func invalidQuery(_ name: String, _ rule: String) -> APIError {
        APIError(.badRequest, code: ErrorCode.invalidQuery, message: "query parameter '\(name)' \(rule)")
    }

    static func invalidHeader(_ name: String, _ rule: String) -> APIError {
        APIError(.badRequest, code: ErrorCode.invalidHeader, message: "header '\(name)' \(rule)")
    }

    static func rateLimited(retryAfter: Int64, _ message: String) -> APIError {
        APIError(
            .tooManyRequests, code: ErrorCode.rateLimited, message: "\(message); retry after \(retryAfter) s",
            headers: [.retryAfter: String(retryAfter)]
        )
    }

    static let internalError = APIError(
        .internalServerError, code: ErrorCode.internalError, message: "internal server error"
    )

    /// Maps a storage-layer failure to what the client sees.
    init(_ error: StoreError) {
        switch error {
        case .userExists:
            self.init(.conflict, code: ErrorCode.userExists, message: "this user id is already registered")
        case .emailTaken:
            self.init(.conflict, code: ErrorCode.emailTaken, message: "an account with this email already exists")
        case .vaultExists:
            self.init(.conflict, code: ErrorCode.vaultExists, message: "a vault with this id already exists")
        case .userNotFound:
            self.init(.notFound, code: ErrorCode.userNotFound, message: "this user id is not registered")
        case .backupNotFound:
            self.init(.notFound, code: ErrorCode.backupNotFound, message: "no backup for this user id and storage key")
        case .versionNotFound:
            self.init(.notFound, code: ErrorCode.backupNotFound, message: "this backup version is not kept")
        case .storageKeyForbidden:
            self.init(.forbidden, code: ErrorCode.storageKeyForbidden, message: "this storage key does not belong to this user")
        case .storageKeyRequired:
            self.init(.forbidden, code: ErrorCode.storageKeyForbidden, message: "this user has backups: deleting it needs one of its storage keys")
        case .rateLimited(let retryAfter, let scope):
            self = .rateLimited(retryAfter: retryAfter, "too many backup writes for this \(scope)")
        case .alreadyMember:
            self.init(.conflict, code: ErrorCode.alreadyMember, message: "this user is already a member of the vault")
        case .membersChanged:
            self.init(
                .conflict, code: ErrorCode.membersChanged,
                message: "the vault's members changed: wrappedKeys must name every current member exactly once"
            )
        case .keyEpochChanged(let current):
            self.init(
                .conflict, code: ErrorCode.keyEpochChanged,
                message: "the vault key was rotated meanwhile (current key epoch \(current)); read the vault again and retry"
            )
        case .staleKey(let current):
            self = .staleKey(current: current)
        case .busy:
            self.init(
                .serviceUnavailable, code: ErrorCode.unavailable, message: "the database is busy with conflicting writes; retry shortly",
                headers: [.retryAfter: "1"]
            )
        }
    }
}

extension APIError {
    /// Something sealed under a vault key that was rotated away: the client fetches the vault's
    /// current key, seals again and retries.
    static func staleKey(current: Int) -> APIError {
        APIError(
            .conflict, code: ErrorCode.staleKey,
            message: "sealed under a vault key that is no longer current (the vault is at key epoch \(current)); seal it with the current key and retry"
        )
    }
}
