import Crypto
import Foundation

/// A vault key sealed to one member's X25519 sharing key with HPKE (RFC 9180, base mode,
/// X25519 / HKDF-SHA256 / ChaCha20-Poly1305) and signed by the sealer's Ed25519 identity key.
/// The HPKE info and associated data name the vault, the sealer, the recipient and the key
/// epoch, so a server that hands one member's copy to another, or presents it as another
/// vault's, makes opening fail. HPKE base mode does not authenticate the sender (anyone can seal
/// to a public key), so the signature is what says who sealed it: over the binding, the
/// recipient's sharing key and the sealed bytes, checked by the recipient against the sealer's
/// pinned identity.
///
/// Layout, base64url:
/// - version 3: 3 ‖ sealer identity key (32) ‖ encapsulated key (32) ‖ ciphertext and tag ‖ Ed25519 signature (64);
/// - version 2 (before identity keys, unsigned): 2 ‖ encapsulated key (32) ‖ ciphertext and tag.
public enum SealedVaultKey {
    public static let version: UInt8 = 3
    static let unsignedVersion: UInt8 = 2
    static let ciphersuite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly
    static let encapsulatedKeyByteCount = 32
    static let identityKeyByteCount = 32
    static let signatureByteCount = 64

    /// What opening a copy gives: the key and, for a signed copy, the identity key that signed it
    /// (base64url; the caller decides whether that is the sealer's), nil for an unsigned one.
    public struct Opened: Sendable {
        public var key: SymmetricKey
        public var sealerIdentity: String?
    }

    /// Seals `key` (32 bytes) to `recipientPublicKey` (base64url of the raw X25519 key), signed by `signer`, the sealer's identity key.
    /// `keyEpoch` is bound too from the first rotation on (epoch 1 keeps the original binding).
    public static func seal(
        _ key: SymmetricKey, to recipientPublicKey: String, vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int = 1,
        signer: Curve25519.Signing.PrivateKey
    ) throws -> String {
        let context = binding(vaultId: vaultId, sealerId: sealerId, recipientId: recipientId, keyEpoch: keyEpoch)
        let (encapsulated, ciphertext) = try hpkeSeal(key, to: recipientPublicKey, context: context)
        let body = [version] + Array(signer.publicKey.rawRepresentation) + encapsulated + ciphertext
        let signature = try signer.signature(for: signedMessage(context: context, recipientPublicKey: recipientPublicKey, body: body))
        return Base64URL.encode(body + Array(signature))
    }

    /// An unsigned (version 2) copy, as clients made before identity keys sealed them. Kept for
    /// tests of how such copies are treated; nothing in Coffer writes one any more.
    public static func sealUnsigned(
        _ key: SymmetricKey, to recipientPublicKey: String, vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int = 1
    ) throws -> String {
        let context = binding(vaultId: vaultId, sealerId: sealerId, recipientId: recipientId, keyEpoch: keyEpoch)
        let (encapsulated, ciphertext) = try hpkeSeal(key, to: recipientPublicKey, context: context)
        return Base64URL.encode([unsignedVersion] + encapsulated + ciphertext)
    }

    /// Opens a sealed vault key with the recipient's sharing private key; a signed copy's
    /// signature is checked against the identity key it carries (which the caller must check is
    /// the sealer's).
    public static func open(
        _ sealed: String, privateKey: Curve25519.KeyAgreement.PrivateKey, vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int = 1
    ) throws -> Opened {
        guard let bytes = Base64URL.decode(sealed), let first = bytes.first else { throw SealedVaultKeyError.malformed }
        let context = binding(vaultId: vaultId, sealerId: sealerId, recipientId: recipientId, keyEpoch: keyEpoch)
        switch first {
        case version:
            let minimum = 1 + identityKeyByteCount + encapsulatedKeyByteCount + 16 + signatureByteCount
            guard bytes.count > minimum else { throw SealedVaultKeyError.malformed }
            let body = Array(bytes[..<(bytes.count - signatureByteCount)])
            let signature = Data(bytes[(bytes.count - signatureByteCount)...])
            let identityRaw = Data(body[1...identityKeyByteCount])
            let recipientPublicKey = Base64URL.encode(privateKey.publicKey.rawRepresentation)
            guard let identity = try? Curve25519.Signing.PublicKey(rawRepresentation: identityRaw),
                identity.isValidSignature(signature, for: signedMessage(context: context, recipientPublicKey: recipientPublicKey, body: body))
            else { throw SealedVaultKeyError.badSignature }
            let rest = Array(body[(1 + identityKeyByteCount)...])
            return Opened(key: try hpkeOpen(rest, privateKey: privateKey, context: context), sealerIdentity: Base64URL.encode(identityRaw))
        case unsignedVersion:
            guard bytes.count > 1 + encapsulatedKeyByteCount + 16 else { throw SealedVaultKeyError.malformed }
            return Opened(key: try hpkeOpen(Array(bytes[1...]), privateKey: privateKey, context: context), sealerIdentity: nil)
        default:
            throw SealedVaultKeyError.malformed
        }
    }

