import CofferProtocol
import Foundation
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// The server's connections: Hummingbird's HTTP/1 channel with its WebSocket upgrade, plus a guard
/// on both sides of NIO's HTTP/1 decoder. Without it a request the parser refuses before the first
/// head is never answered and its connection stays open, and a client can hold a connection (and a
/// file descriptor) for as long as it likes by sending its head a byte at a time.
struct GuardedHTTPChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value
    let inner: HTTP1WebSocketUpgradeChannel
    let limits: ConnectionLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = self.limits
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let connection = GuardedConnection(limits: limits)
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(ConnectionByteGuard(connection: connection), position: .first)
            try pipeline.addHandler(RequestHeadGuard(connection: connection), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        // The inner channel logs at error level whenever a connection closes before a request
        // completes, which is every refusal and timeout above: a client could fill the log at will.
        // Its other messages here are debug or trace, below the server's levels anyway.
        var quiet = logger
        quiet.logLevel = .critical
        await inner.handle(value: value, logger: quiet)
    }
}

/// What the two guards of one connection share. Both handlers run on the connection's event loop,
/// so this needs no locking; it never leaves that loop.
final class GuardedConnection {
    enum Phase {
        /// Waiting for (the rest of) a request head; the head timeout runs.
        case awaitingHead
        /// A head arrived and its body is still coming; the idle timeout runs from the last byte.
        case readingBody
        /// The whole request is in; the route is working on it (no timeout: the route bounds itself).
        case awaitingResponse
        /// Between requests; the idle timeout runs.
        case idle
        /// Refused or timed out; the answer is on its way and the connection closes after it.
        case closing
        /// Upgraded to a WebSocket, which has its own pings and timeouts.
        case upgraded
    }

    let limits: ConnectionLimits
    private(set) var phase = Phase.awaitingHead
    private var phaseStart = NIODeadline.now()
    var lastRead = NIODeadline.now()
    /// Bytes received towards the head being awaited, and whether one of them ended a line: a head
    /// that overflows before its first line ends has an overlong request target (414, not 431).
    var headBytes = 0
    var headLineEnded = false
    /// The first bytes of that head, to tell a bare-LF line ending from a bad version.
    var headStart: [UInt8] = []
    /// Heads read whose response has not ended yet.
    var openRequests = 0
    var responseInFlight = false
    private var pendingRefusal: Refusal?
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    /// The context of the guard next to the socket: bytes written from it go straight out.
    var socket: ChannelHandlerContext?

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    struct Refusal {
        var status: HTTPResponseStatus
        var code: String
        var message: String
    }

    func enter(_ next: Phase) {
        guard phase != .closing, phase != .upgraded else { return }
        phase = next
        phaseStart = .now()
        if next == .awaitingHead {
            headBytes = 0
            headLineEnded = false
            headStart.removeAll(keepingCapacity: true)
        }
        scheduleTimer()
    }

    private var deadline: NIODeadline? {
        switch phase {
        case .awaitingHead: return phaseStart + Self.amount(limits.requestHeadTimeout)
        case .readingBody: return lastRead + Self.amount(limits.idleTimeout)
        case .idle: return phaseStart + Self.amount(limits.idleTimeout)
        case .awaitingResponse, .closing, .upgraded: return nil
        }
    }

    /// Keeps one timer; a later deadline leaves it be (it looks again when it fires), so a request
    /// costs no timer churn, and only an earlier one replaces it.
    func scheduleTimer() {
        guard let deadline, let socket else { return }
        if timer != nil, let timerDeadline, timerDeadline <= deadline { return }
        cancelTimer()
        timerDeadline = deadline
        timer = socket.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.timerFired()
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard let deadline else { return }
        guard NIODeadline.now() >= deadline else {
            // Reads moved the deadline on; look again then instead of rescheduling on every read.
            scheduleTimer()
            return
        }
        switch phase {
        case .awaitingHead where headBytes > 0, .readingBody:
            refuse(.init(status: .requestTimeout, code: ErrorCode.requestTimeout, message: "the request did not arrive in time; send it whole within \(Self.seconds(phase == .readingBody ? limits.idleTimeout : limits.requestHeadTimeout)) s"))
        default:
            // Nothing was begun: a connection that stays silent is closed without an answer.
            phase = .closing
            socket?.close(promise: nil)
        }
    }

