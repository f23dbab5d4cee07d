import CofferProtocol
import Foundation
import Hummingbird
import NIOCore

/// Reading JSON request bodies with the errors SPEC.md §3 asks for: 415 for another content type,
/// 413 before an oversized body is buffered, 400 naming the field that is missing or wrong.
extension Request {
    /// Collects the body (at most `limit` bytes) and decodes it.
    mutating func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        try requireJSONContentType()
        let buffer = try await collectBoundedBody(limit: limit)
        return try JSONBody.decode(type, from: buffer)
    }

    /// Collects the body, refusing with 413 when `Content-Length` or the bytes received pass `limit`.
    mutating func collectBoundedBody(limit: Int) async throws -> ByteBuffer {
        if let declared = headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body is larger than \(limit) bytes")
        }
        do {
            return try await collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body is larger than \(limit) bytes")
        }
    }

    func requireJSONContentType() throws {
        let mediaType = headers[.contentType]?
            .split(separator: ";").first?
            .trimmingHTTPWhitespace().lowercased()
        guard mediaType == "application/json" else {
            throw APIError(
                .unsupportedMediaType, code: ErrorCode.unsupportedMediaType,
                message: "request body must be JSON with Content-Type: application/json"
            )
        }
    }
}

enum JSONBody {
    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        guard buffer.readableBytes > 0 else {
            throw APIError(.badRequest, code: ErrorCode.invalidJSON, message: "request body is empty; a JSON object is required")
        }
        // PostgreSQL text cannot hold U+0000 (the query would fail with a 500), and no Coffer field
        // needs it: refused for every body on both backends alike.
        if buffer.withUnsafeReadableBytes(containsEscapedNUL) {
            throw APIError(.badRequest, code: ErrorCode.invalidJSON, message: "request body strings must not contain U+0000")
        }
        // A hand reader (a pull request's) goes first; JSONDecoder names the problem when it refuses.
        if let value = buffer.withUnsafeReadableBytes({ JSONByteReader.handRead(T.self, from: $0) }) { return value }
        do {
            return try JSONDecoder().decode(type, from: Data(buffer: buffer, byteTransferStrategy: .noCopy))
        } catch let error as DecodingError {
            throw buffer.withUnsafeReadableBytes { APIError(decoding: error, of: $0) }
        }
    }

    /// True when the JSON text holds the escape `\u0000` (a raw NUL is invalid JSON already).
    static func containsEscapedNUL(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let zero = UInt8(ascii: "0")
        var index = 0
        // memchr finds each backslash at memory speed; most bodies (base64 ciphertext) have none.
        while index + 5 < bytes.count, let found = memchr(base + index, Int32(UInt8(ascii: "\\")), bytes.count - index) {
            index = base.distance(to: UnsafeRawPointer(found))
            guard index + 5 < bytes.count else { return false }
            if bytes[index + 1] == UInt8(ascii: "u"), bytes[index + 2] == zero, bytes[index + 3] == zero, bytes[index + 4] == zero,
                bytes[index + 5] == zero
            {
                return true
            }
            index += 2  // past the escaped character, so `\\u0000` (a backslash, then text) is not one
        }
        return false
    }
}

extension APIError {
    /// A 400 that names the field at fault, also for a number no integer can hold (which
    /// `JSONDecoder` reports as invalid JSON, naming no field).
    init(decoding error: DecodingError, of bytes: UnsafeRawBufferPointer) {
        if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, let path = JSONByteReader.pathOfFirstNonInteger(in: bytes) {
            self = .invalidField(path, "must be an integer of at most 64 bits (no fraction or exponent)")
            return
        }
        self.init(decoding: error)
    }

    /// A 400 that names the field at fault.
    init(decoding error: DecodingError) {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            (codingPath + (last.map { [$0] } ?? [])).map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(.badRequest, code: ErrorCode.missingField, message: "missing field '\(path(context.codingPath, key))'")
        case .typeMismatch(let expected, let context):
            if context.codingPath.isEmpty {
                self.init(.badRequest, code: ErrorCode.invalidJSON, message: "request body must be a JSON object")
            } else {
                self.init(.badRequest, code: ErrorCode.invalidField, message: "field '\(path(context.codingPath))' must be \(Self.describe(expected))")
            }
        case .valueNotFound(let expected, let context):
            self.init(.badRequest, code: ErrorCode.invalidField, message: "field '\(path(context.codingPath))' must be \(Self.describe(expected)), not null")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                self.init(.badRequest, code: ErrorCode.invalidJSON, message: "request body is not valid UTF-8 JSON")
            } else {
                self.init(.badRequest, code: ErrorCode.invalidField, message: "field '\(path(context.codingPath))' is malformed")
            }
        @unknown default:
            self.init(.badRequest, code: ErrorCode.invalidJSON, message: "request body is not valid JSON")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type: "an integer"
        case is Bool.Type: "a boolean"
        case is Double.Type: "a number"
        default: "of type \(type)"
        }
    }
}
