/// Limits on one HTTP connection, before any route runs: how large a request head may be and how
/// long a connection may take to send one. Each is documented in the README's server section.
public struct ConnectionLimits: Sendable, Equatable {
    /// Longest request target (path and query), in bytes; a longer one is answered 414.
    public var maxURILength = 8 * 1024
    /// Longest single header line, in bytes; a longer one is answered 431.
    public var maxHeaderFieldSize = 16 * 1024
    /// Largest header section (all names and values), in bytes; a larger one is answered 431.
    public var maxHeaderListSize = 64 * 1024
    /// Most header fields in one request; more are answered 431.
    public var maxHeaderFieldCount = 100
    /// Seconds a connection has to complete a request head once it opened or began one (then 408 and closed).
    public var requestHeadTimeout: Double = 10
    /// Seconds a connection may sit idle between requests, or stall while sending a body, before it is closed.
    public var idleTimeout: Double = 75

    public init() {}
}