    /// Answers with `refusal` (once the response in flight, if any, has ended) and closes.
    func refuse(_ refusal: Refusal) {
        guard phase != .closing, phase != .upgraded else { return }
        phase = .closing
        cancelTimer()
        if responseInFlight {
            // The route's answer is still being written; interleaving ours would corrupt both.
            pendingRefusal = refusal
        } else {
            send(refusal)
        }
    }

    /// A response ended: sends a refusal that waited for it, or starts the idle timeout.
    func responseEnded() {
        responseInFlight = false
        openRequests = max(0, openRequests - 1)
        if let refusal = pendingRefusal {
            pendingRefusal = nil
            send(refusal)
        } else if openRequests == 0, phase == .awaitingResponse {
            enter(.idle)
        }
    }

    func upgraded() {
        phase = .upgraded
        cancelTimer()
    }

    func stop() {
        cancelTimer()
        socket = nil
    }

    /// Writes the answer, ends the output, and closes fully once the client has gone or after a
    /// short linger: closing at once, with unread request bytes, would reset the connection and
    /// could destroy the answer before the client reads it.
    private func send(_ refusal: Refusal) {
        guard let socket else { return }
        let bytes = Self.response(refusal, allocator: socket.channel.allocator)
        let channel = socket.channel
        let loop = socket.eventLoop
        socket.writeAndFlush(NIOAny(bytes)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            loop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
        }
    }

    /// A whole HTTP/1.1 answer with the JSON error body and the headers every answer carries.
    static func response(_ refusal: Refusal, allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = (try? JSONEncoder().encode(ErrorBody(error: refusal.message, code: refusal.code))) ?? Data()
        var head = "HTTP/1.1 \(refusal.status.code) \(refusal.status.reasonPhrase)\r\n"
        head += "Content-Type: application/json\r\n"
        head += "Content-Length: \(body.count)\r\n"
        head += "Connection: close\r\n"
        head += "Cache-Control: no-store\r\n"
        for (name, value) in SecurityHeadersMiddleware.always { head += "\(name.rawName): \(value)\r\n" }
        head += "X-Request-Id: \(UUID().uuidString.lowercased())\r\n\r\n"
        var buffer = allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        return buffer
    }

    /// What the parser's refusal means for the client.
    func refusal(for error: HTTPParserError) -> Refusal {
        switch error {
        case .headerOverflow where phase == .awaitingHead && !headLineEnded:
            return .init(status: .uriTooLong, code: ErrorCode.uriTooLong, message: "the request target is longer than \(limits.maxURILength) bytes")
        case .headerOverflow:
            return .init(
                status: .requestHeaderFieldsTooLarge, code: ErrorCode.headersTooLarge,
                message: "the request headers pass a limit: \(limits.maxHeaderFieldSize) bytes a field, \(limits.maxHeaderListSize) in all, \(limits.maxHeaderFieldCount) fields"
            )
        case .invalidMethod:
            return .init(status: .notImplemented, code: ErrorCode.methodNotImplemented, message: "the request method is not one this server implements")
        case .invalidVersion where Self.firstLineEndsBare(headStart):
            return .init(status: .badRequest, code: ErrorCode.malformedRequest, message: "the request's lines must end with CRLF")
        case .invalidVersion:
            return .init(status: .httpVersionNotSupported, code: ErrorCode.httpVersionNotSupported, message: "this server speaks HTTP/1.1 (and 1.0) only")
        default:
            return .init(status: .badRequest, code: ErrorCode.malformedRequest, message: "the request is not valid HTTP/1.1: \(Self.describe(error))")
        }
    }

    /// Whether the request line reads `... HTTP/1.x` and ends in a bare LF (llhttp calls that a bad version).
    private static func firstLineEndsBare(_ start: [UInt8]) -> Bool {
        guard let lf = start.firstIndex(of: UInt8(ascii: "\n")) else { return false }
        let line = start[..<lf]
        return line.last != UInt8(ascii: "\r") && (line.suffix(8).elementsEqual("HTTP/1.1".utf8) || line.suffix(8).elementsEqual("HTTP/1.0".utf8))
    }

