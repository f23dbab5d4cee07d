import CofferProtocol
import Crypto
import Foundation
import JWTKit
import Synchronization

/// Claims of a Coffer access token: user, device and session.
struct AccessClaims: JWTPayload {
    var sub: SubjectClaim
    var did: String
    var sid: String
    var iat: IssuedAtClaim
    var exp: ExpirationClaim

    // Expiry is checked by `TokenService` against its injectable clock.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Signs and verifies access tokens. Signing keys carry a key id, live in the store (so every
/// instance and every restart shares them) and rotate: a new key signs once the newest is older
/// than the rotation period; older keys keep verifying until tokens they signed have expired.
actor TokenService {
    private let store: any Store
    private let clock: @Sendable () -> Timestamp
    let accessLifetime: Int
    private let rotation: Int
    private var keys = JWTKeyCollection()
    private var known: Set<String> = []
    private var currentKeyId: String?
    private var currentKeyCreated = Timestamp(milliseconds: 0)
    /// Tokens whose signature already checked out, with their claims. A token string can only
    /// map to the claims it was signed with, so a hit skips the signature and JSON work (and the
    /// hop into this actor) on every later request; expiry is still checked each time.
    private let verified = Mutex<[String: AccessClaims]>([:])
    private static let verifiedLimit = 10_000

    init(store: any Store, clock: @escaping @Sendable () -> Timestamp, accessLifetime: Int, rotation: Int) {
        self.store = store
        self.clock = clock
        self.accessLifetime = accessLifetime
        self.rotation = rotation
    }

    /// Loads keys and makes a new one when none is fresh enough.
    func rotateIfNeeded() async throws {
        try await reload()
        let now = clock()
        if currentKeyId == nil || currentKeyCreated.adding(seconds: Int64(rotation)) <= now {
            let key = SymmetricKey(size: .bits256)
            let record = SigningKeyRecord(
                id: UUID().uuidString.lowercased(),
                secret: key.withUnsafeBytes { Data($0).base64EncodedString() },
                createdAt: now
            )
            try await store.addSigningKey(record)
            try await reload()
        }
    }

    private func reload() async throws {
        let records = try await store.signingKeys()
        let now = clock()
        for record in records where !known.contains(record.id) {
            // Keys retired longer ago than a token lives can no longer verify anything.
            guard record.createdAt.adding(seconds: Int64(rotation + accessLifetime) * 2) > now || record.id == records.first?.id,
                let secret = Data(base64Encoded: record.secret)
            else { continue }
            await keys.add(hmac: HMACKey(key: SymmetricKey(data: secret)), digestAlgorithm: .sha256, kid: JWKIdentifier(string: record.id))
            known.insert(record.id)
        }
        if let newest = records.first {
            currentKeyId = newest.id
            currentKeyCreated = newest.createdAt
        }
    }

    /// A signed access token for a session.
    func issue(userId: String, deviceId: String, sessionId: String) async throws -> String {
        if currentKeyId == nil { try await rotateIfNeeded() }
        guard let kid = currentKeyId else { throw APIError.internalError }
        let now = clock()
        let claims = AccessClaims(
            sub: SubjectClaim(value: userId), did: deviceId, sid: sessionId,
            iat: IssuedAtClaim(value: now.date), exp: ExpirationClaim(value: now.adding(seconds: Int64(accessLifetime)).date)
        )
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }

    /// The claims of a valid, unexpired token; nil otherwise.
    nonisolated func verify(_ token: String) async -> AccessClaims? {
        if let claims = verified.withLock({ $0[token] }) {
            return claims.exp.value > clock().date ? claims : nil
        }
        guard let claims = await verifySignature(token) else { return nil }
        verified.withLock { cache in
            // Dropping everything at the bound keeps memory fixed; the next requests re-verify.
            if cache.count >= Self.verifiedLimit { cache.removeAll(keepingCapacity: true) }
            cache[token] = claims
        }
        return claims
    }

    private func verifySignature(_ token: String) async -> AccessClaims? {
        if let kid = Self.keyId(of: token), !known.contains(kid) {
            // Another instance may have rotated; look once more before refusing.
            try? await reload()
        }
        guard let claims = try? await keys.verify(token, as: AccessClaims.self) else { return nil }
        guard claims.exp.value > clock().date else { return nil }
        return claims
    }

    private static func keyId(of token: String) -> String? {
        guard let header = token.split(separator: ".").first else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["kid"] as? String
    }
}
