import CofferProtocol
import Hummingbird

extension Router where Context == AppRequestContext {
    /// Every method a client may try on a known path; those the path does not serve answer 405.
    /// HEAD and OPTIONS are included because no route declares them (CORS preflights are answered
    /// by the CORS middleware before routing); QUERY is the safe-query method clients and
    /// fuzzers probe.
    static var probedMethods: [HTTPRequest.Method] {
        [.get, .head, .post, .put, .delete, .patch, .options, .trace, HTTPRequest.Method("QUERY")!]
    }

    /// Answers 405 with `Allow` for the methods a known path does not serve, instead of a bare 404.
    func answerMethodNotAllowed(path: String, allowed: [HTTPRequest.Method]) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        for method in Self.probedMethods where !allowed.contains(method) {
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
