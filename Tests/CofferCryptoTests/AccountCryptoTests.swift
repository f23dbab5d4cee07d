import CofferCrypto
import Crypto
import Foundation
import Testing

// Account cryptography (SPEC §5, §6), checked against vectors produced by an independent
// implementation: `python3 scripts/account-vectors.py` (Python `cryptography`), committed under
// Vectors/account-*.json. Swift must reproduce every one of them byte for byte.

/// The committed vectors, decoded.
enum AccountVectors {
    struct KDF: Decodable {
        struct Case: Decodable {
            var name: String
            var parameters: KDFParameters
            var parametersJSON: String
            var masterKeyHex: String
            var loginPublicKey: String
            var wrappingKeyHex: String
        }
        var password: String
        var passwordUTF8Hex: String
        var saltHex: String
        var cases: [Case]

        func `case`(_ name: String) throws -> Case {
            try #require(cases.first { $0.name == name })
        }
    }

    struct HKDFVector: Decodable {
        struct Case: Decodable {
            var info: String
            var outputHex: String
        }
        var masterKeyHex: String
        var cases: [Case]
        var loginPrivateKeyHex: String
        var loginPublicKey: String
        var wrappingKeyHex: String
    }

    struct EnvelopeVectors: Decodable {
        struct Context: Decodable {
            var purpose: String
            var owner: String
            var object: String?
        }
        struct Case: Decodable {
            var keyHex: String
            var nonceHex: String
            var context: Context
            var associatedDataHex: String
            var plaintext: String
            var envelope: String
        }
        var cases: [Case]
    }

    struct LoginProofVectors: Decodable {
        struct Case: Decodable {
            var email: String
            var challenge: String
            var action: String
            var messageHex: String
            var signature: String
        }
        var loginPublicKey: String
        var cases: [Case]
    }

    struct BundleVector: Decodable {
        var masterKeyHex: String
        var email: String
        var normalizedEmail: String
        var wrappingKeyHex: String
        var accountKeyHex: String
        var sharingPrivateKeyHex: String
        var loginPublicKey: String
        var bundle: AccountKeyBundle
    }

    static func load<T: Decodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors"))
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    struct MissingVector: Error {}

    /// The scrypt vector's master key, derived once per run: scrypt at N=2^17 costs ~0.3 s and two suites need it.
    static let scryptMasterKey = Result { () throws -> SymmetricKey in
        let vector = try load("account-kdf", as: KDF.self)
        guard let salt = Hex.decode(vector.saltHex), let scrypt = vector.cases.first(where: { $0.name == "scrypt" }) else {
            throw MissingVector()
        }
        return try MasterKey.derive(password: vector.password, salt: salt, parameters: scrypt.parameters)
    }
}

private func hex(_ key: SymmetricKey) -> String {
    key.withUnsafeBytes { Hex.encode($0) }
}

