import CofferProtocol
import CompressNIO
import Hummingbird

/// gzip in both directions, for large sync traffic: a request with `Content-Encoding: gzip` is
/// inflated within bounds (`BoundedInflater`), and a JSON answer of 1 KiB or more is deflated
/// when the client sends `Accept-Encoding: gzip`. Compression comes from CompressNIO (zlib).
struct CompressionMiddleware: RouterMiddleware {
    init(maximumBody: Int) {
        self.inflation = .init(maximumSize: maximumBody)
    }

    typealias Context = AppRequestContext
    /// Bounds on inflating a request body.
    let inflation: BoundedInflater.Limits
    static let minimumCompressedSize = 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
            guard encoding == "gzip" else {
                throw APIError(.unsupportedMediaType, code: ErrorCode.unsupportedMediaType, message: "Content-Encoding must be gzip or identity")
            }
            // Inflated only when the route reads the body: after authentication and every rate
            // limit, so a refused client costs no inflation. The route's own limit still applies.
            request.body = RequestBody(asyncSequence: InflatingBody(compressed: request.body, limits: inflation))
        }
        var response = try await next(request, context)
        guard Self.acceptsGzip(request), response.headers[.contentEncoding] == nil,
            let length = response.body.contentLength, length >= Self.minimumCompressedSize
        else {
            return response
        }
        let collected = CollectedBody()
        try await response.body.write(CollectingWriter(target: collected))
        var plain = collected.buffer
        let deflated = try plain.compress(with: .gzip())
        response.body = ResponseBody(byteBuffer: deflated)
        response.headers[.contentEncoding] = "gzip"
        response.headers[.contentLength] = String(deflated.readableBytes)
        response.headers[.vary] = response.headers[.vary].map { $0.contains("Accept-Encoding") ? $0 : $0 + ", Accept-Encoding" } ?? "Accept-Encoding"
        return response
    }

    static func acceptsGzip(_ request: Request) -> Bool {
        guard let accept = request.headers[.acceptEncoding]?.lowercased() else { return false }
        return accept.split(separator: ",").contains { part in
            let pieces = part.split(separator: ";").map { $0.trimmingHTTPWhitespace() }
            return pieces.first == "gzip" && !pieces.dropFirst().contains("q=0")
        }
    }
}

/// Receives a response body in memory; only the compression middleware uses it, within one request.
private final class CollectedBody: @unchecked Sendable {
    // Written and then read by one task, strictly one after the other.
    var buffer = ByteBuffer()
}

private struct CollectingWriter: ResponseBodyWriter {
    let target: CollectedBody

    mutating func write(_ buffer: ByteBuffer) async throws {
        var buffer = buffer
        target.buffer.writeBuffer(&buffer)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
