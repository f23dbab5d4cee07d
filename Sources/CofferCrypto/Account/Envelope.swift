import Crypto
import Foundation

/// Coffer's one versioned AEAD format, for every blob the server stores on a user's behalf.
///
/// Bytes: `version (1 byte, = 1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, AES-256-GCM with a random
/// nonce; on the wire as base64url without padding. The associated data is the version byte
/// followed by the UTF-8 of `EnvelopeContext.canonicalString`, so both the format version and what
/// the blob is and whose it is are authenticated.
public enum Envelope {
    /// The only version this code writes and reads.
    public static let version: UInt8 = 1
    /// Nonce length in bytes.
    public static let nonceByteCount = 12
    /// GCM tag length in bytes.
    public static let tagByteCount = 16
    /// Smallest envelope: version, nonce and tag around an empty plaintext.
    public static let minimumByteCount = 1 + nonceByteCount + tagByteCount

    /// Encrypts `plaintext` for `context` under a 256-bit key; `nonce` is random unless given (test vectors only).
    public static func seal(
        _ plaintext: some DataProtocol,
        key: SymmetricKey,
        context: EnvelopeContext,
        nonce: [UInt8]? = nil
    ) throws -> String {
        // AES.GCM would also take 128- and 192-bit keys; the format promises AES-256.
        guard key.bitCount == 256 else { throw CryptoKitError.incorrectKeySize }
        // AES.GCM.Nonce accepts longer nonces, but the layout has exactly 12 bytes for it.
        if let nonce, nonce.count != nonceByteCount { throw CryptoKitError.incorrectParameterSize }
        let gcmNonce = try nonce.map { try AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        let box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce, authenticating: associatedData(context))
        var bytes = [version]
        bytes.reserveCapacity(minimumByteCount + box.ciphertext.count)
        bytes.append(contentsOf: gcmNonce)
        bytes.append(contentsOf: box.ciphertext)
        bytes.append(contentsOf: box.tag)
        return Base64URL.encode(bytes)
    }

    /// Decrypts an envelope sealed for `context`; throws rather than ever returning unauthenticated bytes.
    public static func open(_ envelope: String, key: SymmetricKey, context: EnvelopeContext) throws(EnvelopeError) -> Data {
        guard let bytes = wellFormedBytes(envelope) else { throw .malformed }
        // A key of another size cannot be the key this envelope was sealed with.
        guard key.bitCount == 256 else { throw .tampered }
        do {
            // After the version byte the layout is GCM's own combined form: nonce ‖ ciphertext ‖ tag.
            let box = try AES.GCM.SealedBox(combined: bytes[1...])
            return try AES.GCM.open(box, using: key, authenticating: associatedData(context))
        } catch {
            // The layout was checked above, so any failure here is an authentication failure.
            throw .tampered
        }
    }

    /// True for base64url of at least 29 bytes starting with a known version: what the server accepts as a blob.
    public static func isWellFormed(_ text: String) -> Bool {
        wellFormedBytes(text) != nil
    }

    private static func wellFormedBytes(_ text: String) -> [UInt8]? {
        guard let bytes = Base64URL.decode(text), bytes.count >= minimumByteCount, bytes[0] == version else { return nil }
        return bytes
    }

    private static func associatedData(_ context: EnvelopeContext) -> [UInt8] {
        [version] + Array(context.canonicalString.utf8)
    }
}
