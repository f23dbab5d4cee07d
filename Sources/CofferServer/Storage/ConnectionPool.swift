/// A fixed set of connections handed out one task at a time, first come first served.
///
/// Used for the SQLite reader connections.
actor ConnectionPool<Connection: Sendable> {
    private var free: [Connection]
    private var waiters: [CheckedContinuation<Connection, Never>] = []
    let all: [Connection]

    init(_ connections: [Connection]) {
        precondition(!connections.isEmpty, "a pool needs at least one connection")
        self.free = connections
        self.all = connections
    }

    private func take() async -> Connection {
        if let connection = free.popLast() { return connection }
        return await withCheckedContinuation { waiters.append($0) }
    }

    private func put(_ connection: Connection) {
        if waiters.isEmpty {
            free.append(connection)
        } else {
            waiters.removeFirst().resume(returning: connection)
        }
    }

    /// Runs `body` with exclusive use of one connection.
    nonisolated func with<T: Sendable>(_ body: (Connection) async throws -> T) async throws -> T {
        let connection = await take()
        do {
            let result = try await body(connection)
            await put(connection)
            return result
        } catch {
            await put(connection)
            throw error
        }
    }
}
