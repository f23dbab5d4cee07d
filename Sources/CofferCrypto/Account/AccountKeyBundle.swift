import CofferProtocol
import Crypto
import Foundation

/// The account's key material as the server stores it: the public sharing key and two wrapped keys.
///
/// `encryptedAccountKey` is the random account key sealed under the wrapping key (so only the
/// password opens it); `encryptedPrivateKey` is the X25519 sharing private key sealed under the
/// account key (so a password change rewraps 32 bytes, not every key the account holds). Both
/// envelopes are bound to the normalised email, so the server cannot swap one account's wrapped
/// keys into another's.
public struct AccountKeyBundle: Codable, Sendable, Equatable, Hashable {
    /// Envelope purpose of the wrapped account key.
    public static let accountKeyPurpose = "account-key"
    /// Envelope purpose of the wrapped sharing private key.
    public static let sharingPrivateKeyPurpose = "sharing-private-key"

    /// The account key, sealed under the wrapping key.
    public var encryptedAccountKey: String
    /// base64url (no padding) of the raw 32-byte X25519 sharing public key.
    public var publicKey: String
    /// The raw X25519 sharing private key, sealed under the account key.
    public var encryptedPrivateKey: String
    /// The Ed25519 identity (nil for an account made before identity keys, until `withIdentity`).
    public var identity: IdentityKeysPayload?

    /// A bundle from its wire fields (as received from the server).
    public init(encryptedAccountKey: String, publicKey: String, encryptedPrivateKey: String, identity: IdentityKeysPayload? = nil) {
        self.encryptedAccountKey = encryptedAccountKey
        self.publicKey = publicKey
        self.encryptedPrivateKey = encryptedPrivateKey
        self.identity = identity
    }

    private enum CodingKeys: String, CodingKey {
        case encryptedAccountKey, publicKey, encryptedPrivateKey, identityKey, sharingKeyCertificate, encryptedIdentityKey
    }

    /// Flat, as the account-keys wire fields are.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        encryptedAccountKey = try container.decode(String.self, forKey: .encryptedAccountKey)
        publicKey = try container.decode(String.self, forKey: .publicKey)
        encryptedPrivateKey = try container.decode(String.self, forKey: .encryptedPrivateKey)
        if let identityKey = try container.decodeIfPresent(String.self, forKey: .identityKey) {
            identity = IdentityKeysPayload(
                identityKey: identityKey, sharingKeyCertificate: try container.decode(String.self, forKey: .sharingKeyCertificate),
                encryptedIdentityKey: try container.decode(String.self, forKey: .encryptedIdentityKey)
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(encryptedAccountKey, forKey: .encryptedAccountKey)
        try container.encode(publicKey, forKey: .publicKey)
        try container.encode(encryptedPrivateKey, forKey: .encryptedPrivateKey)
        try container.encodeIfPresent(identity?.identityKey, forKey: .identityKey)
        try container.encodeIfPresent(identity?.sharingKeyCertificate, forKey: .sharingKeyCertificate)
        try container.encodeIfPresent(identity?.encryptedIdentityKey, forKey: .encryptedIdentityKey)
    }

    /// The bundle in an account-keys answer.
    public init(_ payload: AccountKeysPayload) {
        self.init(
            encryptedAccountKey: payload.encryptedAccountKey, publicKey: payload.publicKey, encryptedPrivateKey: payload.encryptedPrivateKey,
            identity: payload.identity
        )
    }

    /// Makes a new account's keys: the bundle to send to the server and the secrets to keep.
    public static func create(masterKey: SymmetricKey, email: String) throws -> (bundle: AccountKeyBundle, secrets: AccountSecrets) {
        let owner = AccountEmail.normalized(email)
        let keys = try AccountKeys(masterKey: masterKey)
        let accountKey = SymmetricKey(size: .bits256)
        let sharingKey = Curve25519.KeyAgreement.PrivateKey()
        var bundle = AccountKeyBundle(
            encryptedAccountKey: try Envelope.seal(
                accountKey.withUnsafeBytes { Array($0) },
                key: keys.wrappingKey,
                context: accountKeyContext(owner)
            ),
            publicKey: Base64URL.encode(sharingKey.publicKey.rawRepresentation),
            encryptedPrivateKey: try Envelope.seal(
                sharingKey.rawRepresentation,
                key: accountKey,
                context: sharingKeyContext(owner)
            )
        )
        let identityKey = Curve25519.Signing.PrivateKey()
        bundle.identity = try makeIdentity(identityKey, sharingKey: bundle.publicKey, accountKey: accountKey, owner: owner)
        return (bundle, AccountSecrets(accountKey: accountKey, sharingKey: sharingKey, keys: keys, identityKey: identityKey))
    }

    /// This bundle with a new identity key for an account made before identity keys (its next
    /// login makes one); the key is returned to be used at once.
    public func withIdentity(accountKey: SymmetricKey, email: String) throws -> (bundle: AccountKeyBundle, identityKey: Curve25519.Signing.PrivateKey) {
        let owner = AccountEmail.normalized(email)
        _ = try sharingKey(accountKey: accountKey, owner: owner)
        let identityKey = Curve25519.Signing.PrivateKey()
        var bundle = self
        bundle.identity = try Self.makeIdentity(identityKey, sharingKey: publicKey, accountKey: accountKey, owner: owner)
        return (bundle, identityKey)
    }

    private static func makeIdentity(
        _ identityKey: Curve25519.Signing.PrivateKey, sharingKey: String, accountKey: SymmetricKey, owner: String
    ) throws -> IdentityKeysPayload {
        IdentityKeysPayload(
            identityKey: Base64URL.encode(identityKey.publicKey.rawRepresentation),
            sharingKeyCertificate: try IdentityKey.certify(sharingKey: sharingKey, email: owner, identity: identityKey),
            encryptedIdentityKey: try Envelope.seal(identityKey.rawRepresentation, key: accountKey, context: identityKeyContext(owner))
        )
    }

    /// Unlocks a bundle with the master key; throws `EnvelopeError.tampered` if anything does not match.
    public static func open(bundle: AccountKeyBundle, masterKey: SymmetricKey, email: String) throws -> AccountSecrets {
        let owner = AccountEmail.normalized(email)
        let keys = try AccountKeys(masterKey: masterKey)
        let accountKeyBytes = try Envelope.open(bundle.encryptedAccountKey, key: keys.wrappingKey, context: accountKeyContext(owner))
        // Authentic but not a 256-bit key would mean a broken writer; refuse rather than use it.
        guard accountKeyBytes.count == 32 else { throw EnvelopeError.tampered }
        let accountKey = SymmetricKey(data: accountKeyBytes)
        let sharingKey = try bundle.sharingKey(accountKey: accountKey, owner: owner)
        return AccountSecrets(accountKey: accountKey, sharingKey: sharingKey, keys: keys, identityKey: try bundle.identityKey(accountKey: accountKey, owner: owner))
    }

    /// The Ed25519 identity private key, opened with the account key and checked against the
    /// identity key and its certificate of the sharing key; nil when the bundle has no identity.
    public func openIdentityKey(accountKey: SymmetricKey, email: String) throws -> Curve25519.Signing.PrivateKey? {
        try identityKey(accountKey: accountKey, owner: AccountEmail.normalized(email))
    }

    /// Opens the identity private key; a public key or certificate that does not match it (the
    /// server substituted one, so that others would pin the server's identity) is a tamper error.
    private func identityKey(accountKey: SymmetricKey, owner: String) throws(EnvelopeError) -> Curve25519.Signing.PrivateKey? {
        guard let identity else { return nil }
        let raw = try Envelope.open(identity.encryptedIdentityKey, key: accountKey, context: Self.identityKeyContext(owner))
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw),
            Base64URL.encode(key.publicKey.rawRepresentation) == identity.identityKey,
            IdentityKey.verify(certificate: identity.sharingKeyCertificate, identityKey: identity.identityKey, sharingKey: publicKey, email: owner)
        else { throw .tampered }
        return key
    }

