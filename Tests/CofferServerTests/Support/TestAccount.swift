import CofferCrypto
import CofferProtocol
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// An account's client-side keys made directly from a random master key (the server never sees
/// a password, so server tests need no slow key derivation).
struct TestAccount {
    let email: String
    let masterKey = SymmetricKey(size: .bits256)
    let keys: AccountKeys
    let bundle: AccountKeyBundle
    let salt = Base64URL.encode(MasterKey.randomSalt())
    var deviceId = UUID().uuidString.lowercased()

    init(email: String = "user-\(UUID().uuidString.prefix(8))@example.test") throws {
        self.email = email.lowercased()
        self.keys = try AccountKeys(masterKey: masterKey)
        self.bundle = try AccountKeyBundle.create(masterKey: masterKey, email: email).bundle
    }

    static let kdf = KDFDescriptor(algorithm: "scrypt", n: 1 << 17, r: 8, p: 1)

    func registerRequest(kdf: KDFDescriptor = TestAccount.kdf, email: String? = nil) -> RegisterAccountRequest {
        RegisterAccountRequest(
            email: email ?? self.email, kdf: kdf, salt: salt, loginPublicKey: keys.loginPublicKey,
            encryptedAccountKey: bundle.encryptedAccountKey, publicKey: bundle.publicKey, encryptedPrivateKey: bundle.encryptedPrivateKey,
            device: device()
        )
    }

    func device(_ id: String? = nil) -> DeviceInfo {
        DeviceInfo(id: id ?? deviceId, name: "Test device", platform: "test")
    }

    /// Registers and returns the session.
    @discardableResult
    func register(_ client: some TestClientProtocol) async throws -> SessionResponse {
        let response = try await client.json(.post, "/api/auth/register", registerRequest())
        #expect(response.status == .created)
        return try response.decode(SessionResponse.self)
    }

    func challenge(_ client: some TestClientProtocol, action: String = AuthAction.login) async throws -> String {
        try await client.json(.post, "/api/auth/challenge", ChallengeRequest(email: email, action: action)).decode(ChallengeResponse.self).challenge
    }

    /// Logs in (a new challenge, signed) from `deviceId`.
    func login(_ client: some TestClientProtocol, deviceId: String? = nil, signingKey: Curve25519.Signing.PrivateKey? = nil) async throws -> TestResponse {
        let challenge = try await challenge(client)
        let signature = try LoginProof.sign(email: email, challenge: challenge, action: AuthAction.login, loginKey: signingKey ?? keys.loginKey)
        return try await client.json(.post, "/api/auth/login", LoginRequest(email: email, challenge: challenge, signature: signature, device: device(deviceId)))
    }
}

extension TestClientProtocol {
    func authorized(_ method: HTTPRequest.Method, _ uri: String, token: String) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: [.authorization: "Bearer \(token)"])
    }

    func authorized(_ method: HTTPRequest.Method, _ uri: String, token: String, json body: some Encodable) async throws -> TestResponse {
        try await self.json(method, uri, body, headers: [.authorization: "Bearer \(token)"])
    }
}