private func symmetricKey(hex text: String) throws -> SymmetricKey {
    SymmetricKey(data: try #require(Hex.decode(text)))
}

// MARK: - KDF

@Suite("Account KDF")
struct AccountKDFTests {
    static let salt16 = [UInt8](repeating: 0x5a, count: 16)

    @Test func passwordIsEncodedAsTheVectorSays() throws {
        let vector = try AccountVectors.load("account-kdf", as: AccountVectors.KDF.self)
        #expect(vector.password.unicodeScalars.contains { !$0.isASCII })
        #expect(Hex.encode(vector.password.precomposedStringWithCanonicalMapping.utf8) == vector.passwordUTF8Hex)
    }

    @Test func scryptReproducesTheVector() throws {
        let vector = try AccountVectors.load("account-kdf", as: AccountVectors.KDF.self).case("scrypt")
        #expect(vector.parameters == .recommended)
        let masterKey = try AccountVectors.scryptMasterKey.get()
        #expect(hex(masterKey) == vector.masterKeyHex)
        let keys = try AccountKeys(masterKey: masterKey)
        #expect(keys.loginPublicKey == vector.loginPublicKey)
        #expect(hex(keys.wrappingKey) == vector.wrappingKeyHex)
    }

    /// Also proves NFC normalisation: the password is given decomposed, Python derived from the precomposed form.
    @Test func pbkdf2ReproducesTheVectorFromADecomposedPassword() throws {
        let vectors = try AccountVectors.load("account-kdf", as: AccountVectors.KDF.self)
        let vector = try vectors.case("pbkdf2-sha256")
        #expect(vector.parameters == .browserCompatible)
        let decomposed = vectors.password.decomposedStringWithCanonicalMapping
        #expect(Array(decomposed.utf8) != Array(vectors.password.utf8))
        let masterKey = try MasterKey.derive(password: decomposed, salt: try #require(Hex.decode(vectors.saltHex)), parameters: vector.parameters)
        #expect(masterKey.bitCount == 256)
        #expect(hex(masterKey) == vector.masterKeyHex)
        let keys = try AccountKeys(masterKey: masterKey)
        #expect(keys.loginPublicKey == vector.loginPublicKey)
        #expect(hex(keys.wrappingKey) == vector.wrappingKeyHex)
    }

    @Test func wireFormatRoundTripsExactly() throws {
        let vectors = try AccountVectors.load("account-kdf", as: AccountVectors.KDF.self)
        #expect(try vectors.case("scrypt").parametersJSON == #"{"algorithm":"scrypt","n":131072,"r":8,"p":1}"#)
        #expect(try vectors.case("pbkdf2-sha256").parametersJSON == #"{"algorithm":"pbkdf2-sha256","iterations":600000}"#)
        for vector in vectors.cases {
            let wire = Data(vector.parametersJSON.utf8)
            let decoded = try JSONDecoder().decode(KDFParameters.self, from: wire)
            #expect(decoded == vector.parameters)
            // JSON objects are unordered (and JSONEncoder's order is not stable), so compare the key/value sets exactly…
            let encoded = try JSONEncoder().encode(decoded)
            let encodedObject = try #require(JSONSerialization.jsonObject(with: encoded) as? [String: AnyHashable])
            let wireObject = try #require(JSONSerialization.jsonObject(with: wire) as? [String: AnyHashable])
            #expect(encodedObject == wireObject)
            #expect(try JSONDecoder().decode(KDFParameters.self, from: encoded) == decoded)
        }
        // …and the byte form with sorted keys, which also shows that absent keys are omitted, not null.
        let sorted = JSONEncoder()
        sorted.outputFormatting = .sortedKeys
        #expect(String(decoding: try sorted.encode(KDFParameters.recommended), as: UTF8.self) == #"{"algorithm":"scrypt","n":131072,"p":1,"r":8}"#)
        #expect(String(decoding: try sorted.encode(KDFParameters.browserCompatible), as: UTF8.self) == #"{"algorithm":"pbkdf2-sha256","iterations":600000}"#)
    }

    @Test func unknownAlgorithmDoesNotDecode() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(KDFParameters.self, from: Data(#"{"algorithm":"argon2id","iterations":3}"#.utf8))
        }
    }

    @Test func weakParametersFromTheServerDecodeButAreRefused() throws {
        let weak = try JSONDecoder().decode(KDFParameters.self, from: Data(#"{"algorithm":"scrypt","n":16384,"r":8,"p":1}"#.utf8))
        #expect(throws: KDFError.belowMinimum(.scryptN, value: 16384, minimum: 131072)) { try weak.validate() }
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        var parameters: KDFParameters
        var error: KDFError
        var testDescription: String { error.description }
    }

    static let refusals: [Refusal] = [
        // Below the minimums: a weak key.
        Refusal(parameters: .scrypt(n: 1 << 14, r: 8, p: 1), error: .belowMinimum(.scryptN, value: 1 << 14, minimum: 1 << 17)),
        Refusal(parameters: .scrypt(n: -(1 << 17), r: 8, p: 1), error: .belowMinimum(.scryptN, value: -(1 << 17), minimum: 1 << 17)),
        Refusal(parameters: .scrypt(n: 1 << 17, r: 4, p: 1), error: .belowMinimum(.scryptR, value: 4, minimum: 8)),
        Refusal(parameters: .scrypt(n: 1 << 17, r: 8, p: 0), error: .belowMinimum(.scryptP, value: 0, minimum: 1)),
        Refusal(parameters: .pbkdf2SHA256(iterations: 100_000), error: .belowMinimum(.pbkdf2Iterations, value: 100_000, minimum: 600_000)),
        Refusal(parameters: .pbkdf2SHA256(iterations: 599_999), error: .belowMinimum(.pbkdf2Iterations, value: 599_999, minimum: 600_000)),
        // Invalid.
        Refusal(parameters: .scrypt(n: (1 << 17) + 1, r: 8, p: 1), error: .notPowerOfTwo(n: (1 << 17) + 1)),
        Refusal(parameters: .scrypt(n: 3 << 17, r: 8, p: 1), error: .notPowerOfTwo(n: 3 << 17)),
        // Incomplete or ambiguous.
        Refusal(parameters: KDFParameters(algorithm: .scrypt, n: 1 << 17, p: 1), error: .missingParameter(.scryptR)),
        Refusal(parameters: KDFParameters(algorithm: .scrypt), error: .missingParameter(.scryptN)),
        Refusal(parameters: KDFParameters(algorithm: .pbkdf2SHA256), error: .missingParameter(.pbkdf2Iterations)),
        Refusal(parameters: KDFParameters(algorithm: .scrypt, n: 1 << 17, r: 8, p: 1, iterations: 600_000), error: .unexpectedParameter(algorithm: .scrypt, key: "iterations")),
        Refusal(parameters: KDFParameters(algorithm: .pbkdf2SHA256, n: 1 << 17, iterations: 600_000), error: .unexpectedParameter(algorithm: .pbkdf2SHA256, key: "n")),
        // Absurd: a denial of service against the client. If these were not refused before deriving,
        // this test would run for minutes or exhaust memory.
        Refusal(parameters: .scrypt(n: 1 << 23, r: 8, p: 1), error: .aboveMaximum(.scryptN, value: 1 << 23, maximum: 1 << 22)),
        Refusal(parameters: .scrypt(n: Int.max, r: 8, p: 1), error: .aboveMaximum(.scryptN, value: Int.max, maximum: 1 << 22)),
        Refusal(parameters: .scrypt(n: 1 << 17, r: 33, p: 1), error: .aboveMaximum(.scryptR, value: 33, maximum: 32)),
        Refusal(parameters: .scrypt(n: 1 << 17, r: 8, p: 17), error: .aboveMaximum(.scryptP, value: 17, maximum: 16)),
        Refusal(parameters: .scrypt(n: 1 << 22, r: 8, p: 1), error: .aboveMaximum(.scryptMemory, value: 1 << 32, maximum: 1 << 30)),
        Refusal(parameters: .scrypt(n: 1 << 22, r: 32, p: 16), error: .aboveMaximum(.scryptMemory, value: 1 << 34, maximum: 1 << 30)),
        Refusal(parameters: .scrypt(n: 1 << 20, r: 8, p: 16), error: .aboveMaximum(.scryptWork, value: 1 << 27, maximum: 1 << 26)),
        Refusal(parameters: .pbkdf2SHA256(iterations: 10_000_001), error: .aboveMaximum(.pbkdf2Iterations, value: 10_000_001, maximum: 10_000_000)),
        Refusal(parameters: .pbkdf2SHA256(iterations: Int.max), error: .aboveMaximum(.pbkdf2Iterations, value: Int.max, maximum: 10_000_000)),
    ]

    @Test(arguments: refusals)
    func unsafeParametersAreRefusedBeforeDerivation(_ refusal: Refusal) throws {
        #expect(throws: refusal.error) { try refusal.parameters.validate() }
        // The error is a KDFError, not CryptoExtras' or BoringSSL's, and comes back at once: nothing was derived.
        let start = ContinuousClock.now
        #expect(throws: refusal.error) {
            try MasterKey.derive(password: "correct horse", salt: Self.salt16, parameters: refusal.parameters)
        }
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(!refusal.error.description.isEmpty)
    }

    @Test func boundaryParametersAreAccepted() throws {
        try KDFParameters.recommended.validate()
        try KDFParameters.browserCompatible.validate()
        try KDFParameters.scrypt(n: 1 << 18, r: 8, p: 2).validate()
        try KDFParameters.scrypt(n: 1 << 20, r: 8, p: 1).validate()  // exactly 1 GiB
        try KDFParameters.scrypt(n: 1 << 17, r: 32, p: 16).validate()  // exactly the work ceiling
        try KDFParameters.pbkdf2SHA256(iterations: 10_000_000).validate()
        #expect(KDFParameters.minimumScryptN == 131_072)
        #expect(KDFParameters.minimumScryptR == 8)
        #expect(KDFParameters.minimumScryptP == 1)
        #expect(KDFParameters.minimumPBKDF2Iterations == 600_000)
    }

    @Test func shortSaltAndEmptyPasswordAreRefused() {
        // Valid parameters but a bad salt or password: refused before the (slow) derivation.
        #expect(throws: KDFError.saltTooShort(byteCount: 15, minimum: 16)) {
            try MasterKey.derive(password: "correct horse", salt: Array(Self.salt16.dropLast()), parameters: .recommended)
        }
        #expect(throws: KDFError.saltTooShort(byteCount: 0, minimum: 16)) {
            try MasterKey.derive(password: "correct horse", salt: [], parameters: .browserCompatible)
        }
        #expect(throws: KDFError.emptyPassword) {
            try MasterKey.derive(password: "", salt: Self.salt16, parameters: .recommended)
        }
    }

    @Test func errorsSayWhatWasRefusedAndWhy() {
        #expect(KDFError.belowMinimum(.scryptN, value: 16384, minimum: 131_072).description
            == "scrypt N=16384 is below the minimum 131072; refusing to derive a weak key")
        #expect(KDFError.belowMinimum(.pbkdf2Iterations, value: 100_000, minimum: 600_000).description
            == "pbkdf2-sha256 iterations=100000 is below the minimum 600000; refusing to derive a weak key")
        #expect(KDFError.aboveMaximum(.scryptN, value: 1 << 23, maximum: 1 << 22).description.contains("exhaust this device"))
        #expect(KDFError.missingParameter(.scryptR).description.contains(#"lack "r""#))
        #expect(KDFError.saltTooShort(byteCount: 8, minimum: 16).description.contains("8 bytes"))
    }

    @Test func randomSaltsAreLongAndDistinct() {
        let first = MasterKey.randomSalt()
        let second = MasterKey.randomSalt()
        #expect(first.count == 32)
        #expect(first != second)
    }
}

