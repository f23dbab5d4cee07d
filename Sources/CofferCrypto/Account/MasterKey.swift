import Crypto
import CryptoExtras
import Foundation

/// The account's master key: the password stretched by the account's KDF. It never leaves the client.
public enum MasterKey {
    /// Length of the master key in bytes.
    public static let byteCount = 32
    /// Shortest salt accepted.
    public static let minimumSaltByteCount = 16
    /// Length of the salts `randomSalt()` makes.
    public static let saltByteCount = 32

    /// Derives the 32-byte master key; refuses unsafe parameters, a short salt or an empty password before any work.
    public static func derive(password: String, salt: [UInt8], parameters: KDFParameters) throws -> SymmetricKey {
        // Validate first: a hostile server must not get a weak key derived, nor a device exhausted, even once.
        try parameters.validate()
        guard salt.count >= minimumSaltByteCount else {
            throw KDFError.saltTooShort(byteCount: salt.count, minimum: minimumSaltByteCount)
        }
        // NFC: the same password typed on different systems (precomposed "é" vs "e" + combining accent)
        // must give the same key, or the user is locked out of their account on the other device.
        let secret = Array(password.precomposedStringWithCanonicalMapping.utf8)
        // Never a sensible password; also, the KDF backends would receive a null buffer for it.
        guard !secret.isEmpty else { throw KDFError.emptyPassword }

        switch parameters.algorithm {
        case .scrypt:
            // validate() guarantees all three are present.
            guard let n = parameters.n, let r = parameters.r, let p = parameters.p else {
                throw KDFError.missingParameter(.scryptN)
            }
            return try KDF.Scrypt.deriveKey(
                from: secret,
                salt: salt,
                outputByteCount: byteCount,
                rounds: n,
                blockSize: r,
                parallelism: p
            )
        case .pbkdf2SHA256:
            guard let iterations = parameters.iterations else {
                throw KDFError.missingParameter(.pbkdf2Iterations)
            }
            return try KDF.Insecure.PBKDF2.deriveKey(
                from: secret,
                salt: salt,
                using: .sha256,
                outputByteCount: byteCount,
                rounds: iterations
            )
        }
    }

    /// A fresh random 32-byte salt for a new account (or a password change).
    public static func randomSalt() -> [UInt8] {
        // SymmetricKey's initializer draws from the system CSPRNG, like every key in swift-crypto.
        SymmetricKey(size: .init(bitCount: saltByteCount * 8)).withUnsafeBytes { Array($0) }
    }
}