    /// The same account key and sharing key, rewrapped under a new master key (password change).
    ///
    /// `accountKey` must be this bundle's: it is checked against the wrapped sharing key first,
    /// because rewrapping the wrong key would lock the user out of their account for good.
    public func rewrapped(for newMasterKey: SymmetricKey, email: String, accountKey: SymmetricKey) throws -> AccountKeyBundle {
        let owner = AccountEmail.normalized(email)
        _ = try sharingKey(accountKey: accountKey, owner: owner)
        let newKeys = try AccountKeys(masterKey: newMasterKey)
        var bundle = self
        bundle.encryptedAccountKey = try Envelope.seal(
            accountKey.withUnsafeBytes { Array($0) },
            key: newKeys.wrappingKey,
            context: Self.accountKeyContext(owner)
        )
        return bundle
    }

    /// The X25519 sharing private key, opened with the account key and checked against `publicKey`.
    public func openSharingKey(accountKey: SymmetricKey, email: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        try sharingKey(accountKey: accountKey, owner: AccountEmail.normalized(email))
    }

    /// Opens the sharing private key and checks it against the public key, which no envelope authenticates.
    private func sharingKey(accountKey: SymmetricKey, owner: String) throws(EnvelopeError) -> Curve25519.KeyAgreement.PrivateKey {
        let raw = try Envelope.open(encryptedPrivateKey, key: accountKey, context: Self.sharingKeyContext(owner))
        guard let sharingKey = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw),
            Base64URL.encode(sharingKey.publicKey.rawRepresentation) == publicKey
        else {
            // A substituted public key would have contacts wrap vault keys to someone else's key.
            throw .tampered
        }
        return sharingKey
    }

    private static func accountKeyContext(_ owner: String) -> EnvelopeContext {
        EnvelopeContext(purpose: accountKeyPurpose, owner: owner)
    }

    private static func sharingKeyContext(_ owner: String) -> EnvelopeContext {
        EnvelopeContext(purpose: sharingPrivateKeyPurpose, owner: owner)
    }

    private static func identityKeyContext(_ owner: String) -> EnvelopeContext {
        EnvelopeContext(purpose: IdentityKey.privateKeyPurpose, owner: owner)
    }

    /// The bundle as the account-keys wire fields.
    public var payload: AccountKeysPayload {
        AccountKeysPayload(encryptedAccountKey: encryptedAccountKey, publicKey: publicKey, encryptedPrivateKey: encryptedPrivateKey, identity: identity)
    }
}