// MARK: - HKDF

@Suite("Account keys")
struct AccountKeysTests {
    @Test func hkdfReproducesTheVector() throws {
        let vector = try AccountVectors.load("account-hkdf", as: AccountVectors.HKDFVector.self)
        let masterKey = try symmetricKey(hex: vector.masterKeyHex)
        // The raw HKDF outputs, label by label…
        for item in vector.cases {
            let output = HKDF<SHA256>.deriveKey(inputKeyMaterial: masterKey, salt: [UInt8](), info: Array(item.info.utf8), outputByteCount: 32)
            #expect(hex(output) == item.outputHex)
        }
        #expect(vector.cases.map(\.info) == [AccountKeys.loginKeyInfo, AccountKeys.wrappingKeyInfo])
        // …and as AccountKeys uses them.
        let keys = try AccountKeys(masterKey: masterKey)
        #expect(Hex.encode(keys.loginKey.rawRepresentation) == vector.loginPrivateKeyHex)
        #expect(keys.loginPublicKey == vector.loginPublicKey)
        #expect(hex(keys.wrappingKey) == vector.wrappingKeyHex)
        #expect(Hex.encode(keys.loginKey.rawRepresentation) != hex(keys.wrappingKey))
    }

    @Test func loginPublicKeyIsUnpaddedBase64URLOfTheRawKey() throws {
        let keys = try AccountKeys(masterKey: SymmetricKey(size: .bits256))
        #expect(keys.loginPublicKey.count == 43)
        #expect(Base64URL.decode(keys.loginPublicKey) == Array(keys.loginKey.publicKey.rawRepresentation))
    }
}

