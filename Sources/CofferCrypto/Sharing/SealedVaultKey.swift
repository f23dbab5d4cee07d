import Crypto
import Foundation

/// A vault key sealed to one member's X25519 sharing key with HPKE (RFC 9180, base mode,
/// X25519 / HKDF-SHA256 / ChaCha20-Poly1305). The HPKE info and associated data name the vault,
/// the sealer and the recipient, so a server that hands one member's copy to another, or
/// presents it as another vault's, makes opening fail.
///
/// Layout, base64url: version byte (2) ‖ encapsulated key (32 bytes) ‖ ciphertext and tag.
public enum SealedVaultKey {
    public static let version: UInt8 = 2
    static let ciphersuite = HPKE.Ciphersuite.Curve25519_SHA256_ChachaPoly
    static let encapsulatedKeyByteCount = 32

    /// Seals `key` (32 bytes) to `recipientPublicKey` (base64url of the raw X25519 key).
    /// `keyEpoch` is bound too from the first rotation on (epoch 1 keeps the original binding).
    public static func seal(
        _ key: SymmetricKey, to recipientPublicKey: String, vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int = 1
    ) throws -> String {
        guard let raw = Base64URL.decode(recipientPublicKey),
            let publicKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: raw)
        else { throw SealedVaultKeyError.badPublicKey }
        let context = binding(vaultId: vaultId, sealerId: sealerId, recipientId: recipientId, keyEpoch: keyEpoch)
        var sender = try HPKE.Sender(recipientKey: publicKey, ciphersuite: ciphersuite, info: context)
        let ciphertext = try key.withUnsafeBytes { try sender.seal(Data($0), authenticating: context) }
        return Base64URL.encode([version] + Array(sender.encapsulatedKey) + Array(ciphertext))
    }

    /// Opens a sealed vault key with the recipient's sharing private key.
    public static func open(
        _ sealed: String, privateKey: Curve25519.KeyAgreement.PrivateKey, vaultId: String, sealerId: String, recipientId: String, keyEpoch: Int = 1
    ) throws -> SymmetricKey {
        guard let bytes = Base64URL.decode(sealed), bytes.count > 1 + encapsulatedKeyByteCount + 16, bytes[0] == version else {
            throw SealedVaultKeyError.malformed
        }
        let context = binding(vaultId: vaultId, sealerId: sealerId, recipientId: recipientId, keyEpoch: keyEpoch)
        let encapsulated = Data(bytes[1...encapsulatedKeyByteCount])
        let ciphertext = Data(bytes[(1 + encapsulatedKeyByteCount)...])
        do {
            var recipient = try HPKE.Recipient(privateKey: privateKey, ciphersuite: ciphersuite, info: context, encapsulatedKey: encapsulated)
            let key = try recipient.open(ciphertext, authenticating: context)
            guard key.count == 32 else { throw SealedVaultKeyError.tampered }
            return SymmetricKey(data: key)
        } catch {
            throw SealedVaultKeyError.tampered
        }
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
}

/// A short, printable digest of a user's sharing key, for comparing out of band.
public enum KeyFingerprint {
    /// 40 hex digits in groups of four, e.g. `3f2a 9c01 …`.
    public static func of(userId: String, publicKey: String) -> String {
        let digest = SHA256.hash(data: Data("coffer-fingerprint-v1|\(userId)|\(publicKey)".utf8))
        let hex = Hex.encode(Array(digest.prefix(20)))
        return stride(from: 0, to: hex.count, by: 4).map { start in
            let from = hex.index(hex.startIndex, offsetBy: start)
            return String(hex[from..<hex.index(from, offsetBy: 4)])
        }.joined(separator: " ")
    }
}
