import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore

/// One request as the proxy saw it, and what to do with it.
public struct ProxiedRequest: Sendable {
    public var method: String
    public var path: String
    public var query: String?
    public var body: ByteBuffer
}

/// What a rewriting proxy does with a request: pass it on (and maybe rewrite the answer), or
/// answer it itself without the server ever seeing it.
public enum ProxyAction: Sendable {
    case forward
    case answer(status: Int, json: String)
    /// Answers a redirect (3xx) to `location` without asking the server.
    case redirect(status: Int, location: String)
    /// Forward, then hand the server's status and body to the closure, which returns the ones sent.
    case rewrite(@Sendable (_ status: Int, _ body: ByteBuffer) throws -> (Int, ByteBuffer))
}

/// A man in the middle for tests that play a malicious or failing server: every request goes
/// through `decide`, which forwards it, answers it, or rewrites the server's answer.
public struct RewritingProxy<Context: RequestContext>: RouterMiddleware {
    let upstream: String
    let http: HTTPClient
    let decide: @Sendable (ProxiedRequest) async throws -> ProxyAction

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let body = try await request.body.collect(upTo: 16 << 20)
        let proxied = ProxiedRequest(method: request.method.rawValue, path: request.uri.path, query: request.uri.query, body: body)
        let action = try await decide(proxied)
        if case .answer(let status, let json) = action {
            return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        if case .redirect(let status, let location) = action {
            return Response(status: .init(code: status), headers: [.location: location])
        }
        var outbound = HTTPClientRequest(url: upstream + request.uri.description)
        outbound.method = .RAW(value: request.method.rawValue)
        // An answer to rewrite is asked for uncompressed: the rewrite reads it as JSON.
        let rewriting = if case .rewrite = action { true } else { false }
        for field in request.headers where field.name != .contentLength && !(rewriting && field.name == .acceptEncoding) {
            outbound.headers.add(name: field.name.rawName, value: field.value)
        }
        outbound.body = .bytes(body)
        let response = try await http.execute(outbound, timeout: .seconds(30))
        var status = Int(response.status.code)
        var answer = try await response.body.collect(upTo: 64 << 20)
        if case .rewrite(let rewrite) = action { (status, answer) = try rewrite(status, answer) }
        var headers = HTTPFields()
        if let type = response.headers.first(name: "content-type") { headers[.contentType] = type }
        if !rewriting, let encoding = response.headers.first(name: "content-encoding") { headers[.contentEncoding] = encoding }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: answer))
    }
}

/// Runs `body` with the base URL of a rewriting proxy in front of `upstream`.
public func withRewritingProxy<T: Sendable>(
    upstream: String, decide: @escaping @Sendable (ProxiedRequest) async throws -> ProxyAction, _ body: @Sendable (String) async throws -> T
) async throws -> T {
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let router = Router()
    router.add(middleware: RewritingProxy(upstream: upstream, http: http, decide: decide))
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    do {
        let result = try await app.test(.live) { client in try await body("http://127.0.0.1:\(client.port!)") }
        try await http.shutdown()
        return result
    } catch {
        try? await http.shutdown()
        throw error
    }
}