// MARK: - Base64URL

@Suite("Base64URL")
struct Base64URLTests {
    @Test func rfc4648Vectors() {
        let vectors = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Data(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xfb, 0xff, 0xbf]) == "-_-_")
        #expect(Base64URL.decode("-_-_") == [0xfb, 0xff, 0xbf])
    }

    @Test func paddingIsAcceptedOnlyWhenComplete() {
        #expect(Base64URL.decode("Zg==") == [0x66])
        #expect(Base64URL.decode("Zm8=") == [0x66, 0x6f])
        #expect(Base64URL.decode("Zg=") == nil)
        #expect(Base64URL.decode("Zg===") == nil)
        #expect(Base64URL.decode("Zm9v=") == nil)
        #expect(Base64URL.decode("Z=g=") == nil)
    }

    @Test func otherTextIsRejected() {
        for text in ["Z", "Zm9vY", "+/+/", "Zm 9v", "Zm9v\n", "Zm9v!", "ä"] {
            #expect(Base64URL.decode(text) == nil, "\(text)")
        }
        // Non-zero spare bits: a lax decoder reads "Zh" as "f" and "Zm9" as "fo", giving each byte string several encodings.
        #expect(Base64URL.decode("Zh") == nil)
        #expect(Base64URL.decode("Zm9") == nil)
        #expect(Base64URL.decode("Zm8") == [0x66, 0x6f])
    }

    @Test func roundTripsEveryLength() {
        for length in 0...70 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("="))
            #expect(Base64URL.decode(text) == bytes)
            #expect(text == Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: ""))
        }
    }
}

// MARK: - Envelope

@Suite("Envelope")
struct EnvelopeTests {
    static let key = SymmetricKey(size: .bits256)
    static let context = EnvelopeContext(purpose: "item", owner: "alice@example.com", object: "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")

    @Test func reproducesTheVectors() throws {
        let vectors = try AccountVectors.load("account-envelope", as: AccountVectors.EnvelopeVectors.self)
        #expect(vectors.cases.count == 3)
        for vector in vectors.cases {
            let context = EnvelopeContext(purpose: vector.context.purpose, owner: vector.context.owner, object: vector.context.object)
            #expect(Hex.encode([Envelope.version] + Array(context.canonicalString.utf8)) == vector.associatedDataHex)
            let key = try symmetricKey(hex: vector.keyHex)
            let sealed = try Envelope.seal(Data(vector.plaintext.utf8), key: key, context: context, nonce: Hex.decode(vector.nonceHex))
            #expect(sealed == vector.envelope)
            #expect(try Envelope.open(vector.envelope, key: key, context: context) == Data(vector.plaintext.utf8))
            #expect(Envelope.isWellFormed(vector.envelope))
        }
    }