    /// The parser's refusal in words (never the bytes that caused it).
    private static func describe(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidURL: return "the request target is not a valid URL"
        case .invalidCharactersUsed, .invalidHeaderToken: return "a header holds a character HTTP does not allow (or a line is not a header)"
        case .lfExpected: return "a line does not end with CRLF"
        case .invalidContentLength: return "Content-Length is not a decimal number the server can hold"
        case .unexpectedContentLength: return "Content-Length appears twice, or beside Transfer-Encoding"
        case .invalidChunkSize: return "a chunk size is not valid hexadecimal"
        case .invalidConstant: return "the request line is not METHOD TARGET HTTP/1.1"
        case .paused: return "this server does not speak HTTP/2 without TLS upgrade (or the request asked for a protocol switch it cannot make)"
        case .trailingGarbage: return "bytes follow the request that are not a request"
        default: return "the parser refused it"
        }
    }

    private static func amount(_ seconds: Double) -> TimeAmount {
        .nanoseconds(Int64(min(max(seconds, 0), 1e9) * 1e9))
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// Next to the socket: counts what arrives towards a head, keeps the timeouts' clock, and drops
/// whatever arrives once the connection is being closed.
final class ConnectionByteGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let connection: GuardedConnection

    init(connection: GuardedConnection) {
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        connection.socket = context
        if context.channel.isActive { connection.enter(.awaitingHead) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connection.stop()
    }

    func channelActive(context: ChannelHandlerContext) {
        connection.enter(.awaitingHead)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch connection.phase {
        case .closing:
            return
        case .upgraded:
            break
        case .idle:
            connection.enter(.awaitingHead)
            countHeadBytes(data)
        case .awaitingHead:
            countHeadBytes(data)
        case .readingBody:
            connection.lastRead = .now()
        case .awaitingResponse:
            break
        }
        context.fireChannelRead(data)
    }

    private func countHeadBytes(_ data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if connection.headStart.count < 256 {
            connection.headStart += buffer.readableBytesView.prefix(256 - connection.headStart.count)
        }
        connection.headBytes += buffer.readableBytes
        if !connection.headLineEnded, buffer.readableBytesView.contains(UInt8(ascii: "\n")) {
            connection.headLineEnded = true
        }
    }
}

/// After the decoder: answers what the parser refused, checks what it let through (version,
/// target length), follows requests and responses for the timeouts, and leaves on an upgrade.
final class RequestHeadGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    let connection: GuardedConnection
    private var leaveAfterFlush = false
    /// For each request read and not yet answered (pipelined ones queue up), whether its answer ends the connection.
    private var closesAfterAnswer: [Bool] = []

    init(connection: GuardedConnection) {
        self.connection = connection
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        guard leaveAfterFlush else { return }
        leaveAfterFlush = false
        let socket = connection.socket
        connection.stop()
        if let socket { context.pipeline.syncOperations.removeHandler(context: socket, promise: nil) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard connection.phase != .closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.version.major != 1 || head.version.minor > 1 {
                connection.refuse(.init(status: .httpVersionNotSupported, code: ErrorCode.httpVersionNotSupported, message: "this server speaks HTTP/1.1 (and 1.0) only"))
                return
            }
            if head.uri.utf8.count > connection.limits.maxURILength {
                connection.refuse(.init(status: .uriTooLong, code: ErrorCode.uriTooLong, message: "the request target is longer than \(connection.limits.maxURILength) bytes"))
                return
            }
            connection.openRequests += 1
            // HTTP/1.0 closes after each answer unless it asks to keep the connection (Hummingbird
            // only honours `Connection: close`, so a 1.0 client would wait for a close never sent).
            closesAfterAnswer.append(!head.isKeepAlive)
            connection.lastRead = .now()
            connection.enter(.readingBody)
        case .body:
            break
        case .end:
            connection.enter(connection.openRequests == 0 ? .idle : .awaitingResponse)
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // Answered here and closed; passing it on would only make the layers above try again.
        connection.refuse(connection.refusal(for: parserError))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status == .switchingProtocols:
            // The WebSocket that follows has its own pings and timeouts, and frames, not HTTP parts:
            // both guards leave once this answer is flushed (leaving here would drop that flush).
            connection.upgraded()
            leaveAfterFlush = true
            context.write(data, promise: promise)
        case .head:
            connection.responseInFlight = true
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end where closesAfterAnswer.first == true:
            closesAfterAnswer.removeFirst()
            let written = promise ?? context.eventLoop.makePromise()
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            context.write(data, promise: written)
            connection.responseEnded()
        case .end:
            if !closesAfterAnswer.isEmpty { closesAfterAnswer.removeFirst() }
            context.write(data, promise: promise)
            connection.responseEnded()
        }
    }
}
