/// Shape rules for identifiers shared by server and clients.
public enum Validation {
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
