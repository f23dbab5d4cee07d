import CofferProtocol
import CompressNIO
import Hummingbird

/// gzip in both directions, for large sync traffic: a request with `Content-Encoding: gzip` is
/// inflated (never past the route's size limit), and a JSON answer of 1 KiB or more is deflated
/// when the client sends `Accept-Encoding: gzip`. Compression comes from CompressNIO (zlib).
struct CompressionMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    /// Largest body accepted, compressed or inflated.
    let maximumBody: Int
    static let minimumCompressedSize = 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
            guard encoding == "gzip" else {
                throw APIError(.unsupportedMediaType, code: ErrorCode.unsupportedMediaType, message: "Content-Encoding must be gzip or identity")
            }
            var compressed = try await request.collectBoundedBody(limit: maximumBody)
            let inflated: ByteBuffer
            do {
                inflated = try compressed.decompress(with: .gzip(), maxSize: maximumBody)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body inflates to more than \(maximumBody) bytes")
            } catch {
                throw APIError(.badRequest, code: ErrorCode.invalidJSON, message: "request body is not valid gzip")
            }
            // The route still bounds what it reads: its own limit applies to the inflated bytes.
            request.body = RequestBody(buffer: inflated)
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