    @Test func canonicalContext() {
        #expect(Self.context.canonicalString == "coffer/v1|item|alice@example.com|6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f")
        #expect(EnvelopeContext(purpose: "account-key", owner: "a@b").canonicalString == "coffer/v1|account-key|a@b|")
        // An email may contain "|": escaping keeps distinct contexts distinct.
        let left = EnvelopeContext(purpose: "item", owner: "a|b", object: "c")
        let right = EnvelopeContext(purpose: "item", owner: "a", object: "b|c")
        #expect(left.canonicalString == "coffer/v1|item|a%7Cb|c")
        #expect(left.canonicalString != right.canonicalString)
        #expect(EnvelopeContext(purpose: "item", owner: "a%7Cb", object: "c").canonicalString == "coffer/v1|item|a%257Cb|c")
    }

    @Test func roundTripWithRandomNonces() throws {
        let first = try Envelope.seal(Data("same".utf8), key: Self.key, context: Self.context)
        let second = try Envelope.seal(Data("same".utf8), key: Self.key, context: Self.context)
        #expect(first != second)
        #expect(!first.contains("="))
        #expect(try Envelope.open(first, key: Self.key, context: Self.context) == Data("same".utf8))
        #expect(try Envelope.open(second, key: Self.key, context: Self.context) == Data("same".utf8))
        let empty = try Envelope.seal(Data(), key: Self.key, context: Self.context)
        #expect(Base64URL.decode(empty)?.count == Envelope.minimumByteCount)
        #expect(try Envelope.open(empty, key: Self.key, context: Self.context).isEmpty)
    }

