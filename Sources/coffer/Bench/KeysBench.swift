import ArgumentParser
import CofferCrypto
import Crypto
import Foundation

extension Coffer.Bench {
    /// `coffer bench keys`: what identity keys cost — sealing a vault-key copy signed versus
    /// unsigned, opening and verifying it, checking a sharing-key certificate and a membership
    /// grant — per operation, on one core.
    struct KeysBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keys",
            abstract: "Benchmark the cost of signing and verifying vault-key copies, certificates and membership grants."
        )

        @Option(help: "Operations per row.")
        var count = 2000

        func run() async throws {
            guard count > 0 else { throw CLIError("--count must be positive") }
            let sealer = Curve25519.Signing.PrivateKey()
            let recipient = Curve25519.KeyAgreement.PrivateKey()
            let recipientPublic = Base64URL.encode(recipient.publicKey.rawRepresentation)
            let key = SymmetricKey(size: .bits256)
            let signed = try SealedVaultKey.seal(key, to: recipientPublic, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2, signer: sealer)
            let unsigned = try SealedVaultKey.sealUnsigned(key, to: recipientPublic, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2)
            let identityKey = Base64URL.encode(sealer.publicKey.rawRepresentation)
            let certificate = try IdentityKey.certify(sharingKey: recipientPublic, email: "a@example.com", identity: sealer)
            let grant = try MembershipGrant(
                vaultId: "v", memberId: "b", memberIdentityKey: identityKey, role: "write", granterId: "a", granterIdentityKey: identityKey, issuedAt: 1
            ).signed(by: sealer)
            let rows: [(String, () throws -> Void)] = [
                ("seal a vault-key copy, unsigned (before identity keys)", { _ = try SealedVaultKey.sealUnsigned(key, to: recipientPublic, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2) }),
                ("seal a vault-key copy, signed", { _ = try SealedVaultKey.seal(key, to: recipientPublic, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2, signer: sealer) }),
                ("open an unsigned copy", { _ = try SealedVaultKey.open(unsigned, privateKey: recipient, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2) }),
                ("open and verify a signed copy", { _ = try SealedVaultKey.open(signed, privateKey: recipient, vaultId: "v", sealerId: "a", recipientId: "b", keyEpoch: 2) }),
                ("verify a sharing-key certificate", { guard IdentityKey.verify(certificate: certificate, identityKey: identityKey, sharingKey: recipientPublic, email: "a@example.com") else { throw CLIError("certificate") } }),
                ("sign a membership grant", { _ = try MembershipGrant(vaultId: "v", memberId: "b", memberIdentityKey: identityKey, role: "write", granterId: "a", granterIdentityKey: identityKey, issuedAt: 1).signed(by: sealer) }),
                ("open and verify a membership grant", { _ = try MembershipGrant.open(grant) }),
            ]
            print("| operation | µs per operation |")
            print("|---|---:|")
            for (name, operation) in rows {
                for _ in 0..<min(count, 100) { try operation() }  // warm up
                let start = ContinuousClock.now
                for _ in 0..<count { try operation() }
                let elapsed = ContinuousClock.now - start
                let micros = Double(elapsed.components.seconds) * 1e6 + Double(elapsed.components.attoseconds) / 1e12
                print("| \(name) | \(String(format: "%.1f", micros / Double(count))) |")
            }
        }
    }
}
