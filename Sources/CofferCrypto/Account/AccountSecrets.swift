import Crypto

/// An unlocked account's key material; lives only in the client's memory (or its local keychain).
public struct AccountSecrets: Sendable {
    /// The random 256-bit account key, which wraps everything else the account owns.
    public let accountKey: SymmetricKey
    /// The X25519 private key others wrap vault keys to.
    public let sharingKey: Curve25519.KeyAgreement.PrivateKey
    /// The login and wrapping keys derived from the master key.
    public let keys: AccountKeys
    /// The Ed25519 identity key, nil for an account made before identity keys (until its next login gives it one).
    public let identityKey: Curve25519.Signing.PrivateKey?

    /// Groups already unlocked keys.
    public init(accountKey: SymmetricKey, sharingKey: Curve25519.KeyAgreement.PrivateKey, keys: AccountKeys, identityKey: Curve25519.Signing.PrivateKey? = nil) {
        self.accountKey = accountKey
        self.sharingKey = sharingKey
        self.keys = keys
        self.identityKey = identityKey
    }
}
