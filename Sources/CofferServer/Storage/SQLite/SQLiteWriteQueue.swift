import NIOPosix
import Synchronization

/// The single SQLite writer, with group commit: write transactions that arrive while one is
/// running are run back to back inside one transaction and share its COMMIT, so many
/// concurrent writes pay for one fsync instead of one each. A whole batch runs synchronously in
/// one hop to the writer thread.
///
/// Each write stays atomic on its own: if any write of a batch fails, the whole batch is rolled
/// back and every write is run again alone, so a failure never takes another write with it and
/// never leaves half of itself behind.
final class SQLiteWriteQueue: Sendable {
    /// A write transaction's body; it runs on the writer thread.
    typealias Body<T> = @Sendable (SQLiteDirectConnection) throws -> T

    private struct Job: Sendable {
        let run: @Sendable (SQLiteDirectConnection) throws -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var jobs: [Job] = []
        var draining = false
    }

    private let connection: SQLiteConnectionBox
    private let thread: NIOThreadPool
    private let state = Mutex(State())
    /// Bounds how long one batch holds results back.
    private static let maximumBatch = 128

    init(connection: SQLiteDirectConnection, thread: NIOThreadPool) {
        self.connection = SQLiteConnectionBox(connection)
        self.thread = thread
    }

    /// Runs `body` in a write transaction and returns once that transaction has committed.
    func write<T: Sendable>(_ body: @escaping Body<T>) async throws -> T {
        let result = ResultBox<T>()
        return try await withCheckedThrowingContinuation { continuation in
            let job = Job(
                run: { connection in result.set(try body(connection)) },
                finish: { error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let value = result.take() {
                        continuation.resume(returning: value)
                    } else {
                        // Unreachable: a job finishes without error only after its run stored a value.
                        continuation.resume(throwing: SQLiteWriteError(message: "write produced no result"))
                    }
                }
            )
            let startDraining = state.withLock { state -> Bool in
                state.jobs.append(job)
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if startDraining {
                Task { await self.drain() }
            }
        }
    }

    /// Closes the connection on the writer thread, after pending writes.
    func close() async {
        let connection = self.connection
        try? await thread.runIfActive { connection.value.close() }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Job] in
                guard !state.jobs.isEmpty else {
                    state.draining = false
                    return []
                }
                let batch = Array(state.jobs.prefix(Self.maximumBatch))
                state.jobs.removeFirst(batch.count)
                return batch
            }
            guard !batch.isEmpty else { return }
            let connection = self.connection
            let outcomes: [(any Error)?]
            do {
                outcomes = try await thread.runIfActive { Self.run(batch, on: connection.value) }
            } catch {
                outcomes = Array(repeating: error, count: batch.count)
            }
            for (job, outcome) in zip(batch, outcomes) {
                job.finish(outcome)
            }
        }
    }

    /// Runs on the writer thread.
    private static func run(_ batch: [Job], on connection: SQLiteDirectConnection) -> [(any Error)?] {
        if batch.count > 1 {
            do {
                try connection.query("BEGIN IMMEDIATE")
                for job in batch {
                    try job.run(connection)
                }
                try connection.query("COMMIT")
                return Array(repeating: nil, count: batch.count)
            } catch {
                _ = try? connection.query("ROLLBACK")
            }
        }
        return batch.map { job in
            do {
                try connection.query("BEGIN IMMEDIATE")
            } catch {
                return error
            }
            do {
                try job.run(connection)
                try connection.query("COMMIT")
                return nil
            } catch {
                _ = try? connection.query("ROLLBACK")
                return error
            }
        }
    }
}

/// Holds one job's result between its run and the commit that makes it final.
private final class ResultBox<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)

    func set(_ newValue: T) {
        value.withLock { $0 = newValue }
    }

    func take() -> T? {
        value.withLock { $0 }
    }
}
