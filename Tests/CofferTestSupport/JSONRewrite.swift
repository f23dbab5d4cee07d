import Foundation
import NIOCore

/// Rewrites of JSON answers, for proxies that play a malicious server.
public enum JSONRewrite {
    /// `body` with `change` applied to every JSON object in it (inner objects first); an answer
    /// that is not a 2xx JSON one is returned unchanged.
    public static func objects(_ status: Int, _ body: ByteBuffer, _ change: (inout [String: Any]) -> Void) -> (Int, ByteBuffer) {
        func walk(_ value: Any) -> Any {
            if var object = value as? [String: Any] {
                for (key, inner) in object { object[key] = walk(inner) }
                change(&object)
                return object
            }
            if let array = value as? [Any] { return array.map(walk) }
            return value
        }
        guard (200..<300).contains(status), let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)),
            let data = try? JSONSerialization.data(withJSONObject: walk(json))
        else { return (status, body) }
        return (status, ByteBuffer(bytes: data))
    }

    /// A rewrite that replaces every summary of vault `vaultId` (an object with that id and a
    /// `wrappedKey`) with `forged`, a JSON-encoded summary.
    public static func replacingVault(_ vaultId: String, with forged: Data) -> @Sendable (Int, ByteBuffer) throws -> (Int, ByteBuffer) {
        { status, body in
            let forgedObject = try JSONSerialization.jsonObject(with: forged)
            guard let replacement = forgedObject as? [String: Any] else { return (status, body) }
            return objects(status, body) { object in
                if object["id"] as? String == vaultId, object["wrappedKey"] != nil { object = replacement }
            }
        }
    }
}
