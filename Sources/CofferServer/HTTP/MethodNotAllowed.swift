import CofferProtocol
import Hummingbird

extension Router where Context == AppRequestContext {
    /// Answers 405 with `Allow` for the methods a known path does not serve, instead of a bare 404.
    func answerMethodNotAllowed(path: String, allowed: [HTTPRequest.Method]) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] where !allowed.contains(method) {
            on(RouterPath(path), method: method) { request, _ -> Response in
                throw APIError(
                    .methodNotAllowed, code: ErrorCode.methodNotAllowed,
                    message: "\(request.method) is not allowed on \(path); use \(allow)",
                    headers: [.allow: allow]
                )
            }
        }
    }
}
