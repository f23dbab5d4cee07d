import Hummingbird
import NIOCore

/// Per-request context: Hummingbird's core storage plus the client address and request id that
/// middleware fills in.
public struct AppRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The request id echoed in `X-Request-Id`.
    public var requestId = ""
    /// The client address used for rate limits (the proxy's `X-Forwarded-For` when trusted).
    public var clientAddress = "unknown"
    /// The authenticated user, device and session, on routes behind `AuthMiddleware`.
    public var identity: AuthIdentity?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
