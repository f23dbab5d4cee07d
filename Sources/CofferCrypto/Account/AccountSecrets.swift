import Crypto

/// An unlocked account's key material; lives only in the client's memory (or its local keychain).
public struct AccountSecrets: Sendable {
    /// The random 256-bit account key, which wraps everything else the account owns.
    public let accountKey: SymmetricKey
    /// The X25519 private key others wrap vault keys to.
    public let sharingKey: Curve25519.KeyAgreement.PrivateKey
    /// The login and wrapping keys derived from the master key.
    public let keys: AccountKeys

    /// Groups already unlocked keys.
    public init(accountKey: SymmetricKey, sharingKey: Curve25519.KeyAgreement.PrivateKey, keys: AccountKeys) {
        self.accountKey = accountKey
        self.sharingKey = sharingKey
        self.keys = keys
    }
}
