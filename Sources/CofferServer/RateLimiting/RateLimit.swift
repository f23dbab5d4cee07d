/// A limit of `count` events per `window`, written `5/hour`.
public struct RateLimit: Sendable, Hashable, CustomStringConvertible {
    /// Window lengths a limit can use.
    public enum Window: Int64, Sendable, Hashable, CaseIterable {
        case second = 1
        case minute = 60
        case hour = 3600
        case day = 86400

        var name: String {
            switch self {
            case .second: "second"
            case .minute: "minute"
            case .hour: "hour"
            case .day: "day"
            }
        }
    }

    public var count: Int
    public var window: Window

    public init(count: Int, window: Window) {
        self.count = count
        self.window = window
    }

    public var seconds: Int64 { window.rawValue }

    public var description: String { "\(count)/\(window.name)" }

    /// Parses a comma-separated list such as `5/hour,20/day`; `off` or an empty string means no limit.
    public static func parseList(_ text: String) throws(ConfigurationError) -> [RateLimit] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "off" || trimmed == "none" { return [] }
        var limits: [RateLimit] = []
        for part in trimmed.split(separator: ",") {
            let pieces = part.split(separator: "/").map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let count = Int(pieces[0]), count > 0 else {
                throw ConfigurationError("rate limit '\(part)' must look like 5/hour")
            }
            let window: Window
            switch pieces[1] {
            case "s", "sec", "second": window = .second
            case "m", "min", "minute": window = .minute
            case "h", "hour": window = .hour
            case "d", "day": window = .day
            default: throw ConfigurationError("rate limit '\(part)': unit must be second, minute, hour or day")
            }
            limits.append(RateLimit(count: count, window: window))
        }
        return limits
    }
}

/// The answer of a rate limiter.
public enum RateLimitDecision: Sendable, Equatable {
    case allowed
    /// Refused; retry after this many seconds (at least 1).
    case limited(retryAfter: Int64)
}

import Foundation
