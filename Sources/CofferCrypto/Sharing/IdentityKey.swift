import Crypto
import Foundation

/// An account's Ed25519 identity key: what people compare (its fingerprint) and pin, and what
/// signs everything others must be able to attribute to the account — the certificate of its
/// X25519 sharing key and every vault-key copy it seals. The server can relay these statements
/// but never make one, because the private half exists only sealed under the account key.
public enum IdentityKey {
    /// Envelope purpose of the sealed identity private key.
    public static let privateKeyPurpose = "identity-private-key"

    /// The message a sharing-key certificate signs: the account's email, its identity key and the
    /// X25519 key it vouches for (all base64url), so the certificate cannot be presented for
    /// another account or another key.
    static func certificateMessage(email: String, identityKey: String, sharingKey: String) -> Data {
        Data("coffer-sharing-key-certificate-v1|\(AccountEmail.normalized(email))|\(identityKey)|\(sharingKey)".utf8)
    }

    /// Signs `sharingKey` (base64url X25519) as this identity's, for `email`.
    public static func certify(sharingKey: String, email: String, identity: Curve25519.Signing.PrivateKey) throws -> String {
        let identityKey = Base64URL.encode(identity.publicKey.rawRepresentation)
        return Base64URL.encode(try identity.signature(for: certificateMessage(email: email, identityKey: identityKey, sharingKey: sharingKey)))
    }

    /// Whether `certificate` is `identityKey`'s signature vouching for `sharingKey` as `email`'s.
    public static func verify(certificate: String, identityKey: String, sharingKey: String, email: String) -> Bool {
        guard let publicKey = publicKey(identityKey), let signature = Base64URL.decode(certificate), signature.count == 64 else { return false }
        return publicKey.isValidSignature(signature, for: certificateMessage(email: email, identityKey: identityKey, sharingKey: sharingKey))
    }

    /// The Ed25519 public key in `identityKey` (base64url of 32 raw bytes), or nil.
    public static func publicKey(_ identityKey: String) -> Curve25519.Signing.PublicKey? {
        guard let raw = Base64URL.decode(identityKey), raw.count == 32 else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// Whether the three wire fields have the right shape and the certificate verifies (what the
    /// server checks before storing an identity; it cannot tell whose key it is).
    public static func isWellFormed(identityKey: String, certificate: String, encryptedIdentityKey: String, sharingKey: String, email: String) -> Bool {
        Envelope.isWellFormed(encryptedIdentityKey) && encryptedIdentityKey.utf8.count <= 4096
            && verify(certificate: certificate, identityKey: identityKey, sharingKey: sharingKey, email: email)
    }
}
