import CofferCrypto
import CofferProtocol
import Crypto
import Foundation
import Testing

@Suite("Identity keys and signed vault-key copies")
struct IdentityKeyTests {
    let alice = Curve25519.Signing.PrivateKey()
    let bobSharing = Curve25519.KeyAgreement.PrivateKey()
    var bobPublic: String { Base64URL.encode(bobSharing.publicKey.rawRepresentation) }
    var aliceIdentity: String { Base64URL.encode(alice.publicKey.rawRepresentation) }

    @Test("a certificate vouches for one sharing key of one email, under one identity")
    func certificateBindsEmailAndKey() throws {
        let certificate = try IdentityKey.certify(sharingKey: bobPublic, email: "Alice@Example.com", identity: alice)
        #expect(IdentityKey.verify(certificate: certificate, identityKey: aliceIdentity, sharingKey: bobPublic, email: "alice@example.com"))
        let otherKey = Base64URL.encode(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        #expect(!IdentityKey.verify(certificate: certificate, identityKey: aliceIdentity, sharingKey: otherKey, email: "alice@example.com"))
        #expect(!IdentityKey.verify(certificate: certificate, identityKey: aliceIdentity, sharingKey: bobPublic, email: "mallory@example.com"))
        let otherIdentity = Base64URL.encode(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
        #expect(!IdentityKey.verify(certificate: certificate, identityKey: otherIdentity, sharingKey: bobPublic, email: "alice@example.com"))
        #expect(!IdentityKey.verify(certificate: "AAAA", identityKey: aliceIdentity, sharingKey: bobPublic, email: "alice@example.com"))
        #expect(!IdentityKey.verify(certificate: certificate, identityKey: "not a key", sharingKey: bobPublic, email: "alice@example.com"))
    }

    @Test("a signed copy opens with its sealer's identity; any changed byte, another recipient key or another binding is refused")
    func signedCopy() throws {
        let key = SymmetricKey(size: .bits256)
        let sealed = try SealedVaultKey.seal(key, to: bobPublic, vaultId: "v", sealerId: "alice", recipientId: "bob", keyEpoch: 3, signer: alice)
        let opened = try SealedVaultKey.open(sealed, privateKey: bobSharing, vaultId: "v", sealerId: "alice", recipientId: "bob", keyEpoch: 3)
        #expect(opened.key == key)
        #expect(opened.sealerIdentity == aliceIdentity)

        let bytes = try #require(Base64URL.decode(sealed))
        for index in stride(from: 0, to: bytes.count, by: 7) {
            var changed = bytes
            changed[index] ^= 0x01
            #expect(throws: (any Error).self) {
                try SealedVaultKey.open(Base64URL.encode(changed), privateKey: bobSharing, vaultId: "v", sealerId: "alice", recipientId: "bob", keyEpoch: 3)
            }
        }
        for (vault, sealer, recipient, epoch) in [("w", "alice", "bob", 3), ("v", "mallory", "bob", 3), ("v", "alice", "carol", 3), ("v", "alice", "bob", 2)] {
            #expect(throws: (any Error).self) {
                try SealedVaultKey.open(sealed, privateKey: bobSharing, vaultId: vault, sealerId: sealer, recipientId: recipient, keyEpoch: epoch)
            }
        }
        // Another recipient's private key: the signature covers the recipient's sharing key, so it fails before HPKE.
        #expect(throws: SealedVaultKeyError.badSignature) {
            try SealedVaultKey.open(sealed, privateKey: Curve25519.KeyAgreement.PrivateKey(), vaultId: "v", sealerId: "alice", recipientId: "bob", keyEpoch: 3)
        }
    }

    @Test("a copy the server re-signs with its own identity opens only as that identity's, and an unsigned copy names no identity")
    func reSignedAndUnsignedCopies() throws {
        let key = SymmetricKey(size: .bits256)
        let server = Curve25519.Signing.PrivateKey()
        let forged = try SealedVaultKey.seal(key, to: bobPublic, vaultId: "v", sealerId: "alice", recipientId: "bob", signer: server)
        let opened = try SealedVaultKey.open(forged, privateKey: bobSharing, vaultId: "v", sealerId: "alice", recipientId: "bob")
        #expect(opened.sealerIdentity == Base64URL.encode(server.publicKey.rawRepresentation))
        #expect(opened.sealerIdentity != aliceIdentity)

        let unsigned = try SealedVaultKey.sealUnsigned(key, to: bobPublic, vaultId: "v", sealerId: "alice", recipientId: "bob")
        let legacy = try SealedVaultKey.open(unsigned, privateKey: bobSharing, vaultId: "v", sealerId: "alice", recipientId: "bob")
        #expect(legacy.key == key && legacy.sealerIdentity == nil)
    }

    @Test("the bundle's identity opens with the account key; a substituted identity key, certificate or sealed key is tampering")
    func bundleIdentity() throws {
        let masterKey = SymmetricKey(size: .bits256)
        let (bundle, secrets) = try AccountKeyBundle.create(masterKey: masterKey, email: "alice@example.com")
        let identity = try #require(bundle.identity)
        let opened = try AccountKeyBundle.open(bundle: bundle, masterKey: masterKey, email: "alice@example.com")
        #expect(opened.identityKey?.rawRepresentation == secrets.identityKey?.rawRepresentation)
        #expect(IdentityKey.verify(certificate: identity.sharingKeyCertificate, identityKey: identity.identityKey, sharingKey: bundle.publicKey, email: "alice@example.com"))

        // The server's own identity, certifying the real sharing key: it has no sealed private half under this account key.
        let server = Curve25519.Signing.PrivateKey()
        var substituted = bundle
        substituted.identity?.identityKey = Base64URL.encode(server.publicKey.rawRepresentation)
        substituted.identity?.sharingKeyCertificate = try IdentityKey.certify(sharingKey: bundle.publicKey, email: "alice@example.com", identity: server)
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: substituted, masterKey: masterKey, email: "alice@example.com") }
        var badCertificate = bundle
        badCertificate.identity?.sharingKeyCertificate = try IdentityKey.certify(sharingKey: bundle.publicKey, email: "mallory@example.com", identity: try #require(secrets.identityKey))
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: badCertificate, masterKey: masterKey, email: "alice@example.com") }
        let (other, _) = try AccountKeyBundle.create(masterKey: masterKey, email: "alice@example.com")
        var movedKey = bundle
        movedKey.identity?.encryptedIdentityKey = try #require(other.identity).encryptedIdentityKey
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: movedKey, masterKey: masterKey, email: "alice@example.com") }

        // A bundle made before identity keys has none, and gets one that opens with its account key.
        var legacy = bundle
        legacy.identity = nil
        #expect(try AccountKeyBundle.open(bundle: legacy, masterKey: masterKey, email: "alice@example.com").identityKey == nil)
        let (upgraded, made) = try legacy.withIdentity(accountKey: secrets.accountKey, email: "alice@example.com")
        #expect(try upgraded.openIdentityKey(accountKey: secrets.accountKey, email: "alice@example.com")?.rawRepresentation == made.rawRepresentation)
        // A password change keeps the identity.
        let rewrapped = try bundle.rewrapped(for: SymmetricKey(size: .bits256), email: "alice@example.com", accountKey: secrets.accountKey)
        #expect(rewrapped.identity == bundle.identity)
    }
}
