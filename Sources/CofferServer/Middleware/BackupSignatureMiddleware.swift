import CofferCrypto
import CofferProtocol
import Hummingbird

/// Optional HMAC signatures on the backup routes (SPEC.md §4). A present signature is always
/// checked; an absent one is refused only when signatures are required. A signature is accepted
/// once: replays inside the timestamp window are refused through a record kept in the store.
struct BackupSignatureMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let secrets: [String]
    let required: Bool
    let windowSeconds: Int64
    let bodyLimit: Int
    let store: any Store
    let clock: @Sendable () -> Timestamp

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let timestamp = request.headers[.cofferTimestamp]
        let signature = request.headers[.cofferSignature]
        if timestamp == nil, signature == nil {
            guard !required else {
                throw Self.refusal(ErrorCode.signatureRequired, "this server requires signed requests (X-Coffer-Timestamp and X-Coffer-Signature)")
            }
            return try await next(request, context)
        }
        guard let timestamp, let signature else {
            throw Self.refusal(ErrorCode.signatureInvalid, "a signed request needs both X-Coffer-Timestamp and X-Coffer-Signature")
        }
        // Range-checked before any arithmetic: the skew below cannot overflow whatever was sent.
        guard let seconds = Validation.integer(timestamp, in: Validation.unixSeconds) else {
            throw APIError.invalidHeader(
                "X-Coffer-Timestamp", "must be unix time in whole seconds (\(Validation.describe(Validation.unixSeconds)))"
            )
        }
        let now = clock()
        guard abs(now.milliseconds / 1000 - seconds) <= windowSeconds else {
            throw Self.refusal(ErrorCode.signatureStale, "the signature timestamp is more than \(windowSeconds) s from the server clock")
        }
        var request = request
        let body = try await request.collectBoundedBody(limit: bodyLimit)
        let valid = RequestSignature.verify(
            signature: signature.lowercased(), secrets: secrets, timestamp: timestamp, method: request.method.rawValue,
            pathWithQuery: request.head.path ?? request.uri.path, body: body.readableBytesView
        )
        guard valid else {
            throw Self.refusal(ErrorCode.signatureInvalid, "the request signature is not valid")
        }
        let fresh = try await store.recordSignature(
            signature.lowercased(), expiresAt: Timestamp(milliseconds: (seconds + windowSeconds + 1) * 1000), at: now
        )
        guard fresh else {
            throw Self.refusal(ErrorCode.signatureReplayed, "this signed request was already received")
        }
        return try await next(request, context)
    }

    private static func refusal(_ code: String, _ message: String) -> APIError {
        APIError(.unauthorized, code: code, message: message)
    }
}
