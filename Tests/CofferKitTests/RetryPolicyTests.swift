@testable import CofferKit
import CofferTestSupport
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("Network failures and 5xx back off; 429 and 503 honour Retry-After; other 4xx and rollbacks are not retried")
    func classification() {
        #expect(RetryPolicy.classify(CofferClientError.unreachable("connection refused")) == .offline)
        #expect(RetryPolicy.classify(CofferClientError.server(status: 500, code: "internal", message: "")) == .backoff)
        #expect(RetryPolicy.classify(CofferClientError.server(status: 502, code: "bad_gateway", message: "")) == .backoff)
        #expect(RetryPolicy.classify(CofferClientError.server(status: 429, code: "rate_limited", message: "", retryAfter: 7)) == .after(.seconds(7)))
        #expect(RetryPolicy.classify(CofferClientError.server(status: 503, code: "unavailable", message: "", retryAfter: 1)) == .after(.seconds(1)))
        #expect(RetryPolicy.classify(CofferClientError.server(status: 429, code: "rate_limited", message: "")) == .backoff)
        for status in [400, 401, 403, 404, 409, 413, 422] {
            #expect(RetryPolicy.classify(CofferClientError.server(status: status, code: "x", message: "")) == .stop)
        }
        #expect(RetryPolicy.classify(SyncError.rollback(vaultId: "v", seen: 3, answered: 1)) == .stop)
    }

    @Test("Delays grow exponentially up to the ceiling, with full jitter that stays within it")
    func backoff() {
        let policy = RetryPolicy(initialDelay: .milliseconds(500), maximumDelay: .seconds(60))
        #expect((1...9).map { policy.ceiling(attempt: $0) } == [
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32), .seconds(60), .seconds(60),
        ])
        var generator = SeededGenerator(seed: 42)
        for attempt in 1...12 {
            var delays = Set<Duration>()
            for _ in 0..<200 {
                let delay = policy.delay(attempt: attempt, using: &generator)
                #expect(delay >= .zero && delay <= policy.ceiling(attempt: attempt))
                delays.insert(delay)
            }
            // Jittered: many devices retrying together do not retry in step.
            #expect(delays.count > 100)
        }
    }
}