    @Test func wrongKeyOrContextIsTampering() throws {
        let sealed = try Envelope.seal(Data("secret".utf8), key: Self.key, context: Self.context)
        let contexts = [
            EnvelopeContext(purpose: "item", owner: "alice@example.com", object: "00000000-0000-4000-8000-000000000000"),  // another object
            EnvelopeContext(purpose: "item", owner: "alice@example.com"),  // no object
            EnvelopeContext(purpose: "item", owner: "mallory@example.com", object: Self.context.object),  // another owner
            EnvelopeContext(purpose: "vault-metadata", owner: "alice@example.com", object: Self.context.object),  // another purpose
        ]
        for context in contexts {
            #expect(throws: EnvelopeError.tampered) { try Envelope.open(sealed, key: Self.key, context: context) }
        }
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(sealed, key: SymmetricKey(size: .bits256), context: Self.context) }
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(sealed, key: SymmetricKey(size: .bits128), context: Self.context) }
        // The pipe-ambiguity pair really is two contexts.
        let pipe = try Envelope.seal(Data("x".utf8), key: Self.key, context: EnvelopeContext(purpose: "item", owner: "a|b", object: "c"))
        #expect(throws: EnvelopeError.tampered) {
            try Envelope.open(pipe, key: Self.key, context: EnvelopeContext(purpose: "item", owner: "a", object: "b|c"))
        }
    }

    @Test func everyModifiedByteIsTampering() throws {
        let sealed = try Envelope.seal(Data("twelve bytes".utf8), key: Self.key, context: Self.context)
        let bytes = try #require(Base64URL.decode(sealed))
        // Nonce, ciphertext and tag: every byte after the version is authenticated.
        for index in 1..<bytes.count {
            var modified = bytes
            modified[index] ^= 0x01
            #expect(throws: EnvelopeError.tampered) { try Envelope.open(Base64URL.encode(modified), key: Self.key, context: Self.context) }
        }
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(Base64URL.encode(bytes.dropLast()), key: Self.key, context: Self.context) }
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(Base64URL.encode(bytes + [0]), key: Self.key, context: Self.context) }
    }

    @Test func garbageIsMalformed() throws {
        let sealed = try Envelope.seal(Data("hello".utf8), key: Self.key, context: Self.context)
        var bytes = try #require(Base64URL.decode(sealed))
        bytes[0] = 3
        let cases = [
            "",
            "not base64url!",
            "{\"encrypted\":\"AAAA\",\"nonce\":\"AAAA\"}",
            Base64URL.encode([UInt8](repeating: 1, count: 28)),  // one byte short
            Base64URL.encode(bytes),  // unknown version
            Data([UInt8](repeating: 0xfb, count: 40)).base64EncodedString(),  // standard base64 ("+", "/")
        ]
        for text in cases {
            #expect(throws: EnvelopeError.malformed) { try Envelope.open(text, key: Self.key, context: Self.context) }
            #expect(!Envelope.isWellFormed(text))
        }
    }

    @Test("A version 2 envelope carries its key epoch in clear, authenticated: changing it is tampering")
    func keyEpochEnvelopes() throws {
        let sealed = try Envelope.seal(Data("hello".utf8), key: Self.key, context: Self.context, keyEpoch: 7)
        #expect(Envelope.keyEpoch(of: sealed) == 7)
        #expect(Envelope.isWellFormed(sealed))
        #expect(try Envelope.open(sealed, key: Self.key, context: Self.context) == Data("hello".utf8))
        #expect(Envelope.keyEpoch(of: try Envelope.seal(Data("x".utf8), key: Self.key, context: Self.context)) == Envelope.legacyEpoch)
        var bytes = try #require(Base64URL.decode(sealed))
        #expect(Array(bytes[0..<5]) == [2, 0, 0, 0, 7])
        bytes[4] = 8  // the server claims another epoch
        let relabelled = Base64URL.encode(bytes)
        #expect(Envelope.keyEpoch(of: relabelled) == 8)
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(relabelled, key: Self.key, context: Self.context) }
        // A version 2 header with no room for commitment, nonce and tag is not an envelope.
        #expect(!Envelope.isWellFormed(Base64URL.encode([2, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 59))))
        #expect(Envelope.isWellFormed(Base64URL.encode([2, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 60))))
        #expect(throws: (any Error).self) { try Envelope.seal(Data(), key: Self.key, context: Self.context, keyEpoch: 0) }
    }

    @Test("A version 2 envelope is committed to its key: opened with another key it fails before decrypting, and a changed commitment is tampering")
    func keyCommitment() throws {
        let sealed = try Envelope.seal(Data("hello".utf8), key: Self.key, context: Self.context, keyEpoch: 3)
        var bytes = try #require(Base64URL.decode(sealed))
        #expect(bytes.count == 5 + 32 + 12 + 5 + 16)
        #expect(Array(bytes[5..<37]) == Envelope.commitment(key: Self.key, header: bytes[0..<5], nonce: bytes[37..<49]))
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(sealed, key: SymmetricKey(size: .bits256), context: Self.context) }
        bytes[10] ^= 1
        #expect(throws: EnvelopeError.tampered) { try Envelope.open(Base64URL.encode(bytes), key: Self.key, context: Self.context) }
    }

    @Test func wellFormedness() throws {
        #expect(Envelope.isWellFormed(Base64URL.encode([1] + [UInt8](repeating: 0, count: 28))))
        #expect(!Envelope.isWellFormed(Base64URL.encode([1] + [UInt8](repeating: 0, count: 27))))
        #expect(!Envelope.isWellFormed(Base64URL.encode([0] + [UInt8](repeating: 0, count: 28))))
        #expect(!Envelope.isWellFormed("aGVsbG8gd29ybGQsIHRoaXMgaXMgbm90IGNpcGhlcnRleHQ"))
        let sealed = try Envelope.seal(Data(count: 1000), key: Self.key, context: Self.context)
        #expect(Envelope.isWellFormed(sealed))
        // Padding is tolerated on input, as Base64URL.decode tolerates it.
        let padded = sealed + String(repeating: "=", count: (4 - sealed.count % 4) % 4)
        #expect(Envelope.isWellFormed(padded))
        #expect(try Envelope.open(padded, key: Self.key, context: Self.context) == Data(count: 1000))
    }

    @Test func sealRefusesWrongKeyAndNonceSizes() {
        #expect(throws: (any Error).self) {
            try Envelope.seal(Data("x".utf8), key: SymmetricKey(size: .bits128), context: Self.context)
        }
        #expect(throws: (any Error).self) {
            try Envelope.seal(Data("x".utf8), key: Self.key, context: Self.context, nonce: [UInt8](repeating: 0, count: 11))
        }
        #expect(throws: (any Error).self) {
            try Envelope.seal(Data("x".utf8), key: Self.key, context: Self.context, nonce: [UInt8](repeating: 0, count: 16))
        }
    }

    @Test func errorDescriptions() {
        #expect(EnvelopeError.malformed.description.contains("not a Coffer envelope"))
        #expect(EnvelopeError.tampered.description.contains("failed authentication"))
    }
}

// MARK: - Account key bundle