    private static func hpkeSeal(_ key: SymmetricKey, to recipientPublicKey: String, context: Data) throws -> ([UInt8], [UInt8]) {
        guard let raw = Base64URL.decode(recipientPublicKey),
            let publicKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
        else { throw SealedVaultKeyError.badPublicKey }
        var sender = try HPKE.Sender(recipientKey: publicKey, ciphersuite: ciphersuite, info: context)
        let ciphertext = try key.withUnsafeBytes { try sender.seal(Data($0), authenticating: context) }
        return (Array(sender.encapsulatedKey), Array(ciphertext))
    }

    /// Opens `encapsulated key ‖ ciphertext`.
    private static func hpkeOpen(_ bytes: [UInt8], privateKey: Curve25519.KeyAgreement.PrivateKey, context: Data) throws -> SymmetricKey {
        let encapsulated = Data(bytes[..<encapsulatedKeyByteCount])
        let ciphertext = Data(bytes[encapsulatedKeyByteCount...])
        do {
            var recipient = try HPKE.Recipient(privateKey: privateKey, ciphersuite: ciphersuite, info: context, encapsulatedKey: encapsulated)
            let key = try recipient.open(ciphertext, authenticating: context)
            guard key.count == 32 else { throw SealedVaultKeyError.tampered }
            return SymmetricKey(data: key)
        } catch {
            throw SealedVaultKeyError.tampered
        }
    }

    /// What the sealer signs: the binding, the recipient's sharing key (so a copy re-sealed to a
    /// substituted key does not verify), and the version, identity, encapsulated key and ciphertext.
    static func signedMessage(context: Data, recipientPublicKey: String, body: [UInt8]) -> Data {
        var message = Data("coffer-sealed-vault-key-v3|".utf8)
        message.append(context)
        message.append(Data("|\(recipientPublicKey)|".utf8))
        message.append(contentsOf: body)
        return message
    }

    static func binding(vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int) -> Data {
        let object = keyEpoch <= 1 ? "\(sealerId)>\(recipientId)" : "\(sealerId)>\(recipientId)@\(keyEpoch)"
        return Data(EnvelopeContext(purpose: "vault-key-share", owner: vaultId, object: object).canonicalString.utf8)
    }
}

public enum SealedVaultKeyError: Error, Equatable {
    case badPublicKey
    case malformed
    /// The key was not sealed for this vault, sealer and recipient, or was altered.
    case tampered
    /// A signed copy whose signature does not verify under the identity key it carries.
    case badSignature
}

/// A short, printable digest of a user's key, for comparing out of band.
public enum KeyFingerprint {
    /// Of an identity key: 40 hex digits in groups of four, e.g. `3f2a 9c01 …`.
    public static func of(userId: String, identityKey: String) -> String {
        grouped(SHA256.hash(data: Data("coffer-identity-fingerprint-v2|\(userId)|\(identityKey)".utf8)))
    }

    /// Of an X25519 sharing key, for an account that has no identity key yet.
    public static func of(userId: String, publicKey: String) -> String {
        grouped(SHA256.hash(data: Data("coffer-fingerprint-v1|\(userId)|\(publicKey)".utf8)))
    }

    private static func grouped(_ digest: SHA256.Digest) -> String {
        let hex = Hex.encode(Array(digest.prefix(20)))
        return stride(from: 0, to: hex.count, by: 4).map { start in
            let from = hex.index(hex.startIndex, offsetBy: start)
            return String(hex[from..<hex.index(from, offsetBy: 4)])
        }.joined(separator: " ")
    }
}
