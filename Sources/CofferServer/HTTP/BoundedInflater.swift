import CofferProtocol
import CompressNIO
import Hummingbird
import NIOCore
import NIOPosix

/// Inflates a gzip request body within bounds on size, ratio and time, off the threads that
/// serve requests: a gzip bomb costs at most `maximumRatio` times its own size in work and memory,
/// and never delays another client's request.
enum BoundedInflater {
    struct Limits: Sendable {
        /// Most bytes a body may inflate to (and most compressed bytes read).
        var maximumSize: Int
        /// Most inflated bytes per compressed byte, above `ratioFloor`; JSON of ciphertext inflates
        /// about 1.3 to 4 times, a run of zeros about 1000 times.
        var maximumRatio = 100
        /// Inflated bytes always allowed, whatever the ratio (small bodies compress very well).
        var ratioFloor = 1 << 20
        /// Longest time one body may take to inflate.
        var timeLimit: Duration = .seconds(2)
    }

    /// Inflates `compressed` (one gzip member) on NIO's thread pool.
    static func inflate(_ compressed: ByteBuffer, limits: Limits) async throws -> ByteBuffer {
        try await NIOThreadPool.singleton.runIfActive { try inflateNow(compressed, limits: limits) }
    }

    /// Inflates on the calling thread, with the same bounds.
    static func inflateNow(_ compressed: ByteBuffer, limits: Limits) throws -> ByteBuffer {
        let byRatio = compressed.readableBytes.multipliedReportingOverflow(by: limits.maximumRatio)
        let allowed = min(limits.maximumSize, max(limits.ratioFloor, byRatio.overflow ? Int.max : byRatio.partialValue))
        var input = compressed
        let decompressor: ZlibDecompressor
        do {
            decompressor = try ZlibDecompressor(algorithm: .gzip)
        } catch {
            throw APIError(.serviceUnavailable, code: ErrorCode.unavailable, message: "the server cannot inflate request bodies right now")
        }
        let started = ContinuousClock.now
        var output = ByteBufferAllocator().buffer(capacity: min(allowed, max(4096, compressed.readableBytes * 4)))
        var window = ByteBufferAllocator().buffer(capacity: 64 * 1024)
        while input.readableBytes > 0 {
            window.clear()
            let before = input.readableBytes
            do {
                try decompressor.inflate(from: &input, to: &window)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // The window is full; the loop goes on with the rest.
            } catch {
                // Corrupt data, or input that ends inside the stream.
                throw invalid
            }
            guard output.readableBytes + window.readableBytes <= allowed else {
                let message = allowed == limits.maximumSize
                    ? "request body inflates to more than \(limits.maximumSize) bytes"
                    : "request body inflates more than \(limits.maximumRatio) times its size; send it uncompressed"
                throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: message)
            }
            guard ContinuousClock.now - started <= limits.timeLimit else {
                throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body took too long to inflate; send it uncompressed")
            }
            let progressed = input.readableBytes < before || window.readableBytes > 0
            output.writeBuffer(&window)
            if !progressed { break }  // the stream ended
        }
        // Bytes after the stream's end, or a stream cut short: the trailer's length must match.
        guard input.readableBytes == 0, Self.trailerLength(of: compressed) == UInt32(truncatingIfNeeded: output.readableBytes) else {
            throw invalid
        }
        return output
    }

    private static let invalid = APIError(.badRequest, code: ErrorCode.invalidJSON, message: "request body is not valid gzip")

    /// ISIZE, the last four bytes of a gzip member: the inflated length modulo 2^32 (RFC 1952).
    private static func trailerLength(of compressed: ByteBuffer) -> UInt32? {
        guard compressed.readableBytes >= 18 else { return nil }
        return compressed.getInteger(at: compressed.writerIndex - 4, endianness: .little, as: UInt32.self)
    }
}

/// A request body that is read compressed (at most the inflation limit) and inflated when the
/// route first asks for it.
struct InflatingBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let compressed: RequestBody
    let limits: BoundedInflater.Limits

    init(compressed: RequestBody, limits: BoundedInflater.Limits) {
        self.compressed = compressed
        self.limits = limits
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: InflatingBody
        var done = false

        mutating func next() async throws -> ByteBuffer? {
            guard !done else { return nil }
            done = true
            let compressed: ByteBuffer
            do {
                compressed = try await body.compressed.collect(upTo: body.limits.maximumSize)
            } catch is NIOTooManyBytesError {
                throw APIError(.contentTooLarge, code: ErrorCode.payloadTooLarge, message: "request body is larger than \(body.limits.maximumSize) bytes")
            }
            return try await BoundedInflater.inflate(compressed, limits: body.limits)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(body: self)
    }
}
