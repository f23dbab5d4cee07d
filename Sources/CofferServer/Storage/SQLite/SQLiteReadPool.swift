import NIOPosix

/// Reader connections for SQLite's WAL mode, where reads run beside the writer. Like the writer,
/// each read transaction runs synchronously in one hop to a reader thread, and sees one snapshot.
final class SQLiteReadPool: Sendable {
    private let connections: ConnectionPool<SQLiteConnectionBox>
    private let threads: NIOThreadPool

    init(connections: [SQLiteDirectConnection], threads: NIOThreadPool) {
        self.connections = ConnectionPool(connections.map(SQLiteConnectionBox.init))
        self.threads = threads
    }

    /// Runs `body` in a read transaction on a free reader connection.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteDirectConnection) throws -> T) async throws -> T {
        let threads = self.threads
        return try await connections.with { box in
            try await threads.runIfActive {
                let connection = box.value
                try connection.query("BEGIN")
                do {
                    let result = try body(connection)
                    try connection.query("COMMIT")
                    return result
                } catch {
                    _ = try? connection.query("ROLLBACK")
                    throw error
                }
            }
        }
    }

    func close() async {
        let threads = self.threads
        for box in await connections.all {
            try? await threads.runIfActive { box.value.close() }
        }
    }
}

/// Carries a direct connection to the thread that uses it. The pools hand each connection to one
/// task at a time (`ConnectionPool`, or the writer's single drain loop), which runs it on one
/// thread; nothing else touches it, which is what makes the unchecked Sendable safe.
final class SQLiteConnectionBox: @unchecked Sendable {
    let value: SQLiteDirectConnection
    init(_ value: SQLiteDirectConnection) { self.value = value }
}
