/// When to try again after a failed round: exponential backoff with full jitter on network
/// failures and 5xx, the server's `Retry-After` on 429 (and 503), never on other 4xx.
public struct RetryPolicy: Sendable, Equatable {
    public var initialDelay: Duration
    public var maximumDelay: Duration
    public var multiplier: Double

    public init(initialDelay: Duration = .milliseconds(500), maximumDelay: Duration = .seconds(60), multiplier: Double = 2) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.multiplier = multiplier
    }

    /// What a failure means for retrying.
    public enum Decision: Sendable, Equatable {
        /// Try again after backing off (the server is unreachable: the engine is offline).
        case offline
        /// Try again after backing off (the server failed: 5xx).
        case backoff
        /// Try again after exactly this long, as the server asked.
        case after(Duration)
        /// Do not retry: the request itself was refused (4xx) or the answer is unacceptable.
        case stop
    }

    public static func classify(_ error: any Error) -> Decision {
        switch error {
        case let error as CofferClientError:
            switch error {
            case .unreachable: return .offline
            case .invalidResponse: return .backoff
            case .server(let status, _, _, let retryAfter):
                if let retryAfter, status == 429 || status == 503 { return .after(.seconds(min(max(retryAfter, 0), 86_400))) }
                if status == 429 || status >= 500 { return .backoff }
                return .stop
            }
        default:
            return .stop
        }
    }

    /// The upper bound of the wait before attempt `attempt` (1 = the first retry).
    public func ceiling(attempt: Int) -> Duration {
        let factor = Double.pow(multiplier, Double(max(attempt - 1, 0)))
        let seconds = min(Self.seconds(initialDelay) * factor, Self.seconds(maximumDelay))
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }

    /// The wait before attempt `attempt`: uniformly random up to the ceiling ("full jitter"),
    /// so that many devices that lost the same server do not come back in step.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = Self.seconds(ceiling(attempt: attempt))
        return .milliseconds(Int64((Double.random(in: 0...1, using: &generator) * ceiling * 1000).rounded()))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

private extension Double {
    static func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        for _ in 0..<Int(exponent) { result *= base }
        return result
    }
}
