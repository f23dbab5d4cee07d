import CofferProtocol
import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

/// A connection to a Coffer server's `/ws` (SPEC.md §9): JSON messages in both directions.
/// `messages` ends when the socket closes; `closeCode` then says how.
public final class RealtimeConnection: Sendable {
    public let messages: AsyncStream<RealtimeServerMessage>
    private let continuation: AsyncStream<RealtimeServerMessage>.Continuation
    private let state = Mutex<(outbound: WebSocketOutboundWriter?, closeCode: WebSocketErrorCode?, closeReason: String?)>((nil, nil, nil))

    private init() {
        (messages, continuation) = AsyncStream.makeStream(of: RealtimeServerMessage.self)
    }

    /// Opens the socket. `server` is the HTTP base URL (`http://host:port`); `readLimit` stops
    /// reading after that many messages (tests of a client that does not read).
    public static func open(server: String, logger: Logger = Logger(label: "coffer-realtime"), readLimit: Int? = nil) async throws -> RealtimeConnection {
        let connection = RealtimeConnection()
        let url = server.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://") + "/ws"
        let (opened, openedContinuation) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        Task {
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: WebSocketClientConfiguration(maxFrameSize: 16 << 20), logger: logger
                ) { inbound, outbound, _ in
                    connection.state.withLock { $0.outbound = outbound }
                    openedContinuation.yield(.success(()))
                    var read = 0
                    for try await message in inbound.messages(maxSize: 16 << 20) {
                        if case .text(let text) = message, let decoded = try? JSONDecoder().decode(RealtimeServerMessage.self, from: Data(text.utf8)) {
                            connection.continuation.yield(decoded)
                        }
                        read += 1
                        if let readLimit, read >= readLimit {
                            // Stop reading but keep the socket open, as a stuck client would.
                            while !Task.isCancelled { try await Task.sleep(for: .seconds(3600)) }
                        }
                    }
                }
                connection.state.withLock {
                    $0.closeCode = close?.closeCode
                    $0.closeReason = close?.reason
                }
            } catch {
                openedContinuation.yield(.failure(error))
            }
            connection.state.withLock { $0.outbound = nil }
            connection.continuation.finish()
            openedContinuation.finish()
        }
        for await result in opened {
            try result.get()
            return connection
        }
        throw CofferClientError.unreachable("the WebSocket connection closed before it opened")
    }

    /// Sends one message.
    public func send(_ message: RealtimeClientMessage) async throws {
        guard let outbound = state.withLock({ $0.outbound }) else { throw CofferClientError.unreachable("the WebSocket connection is closed") }
        try await outbound.write(.text(String(decoding: try JSONEncoder().encode(message), as: UTF8.self)))
    }

    /// Sends raw text (to test how the server handles malformed messages).
    public func sendRaw(_ text: String) async throws {
        guard let outbound = state.withLock({ $0.outbound }) else { throw CofferClientError.unreachable("the WebSocket connection is closed") }
        try await outbound.write(.text(text))
    }

    /// Closes the socket normally.
    public func close() async {
        try? await state.withLock({ $0.outbound })?.close(.normalClosure, reason: nil)
    }

    /// The close code the server sent (1000 normal, 1008 policy: failed or timed-out AUTH, ended
    /// session, too slow), once `messages` has ended.
    public var closeCode: UInt16? { state.withLock { $0.closeCode }.map { UInt16(webSocketErrorCode: $0) } }
    public var closeReason: String? { state.withLock { $0.closeReason } }
}
