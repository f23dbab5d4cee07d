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
        var chars = Array(text.utf8)
        // Padding, when present, must be complete: "QQ==" or "QQ", never "QQ=".
        if let firstPad = chars.firstIndex(of: UInt8(ascii: "=")) {
            let padCount = chars.count - firstPad
            guard padCount <= 2, chars.count % 4 == 0, chars[firstPad...].allSatisfy({ $0 == UInt8(ascii: "=") }) else {
                return nil
            }
            chars.removeLast(padCount)
        }
        guard chars.count % 4 != 1 else { return nil }

        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bitCount = 0
        for char in chars {
            guard let value = sextet(char) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount)))
                accumulator &= (1 << UInt32(bitCount)) - 1
            }
        }
        // Leftover bits must be zero, so every byte string has exactly one encoding (no malleable text forms).
        guard accumulator == 0 else { return nil }
        return out
    }

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
