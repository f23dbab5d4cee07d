import CofferProtocol
import Synchronization

/// Sliding-window counters held in memory (used where one process is the only instance).
///
/// Each limit keeps the count of the current and the previous fixed window; the estimate is the
/// previous count weighted by how much of it still overlaps the sliding window, plus the current
/// count. Every attempt counts, refused ones included, so a client hammering past its limit stays
/// limited until it slows down.
final class MemoryRateLimiter: Sendable {
    private struct Counter {
        var windowStart: Int64
        var current: Int
        var previous: Int
    }

    private let counters = Mutex<[String: Counter]>([:])

    func consume(bucket: String, limits: [RateLimit], at: Timestamp) -> RateLimitDecision {
        guard !limits.isEmpty else { return .allowed }
        let now = at.milliseconds
        return counters.withLock { counters in
            var retryAfter: Int64 = 0
            for limit in limits {
                let key = "\(bucket)|\(limit.seconds)"
                let length = limit.seconds * 1000
                let windowStart = now - now % length
                var counter = counters[key] ?? Counter(windowStart: windowStart, current: 0, previous: 0)
                if counter.windowStart != windowStart {
                    counter.previous = counter.windowStart == windowStart - length ? counter.current : 0
                    counter.current = 0
                    counter.windowStart = windowStart
                }
                counter.current += 1
                counters[key] = counter
                let decision = SlidingWindow.decide(
                    current: counter.current, previous: counter.previous, limit: limit, elapsed: now - windowStart
                )
                if case .limited(let seconds) = decision { retryAfter = max(retryAfter, seconds) }
            }
            return retryAfter == 0 ? .allowed : .limited(retryAfter: retryAfter)
        }
    }

    /// Forgets counters that can no longer affect a decision.
    func purge(at: Timestamp) {
        counters.withLock { counters in
            counters = counters.filter { key, counter in
                let seconds = Int64(key.split(separator: "|").last ?? "") ?? RateLimit.Window.day.rawValue
                return counter.windowStart + 2 * seconds * 1000 > at.milliseconds
            }
        }
    }
}

/// The sliding-window estimate shared by the in-memory and PostgreSQL limiters.
enum SlidingWindow {
    /// `current` includes the event being decided; `elapsed` is milliseconds into the current window.
    static func decide(current: Int, previous: Int, limit: RateLimit, elapsed: Int64) -> RateLimitDecision {
        let length = Double(limit.seconds * 1000)
        let overlap = max(0, 1 - Double(elapsed) / length)
        let estimate = Double(previous) * overlap + Double(current)
        guard estimate > Double(limit.count) else { return .allowed }
        let untilWindowEnds = (limit.seconds * 1000 - elapsed + 999) / 1000
        return .limited(retryAfter: max(1, untilWindowEnds))
    }
}
