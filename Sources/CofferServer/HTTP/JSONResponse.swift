import Foundation
import Hummingbird

/// JSON responses with one encoder configuration for the whole API.
enum JSONResponse {
    static func ok(_ value: some Encodable) throws -> Response {
        try make(.ok, value)
    }

    static func make(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
