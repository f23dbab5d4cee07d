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
        return make(status, json: try encoder.encode(value))
    }

    /// A body already encoded (see `JSONByteWriter`).
    static func make(_ status: HTTPResponse.Status, json bytes: some Sequence<UInt8>) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes))
        )
    }
}
