import CofferCrypto
import Crypto
import Foundation
import Testing

/// The browser backup client's scheme, checked against a vector the browser code itself produced
/// (`scripts/browser-backup-client.mjs vector`, run under Node's WebCrypto).
@Suite("Backup scheme")
struct BackupSchemeTests {
    struct Vector: Decodable {
        var username: String
        var password: String
        var plaintext: String
        var nonceHex: String
        var userId: String
        var storageKey: String
        var data: String
    }

    static func vector() throws -> Vector {
        let url = try #require(Bundle.module.url(forResource: "browser-backup", withExtension: "json", subdirectory: "Vectors"))
        return try JSONDecoder().decode(Vector.self, from: Data(contentsOf: url))
    }

    @Test func hashesMatchTheBrowserClient() throws {
        let vector = try Self.vector()
        #expect(BackupScheme.userId(username: vector.username) == vector.userId)
        #expect(BackupScheme.userId(username: vector.username.uppercased()) == vector.userId)
        #expect(BackupScheme.storageKey(userId: vector.userId, password: vector.password) == vector.storageKey)
    }

    @Test func swiftEncryptsExactlyAsTheBrowserDoes() throws {
        let vector = try Self.vector()
        let key = try BackupScheme.encryptionKey(username: vector.username, password: vector.password)
        let data = try BackupScheme.seal(Data(vector.plaintext.utf8), key: key, nonce: Hex.decode(vector.nonceHex))
        #expect(data == vector.data)
    }

    @Test func swiftDecryptsWhatTheBrowserWrote() throws {
        let vector = try Self.vector()
        let key = try BackupScheme.encryptionKey(username: vector.username, password: vector.password)
        #expect(String(decoding: try BackupScheme.open(vector.data, key: key), as: UTF8.self) == vector.plaintext)
    }

    @Test func wrongPasswordOrTamperingIsReported() throws {
        let vector = try Self.vector()
        let wrongKey = try BackupScheme.encryptionKey(username: vector.username, password: "not the password")
        #expect(throws: BackupSchemeError.decryptionFailed) { try BackupScheme.open(vector.data, key: wrongKey) }
        let key = try BackupScheme.encryptionKey(username: vector.username, password: vector.password)
        var envelope = try #require(BackupEnvelope(data: vector.data))
        envelope.encrypted[3] ^= 0x01
        let tampered = #"{"encrypted":"\#(envelope.encrypted.base64EncodedString())","nonce":"\#(envelope.nonce.base64EncodedString())"}"#
        #expect(throws: BackupSchemeError.decryptionFailed) { try BackupScheme.open(tampered, key: key) }
        #expect(throws: BackupSchemeError.malformedEnvelope) { try BackupScheme.open("bm90IGFuIGVudmVsb3Bl", key: key) }
    }

    @Test func randomNoncesDiffer() throws {
        let key = SymmetricKey(size: .bits256)
        let first = try BackupScheme.seal(Data("same".utf8), key: key)
        let second = try BackupScheme.seal(Data("same".utf8), key: key)
        #expect(first != second)
        #expect(try BackupScheme.open(first, key: key) == Data("same".utf8))
    }
}

@Suite("Request signatures")
struct RequestSignatureTests {
    /// Vector computed independently: python3 hmac.new(b"s3cret", canonical, sha256).hexdigest().
    @Test func knownVector() {
        let canonical = RequestSignature.canonical(timestamp: "1700000000", method: "post", pathWithQuery: "/api/register", body: Data(#"{"userId":"x"}"#.utf8))
        #expect(canonical == "1700000000\nPOST\n/api/register\n" + Hex.encode(SHA256.hash(data: Data(#"{"userId":"x"}"#.utf8))))
        let signature = RequestSignature.sign(secret: "s3cret", timestamp: "1700000000", method: "POST", pathWithQuery: "/api/register", body: Data(#"{"userId":"x"}"#.utf8))
        #expect(signature == "4a579add8c6544a5b8301b3359af3a999a3fe31236dd3182dda98cb402316cf5")
        #expect(RequestSignature.verify(signature: signature, secrets: ["old", "s3cret"], timestamp: "1700000000", method: "POST", pathWithQuery: "/api/register", body: Data(#"{"userId":"x"}"#.utf8)))
        #expect(!RequestSignature.verify(signature: signature, secrets: ["old"], timestamp: "1700000000", method: "POST", pathWithQuery: "/api/register", body: Data(#"{"userId":"x"}"#.utf8)))
        #expect(!RequestSignature.verify(signature: "zz", secrets: ["s3cret"], timestamp: "1700000000", method: "POST", pathWithQuery: "/api/register", body: Data()))
    }

    @Test func hexRoundTrip() {
        #expect(Hex.encode([0x00, 0xff, 0x10]) == "00ff10")
        #expect(Hex.decode("00FF10") == [0x00, 0xff, 0x10])
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}
