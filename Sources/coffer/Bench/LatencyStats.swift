import Foundation

/// Throughput and latency percentiles of one measured phase.
struct LatencyStats: Encodable {
    var requests: Int
    var seconds: Double
    var throughput: Double
    var p50: Double
    var p95: Double
    var p99: Double
    var max: Double
    var failures: Int

    /// `latencies` in milliseconds.
    init(latencies: [Double], seconds: Double, failures: Int) {
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)]
        }
        requests = latencies.count
        self.seconds = seconds
        throughput = seconds > 0 ? Double(latencies.count) / seconds : 0
        p50 = percentile(0.50)
        p95 = percentile(0.95)
        p99 = percentile(0.99)
        max = sorted.last ?? 0
        self.failures = failures
    }
}

/// Runs `operation(i)` for i in 0..<count with `concurrency` workers, timing each call.
func measure(count: Int, concurrency: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async -> LatencyStats {
    let start = ContinuousClock.now
    let results = await withTaskGroup(of: ([Double], Int).self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                var latencies: [Double] = []
                var failures = 0
                var index = worker
                while index < count {
                    let began = ContinuousClock.now
                    do {
                        try await operation(index)
                        latencies.append((ContinuousClock.now - began).milliseconds)
                    } catch {
                        failures += 1
                    }
                    index += concurrency
                }
                return (latencies, failures)
            }
        }
        return await group.reduce(into: ([Double](), 0)) { $0.0 += $1.0; $0.1 += $1.1 }
    }
    return LatencyStats(latencies: results.0, seconds: (ContinuousClock.now - start).milliseconds / 1000, failures: results.1)
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
