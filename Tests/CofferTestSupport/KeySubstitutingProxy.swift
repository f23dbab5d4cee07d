import AsyncHTTPClient
import CofferCrypto
import CofferProtocol
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Crypto

/// A man in the middle for tests: forwards every request to the real server, but when
/// `substitutedKey` is set, answers user lookups with that sharing key instead of the real one,
/// certified by `identity`, the server's own identity key (as a server that cannot forge the
/// user's certificate would do).
public struct KeySubstitutingProxy<Context: RequestContext>: RouterMiddleware {
    let upstream: String
    let http: HTTPClient
    let substitutedKey: String?
    let identity: Curve25519.Signing.PrivateKey

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var outbound = HTTPClientRequest(url: upstream + request.uri.description)
        outbound.method = .RAW(value: request.method.rawValue)
        for field in request.headers where field.name != .contentLength {
            outbound.headers.add(name: field.name.rawName, value: field.value)
        }
        outbound.body = .bytes(try await request.body.collect(upTo: 16 << 20))
        let response = try await http.execute(outbound, timeout: .seconds(30))
        var body = try await response.body.collect(upTo: 16 << 20)
        if let substitutedKey, request.uri.path == "/api/users/lookup", response.status == .ok {
            var found = try JSONDecoder().decode(UserLookupResponse.self, from: Data(buffer: body))
            found.publicKey = substitutedKey
            found.identityKey = Base64URL.encode(identity.publicKey.rawRepresentation)
            found.sharingKeyCertificate = try IdentityKey.certify(sharingKey: substitutedKey, email: found.email, identity: identity)
            body = ByteBuffer(data: try JSONEncoder().encode(found))
        }
        var headers = HTTPFields()
        if let type = response.headers.first(name: "content-type") { headers[.contentType] = type }
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: body))
    }
}

/// Runs `body` with the base URL of a proxy in front of `upstream`.
public func withKeySubstitutingProxy<T: Sendable>(
    upstream: String, substitutedKey: String?, identity: Curve25519.Signing.PrivateKey = .init(), _ body: @Sendable (String) async throws -> T
) async throws -> T {
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let router = Router()
    router.add(middleware: KeySubstitutingProxy(upstream: upstream, http: http, substitutedKey: substitutedKey, identity: identity))
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
