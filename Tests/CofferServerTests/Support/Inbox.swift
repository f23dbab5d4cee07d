import CofferKit
import CofferProtocol

/// Buffers a socket's messages so a test can take them one at a time, each wait bounded.
actor Inbox {
    private var buffer: [RealtimeServerMessage] = []
    private var finished = false
    private var waiter: CheckedContinuation<Void, Never>?

    init(_ connection: RealtimeConnection) {
        Task { [self] in
            for await message in connection.messages { await self.push(message) }
            await self.finish()
        }
    }

    private func push(_ message: RealtimeServerMessage) {
        buffer.append(message)
        wake()
    }

    private func finish() {
        finished = true
        wake()
    }

    private func wake() {
        waiter?.resume()
        waiter = nil
    }

    /// The next message; nil if the socket closed first or nothing came within `timeout`.
    func next(within timeout: Duration = .seconds(5)) async -> RealtimeServerMessage? {
        let deadline = ContinuousClock.now + timeout
        while buffer.isEmpty && !finished {
            let remaining = deadline - .now
            guard remaining > .zero else { return nil }
            await withCheckedContinuation { continuation in
                waiter = continuation
                Task { [self] in
                    try? await Task.sleep(for: remaining)
                    await self.wake()
                }
            }
        }
        return buffer.isEmpty ? nil : buffer.removeFirst()
    }

    /// Whether the socket closed within `timeout` (messages still buffered are dropped).
    func closed(within timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !finished {
            buffer.removeAll()
            let remaining = deadline - .now
            guard remaining > .zero else { return false }
            await withCheckedContinuation { continuation in
                waiter = continuation
                Task { [self] in
                    try? await Task.sleep(for: remaining)
                    await self.wake()
                }
            }
        }
        return true
    }
}
