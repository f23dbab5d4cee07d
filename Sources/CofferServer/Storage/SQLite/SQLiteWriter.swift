import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// The single SQLite writer, with group commit: write transactions that arrive while one is
/// running are run back to back inside one transaction and share its COMMIT, so many
/// concurrent writes pay for one fsync instead of one each.
///
/// Each write stays atomic on its own: if any write of a batch fails, the whole batch is rolled
/// back and every write is run again alone, so a failure never takes another write with it and
/// never leaves half of itself behind.
///
/// The actor runs on the writer connection's own event loop, and write bodies are isolated to
/// it, so a statement's result resumes the transaction on that thread directly instead of
/// queueing behind request handlers for a cooperative thread.
actor SQLiteWriter {
    typealias Body<T> = @Sendable (isolated SQLiteWriter) async throws -> T

    private struct Job: Sendable {
        let run: @Sendable (isolated SQLiteWriter) async throws -> Void
        let finish: @Sendable ((any Error)?) -> Void
    }

    nonisolated let connection: SQLiteConnection
    private nonisolated let loop: any EventLoop
    private var jobs: [Job] = []
    private var draining = false
    /// Bounds how long one batch holds results back.
    private static let maximumBatch = 64

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        loop.executor.asUnownedSerialExecutor()
    }

    init(connection: SQLiteConnection, loop: any EventLoop) {
        self.connection = connection
        self.loop = loop
    }

    /// Runs one statement of the current write transaction.
    func query(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let future: EventLoopFuture<[SQLiteRow]> = connection.query(sql, binds)
        return try await withCheckedThrowingContinuation { continuation in
            future.whenComplete { continuation.resume(with: $0) }
        }
    }

    /// Runs `body` in a write transaction and returns once that transaction has committed.
    nonisolated func write<T: Sendable>(_ body: @escaping Body<T>) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let result = ResultSlot<T>()
            let job = Job(
                run: { writer in result.value = try await body(writer) },
                finish: { error in
                    if let error {
                        continuation.resume(throwing: error)
                    } else if let value = result.value {
                        continuation.resume(returning: value)
                    } else {
                        // Unreachable: a job finishes without error only after its run stored a value.
                        continuation.resume(throwing: CancellationError())
                    }
                }
            )
            Task { await self.enqueue(job) }
        }
    }

    private func enqueue(_ job: Job) async {
        jobs.append(job)
        guard !draining else { return }
        draining = true
        while !jobs.isEmpty {
            let batch = Array(jobs.prefix(Self.maximumBatch))
            jobs.removeFirst(batch.count)
            if batch.count == 1 {
                await runAlone(batch[0])
            } else {
                await runBatch(batch)
            }
        }
        draining = false
    }

    private func runBatch(_ batch: [Job]) async {
        do {
            _ = try await query("BEGIN IMMEDIATE")
            for job in batch {
                try await job.run(self)
            }
            _ = try await query("COMMIT")
        } catch {
            _ = try? await query("ROLLBACK")
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
            _ = try await query("BEGIN IMMEDIATE")
        } catch {
            job.finish(error)
            return
        }
        do {
            try await job.run(self)
            _ = try await query("COMMIT")
            job.finish(nil)
        } catch {
            _ = try? await query("ROLLBACK")
            job.finish(error)
        }
    }
}

/// Holds one job's result between its run and the commit that makes it final. Only the writer
/// actor touches it (the run sets it, `finish` reads it afterwards on the same actor), which is
/// why the unchecked Sendable is safe.
private final class ResultSlot<T: Sendable>: @unchecked Sendable {
    var value: T?
}
