import Crypto
import Foundation

/// Coffer's versioned AEAD format, for every blob the server stores on a user's behalf.
///
/// Version 1 bytes: `1 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, AES-256-GCM with a random nonce; on
/// the wire as base64url without padding. The associated data is the version byte followed by the
/// UTF-8 of `EnvelopeContext.canonicalString`, so both the format version and what the blob is and
/// whose it is are authenticated.
///
/// Version 2 (blobs sealed with a vault key) adds the key epoch in clear after the version byte and
/// a key commitment: `2 ‖ epoch (4, big-endian) ‖ commitment (32) ‖ nonce ‖ ciphertext ‖ tag`. The
/// header (version and epoch) is authenticated with the ciphertext. The server reads the epoch to
/// refuse blobs sealed under a vault key that was rotated away; the client reads it to pick the
/// key, and a server that changes it makes decryption fail. The commitment, SHA-256 over a label,
/// the key, the header and the nonce, is checked before decrypting: AES-GCM alone is not key
/// committing (one ciphertext can be made to open under two chosen keys), this makes it so.
public enum Envelope {
    /// The version of envelopes without a key epoch (account keys, legacy vault blobs).
    public static let version: UInt8 = 1
    /// The version of envelopes that carry the epoch of the vault key they were sealed with.
    public static let epochVersion: UInt8 = 2
    /// The epoch every version 1 vault blob belongs to: the vault's first key.
    public static let legacyEpoch = 1
    /// Nonce length in bytes.
    public static let nonceByteCount = 12
    /// GCM tag length in bytes.
    public static let tagByteCount = 16
    /// Smallest envelope: version, nonce and tag around an empty plaintext.
    public static let minimumByteCount = 1 + nonceByteCount + tagByteCount
    /// Length of a version 2 envelope's key commitment.
    public static let commitmentByteCount = 32
    /// Version 2 header: version byte and key epoch.
    static let epochHeaderByteCount = 5

    /// Encrypts `plaintext` for `context` under a 256-bit key; `nonce` is random unless given (test vectors only).
    /// With `keyEpoch` the envelope is version 2 and carries the epoch.
    public static func seal(
        _ plaintext: some DataProtocol,
        key: SymmetricKey,
        context: EnvelopeContext,
        keyEpoch: Int? = nil,
        nonce: [UInt8]? = nil
    ) throws -> String {
        // AES.GCM would also take 128- and 192-bit keys; the format promises AES-256.
        guard key.bitCount == 256 else { throw CryptoKitError.incorrectKeySize }
        // AES.GCM.Nonce accepts longer nonces, but the layout has exactly 12 bytes for it.
        if let nonce, nonce.count != nonceByteCount { throw CryptoKitError.incorrectParameterSize }
        let gcmNonce = try nonce.map { try AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        var bytes: [UInt8]
        if let keyEpoch {
            guard let epoch = UInt32(exactly: keyEpoch), epoch >= 1 else { throw CryptoKitError.incorrectParameterSize }
            bytes = [epochVersion, UInt8(epoch >> 24), UInt8((epoch >> 16) & 0xff), UInt8((epoch >> 8) & 0xff), UInt8(epoch & 0xff)]
        } else {
            bytes = [version]
        }
        let box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce, authenticating: associatedData(context, header: bytes))
        bytes.reserveCapacity(minimumByteCount + 4 + commitmentByteCount + box.ciphertext.count)
        if keyEpoch != nil { bytes.append(contentsOf: commitment(key: key, header: bytes, nonce: Array(gcmNonce))) }
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
            // After the header (and commitment) the layout is GCM's own combined form: nonce ‖ ciphertext ‖ tag.
            var boxStart = 1
            if bytes[0] == epochVersion {
                boxStart = epochHeaderByteCount + commitmentByteCount
                let nonce = bytes[boxStart..<(boxStart + nonceByteCount)]
                guard constantTimeEqual(commitment(key: key, header: bytes[0..<epochHeaderByteCount], nonce: nonce), bytes[epochHeaderByteCount..<boxStart]) else {
                    throw EnvelopeError.tampered
                }
            }
            let box = try AES.GCM.SealedBox(combined: bytes[boxStart...])
            let header = bytes[0] == epochVersion ? bytes[0..<epochHeaderByteCount] : bytes[0..<1]
            return try AES.GCM.open(box, using: key, authenticating: associatedData(context, header: header))
        } catch {
            // The layout was checked above, so any failure here is an authentication failure.
            throw .tampered
        }
    }

    /// True for base64url of at least 29 bytes (33 for version 2) starting with a known version: what the server accepts as a blob.
    public static func isWellFormed(_ text: String) -> Bool {
        wellFormedBytes(text) != nil
    }

    /// The vault key epoch an envelope claims: its header's for version 2, `legacyEpoch` for
    /// version 1, nil when it is not an envelope. Reads only the first bytes (the server calls
    /// it on every item it stores). A claim, not a fact, until the envelope opens.
    public static func keyEpoch(of text: String) -> Int? {
        let prefix = text.utf8.prefix(8)
        guard prefix.count >= 2, let head = Base64URL.decode(String(decoding: prefix, as: UTF8.self)) else { return nil }
        switch head.first {
        case version: return legacyEpoch
        case epochVersion:
            guard head.count >= 5 else { return nil }
            let epoch = Int(head[1]) << 24 | Int(head[2]) << 16 | Int(head[3]) << 8 | Int(head[4])
            return epoch >= 1 ? epoch : nil
        default: return nil
        }
    }

    private static func wellFormedBytes(_ text: String) -> [UInt8]? {
        guard let bytes = Base64URL.decode(text), let first = bytes.first else { return nil }
        switch first {
        case version: return bytes.count >= minimumByteCount ? bytes : nil
        case epochVersion: return bytes.count >= minimumByteCount + 4 + commitmentByteCount ? bytes : nil
        default: return nil
        }
    }

    /// Commits a version 2 envelope to its key: SHA-256("coffer/v2/key-commitment" ‖ key ‖ header ‖ nonce).
    public static func commitment(key: SymmetricKey, header: some Collection<UInt8>, nonce: some Collection<UInt8>) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Array("coffer/v2/key-commitment".utf8))
        key.withUnsafeBytes { hash.update(bufferPointer: $0) }
        hash.update(data: Array(header))
        hash.update(data: Array(nonce))
        return Array(hash.finalize())
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    private static func associatedData(_ context: EnvelopeContext, header: some Collection<UInt8>) -> [UInt8] {
        Array(header) + Array(context.canonicalString.utf8)
    }
}