@Suite("Account key bundle")
struct AccountKeyBundleTests {
    @Test func opensTheBundlePythonWrote() throws {
        let vector = try AccountVectors.load("account-bundle", as: AccountVectors.BundleVector.self)
        #expect(AccountEmail.normalized(vector.email) == vector.normalizedEmail)
        let masterKey = try symmetricKey(hex: vector.masterKeyHex)
        for email in [vector.email, vector.normalizedEmail, vector.normalizedEmail.uppercased()] {
            let secrets = try AccountKeyBundle.open(bundle: vector.bundle, masterKey: masterKey, email: email)
            #expect(hex(secrets.accountKey) == vector.accountKeyHex)
            #expect(Hex.encode(secrets.sharingKey.rawRepresentation) == vector.sharingPrivateKeyHex)
            #expect(hex(secrets.keys.wrappingKey) == vector.wrappingKeyHex)
            #expect(secrets.keys.loginPublicKey == vector.loginPublicKey)
        }
        // RFC 7748's test key pair, as a further independent check of the public key encoding.
        #expect(Base64URL.decode(vector.bundle.publicKey).map { Hex.encode($0) } == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    }

    @Test func createThenOpen() throws {
        let masterKey = SymmetricKey(size: .bits256)
        let (bundle, secrets) = try AccountKeyBundle.create(masterKey: masterKey, email: "Bob@Example.com ")
        #expect(Envelope.isWellFormed(bundle.encryptedAccountKey))
        #expect(Envelope.isWellFormed(bundle.encryptedPrivateKey))
        #expect(Base64URL.decode(bundle.publicKey) == Array(secrets.sharingKey.publicKey.rawRepresentation))
        #expect(secrets.accountKey.bitCount == 256)
        let expectedKeys = try AccountKeys(masterKey: masterKey)
        #expect(secrets.keys.loginPublicKey == expectedKeys.loginPublicKey)

        let opened = try AccountKeyBundle.open(bundle: bundle, masterKey: masterKey, email: "bob@example.com")
        #expect(hex(opened.accountKey) == hex(secrets.accountKey))
        #expect(opened.sharingKey.rawRepresentation == secrets.sharingKey.rawRepresentation)
        #expect(opened.keys.loginKey.rawRepresentation == secrets.keys.loginKey.rawRepresentation)

        // Every account gets its own random keys.
        let other = try AccountKeyBundle.create(masterKey: masterKey, email: "bob@example.com")
        #expect(hex(other.secrets.accountKey) != hex(secrets.accountKey))
        #expect(other.bundle.publicKey != bundle.publicKey)
    }

    @Test func wireFormat() throws {
        let (bundle, _) = try AccountKeyBundle.create(masterKey: SymmetricKey(size: .bits256), email: "bob@example.com")
        let object = try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(bundle)) as? [String: String])
        #expect(Set(object.keys) == ["encryptedAccountKey", "publicKey", "encryptedPrivateKey", "identityKey", "sharingKeyCertificate", "encryptedIdentityKey"])
        #expect(try JSONDecoder().decode(AccountKeyBundle.self, from: JSONEncoder().encode(bundle)) == bundle)
    }

    @Test func anyMismatchIsTampering() throws {
        let masterKey = SymmetricKey(size: .bits256)
        let (bundle, _) = try AccountKeyBundle.create(masterKey: masterKey, email: "bob@example.com")
        let (otherBundle, _) = try AccountKeyBundle.create(masterKey: masterKey, email: "bob@example.com")

        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: bundle, masterKey: SymmetricKey(size: .bits256), email: "bob@example.com") }
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: bundle, masterKey: masterKey, email: "mallory@example.com") }

        var swappedPublicKey = bundle
        swappedPublicKey.publicKey = otherBundle.publicKey
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: swappedPublicKey, masterKey: masterKey, email: "bob@example.com") }

        var swappedPrivateKey = bundle
        swappedPrivateKey.encryptedPrivateKey = otherBundle.encryptedPrivateKey
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: swappedPrivateKey, masterKey: masterKey, email: "bob@example.com") }

        // The two envelopes are bound to their purposes: the server cannot present one as the other.
        var swappedEnvelopes = bundle
        swappedEnvelopes.encryptedAccountKey = bundle.encryptedPrivateKey
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: swappedEnvelopes, masterKey: masterKey, email: "bob@example.com") }

        var garbage = bundle
        garbage.encryptedAccountKey = "garbage"
        #expect(throws: EnvelopeError.malformed) { try AccountKeyBundle.open(bundle: garbage, masterKey: masterKey, email: "bob@example.com") }
    }

    @Test func rewrapForANewPassword() throws {
        let oldMasterKey = SymmetricKey(size: .bits256)
        let newMasterKey = SymmetricKey(size: .bits256)
        let (bundle, secrets) = try AccountKeyBundle.create(masterKey: oldMasterKey, email: "bob@example.com")

        let rewrapped = try bundle.rewrapped(for: newMasterKey, email: "Bob@example.com", accountKey: secrets.accountKey)
        #expect(rewrapped.encryptedAccountKey != bundle.encryptedAccountKey)
        #expect(rewrapped.publicKey == bundle.publicKey)
        #expect(rewrapped.encryptedPrivateKey == bundle.encryptedPrivateKey)

        let opened = try AccountKeyBundle.open(bundle: rewrapped, masterKey: newMasterKey, email: "bob@example.com")
        #expect(hex(opened.accountKey) == hex(secrets.accountKey))
        #expect(opened.sharingKey.rawRepresentation == secrets.sharingKey.rawRepresentation)
        let newKeys = try AccountKeys(masterKey: newMasterKey)
        #expect(opened.keys.loginPublicKey == newKeys.loginPublicKey)
        #expect(opened.keys.loginPublicKey != secrets.keys.loginPublicKey)
        #expect(throws: EnvelopeError.tampered) { try AccountKeyBundle.open(bundle: rewrapped, masterKey: oldMasterKey, email: "bob@example.com") }

        // Rewrapping a key that is not this account's would lock the user out: refused.
        #expect(throws: EnvelopeError.tampered) {
            try bundle.rewrapped(for: newMasterKey, email: "bob@example.com", accountKey: SymmetricKey(size: .bits256))
        }
        #expect(throws: EnvelopeError.tampered) {
            try bundle.rewrapped(for: newMasterKey, email: "mallory@example.com", accountKey: secrets.accountKey)
        }
    }
}

