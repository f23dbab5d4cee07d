import CofferProtocol
import Hummingbird
import Logging
import NIOCore

/// Turns every error thrown below it into an `APIError` response, so clients always get the
/// JSON error body and never an internal detail.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try Self.apiError(for: error, request: request, logger: context.logger).response(from: request, context: context)
        }
    }

    static func apiError(for error: any Error, request: Request, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as StoreError:
            return APIError(error)
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body is too large")
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return APIError(.notFound, code: ErrorCode.routeNotFound, message: "no route for \(request.method) \(request.uri.path)")
            case .contentTooLarge:
                return APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body is too large")
            default:
                if error.status.code < 500 {
                    return APIError(error.status, code: "http_\(error.status.code)", message: error.body ?? error.status.reasonPhrase)
                }
                logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
                return .internalError
            }
        case is CancellationError:
            return APIError(.serviceUnavailable, code: ErrorCode.unavailable, message: "the server is shutting down")
        default:
            // Storage and unexpected errors are logged (type and description, never request data) and hidden.
            logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            return .internalError
        }
    }
}
