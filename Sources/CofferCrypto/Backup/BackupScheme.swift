import Crypto
import CryptoExtras
import Foundation

/// The blind backup scheme of the existing browser client, reproduced byte for byte.
///
/// - `userId = hex(SHA-256(lowercase(username)))`
/// - `storageKey = hex(SHA-256(userId + password))`
/// - `key = PBKDF2-SHA256(password, salt: lowercase(username), 100 000 rounds, 32 bytes)`
/// - `data = JSON.stringify({"encrypted": base64(ciphertext ‖ tag), "nonce": base64(nonce)})`
public enum BackupScheme {
    /// PBKDF2 rounds the browser client uses; fixed by compatibility, not chosen by Coffer.
    public static let pbkdf2Rounds = 100_000

    /// The hashed user id the server knows the user by.
    public static func userId(username: String) -> String {
        Hex.encode(SHA256.hash(data: Data(username.lowercased().utf8)))
    }

    /// The storage key that proves knowledge of the password to the server.
    public static func storageKey(userId: String, password: String) -> String {
        Hex.encode(SHA256.hash(data: Data((userId + password).utf8)))
    }

    /// The AES-256-GCM key; never leaves the client.
    public static func encryptionKey(username: String, password: String) throws -> SymmetricKey {
        // 100 000 rounds is below CryptoExtras' checked minimum; the browser client fixes it, so the
        // unchecked entry point is the only way to stay compatible with backups it already wrote.
        try KDF.Insecure.PBKDF2.deriveKey(
            from: Data(password.utf8),
            salt: Data(username.lowercased().utf8),
            using: .sha256,
            outputByteCount: 32,
            unsafeUncheckedRounds: pbkdf2Rounds
        )
    }

    /// Encrypts `plaintext` into the browser client's `data` string. `nonce` is random unless given (test vectors).
    public static func seal(_ plaintext: some DataProtocol, key: SymmetricKey, nonce: [UInt8]? = nil) throws -> String {
        let gcmNonce = try nonce.map { try AES.GCM.Nonce(data: $0) } ?? AES.GCM.Nonce()
        let box = try AES.GCM.seal(plaintext, using: key, nonce: gcmNonce)
        let encrypted = (box.ciphertext + box.tag).base64EncodedString()
        let nonceText = Data(gcmNonce).base64EncodedString()
        // Written by hand to match JSON.stringify exactly: base64 needs no escaping, and JSONEncoder would escape "/".
        return "{\"encrypted\":\"\(encrypted)\",\"nonce\":\"\(nonceText)\"}"
    }

    /// Decrypts a `data` string written by the browser client or by `seal`.
    public static func open(_ data: String, key: SymmetricKey) throws -> Data {
        guard let envelope = BackupEnvelope(data: data) else { throw BackupSchemeError.malformedEnvelope }
        guard envelope.nonce.count == 12, envelope.encrypted.count >= 16 else { throw BackupSchemeError.malformedEnvelope }
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: envelope.nonce),
                ciphertext: envelope.encrypted.dropLast(16),
                tag: envelope.encrypted.suffix(16)
            )
            return try AES.GCM.open(box, using: key)
        } catch {
            throw BackupSchemeError.decryptionFailed
        }
    }
}

/// The `{"encrypted","nonce"}` envelope inside a backup's `data` string.
public struct BackupEnvelope: Sendable, Equatable {
    public var encrypted: Data
    public var nonce: Data

    /// Parses a `data` string; nil when it is not a JSON object with base64 `encrypted` and `nonce`.
    public init?(data: String) {
        struct Wire: Decodable {
            var encrypted: String
            var nonce: String
        }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(data.utf8)),
            let encrypted = Data(base64Encoded: wire.encrypted),
            let nonce = Data(base64Encoded: wire.nonce)
        else { return nil }
        self.encrypted = encrypted
        self.nonce = nonce
    }
}

/// Failures of the backup scheme, reported to the user as tampering or corruption, never skipped.
public enum BackupSchemeError: Error, Equatable, CustomStringConvertible {
    case malformedEnvelope
    case decryptionFailed

    public var description: String {
        switch self {
        case .malformedEnvelope: "the backup is not an encrypted backup envelope"
        case .decryptionFailed: "the backup could not be decrypted: wrong password, or the data was tampered with"
        }
    }
}