// MARK: - Login proof

@Suite("Login proof")
struct LoginProofTests {
    @Test func reproducesTheVectorsWithTheScryptDerivedLoginKey() throws {
        let vectors = try AccountVectors.load("account-login-proof", as: AccountVectors.LoginProofVectors.self)
        let keys = try AccountKeys(masterKey: try AccountVectors.scryptMasterKey.get())
        #expect(keys.loginPublicKey == vectors.loginPublicKey)
        for vector in vectors.cases {
            #expect(Hex.encode(LoginProof.message(email: vector.email, challenge: vector.challenge, action: vector.action)) == vector.messageHex)
            #expect(LoginProof.verify(signature: vector.signature, publicKey: vectors.loginPublicKey, email: vector.email, challenge: vector.challenge, action: vector.action))
            let signature = try LoginProof.sign(email: vector.email, challenge: vector.challenge, action: vector.action, loginKey: keys.loginKey)
            #expect(LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: vector.email, challenge: vector.challenge, action: vector.action))
            #if !canImport(CryptoKit)
            // BoringSSL's Ed25519 is RFC 8032's deterministic one; Apple's CryptoKit randomises signatures.
            #expect(signature == vector.signature)
            #endif
        }
    }

    @Test func verifiesOnlyTheExactProof() throws {
        let keys = try AccountKeys(masterKey: SymmetricKey(size: .bits256))
        let signature = try LoginProof.sign(email: "Alice@Example.com", challenge: "c-123", action: "login", loginKey: keys.loginKey)
        #expect(signature.count == 86)
        #expect(LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: "alice@example.com", challenge: "c-123", action: "login"))

        let otherKey = try AccountKeys(masterKey: SymmetricKey(size: .bits256)).loginPublicKey
        #expect(!LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: "mallory@example.com", challenge: "c-123", action: "login"))
        #expect(!LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: "alice@example.com", challenge: "c-124", action: "login"))
        #expect(!LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: "alice@example.com", challenge: "c-123", action: "delete-account"))
        #expect(!LoginProof.verify(signature: signature, publicKey: otherKey, email: "alice@example.com", challenge: "c-123", action: "login"))

        // Malformed input is simply false.
        var bytes = try #require(Base64URL.decode(signature))
        bytes[10] ^= 0x01
        for badSignature in [Base64URL.encode(bytes), String(signature.dropLast(2)), "", "!!", signature + "AA"] {
            #expect(!LoginProof.verify(signature: badSignature, publicKey: keys.loginPublicKey, email: "alice@example.com", challenge: "c-123", action: "login"))
        }
        for badKey in ["", "not a key", String(keys.loginPublicKey.dropLast(3)), Base64URL.encode([UInt8](repeating: 0, count: 32))] {
            #expect(!LoginProof.verify(signature: signature, publicKey: badKey, email: "alice@example.com", challenge: "c-123", action: "login"))
        }
    }

    @Test func newlinesCannotShiftFields() throws {
        let keys = try AccountKeys(masterKey: SymmetricKey(size: .bits256))
        #expect(throws: LoginProofError.newlineInField("action")) {
            try LoginProof.sign(email: "alice@example.com", challenge: "c", action: "login\nx", loginKey: keys.loginKey)
        }
        #expect(throws: LoginProofError.newlineInField("email")) {
            try LoginProof.sign(email: "alice\n@example.com", challenge: "c", action: "login", loginKey: keys.loginKey)
        }
        // The same bytes, split differently, never verify.
        let signature = try LoginProof.sign(email: "a", challenge: "b\nc", action: "login", loginKey: keys.loginKey)
        #expect(!LoginProof.verify(signature: signature, publicKey: keys.loginPublicKey, email: "a\nb", challenge: "c", action: "login"))
    }
}
