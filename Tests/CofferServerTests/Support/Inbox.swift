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
        await wait(forClose: false, deadline: .now + timeout)
        return buffer.isEmpty ? nil : buffer.removeFirst()
    }

    /// Whether the socket closed within `timeout` (messages still buffered are dropped).
    func closed(within timeout: Duration = .seconds(5)) async -> Bool {
        await wait(forClose: true, deadline: .now + timeout)
        buffer.removeAll()
        return finished
    }

    /// Returns once a message is buffered (or, `forClose`, the socket closed), or `deadline` passes.
    private func wait(forClose: Bool, deadline: ContinuousClock.Instant) async {
        while !(finished || (!forClose && !buffer.isEmpty)) {
            let remaining = deadline - .now
            guard remaining > .zero else { return }
            await withCheckedContinuation { continuation in
                waiter = continuation
                Task { [self] in
                    try? await Task.sleep(for: remaining)
                    self.wake()  // the task runs on this actor
                }
            }
        }
    }
}
