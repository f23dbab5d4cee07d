/// Shape rules for identifiers shared by server and clients.
public enum Validation {
    /// The largest item version, revision, cursor or event id accepted from the wire: 2^53 − 1.
    /// JavaScript clients (the browser backup client) lose exactness above it, and the margin
    /// under `Int64.max` means `+ 1` on an accepted value can never overflow.
    public static let maximumCounter: Int64 = 9_007_199_254_740_991
    /// Versions, revisions and cursors a client may send: 0 (nothing yet) up to `maximumCounter`.
    public static let counters: ClosedRange<Int64> = 0...maximumCounter
    /// The same as `Int`, for the version fields the wire types hold as `Int`.
    public static let versions: ClosedRange<Int> = 0...Int(maximumCounter)
    /// Vault key epochs: the first key is 1; PostgreSQL keeps them as `INTEGER`.
    public static let keyEpochs: ClosedRange<Int> = 1...Int(Int32.max)
    /// Unix seconds a client may sign a request with (`X-Coffer-Timestamp`): 1970 up to the last
    /// second of year 9999, the wire timestamps' range, so clock-skew arithmetic cannot overflow.
    public static let unixSeconds: ClosedRange<Int64> = 0...(Timestamp.maximum.milliseconds / 1000)

    /// The text of `range` for error messages (`0…9007199254740991`).
    public static func describe<T: BinaryInteger>(_ range: ClosedRange<T>) -> String {
        "\(range.lowerBound)…\(range.upperBound)"
    }

    /// A decimal integer of at most 19 digits (an optional leading `-`) within `range`: no `+`,
    /// spaces, fractions or exponents, and nothing that overflows on the way.
    public static func integer(_ text: some StringProtocol, in range: ClosedRange<Int64>) -> Int64? {
        let utf8 = text.utf8
        let digits = utf8.first == UInt8(ascii: "-") ? utf8.dropFirst() : utf8[...]
        guard !digits.isEmpty, digits.count <= 19, digits.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }),
            let value = Int64(String(text)), range.contains(value)
        else { return nil }
        return value
    }

    /// True for exactly 64 lowercase hexadecimal characters (a hex SHA-256 digest).
    public static func isHexHash(_ value: String) -> Bool {
        var count = 0
        for byte in value.utf8 {
            count += 1
            guard count <= 64 else { return false }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): continue
            default: return false
            }
        }
        return count == 64
    }

    /// True for a request id a client may choose: 1–128 characters of `[A-Za-z0-9._:-]`.
    public static func isRequestId(_ value: String) -> Bool {
        guard !value.isEmpty, value.utf8.count <= 128 else { return false }
        return value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "-"), UInt8(ascii: ":"):
                return true
            default:
                return false
            }
        }
    }
}
