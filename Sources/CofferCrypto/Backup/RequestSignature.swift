import Crypto
import Foundation

/// HMAC request signatures of the backup API:
/// `hex(HMAC-SHA256(secret, timestamp + "\n" + METHOD + "\n" + path-with-query + "\n" + hex(SHA-256(body))))`.
public enum RequestSignature {
    /// The string that is signed.
    public static func canonical(timestamp: String, method: String, pathWithQuery: String, body: some DataProtocol) -> String {
        let bodyHash = Hex.encode(SHA256.hash(data: body))
        return "\(timestamp)\n\(method.uppercased())\n\(pathWithQuery)\n\(bodyHash)"
    }

    /// The hex signature for a request.
    public static func sign(
        secret: String,
        timestamp: String,
        method: String,
        pathWithQuery: String,
        body: some DataProtocol
    ) -> String {
        let message = canonical(timestamp: timestamp, method: method, pathWithQuery: pathWithQuery, body: body)
        let mac = HMAC<SHA256>.authenticationCode(for: Data(message.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Hex.encode(mac)
    }

    /// True when `signature` matches under any of `secrets` (rotation), compared in constant time.
    public static func verify(
        signature: String,
        secrets: [String],
        timestamp: String,
        method: String,
        pathWithQuery: String,
        body: some DataProtocol
    ) -> Bool {
        guard let provided = Hex.decode(signature), provided.count == 32 else { return false }
        let message = Data(canonical(timestamp: timestamp, method: method, pathWithQuery: pathWithQuery, body: body).utf8)
        var matched = false
        for secret in secrets {
            // Check every secret so timing does not reveal which one matched.
            if HMAC<SHA256>.isValidAuthenticationCode(provided, authenticating: message, using: SymmetricKey(data: Data(secret.utf8))) {
                matched = true
            }
        }
        return matched
    }
}
