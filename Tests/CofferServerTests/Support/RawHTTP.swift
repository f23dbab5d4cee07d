import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// What came back over a raw TCP connection: every byte the server sent, and whether the server
/// closed the connection (rather than the client giving up after its timeout).
struct RawAnswer: Sendable {
    var bytes: [UInt8]
    var closedByServer: Bool

    var text: String { String(decoding: bytes, as: UTF8.self) }
    /// The status code of the first response, if one came.
    var status: Int? {
        guard text.hasPrefix("HTTP/1.1 ") else { return nil }
        return Int(text.dropFirst(9).prefix(3))
    }
    /// The first response's header section, lowercased.
    var head: String {
        String(text.components(separatedBy: "\r\n\r\n").first ?? "").lowercased()
    }
    /// The first response's body.
    var body: String {
        let parts = text.components(separatedBy: "\r\n\r\n")
        return parts.count > 1 ? parts[1] : ""
    }
    /// How many responses came.
    var responseCount: Int { text.components(separatedBy: "HTTP/1.1 ").count - 1 }
}

/// A raw connection to a live server, for what no HTTP client will send.
final class RawConnection: Sendable {
    let channel: any Channel
    private let received: RawBytes

    init(port: Int) async throws {
        let received = RawBytes()
        self.received = received
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RawCollector(received: received)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    /// Sends `bytes`; the server may close before taking them all, which is no error here.
    func send(_ bytes: [UInt8]) async {
        try? await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Waits until the server closes, or gives up (and closes) after `timeout`.
    func readToClose(timeout: Duration = .seconds(5)) async -> RawAnswer {
        let gaveUp = Mutex(false)
        let channel = self.channel
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            gaveUp.withLock { $0 = true }
            channel.close(promise: nil)
        }
        try? await channel.closeFuture.get()
        timer.cancel()
        return RawAnswer(bytes: received.bytes, closedByServer: !gaveUp.withLock { $0 })
    }

    /// Every byte received so far.
    var bytesSoFar: [UInt8] { received.bytes }

    var isOpen: Bool { channel.isActive }

    func close() {
        channel.close(promise: nil)
    }

    /// One exchange: connect, send, read to close.
    static func exchange(port: Int, _ bytes: [UInt8], timeout: Duration = .seconds(5)) async throws -> RawAnswer {
        let connection = try await RawConnection(port: port)
        await connection.send(bytes)
        return await connection.readToClose(timeout: timeout)
    }
}

final class RawBytes: Sendable {
    private let storage = Mutex<[UInt8]>([])
    var bytes: [UInt8] { storage.withLock { $0 } }
    func append(_ buffer: ByteBuffer) { storage.withLock { $0 += buffer.readableBytesView } }
}

private final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let received: RawBytes

    init(received: RawBytes) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.append(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset after the answer still counts as the server closing.
        context.close(promise: nil)
    }
}
