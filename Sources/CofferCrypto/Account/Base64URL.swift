import Foundation

/// base64url (RFC 4648 §5), the text form of Coffer's keys, signatures and envelopes.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Encodes bytes as base64url without padding.
    public static func encode(_ bytes: some DataProtocol) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let group = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            out.append(alphabet[Int(group >> 18 & 0x3f)])
            out.append(alphabet[Int(group >> 12 & 0x3f)])
            if second != nil { out.append(alphabet[Int(group >> 6 & 0x3f)]) }
            if third != nil { out.append(alphabet[Int(group & 0x3f)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes base64url with or without padding; nil for any other character, a bad length or non-zero spare bits.
    public static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode(utf8: $0) }
    }

    private static func decode(utf8 input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var count = input.count
        // Padding, when present, must be complete: "QQ==" or "QQ", never "QQ=".
        if let firstPad = input.firstIndex(of: UInt8(ascii: "=")) {
            let padCount = count - firstPad
            guard padCount <= 2, count % 4 == 0, input[firstPad...].allSatisfy({ $0 == UInt8(ascii: "=") }) else {
                return nil
            }
            count = firstPad
        }
        guard count % 4 != 1 else { return nil }

        let decodedCount = count * 3 / 4
        var valid = true
        let out = [UInt8](unsafeUninitializedCapacity: decodedCount) { buffer, initialized in
            var accumulator: UInt32 = 0
            var bitCount = 0
            var written = 0
            for index in 0..<count {
                let value = sextets[Int(input[index])]
                guard value != 0xff else {
                    valid = false
                    break
                }
                accumulator = accumulator << 6 | UInt32(value)
                bitCount += 6
                if bitCount >= 8 {
                    bitCount -= 8
                    buffer[written] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount))
                    written += 1
                    accumulator &= (1 << UInt32(bitCount)) - 1
                }
            }
            // Leftover bits must be zero, so every byte string has exactly one encoding (no malleable text forms).
            if accumulator != 0 { valid = false }
            initialized = written
        }
        return valid ? out : nil
    }

    /// The value of each byte as a base64url digit, 0xff for bytes that are not one.
    private static let sextets: [UInt8] = (0...255).map { sextet(UInt8($0)) ?? 0xff }

    private static func sextet(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): char - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): char - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
