import SQLiteNIO
import Synchronization

/// The single SQLite writer, with group commit: write transactions that arrive while one is
/// running are run back to back inside one transaction and share its COMMIT, so many
/// concurrent writes pay for one fsync instead of one each.
///
/// Each write stays atomic on its own: if any write of a batch fails, the whole batch is rolled
/// back and every write is run again alone, so a failure never takes another write with it and
/// never leaves half of itself behind.
final class SQLiteWriteQueue: Sendable {
    private struct Job: Sendable {
        let run: @Sendable (SQLiteConnection) async throws -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    private struct State {
        var jobs: [Job] = []
        var draining = false
    }

    let connection: SQLiteConnection
    private let state = Mutex(State())
    /// Bounds how long one batch holds results back.
    private static let maximumBatch = 64

    init(connection: SQLiteConnection) {
        self.connection = connection
    }

    /// Runs `body` in a write transaction and returns once that transaction has committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) async throws -> T) async throws -> T {
        let result = ResultBox<T>()
        return try await withCheckedThrowingContinuation { continuation in
            let job = Job(
                run: { connection in result.set(try await body(connection)) },
                finish: { error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let value = result.take() {
                        continuation.resume(returning: value)
                    } else {
                        // Unreachable: a job finishes without error only after its run stored a value.
                        continuation.resume(throwing: CancellationError())
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
            if batch.count == 1 {
                await runAlone(batch[0])
            } else {
                await runBatch(batch)
            }
        }
    }

    private func runBatch(_ batch: [Job]) async {
        do {
            _ = try await connection.query("BEGIN IMMEDIATE")
            for job in batch {
                try await job.run(connection)
            }
            _ = try await connection.query("COMMIT")
        } catch {
            _ = try? await connection.query("ROLLBACK")
            for job in batch {
                await runAlone(job)
            }
            return
        }
        for job in batch {
            job.finish(nil)
        }
    }

    private func runAlone(_ job: Job) async {
        do {
            _ = try await connection.query("BEGIN IMMEDIATE")
        } catch {
            job.finish(error)
            return
        }
        do {
            try await job.run(connection)
            _ = try await connection.query("COMMIT")
            job.finish(nil)
        } catch {
            _ = try? await connection.query("ROLLBACK")
            job.finish(error)
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
