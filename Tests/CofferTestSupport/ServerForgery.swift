import CofferCrypto
import CofferKit
import CofferProtocol
import Crypto
import Foundation

/// What a malicious server can make on its own, for tests that play one.
public enum ServerForgery {
    /// `summary` as a fake rotation to the next epoch: a key the server made, sealed to the
    /// recipient in the name of `sealerId` — unsigned, or signed by `signer` (the server's own
    /// identity: it has nobody else's) — with `name` sealed under it and no key history.
    public static func rotation(
        of summary: VaultSummary, name: String, sealedBy sealerId: String, to recipientId: String, recipientKey: String, signer: Curve25519.Signing.PrivateKey?
    ) throws -> VaultSummary {
        let key = SymmetricKey(size: .bits256)
        let epoch = summary.keyEpoch + 1
        var forged = summary
        forged.keyEpoch = epoch
        forged.keyHistory = nil
        forged.encryptedMetadata = try Envelope.seal(
            try JSONEncoder().encode(VaultMetadata(name: name)), key: key, context: EnvelopeContext(purpose: "vault-metadata", owner: summary.id), keyEpoch: epoch
        )
        forged.wrappedKey = try signer.map {
            try SealedVaultKey.seal(key, to: recipientKey, vaultId: summary.id, sealerId: sealerId, recipientId: recipientId, keyEpoch: epoch, signer: $0)
        } ?? SealedVaultKey.sealUnsigned(key, to: recipientKey, vaultId: summary.id, sealerId: sealerId, recipientId: recipientId, keyEpoch: epoch)
        return forged
    }
}
