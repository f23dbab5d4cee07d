import CofferProtocol
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Gives every request an id (the client's `X-Request-Id` when it is well formed), puts it in the
/// logger and on the response, and writes one access-log line per request. The line names the
/// method, the path without its query (queries carry user ids and storage keys), status and time.
struct RequestIdMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestId = request.headers[.requestId].flatMap { Validation.isRequestId($0) ? $0 : nil } ?? UUID().uuidString.lowercased()
        context.requestId = requestId
        context.logger[metadataKey: "request.id"] = .string(requestId)
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            // Only reached for errors thrown above ErrorMiddleware; still answer in JSON.
            response = try ErrorMiddleware<Context>.apiError(for: error, request: request, logger: context.logger)
                .response(from: request, context: context)
        }
        response.headers[.requestId] = requestId
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
        context.logger.info(
            "request",
            metadata: [
                "method": .string(request.method.rawValue),
                "path": .string(request.uri.path),
                "status": .stringConvertible(response.status.code),
                "ms": .string(String(format: "%.2f", milliseconds)),
            ]
        )
        return response
    }
}

extension HTTPField.Name {
    public static let requestId = Self("X-Request-Id")!
    public static let forwardedFor = Self("X-Forwarded-For")!
    public static let forwardedProto = Self("X-Forwarded-Proto")!
    public static let cofferTimestamp = Self(BackupSignatureHeader.timestamp)!
    public static let cofferSignature = Self(BackupSignatureHeader.signature)!
}
