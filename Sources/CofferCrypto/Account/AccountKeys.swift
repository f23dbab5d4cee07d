import Crypto
import Foundation

/// The keys derived from the master key: the Ed25519 login key and the wrapping key of the account key.
///
/// Each comes from HKDF-SHA256 (empty salt) under its own label, so learning one tells nothing
/// about the other: the server sees the login public key, never anything that unwraps keys.
public struct AccountKeys: Sendable {
    /// HKDF info label of the login key.
    public static let loginKeyInfo = "coffer/v1/login-key"
    /// HKDF info label of the wrapping key.
    public static let wrappingKeyInfo = "coffer/v1/wrapping-key"

    /// Signs login challenges; its public half is the account's login credential.
    public let loginKey: Curve25519.Signing.PrivateKey
    /// Wraps (encrypts) the account key.
    public let wrappingKey: SymmetricKey

    /// Derives both keys from a master key.
    public init(masterKey: SymmetricKey) throws {
        let seed = Self.derive(masterKey, info: Self.loginKeyInfo)
        // The 32 HKDF bytes are the Ed25519 seed (RFC 8032 private key), so the key pair is reproducible.
        loginKey = try seed.withUnsafeBytes { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
        wrappingKey = Self.derive(masterKey, info: Self.wrappingKeyInfo)
    }

    /// The login public key as the server stores it: base64url (no padding) of the 32 raw bytes.
    public var loginPublicKey: String {
        Base64URL.encode(loginKey.publicKey.rawRepresentation)
    }

    private static func derive(_ masterKey: SymmetricKey, info: String) -> SymmetricKey {
        // The master key is already uniformly random (a KDF output), so HKDF needs no salt.
        HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, salt: [UInt8](), info: Array(info.utf8), outputByteCount: 32)
    }
}
