import AsyncHTTPClient
import CofferCrypto
import CofferProtocol
import Foundation
import NIOCore
import NIOHTTP1

/// A failure talking to a Coffer server, phrased for the person using the client.
public enum CofferClientError: Error, Equatable, CustomStringConvertible {
    /// The server answered with an error body; `retryAfter` carries its `Retry-After` (seconds).
    case server(status: Int, code: String, message: String, retryAfter: Int? = nil)
    /// The server could not be reached or the connection broke.
    case unreachable(String)
    /// The server answered something that is not a Coffer response.
    case invalidResponse(String)

    public var description: String {
        switch self {
        case .server(let status, _, let message, _): "server refused (\(status)): \(message)"
        case .unreachable(let detail): "cannot reach the server: \(detail)"
        case .invalidResponse(let detail): "unexpected answer from the server: \(detail)"
        }
    }

    /// The machine code of a server error, if this is one.
    public var code: String? {
        if case .server(_, let code, _, _) = self { return code }
        return nil
    }

    /// How long the server asked to wait before retrying (429, 503), if it said.
    public var retryAfter: Int? {
        if case .server(_, _, _, let seconds) = self { return seconds }
        return nil
    }

    /// The HTTP status of a server error, if this is one.
    public var status: Int? {
        if case .server(let status, _, _, _) = self { return status }
        return nil
    }
}

/// Reports bytes sent so far and the total, for progress displays.
public typealias TransferProgress = @Sendable (_ sent: Int, _ total: Int) -> Void

/// JSON over HTTP to one Coffer server, with optional backup request signing.
public struct APIClient: Sendable {
    public let baseURL: String
    public let httpClient: HTTPClient
    /// When set, requests carry `X-Coffer-Timestamp` and `X-Coffer-Signature`.
    public var signatureSecret: String?
    public var timeout: TimeAmount = .seconds(120)
    /// Sees every request body before it is sent (tests use it to prove what never leaves the device).
    public var requestObserver: (@Sendable (_ method: String, _ path: String, _ body: Data) -> Void)?

    /// A client that fails fast when the server is unreachable (AsyncHTTPClient's shared client
    /// keeps retrying the connection until the request deadline, which reads as a hang).
    public static let defaultHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        // Coffer sets up no tracer; a span per request would cost ~2 % of a pull's CPU for nothing.
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .enabled(limit: .ratio(100))
        // A redirect would carry the request (a pull, a push, a login) to whatever origin the
        // server names; the answer is refused instead (`send`). A caller's own client must disallow them too.
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    public init(baseURL: String, httpClient: HTTPClient = APIClient.defaultHTTPClient, signatureSecret: String? = nil) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.httpClient = httpClient
        self.signatureSecret = signatureSecret
    }

    /// Sends a request and decodes the JSON answer, or throws `CofferClientError`.
    public func send<Response: Decodable>(
        _ method: HTTPMethod,
        _ pathWithQuery: String,
        body: (some Encodable & Sendable)? = Optional<Int>.none,
        as: Response.Type = Response.self,
        bearer: String? = nil,
        progress: TransferProgress? = nil
    ) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL + pathWithQuery)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        var bodyBytes = Data()
        if let body {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            bodyBytes = try encoder.encode(body)
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = Self.body(bodyBytes, progress: progress)
        }
        requestObserver?(method.rawValue, pathWithQuery, bodyBytes)
        if let signatureSecret {
            let timestamp = String(Int(Date().timeIntervalSince1970))
            let signature = RequestSignature.sign(
                secret: signatureSecret, timestamp: timestamp, method: method.rawValue, pathWithQuery: pathWithQuery, body: bodyBytes
            )
            request.headers.add(name: BackupSignatureHeader.timestamp, value: timestamp)
            request.headers.add(name: BackupSignatureHeader.signature, value: signature)
        }
        let response: HTTPClientResponse
        let payload: ByteBuffer
        do {
            response = try await httpClient.execute(request, timeout: timeout)
            payload = try await response.body.collect(upTo: 64 * 1024 * 1024)
        } catch let error as HTTPClientError {
            throw CofferClientError.unreachable(Self.describe(error))
        } catch let error as CofferClientError {
            throw error
        } catch {
            let detail = "\(error)"
            // NIO's connection errors read badly ("connection reset (error set): …"); say what happened.
            throw CofferClientError.unreachable(detail.contains("Connection refused") ? "connection refused" : detail)
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            if (300..<400).contains(Int(response.status.code)) {
                let target = response.headers.first(name: "Location").map { "\"\($0)\"" } ?? "an unnamed location"
                throw CofferClientError.invalidResponse("the server answered with a redirect to \(target) (HTTP \(response.status.code)); refusing to follow it")
            }
            if let error = try? JSONDecoder().decode(ErrorBody.self, from: Data(payload.readableBytesView)) {
                let retryAfter = response.headers.first(name: "Retry-After").flatMap { Int($0) }
                throw CofferClientError.server(status: Int(response.status.code), code: error.code, message: error.error, retryAfter: retryAfter)
            }
            throw CofferClientError.invalidResponse("HTTP \(response.status.code) without a Coffer error body")
        }
        do {
            return try Self.decodeAnswer(Response.self, from: payload)
        } catch {
            throw CofferClientError.invalidResponse("the body is not the expected JSON (\(error))")
        }
    }

    /// Decodes a JSON answer. Types with a hand reader (`JSONByteReadable`: a pull answer, the most
    /// frequent) are read by it; should that fail, `JSONDecoder` reads them and names the problem.
    public static func decodeAnswer<Response: Decodable>(_ type: Response.Type, from payload: ByteBuffer) throws -> Response {
        if let value = payload.withUnsafeReadableBytes({ JSONByteReader.handRead(Response.self, from: $0) }) { return value }
        return try JSONDecoder().decode(Response.self, from: Data(payload.readableBytesView))
    }

    /// Streams `bytes` in chunks so that progress follows what the connection actually takes.
    private static func body(_ bytes: Data, progress: TransferProgress?) -> HTTPClientRequest.Body {
        guard let progress, bytes.count > 256 * 1024 else {
            return .bytes(ByteBuffer(bytes: bytes))
        }
        let chunkSize = 64 * 1024
        let total = bytes.count
        let chunks = stride(from: 0, to: total, by: chunkSize).map { offset in
            ByteBuffer(bytes: bytes[offset..<min(offset + chunkSize, total)])
        }
        let sequence = ProgressSequence(chunks: chunks, total: total, progress: progress)
        return .stream(sequence, length: .known(Int64(total)))
    }

    private static func describe(_ error: HTTPClientError) -> String {
        switch error {
        case .connectTimeout: "connection timed out"
        case .deadlineExceeded: "the request timed out"
        case .remoteConnectionClosed: "the server closed the connection"
        default: "\(error)"
        }
    }
}

/// Body chunks that report progress as the client pulls them.
private struct ProgressSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let chunks: [ByteBuffer]
    let total: Int
    let progress: TransferProgress

    struct AsyncIterator: AsyncIteratorProtocol {
        var index = 0
        var sent = 0
        let sequence: ProgressSequence

        mutating func next() async -> ByteBuffer? {
            guard index < sequence.chunks.count else { return nil }
            let chunk = sequence.chunks[index]
            index += 1
            sent += chunk.readableBytes
            sequence.progress(sent, sequence.total)
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(sequence: self) }
}
