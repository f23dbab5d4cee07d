import Crypto
import Foundation

/// The Ed25519 signature that proves knowledge of the password at login (and for sensitive actions).
///
/// Message: UTF-8 of `"coffer/v1/auth\n" + action + "\n" + normalizedEmail + "\n" + challenge`.
/// The action is signed so that a signature obtained for "login" cannot be replayed to
/// "delete-account"; the email, so that it cannot be used for another account; the challenge
/// (random, single use, from the server), so that it cannot be replayed at all.
public enum LoginProof {
    /// Domain separation prefix: these signatures cannot be mistaken for any other Coffer signature.
    public static let domain = "coffer/v1/auth"

    /// The exact bytes that are signed.
    public static func message(email: String, challenge: String, action: String) -> Data {
        Data((domain + "\n" + action + "\n" + AccountEmail.normalized(email) + "\n" + challenge).utf8)
    }

    /// Signs the proof with the login key; base64url (no padding) of the 64-byte signature.
    public static func sign(email: String, challenge: String, action: String, loginKey: Curve25519.Signing.PrivateKey) throws -> String {
        // The challenge is last, so only the fields before it must be newline-free for the message to parse one way.
        if let field = ambiguousField(email: email, action: action) { throw LoginProofError.newlineInField(field) }
        return Base64URL.encode(try loginKey.signature(for: message(email: email, challenge: challenge, action: action)))
    }

    /// Server side: true only when `signature` is the login key `publicKey`'s signature of exactly this proof.
    public static func verify(signature: String, publicKey: String, email: String, challenge: String, action: String) -> Bool {
        guard ambiguousField(email: email, action: action) == nil,
            let signatureBytes = Base64URL.decode(signature), signatureBytes.count == 64,
            let publicKeyBytes = Base64URL.decode(publicKey), publicKeyBytes.count == 32,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKeyBytes)
        else { return false }
        return key.isValidSignature(signatureBytes, for: message(email: email, challenge: challenge, action: action))
    }

    private static func ambiguousField(email: String, action: String) -> String? {
        if action.utf8.contains(UInt8(ascii: "\n")) { return "action" }
        if AccountEmail.normalized(email).utf8.contains(UInt8(ascii: "\n")) { return "email" }
        return nil
    }
}
