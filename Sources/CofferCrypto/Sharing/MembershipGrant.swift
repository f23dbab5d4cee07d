import Crypto
import Foundation

/// A signed statement that a member holds a role in a vault: who (user id and identity key),
/// which role, and who granted it (user id and identity key), signed by the granter's identity
/// key. The server stores and serves it beside the membership but cannot make one, so a device
/// that knows the granter's identity can tell a member someone really granted from one the
/// server added, or whose key it swapped.
///
/// Wire form, base64url: the statement's text (`coffer-membership-grant-v1` and seven fields,
/// one per line) ‖ Ed25519 signature (64 bytes).
public struct MembershipGrant: Sendable, Equatable {
    public var vaultId: String
    public var memberId: String
    /// The member's identity key (base64url) the granter saw and trusted.
    public var memberIdentityKey: String
    /// The role's wire name (`read`, `write`, `admin`).
    public var role: String
    public var granterId: String
    public var granterIdentityKey: String
    /// When the granter made the statement (milliseconds since 1970), to order a member's grants.
    public var issuedAt: Int64

    static let header = "coffer-membership-grant-v1"
    static let signatureByteCount = 64

    public init(vaultId: String, memberId: String, memberIdentityKey: String, role: String, granterId: String, granterIdentityKey: String, issuedAt: Int64) {
        self.vaultId = vaultId
        self.memberId = memberId
        self.memberIdentityKey = memberIdentityKey
        self.role = role
        self.granterId = granterId
        self.granterIdentityKey = granterIdentityKey
        self.issuedAt = issuedAt
    }

    var text: String {
        [Self.header, vaultId, memberId, memberIdentityKey, role, granterId, granterIdentityKey, String(issuedAt)].joined(separator: "\n")
    }

    /// The statement signed by `signer`, whose public key must be `granterIdentityKey`.
    public func signed(by signer: Curve25519.Signing.PrivateKey) throws -> String {
        guard Base64URL.encode(signer.publicKey.rawRepresentation) == granterIdentityKey else { throw MembershipGrantError.wrongSigner }
        guard ![vaultId, memberId, memberIdentityKey, role, granterId].contains(where: { $0.contains("\n") || $0.isEmpty }) else {
            throw MembershipGrantError.malformed
        }
        let message = Data(text.utf8)
        return Base64URL.encode(Array(message) + Array(try signer.signature(for: message)))
    }

    /// Reads a statement and checks its signature under the granter identity it names (whether
    /// that identity is the right one is the caller's question).
    public static func open(_ wire: String) throws -> MembershipGrant {
        guard wire.utf8.count <= 4096, let bytes = Base64URL.decode(wire), bytes.count > signatureByteCount else { throw MembershipGrantError.malformed }
        let message = Data(bytes[..<(bytes.count - signatureByteCount)])
        let signature = Data(bytes[(bytes.count - signatureByteCount)...])
        guard let text = String(data: message, encoding: .utf8) else { throw MembershipGrantError.malformed }
        let fields = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 8, fields[0] == header, let issuedAt = Int64(fields[7]) else { throw MembershipGrantError.malformed }
        let grant = MembershipGrant(
            vaultId: fields[1], memberId: fields[2], memberIdentityKey: fields[3], role: fields[4], granterId: fields[5], granterIdentityKey: fields[6],
            issuedAt: issuedAt
        )
        guard let granter = IdentityKey.publicKey(grant.granterIdentityKey), granter.isValidSignature(signature, for: message) else {
            throw MembershipGrantError.badSignature
        }
        return grant
    }
}

public enum MembershipGrantError: Error, Equatable {
    case malformed
    /// The signature does not verify under the granter identity the statement names.
    case badSignature
    /// Signing with a key that is not the statement's granter identity.
    case wrongSigner
}
