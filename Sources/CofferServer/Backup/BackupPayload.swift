import CofferCrypto
import Foundation

/// What the server can tell about an opaque backup `data` string without any key: its size as
/// ciphertext, and whether it looks encrypted (the optional ciphertext check of SPEC.md §4).
enum BackupPayload {
    /// Bytes counted against the size cap: the decoded ciphertext when `data` is bare base64 or a
    /// `{"encrypted", "nonce"}` envelope, otherwise its UTF-8 length. Counting ciphertext rather
    /// than its base64 text keeps the cap meaning "this much backup" whatever the encoding.
    static func size(of data: String) -> Int {
        if let encrypted = envelopeCiphertextText(data), let length = base64DecodedLength(encrypted) {
            return length
        }
        return base64DecodedLength(data) ?? data.utf8.count
    }

    /// The ciphertext bytes, when `data` is bare base64 or an envelope.
    static func ciphertext(of data: String) -> [UInt8]? {
        if let encrypted = envelopeCiphertextText(data) {
            return Data(base64Encoded: encrypted).map { [UInt8]($0) }
        }
        return Data(base64Encoded: data).map { [UInt8]($0) }
    }

    /// Why `data` does not look like ciphertext, or nil when it does.
    static func plaintextReason(_ data: String) -> String? {
        guard let bytes = ciphertext(of: data) else {
            return "data must be base64 ciphertext or an {\"encrypted\",\"nonce\"} envelope of it"
        }
        if let first = bytes.first(where: { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }),
            first == UInt8(ascii: "{") || first == UInt8(ascii: "["),
            (try? JSONSerialization.jsonObject(with: Data(bytes))) != nil
        {
            return "data decodes to plaintext JSON, not ciphertext"
        }
        if bytes.count >= 1024, entropy(bytes) < 7.5 {
            return "data does not look encrypted (byte entropy too low)"
        }
        return nil
    }

    /// Shannon entropy in bits per byte; random bytes approach 8.
    static func entropy(_ bytes: [UInt8]) -> Double {
        guard !bytes.isEmpty else { return 0 }
        var counts = [Int](repeating: 0, count: 256)
        for byte in bytes { counts[Int(byte)] += 1 }
        let total = Double(bytes.count)
        return counts.reduce(0.0) { sum, count in
            guard count > 0 else { return sum }
            let p = Double(count) / total
            return sum - p * log2(p)
        }
    }

    /// The `encrypted` string of an envelope, without decoding the base64 (cheap on large backups).
    private static func envelopeCiphertextText(_ data: String) -> String? {
        guard data.utf8.first == UInt8(ascii: "{") else { return nil }
        struct Envelope: Decodable {
            var encrypted: String
        }
        return try? JSONDecoder().decode(Envelope.self, from: Data(data.utf8)).encrypted
    }

    /// Decoded length of standard base64 text, or nil when it is not base64.
    static func base64DecodedLength(_ text: String) -> Int? {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count % 4 == 0 else { return nil }
        var padding = 0
        for (index, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                if padding > 0 { return nil }
            case UInt8(ascii: "="):
                padding += 1
                if padding > 2 || index < bytes.count - 2 { return nil }
            default:
                return nil
            }
        }
        return bytes.count / 4 * 3 - padding
    }
}
