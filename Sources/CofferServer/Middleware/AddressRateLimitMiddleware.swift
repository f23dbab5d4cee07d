import Hummingbird

/// Per-client-address request limits on every route except health and metrics probes.
/// Counters live in the store, so several PostgreSQL-backed instances share them.
struct AddressRateLimitMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let store: any Store
    let limits: [RateLimit]
    let clock: @Sendable () -> Timestamp

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard !limits.isEmpty, path != "/health", path != "/metrics" else {
            return try await next(request, context)
        }
        let decision = try await store.consumeRateLimit(
            bucket: "address:" + AddressHash.of(context.clientAddress), limits: limits, at: clock()
        )
        if case .limited(let retryAfter) = decision {
            throw APIError.rateLimited(retryAfter: retryAfter, "too many requests from this address")
        }
        return try await next(request, context)
    }
}

import CofferProtocol
import Crypto
import CofferCrypto
import Foundation

/// Client addresses are stored and used as bucket names only as truncated hashes.
enum AddressHash {
    static func of(_ address: String) -> String {
        String(Hex.encode(SHA256.hash(data: Data(address.utf8))).prefix(32))
    }
}
