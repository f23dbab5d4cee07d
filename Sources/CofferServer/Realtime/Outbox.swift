import Synchronization

/// What a socket has yet to send, bounded in bytes: a client that does not read is cut off once
/// its backlog passes the bound, instead of growing server memory.
final class Outbox: Sendable {
    enum Ending: Sendable, Equatable {
        /// The socket closed or the server is shutting down.
        case normal
        /// The backlog passed the bound.
        case tooSlow
        /// The session ended (revoked device, logout, expired token): the last message says why.
        case sessionEnded
        /// The server is shutting down.
        case shuttingDown
        /// A renewed AUTH on an open socket failed: the last message says why.
        case authenticationFailed
    }

    private struct State {
        var bytes = 0
        var peakBytes = 0
        var ending: Ending?
    }

    let stream: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        self.limit = limit
        (stream, continuation) = AsyncStream.makeStream(of: String.self)
    }

    /// Queues a message; false when the outbox is closed or this message overflowed it.
    @discardableResult
    func send(_ text: String) -> Bool {
        state.withLock { state in
            guard state.ending == nil else { return false }
            state.bytes += text.utf8.count
            state.peakBytes = max(state.peakBytes, state.bytes)
            guard state.bytes <= limit else {
                state.ending = .tooSlow
                continuation.finish()
                return false
            }
            continuation.yield(text)
            return true
        }
    }

    /// Called by the writer once a message has left.
    func sent(_ text: String) {
        state.withLock { $0.bytes -= text.utf8.count }
    }

    /// Sends `last` (if any) after what is queued, then ends the stream.
    func close(_ ending: Ending, last: String? = nil) {
        state.withLock { state in
            guard state.ending == nil else { return }
            state.ending = ending
            if let last { continuation.yield(last) }
            continuation.finish()
        }
    }

    var ending: Ending? { state.withLock { $0.ending } }
    /// The most bytes ever queued at once.
    var peakBytes: Int { state.withLock { $0.peakBytes } }
}
