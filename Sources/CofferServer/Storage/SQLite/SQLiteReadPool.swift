import NIOPosix
import Synchronization

/// Reader connections for SQLite's WAL mode, where reads run beside the writer. Like the writer,
/// each read transaction runs synchronously in one hop to a reader thread, and sees one snapshot.
///
/// There are exactly as many connections as reader threads, and a connection is taken and given
/// back on the thread that uses it, so a free one always exists when a job starts: no actor or
/// queue hop besides the one to the thread.
///
/// Point reads (one indexed row, such as the session check on every request) can instead run on
/// the caller's thread with a connection of their own (`pointRead`). On this kind of machine the
/// hop to a reader thread and back costs ~100 µs, many times the read itself; a WAL reader never
/// waits for the writer, so such a read holds the caller's thread only for microseconds.
final class SQLiteReadPool: Sendable {
    private let free: Mutex<[SQLiteConnectionBox]>
    private let freeForPointReads: Mutex<[SQLiteConnectionBox]>
    private let all: [SQLiteConnectionBox]
    private let threads: NIOThreadPool

    /// `threads` must have exactly `connections.count` threads; `pointReaders` serve `pointRead`.
    init(connections: [SQLiteConnectionBox], pointReaders: [SQLiteConnectionBox], threads: NIOThreadPool) {
        precondition(!connections.isEmpty, "a read pool needs at least one connection")
        self.free = Mutex(connections)
        self.freeForPointReads = Mutex(pointReaders)
        self.all = connections + pointReaders
        self.threads = threads
    }

    /// Runs a small, indexed read on the caller's thread when a point-read connection is free, and
    /// on a reader thread otherwise. Only for reads of a few rows by key.
    func pointRead<T: Sendable>(_ body: @escaping @Sendable (SQLiteDirectConnection) throws -> T) async throws -> T {
        guard let box = freeForPointReads.withLock({ $0.popLast() }) else { return try await read(body) }
        defer { freeForPointReads.withLock { $0.append(box) } }
        return try Self.transaction(on: box.value, body)
    }

    /// Runs `body` in a read transaction on a free reader connection.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteDirectConnection) throws -> T) async throws -> T {
        try await threads.runIfActive { [self] in
            // At most `threads` jobs run at once and each holds one connection, so this never fails.
            guard let box = self.free.withLock({ $0.popLast() }) else { preconditionFailure("more reader jobs than connections") }
            defer { self.free.withLock { $0.append(box) } }
            return try Self.transaction(on: box.value, body)
        }
    }

    private static func transaction<T>(on connection: SQLiteDirectConnection, _ body: (SQLiteDirectConnection) throws -> T) throws -> T {
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

    func close() async {
        for box in all {
            // Point-read connections are closed on a reader thread too; by now nothing uses them.
            try? await threads.runIfActive { box.value.close() }
        }
    }
}

/// Carries a direct connection to the thread that uses it. The pools hand each connection to one
/// task at a time (the read pool's free lists, or the writer's single drain loop), which runs it on one
/// thread; nothing else touches it, which is what makes the unchecked Sendable safe.
final class SQLiteConnectionBox: @unchecked Sendable {
    let value: SQLiteDirectConnection
    init(_ value: SQLiteDirectConnection) { self.value = value }
}
